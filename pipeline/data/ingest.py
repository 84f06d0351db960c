"""Raw ticket ingestion: landing files (CSV, JSONL, Parquet) -> one canonical table + a quarantine.

Every record read from a landing file ends up in exactly one of two tables, so rows in = rows kept +
rows quarantined, per file and in total:

* `tickets`: ticket_id, created_at (UTC), channel, text, label_raw, operator_id, source_file, source_row
* `quarantine`: source_file, source_row, ticket_id, reason, detail, record (the raw record as JSON)

Quarantine reasons: bad_encoding, malformed_row, malformed_json, unreadable_file, missing_column,
missing_ticket_id, empty_text, oversized_text, missing_label, bad_timestamp, wrong_type,
duplicate_ticket_id (same id, different content), redelivered_row (the same row delivered twice).

Both tables live in the raw zone. Messages produced here name files, rows, columns and reasons,
never the text of a ticket.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from pipeline.config import TunegateConfig

CANONICAL = ["ticket_id", "created_at", "channel", "text", "label_raw", "operator_id"]
TICKET_COLUMNS = CANONICAL + ["source_file", "source_row"]
QUARANTINE_COLUMNS = ["source_file", "source_row", "ticket_id", "reason", "detail", "record"]
FILE_COLUMNS = ["source_file", "format", "status", "rows_in", "rows_kept", "rows_quarantined",
                "unknown_columns", "message"]

csv.field_size_limit(10_000_000)


@dataclass
class IngestResult:
    tickets: pd.DataFrame
    quarantine: pd.DataFrame
    files: pd.DataFrame
    warnings: list[str] = field(default_factory=list)

    @property
    def rows_in(self) -> int:
        return len(self.tickets) + len(self.quarantine)

    def quarantine_counts(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.quarantine["reason"].value_counts().sort_index().items()}


class _Sink:
    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.quarantine: list[dict] = []

    def reject(self, file: str, row: int, reason: str, detail: str, record: object, ticket_id=None) -> None:
        self.quarantine.append({"source_file": file, "source_row": row, "ticket_id": ticket_id,
                                "reason": reason, "detail": detail,
                                "record": json.dumps(record, ensure_ascii=False, default=str)})


def _decode(data: bytes, encoding: str) -> tuple[str, bool]:
    try:
        return data.decode(encoding), True
    except UnicodeDecodeError:
        # Keep every byte: undecodable ones become lone surrogates, and the rows holding them are
        # quarantined as bad_encoding instead of being guessed at or dropped.
        return data.decode(encoding, errors="surrogateescape"), False


def _has_surrogates(values) -> bool:
    return any(isinstance(v, str) and any("\udc80" <= ch <= "\udcff" for ch in v) for v in values)


def _clean_surrogates(values) -> list:
    return [v.encode("utf-8", "surrogateescape").decode("utf-8", "replace") if isinstance(v, str) else v
            for v in values]


def _read_records(path: Path, encoding: str, sink: _Sink) -> tuple[str, list[tuple[int, dict]], list[str], int]:
    """(format, parseable (row number, record) pairs, columns, records read); the rest go to the sink.

    "Records read" is counted by the parser itself (CSV data rows, non-blank JSONL lines, Parquet
    rows), so the accounting check can compare it with kept + quarantined."""
    name = path.name
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        try:
            df = pq.read_table(path).to_pandas()
        except Exception as exc:  # corrupt or not Parquet at all
            sink.reject(name, 0, "unreadable_file", f"cannot read Parquet: {type(exc).__name__}", None)
            return "parquet", [], [], 1
        df = df.astype(object).where(df.notna(), None)
        return "parquet", [(i + 1, rec) for i, rec in enumerate(df.to_dict("records"))], list(df.columns), len(df)

    data = path.read_bytes()
    text, clean = _decode(data, encoding)
    if suffix in (".jsonl", ".json"):
        records, columns, n_read = [], [], 0
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            n_read += 1
            if not clean and _has_surrogates([line]):
                sink.reject(name, lineno, "bad_encoding", f"line {lineno} is not valid {encoding}",
                            _clean_surrogates([line])[0])
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                sink.reject(name, lineno, "malformed_json", f"line {lineno}: {exc.msg} at column {exc.colno}", line)
                continue
            if not isinstance(rec, dict):
                sink.reject(name, lineno, "malformed_json", f"line {lineno}: not a JSON object", line)
                continue
            for k in rec:
                if k not in columns:
                    columns.append(k)
            records.append((lineno, rec))
        return "jsonl", records, columns, n_read

    # CSV: a real parser, since ticket texts may hold quoted newlines
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return "csv", [], [], 0
    header = [h.strip() for h in header]
    records, n_read = [], 0
    for rowno, row in enumerate(reader, start=1):
        if not row:
            continue
        n_read += 1
        if not clean and _has_surrogates(row):
            sink.reject(name, rowno, "bad_encoding", f"row {rowno} is not valid {encoding}",
                        dict(zip(header, _clean_surrogates(row))))
            continue
        if len(row) != len(header):
            sink.reject(name, rowno, "malformed_row",
                        f"row {rowno} has {len(row)} fields, the header has {len(header)}", row)
            continue
        records.append((rowno, dict(zip(header, row))))
    return "csv", records, header, n_read


def _as_text(value) -> tuple[str | None, bool]:
    """(value as a stripped string or None, type ok)."""
    if value is None:
        return None, True
    if isinstance(value, float) and pd.isna(value):
        return None, True
    if isinstance(value, (dict, list, tuple, set, bytes)):
        return None, False
    s = str(value).strip()
    return (s or None), True


def ingest_landing(config: TunegateConfig, landing: Path | None = None) -> IngestResult:
    """Read every landing file (sorted by name, for determinism) into tickets + quarantine."""
    landing = Path(landing or config.landing_path)
    if not landing.exists():
        raise FileNotFoundError(f"landing folder {landing} does not exist: drop export files there "
                                "(or run `tunegate demo` to generate the bundled sample)")
    paths = sorted({p for pat in config.landing.patterns for p in landing.glob(pat) if p.is_file()})
    cols = config.columns
    mapping = {"ticket_id": cols.ticket_id, "created_at": cols.created_at, "channel": cols.channel,
               "text": cols.text, "label_raw": cols.label, "operator_id": cols.operator_id}
    required = {"text": cols.text, "label_raw": cols.label}
    sink = _Sink()
    files, warnings = [], []
    for path in paths:
        before_rows, before_q = len(sink.rows), len(sink.quarantine)
        if path.stat().st_size == 0:
            files.append({"source_file": path.name, "format": path.suffix.lstrip("."), "status": "empty",
                          "rows_in": 0, "rows_kept": 0, "rows_quarantined": 0, "unknown_columns": "",
                          "message": "empty file: nothing to read"})
            warnings.append(f"{path.name}: empty file")
            continue
        fmt, records, columns, n_read = _read_records(path, config.landing.encoding, sink)
        known = {c for c in mapping.values() if c}
        unknown = [c for c in columns if c not in known]
        missing = [canon for canon, src in required.items() if src not in columns] if records else []
        message = ""
        if missing:
            message = (f"required column(s) {', '.join(required[m] for m in missing)} not in the file's "
                       f"{len(columns)} columns; fix `columns:` in the config (or the file has no header)")
            if fmt == "csv":  # the header itself may be a data row: keep it too, never lose a record
                n_read += 1
                sink.reject(path.name, 0, "missing_column", "header row: " + message, columns)
            for rowno, rec in records:
                sink.reject(path.name, rowno, "missing_column", message, rec)
        else:
            for rowno, rec in records:
                _validate(rec, rowno, path.name, mapping, config, sink)
        if unknown:
            warnings.append(f"{path.name}: ignored {_describe_columns(unknown)}")
        kept, quarantined = len(sink.rows) - before_rows, len(sink.quarantine) - before_q
        status = "rejected" if missing else ("ok" if quarantined == 0 else "partial")
        files.append({"source_file": path.name, "format": fmt, "status": status,
                      "rows_in": n_read, "rows_kept": kept, "rows_quarantined": quarantined,
                      "unknown_columns": _describe_columns(unknown) if unknown else "", "message": message})

    tickets = pd.DataFrame(sink.rows, columns=TICKET_COLUMNS)
    tickets, dup_q = _resolve_duplicate_ids(tickets)
    quarantine = pd.DataFrame(sink.quarantine + dup_q, columns=QUARANTINE_COLUMNS)
    files_df = pd.DataFrame(files, columns=FILE_COLUMNS)
    if dup_q:  # move duplicate-id rows from kept to quarantined in the per-file report
        moved = pd.Series([q["source_file"] for q in dup_q]).value_counts()
        for fname, n in moved.items():
            idx = files_df.index[files_df.source_file == fname]
            files_df.loc[idx, "rows_kept"] -= n
            files_df.loc[idx, "rows_quarantined"] += n
            files_df.loc[idx, "status"] = "partial"
    tickets["created_at"] = pd.to_datetime(tickets["created_at"], utc=True, format="ISO8601")
    tickets["source_row"] = tickets["source_row"].astype("int64")
    quarantine["source_row"] = quarantine["source_row"].astype("int64")
    return IngestResult(tickets.reset_index(drop=True), quarantine.reset_index(drop=True), files_df, warnings)


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,40}$")


def _describe_columns(names: list[str]) -> str:
    """Column names for messages and metadata: identifier-like names are shown, anything else (a data
    row read as a header, say) only counted, so no ticket text reaches a message."""
    shown = [n for n in names if _IDENTIFIER.match(n)]
    hidden = len(names) - len(shown)
    parts = [f"unknown column(s) {', '.join(shown)}"] if shown else []
    if hidden:
        parts.append(f"{hidden} column name(s) that do not look like column names")
    return "; ".join(parts)


def _validate(rec: dict, rowno: int, fname: str, mapping: dict, config: TunegateConfig, sink: _Sink) -> None:
    out: dict = {"source_file": fname, "source_row": rowno}
    for canon, src in mapping.items():
        if src is None:
            out[canon] = None
            continue
        value, ok = _as_text(rec.get(src))
        if not ok:
            sink.reject(fname, rowno, "wrong_type", f"column {src} holds a {type(rec.get(src)).__name__}, "
                        "expected text", rec, ticket_id=out.get("ticket_id"))
            return
        out[canon] = value
    if mapping["ticket_id"] is None:
        out["ticket_id"] = "t-" + hashlib.sha1(f"{fname}:{rowno}".encode()).hexdigest()[:12]
    tid = out["ticket_id"]
    if not tid:
        sink.reject(fname, rowno, "missing_ticket_id", f"column {mapping['ticket_id']} is empty", rec)
        return
    text = out["text"]
    if text is None:
        sink.reject(fname, rowno, "empty_text", "the ticket text is empty", rec, ticket_id=tid)
        return
    if len(text) < config.limits.min_text_chars:
        sink.reject(fname, rowno, "empty_text",
                    f"the ticket text has {len(text)} characters (< {config.limits.min_text_chars})", rec, ticket_id=tid)
        return
    if len(text) > config.limits.max_text_chars:
        sink.reject(fname, rowno, "oversized_text",
                    f"the ticket text has {len(text)} characters (> {config.limits.max_text_chars})", rec, ticket_id=tid)
        return
    if out["label_raw"] is None:
        sink.reject(fname, rowno, "missing_label", "no operator label", rec, ticket_id=tid)
        return
    if out["created_at"] is not None:
        ts = _parse_timestamp(out["created_at"])
        if ts is None:
            sink.reject(fname, rowno, "bad_timestamp", "created_at is not an ISO 8601 timestamp", rec, ticket_id=tid)
            return
        out["created_at"] = ts.isoformat()
    sink.rows.append(out)


def _parse_timestamp(value: str) -> datetime | None:
    """ISO 8601 -> aware UTC datetime; naive times are taken as UTC; anything else -> None."""
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        ts = pd.to_datetime(value, utc=True, errors="coerce", format="ISO8601")
        return None if pd.isna(ts) else ts.to_pydatetime()
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


def _resolve_duplicate_ids(tickets: pd.DataFrame) -> tuple[pd.DataFrame, list[dict]]:
    """The first occurrence of a ticket id (file order) wins; later ones are quarantined."""
    dup = tickets.duplicated("ticket_id", keep="first")
    if not dup.any():
        return tickets, []
    first = tickets[~dup].set_index("ticket_id")
    content = ["created_at", "channel", "text", "label_raw", "operator_id"]
    out = []
    for _, row in tickets[dup].iterrows():
        orig = first.loc[row.ticket_id]
        same = all((row[c] == orig[c]) or (pd.isna(row[c]) and pd.isna(orig[c])) for c in content)
        reason = "redelivered_row" if same else "duplicate_ticket_id"
        detail = (f"same row already read from {orig.source_file} row {orig.source_row}" if same else
                  f"ticket id already used by {orig.source_file} row {orig.source_row} with different content")
        rec = {k: (None if pd.isna(row[k]) else row[k]) for k in CANONICAL}
        out.append({"source_file": row.source_file, "source_row": int(row.source_row), "ticket_id": row.ticket_id,
                    "reason": reason, "detail": detail, "record": json.dumps(rec, ensure_ascii=False, default=str)})
    return tickets[~dup], out
