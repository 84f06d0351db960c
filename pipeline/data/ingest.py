"""Raw ticket ingestion: landing files (CSV, JSONL, Parquet) -> one canonical table + a quarantine.

Every record read from a landing file ends up in exactly one of two tables, so rows in = rows kept +
rows quarantined, per file and in total:

* `tickets`: ticket_id, created_at (UTC), channel, text, label_raw, operator_id, source_file, source_row
* `quarantine`: source_file, source_row, ticket_id, reason, detail, record (the raw record as JSON)

Quarantine reasons: bad_encoding, malformed_row, malformed_json, unreadable_file, over_limit,
missing_column, missing_ticket_id, empty_text, control_text (only control characters), oversized_text,
missing_label, bad_timestamp, wrong_type, duplicate_ticket_id (same id, different content),
redelivered_row (the same row delivered twice).

Any file can be dropped into landing, so reading never trusts it:

* accounting is by the physical records the file holds (CSV and JSONL lines, Parquet rows), not by
  what a parser returned: a CSV record whose quoted field swallows lines that are whole records on
  their own (an unbalanced quote) is split back into those lines, the broken one quarantined;
* limits from `landing:` in the config bound JSON nesting depth, number size, line and field length;
* a UTF-8 byte-order mark is stripped; symlinks are skipped (and reported) unless
  `landing.follow_symlinks` is true;
* any exception while reading one file becomes that file's `unreadable_file` row (the exception
  class, never its text) and the other files are read as usual.

Both tables live in the raw zone. Messages produced here name files, rows, columns and reasons,
never the text of a ticket.
"""
from __future__ import annotations

import csv
import hashlib
import json
import re
import unicodedata
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

_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\[uU][dD][89a-fA-F][0-9a-fA-F]{2}")
_BLANK_CATEGORIES = {"Cc", "Cf", "Cs", "Zs", "Zl", "Zp"}  # control, format, surrogate, separators
_RECORD_PREVIEW = 10_000  # characters of an over-limit record kept in the quarantine
# The parser reads fields of any length; `landing.max_field_chars` is enforced on what it returns, so an
# over-long field is an `over_limit` row of its own, not a parser error that stops the file.
csv.field_size_limit(2**31 - 1)


def _safe(value: str) -> str:
    """A string that encodes as UTF-8: lone surrogates (undecodable bytes, bad JSON escapes, odd
    file names) become U+FFFD."""
    return _SURROGATE.sub("\ufffd", value)


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
        try:
            rec = json.dumps(record, ensure_ascii=False, default=str)
        except (ValueError, RecursionError):  # e.g. a float NaN key or a structure too deep to write
            rec = json.dumps(str(record)[:_RECORD_PREVIEW], ensure_ascii=False)
        if len(rec) > _RECORD_PREVIEW:
            rec = json.dumps({"truncated_to_chars": _RECORD_PREVIEW, "start": rec[:_RECORD_PREVIEW]},
                             ensure_ascii=False)
        self.quarantine.append({"source_file": file, "source_row": row,
                                "ticket_id": None if ticket_id is None else _safe(str(ticket_id)),
                                "reason": reason, "detail": _safe(detail), "record": _safe(rec)})


class _TooLarge(ValueError):
    """A JSON number over `landing.max_number_digits`."""


def _json_depth(value, limit: int, depth: int = 1) -> int:
    """Nesting depth of a parsed JSON value, not looking deeper than `limit` + 1."""
    if depth > limit or not isinstance(value, (dict, list)):
        return depth
    children = value.values() if isinstance(value, dict) else value
    return max([depth] + [_json_depth(v, limit, depth + 1) for v in children if isinstance(v, (dict, list))])


def _read_parquet(path: Path, name: str, sink: _Sink) -> tuple[str, list[tuple[int, dict]], list[str], int]:
    try:
        df = pq.read_table(path).to_pandas()
    except Exception as exc:  # corrupt or not Parquet at all
        sink.reject(name, 0, "unreadable_file", f"cannot read Parquet: {type(exc).__name__}", None)
        return "parquet", [], [], 1
    df = df.astype(object).where(df.notna(), None)
    columns = [_safe(str(c)) for c in df.columns]
    records = [(i + 1, dict(zip(columns, row))) for i, row in enumerate(df.itertuples(index=False, name=None))]
    return "parquet", records, columns, len(df)


def _read_jsonl(lines: list[str], name: str, encoding: str, landing, sink: _Sink):
    def parse_int(digits: str) -> int:
        if len(digits.lstrip("-")) > landing.max_number_digits:
            raise _TooLarge(f"a number has {len(digits.lstrip('-'))} digits (> {landing.max_number_digits})")
        return int(digits)

    def parse_float(digits: str) -> float:
        if len(digits) > landing.max_number_digits + 8:
            raise _TooLarge(f"a number has {len(digits)} characters (> {landing.max_number_digits})")
        return float(digits)

    decoder = json.JSONDecoder(parse_int=parse_int, parse_float=parse_float)
    records, columns, n_read = [], [], 0
    seen = set()
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        n_read += 1
        if len(line) > landing.max_line_chars:
            sink.reject(name, lineno, "over_limit", f"line {lineno} has {len(line)} characters "
                        f"(> landing.max_line_chars {landing.max_line_chars})", line[:_RECORD_PREVIEW])
            continue
        if _SURROGATE.search(line):
            sink.reject(name, lineno, "bad_encoding", f"line {lineno} is not valid {encoding}", line)
            continue
        try:
            rec = decoder.decode(line)
        except _TooLarge as exc:
            sink.reject(name, lineno, "over_limit", f"line {lineno}: {exc} (landing.max_number_digits)", line)
            continue
        except RecursionError:
            sink.reject(name, lineno, "over_limit", f"line {lineno} nests deeper than Python can parse "
                        f"(landing.max_json_depth is {landing.max_json_depth})", line[:_RECORD_PREVIEW])
            continue
        except json.JSONDecodeError as exc:
            sink.reject(name, lineno, "malformed_json", f"line {lineno}: {exc.msg} at column {exc.colno}", line)
            continue
        except Exception as exc:  # anything else a parser may raise on hostile input
            sink.reject(name, lineno, "malformed_json", f"line {lineno}: {type(exc).__name__}", line)
            continue
        if not isinstance(rec, dict):
            sink.reject(name, lineno, "malformed_json", f"line {lineno}: not a JSON object", line)
            continue
        if _SURROGATE_ESCAPE.search(line) and _SURROGATE.search(json.dumps(rec, ensure_ascii=False)):
            # a "\ud800" escape decodes to a lone surrogate: not text, and no table could store it
            sink.reject(name, lineno, "bad_encoding", f"line {lineno} holds a lone surrogate escape", line)
            continue
        depth = _json_depth(rec, landing.max_json_depth)
        if depth > landing.max_json_depth:
            sink.reject(name, lineno, "over_limit", f"line {lineno} nests deeper than "
                        f"landing.max_json_depth ({landing.max_json_depth})", line[:_RECORD_PREVIEW])
            continue
        for k in rec:
            if k not in seen:
                seen.add(k)
                columns.append(k)
        records.append((lineno, rec))
    return "jsonl", records, columns, n_read


def _csv_rows(lines: list[str], first: int, last: int) -> list[tuple[int, int, list[str] | None]]:
    """Parse physical lines [first, last) (0-based) as CSV: (first line, last line, fields) per record,
    fields None for a line the parser refused (it is then a record of its own and parsing resumes on the
    next line)."""
    out = []
    pos = first
    while pos < last:
        reader = csv.reader(lines[i] for i in range(pos, last))
        start = pos
        try:
            for row in reader:
                end = pos + reader.line_num  # exclusive
                out.append((start, end, row))
                start = end
        except csv.Error:
            out.append((start, start + 1, None))  # the line where the broken record began
            pos = start + 1
            continue
        break
    return out


def _read_csv(lines: list[str], name: str, encoding: str, landing, sink: _Sink):
    # A real parser, since ticket texts may hold quoted newlines; physical lines are the unit of account.
    header_at = next((i for i, l in enumerate(lines) if l.strip()), None)
    if header_at is None:
        return "csv", [], [], 0
    if len(lines[header_at]) > landing.max_line_chars:
        sink.reject(name, 0, "over_limit", f"the header line has {len(lines[header_at])} characters "
                    f"(> landing.max_line_chars {landing.max_line_chars})", lines[header_at][:_RECORD_PREVIEW])
        return "csv", [], [], 1
    try:
        header = [h.strip() for h in next(csv.reader([lines[header_at]]))]
    except (csv.Error, StopIteration):
        header = []
    if not header or _SURROGATE.search(lines[header_at]):
        sink.reject(name, 0, "malformed_row", "the header line cannot be read as CSV", lines[header_at])
        header = None
    width = len(header) if header else 0

    def whole_record(line: str) -> bool:
        try:
            fields = next(csv.reader([line]))
        except (csv.Error, StopIteration):
            return False
        return width > 1 and len(fields) == width

    records, n_read = [], 0
    queue = [(header_at + 1, len(lines))]
    parsed: list[tuple[int, int, list[str] | None]] = []
    while queue:
        first, last = queue.pop()
        for start, end, row in _csv_rows(lines, first, last):
            if end - start > 1 and row is not None and any(whole_record(lines[i]) for i in range(start + 1, end)):
                # a quoted field swallowed lines that are records on their own: an unbalanced quote.
                # The line that opened it is quarantined and the swallowed lines are read again.
                parsed.append((start, start + 1, None))
                queue.append((start + 1, end))
                continue
            parsed.append((start, end, row))
    if header is None:
        n_read = 1  # the header line, quarantined above
    for ordinal, (start, end, row) in enumerate(sorted(parsed, key=lambda r: r[0]), start=1):
        span = "".join(lines[start:end])
        if not span.strip():
            continue
        n_read += 1
        # source_row is the record's ordinal after the header (blank lines included), as in earlier
        # releases, so ids derived from file and row stay stable; messages name the physical line
        rowno, line_no = ordinal, start + 1
        if header is None:
            sink.reject(name, rowno, "malformed_row", f"line {line_no}: the file has no readable header", span[:_RECORD_PREVIEW])
            continue
        if len(span) > landing.max_line_chars and end - start == 1:
            sink.reject(name, rowno, "over_limit", f"line {line_no} has {len(span)} characters "
                        f"(> landing.max_line_chars {landing.max_line_chars})", span[:_RECORD_PREVIEW])
            continue
        if row is None:
            sink.reject(name, rowno, "malformed_row", f"line {line_no} cannot be parsed as CSV "
                        "(an unbalanced quote or a stray character)", span[:_RECORD_PREVIEW])
            continue
        if _SURROGATE.search(span):
            sink.reject(name, rowno, "bad_encoding", f"line {line_no} is not valid {encoding}", span[:_RECORD_PREVIEW])
            continue
        longest = max((len(f) for f in row), default=0)
        if longest > landing.max_field_chars:
            sink.reject(name, rowno, "over_limit", f"line {line_no} has a field of {longest} characters "
                        f"(> landing.max_field_chars {landing.max_field_chars})", span[:_RECORD_PREVIEW])
            continue
        if len(row) != width:
            sink.reject(name, rowno, "malformed_row",
                        f"line {line_no} has {len(row)} fields, the header has {width}", row)
            continue
        records.append((rowno, dict(zip(header, row))))
    return "csv", records, header or [], n_read


def _read_records(path: Path, name: str, encoding: str, landing, sink: _Sink) -> tuple[str, list[tuple[int, dict]], list[str], int]:
    """(format, parseable (line number, record) pairs, columns, physical records); the rest go to the sink.

    Physical records are counted from the file, not from what a parser accepted: non-blank CSV lines
    after the header (a record with a quoted newline counts once), non-blank JSONL lines, Parquet rows.
    """
    if path.suffix.lower() == ".parquet":
        return _read_parquet(path, name, sink)
    text = path.read_bytes().decode(encoding, errors="surrogateescape")
    if text.startswith("\ufeff"):  # a byte-order mark would stick to the first column name
        text = text[1:]
    # physical lines end at "\n" only: a JSON string may hold U+2028, a CSV field a lone "\r"
    parts = text.split("\n")
    lines = [l + "\n" for l in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
    if path.suffix.lower() in (".jsonl", ".json"):
        return _read_jsonl(lines, name, encoding, landing, sink)
    return _read_csv(lines, name, encoding, landing, sink)


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
    found = sorted({p for pat in config.landing.patterns for p in landing.glob(pat)})
    follow = config.landing.follow_symlinks
    cols = config.columns
    mapping = {"ticket_id": cols.ticket_id, "created_at": cols.created_at, "channel": cols.channel,
               "text": cols.text, "label_raw": cols.label, "operator_id": cols.operator_id}
    required = {"text": cols.text, "label_raw": cols.label}
    sink = _Sink()
    files, warnings = [], []
    for path in found:
        name = _safe(path.name)
        fmt = path.suffix.lower().lstrip(".")
        before_rows, before_q = len(sink.rows), len(sink.quarantine)

        def skip(status: str, message: str) -> None:
            files.append({"source_file": name, "format": fmt, "status": status, "rows_in": 0, "rows_kept": 0,
                          "rows_quarantined": 0, "unknown_columns": "", "message": message})
            warnings.append(f"{name}: {message}")

        if path.is_symlink() and not follow:
            skip("skipped_symlink", "a symlink: not followed (set landing.follow_symlinks: true to read it)")
            continue
        if not path.is_file():
            if path.is_symlink():
                skip("skipped_symlink", "a symlink to nothing readable: skipped")
            continue  # a folder that matches a pattern
        if path.stat().st_size == 0:
            skip("empty", "empty file: nothing to read")
            continue
        if path.is_symlink():
            warnings.append(f"{name}: a symlink, followed (landing.follow_symlinks is true)")
        try:
            _read_file(path, name, config, mapping, required, sink, files, warnings)
        except Exception as exc:  # noqa: BLE001 - one unreadable file never stops the others
            del sink.rows[before_rows:]
            del sink.quarantine[before_q:]
            sink.reject(name, 0, "unreadable_file", f"cannot read the file: {type(exc).__name__}", None)
            files.append({"source_file": name, "format": fmt, "status": "rejected", "rows_in": 1,
                          "rows_kept": 0, "rows_quarantined": 1, "unknown_columns": "",
                          "message": f"cannot read the file: {type(exc).__name__}"})
            warnings.append(f"{name}: cannot read the file ({type(exc).__name__}); quarantined as unreadable_file")

    return _finish(sink, files, warnings)


def _read_file(path: Path, name: str, config: TunegateConfig, mapping: dict, required: dict, sink: _Sink,
               files: list, warnings: list) -> None:
    """Read one landing file into the sink and append its row to `files`."""
    before_rows, before_q = len(sink.rows), len(sink.quarantine)
    fmt, records, columns, n_read = _read_records(path, name, config.landing.encoding, config.landing, sink)
    _recover_ticket_ids(sink.quarantine[before_q:], fmt, columns, mapping["ticket_id"])
    known = {c for c in mapping.values() if c}
    unknown = [c for c in columns if c not in known]
    missing = [canon for canon, src in required.items() if src not in columns] if records else []
    message = ""
    if missing:
        message = (f"required column(s) {', '.join(required[m] for m in missing)} not in the file's "
                   f"{len(columns)} columns; fix `columns:` in the config (or the file has no header)")
        if fmt == "csv":  # the header itself may be a data row: keep it too, never lose a record
            n_read += 1
            sink.reject(name, 0, "missing_column", "header row: " + message, columns)
        for rowno, rec in records:
            sink.reject(name, rowno, "missing_column", message, rec)
    else:
        for rowno, rec in records:
            _validate(rec, rowno, name, mapping, config, sink)
    if unknown:
        warnings.append(f"{name}: ignored {_describe_columns(unknown)}")
    kept, quarantined = len(sink.rows) - before_rows, len(sink.quarantine) - before_q
    status = "rejected" if missing else ("ok" if quarantined == 0 else "partial")
    files.append({"source_file": name, "format": fmt, "status": status,
                  "rows_in": n_read, "rows_kept": kept, "rows_quarantined": quarantined,
                  "unknown_columns": _describe_columns(unknown) if unknown else "", "message": message})


_ID_SHAPE = re.compile(r"[A-Za-z0-9._:\-]{1,64}")


def _recover_ticket_ids(rejected: list[dict], fmt: str, columns: list[str], id_column: str | None) -> None:
    """Name the ticket of a row rejected before it was parsed (bad encoding, a broken CSV row, broken JSON)
    when its id field can still be read, so an operator can find it. Only a value shaped like an id
    (ASCII letters, digits and ._:- up to 64 characters) is taken: never any text of the ticket."""
    if not id_column:
        return
    # a JSON line, or a Python-style dict with single quotes that an export wrote instead
    key = re.compile(r"[\"']" + re.escape(id_column) + r"[\"']\s*:\s*[\"']([^\"'\\]{1,64})[\"']")
    at = columns.index(id_column) if id_column in columns else None
    for q in rejected:
        if q["ticket_id"] is not None or q["record"] is None or q["source_row"] == 0:  # 0: the file or its header
            continue
        try:
            rec = json.loads(q["record"])
        except ValueError:
            continue
        value = None
        if isinstance(rec, dict):  # a parsed JSON object (the id column read directly), or a truncated record
            rec = None if "truncated_to_chars" in rec else rec.get(id_column)
            value = rec if isinstance(rec, str) else None
        elif isinstance(rec, list) and at is not None and at < len(rec):
            value = rec[at]
        elif isinstance(rec, str) and fmt == "jsonl":
            m = key.search(rec)
            value = m.group(1) if m else None
        elif isinstance(rec, str) and at is not None:
            try:
                fields = next(csv.reader([rec.split("\n", 1)[0]]))
            except (csv.Error, StopIteration):
                fields = []
            value = fields[at] if at < len(fields) else None
        if isinstance(value, str) and _ID_SHAPE.fullmatch(value.strip()):
            q["ticket_id"] = value.strip()


def _finish(sink: _Sink, files: list, warnings: list) -> IngestResult:
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
    if all(unicodedata.category(ch) in _BLANK_CATEGORIES for ch in text):
        sink.reject(fname, rowno, "control_text", f"the ticket text is {len(text)} control or blank characters only",
                    rec, ticket_id=tid)
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


_TS_MIN = datetime(1677, 9, 22, tzinfo=timezone.utc)  # inside pandas' nanosecond range
_TS_MAX = datetime(2262, 4, 11, tzinfo=timezone.utc)


def _parse_timestamp(value: str) -> datetime | None:
    """ISO 8601 -> aware UTC datetime; naive times are taken as UTC; anything else -> None."""
    try:
        try:
            ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            ts = pd.to_datetime(value, utc=True, errors="coerce", format="ISO8601")
            return None if pd.isna(ts) else ts.to_pydatetime()
        ts = ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)
        return ts if _TS_MIN <= ts <= _TS_MAX else None  # pandas' nanosecond range: the table must hold it
    except (ValueError, OverflowError, OSError):
        return None


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
