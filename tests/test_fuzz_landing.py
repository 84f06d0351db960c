"""Fuzzing the landing folder: random bytes and garbled CSV, JSONL and Parquet never crash ingestion,
and every file balances (rows in = kept + quarantined).

The garbled files start from real Banking77 tickets and are then cut, spliced and sprinkled with the
bytes that break parsers (quotes, separators, newlines, NUL, a BOM, invalid UTF-8). Set
TUNEGATE_FULL_FAULTS=1 for ten times as many examples."""
import io
import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import storage
from pipeline.config import DATA_DIR, load_config
from pipeline.data.ingest import ingest_landing

FULL = os.environ.get("TUNEGATE_FULL_FAULTS") == "1"
EXAMPLES = 400 if FULL else 40

_SAMPLE = pd.read_csv(DATA_DIR / "banking77" / "train.csv").sample(n=12, random_state=7).reset_index(drop=True)
_ROWS = pd.DataFrame({"ticket_id": [f"t{i}" for i in range(len(_SAMPLE))],
                      "created_at": "2024-05-01T09:30:00Z", "channel": "chat",
                      "customer_text": _SAMPLE["text"], "operator_label": _SAMPLE["category"], "operator_id": "op7"})


def _valid(fmt: str) -> bytes:
    if fmt == "csv":
        return _ROWS.to_csv(index=False).encode()
    if fmt == "jsonl":
        return _ROWS.to_json(orient="records", lines=True).encode()
    buf = io.BytesIO()
    _ROWS.to_parquet(buf, index=False)
    return buf.getvalue()


NASTY = [b'"', b",", b"\n", b"\r", b"\x00", b"\xef\xbb\xbf", b"\xff\xfe", b"{", b"[", b"]", b"}", b"\\", b"\\ud800",
         b"9" * 400, b"\xe2\x80\xa8", b"\x1b", b'""', b",,,,,,"]


@st.composite
def garbled(draw, fmt: str) -> bytes:
    data = bytearray(_valid(fmt))
    for _ in range(draw(st.integers(1, 8))):
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["insert", "delete", "replace", "truncate", "duplicate"]))
        if op == "insert":
            data[pos:pos] = draw(st.sampled_from(NASTY) | st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 40))]
        elif op == "replace":
            data[pos] = draw(st.integers(0, 255))
        elif op == "truncate":
            del data[pos:]
        else:
            n = draw(st.integers(1, 200))
            data[pos:pos] = data[pos:pos + n]
    return bytes(data)


landing_file = st.one_of(
    st.tuples(st.sampled_from(["csv", "jsonl", "json", "parquet"]), st.binary(max_size=3000)),
    st.tuples(st.just("csv"), garbled("csv")),
    st.tuples(st.just("jsonl"), garbled("jsonl")),
    st.tuples(st.just("parquet"), garbled("parquet")),
)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(files=st.lists(landing_file, min_size=1, max_size=3))
@pytest.mark.slow
def test_any_landing_files_never_crash_and_always_balance(files):
    root = Path(tempfile.mkdtemp(prefix="tg-fuzz-"))
    try:
        landing = root / "landing"
        landing.mkdir()
        (landing / "0_good.csv").write_bytes(_valid("csv"))
        for i, (fmt, data) in enumerate(files, start=1):
            (landing / f"{i}_fuzz.{fmt}").write_bytes(data)
        res = ingest_landing(load_config(None, warehouse=str(root)))

        assert len(res.files) == len(files) + 1  # every file is reported
        kept = res.tickets.groupby("source_file").size()
        quar = res.quarantine.groupby("source_file").size()
        for f in res.files.itertuples():
            assert f.rows_in == kept.get(f.source_file, 0) + quar.get(f.source_file, 0), f.source_file
        assert kept.get("0_good.csv", 0) == len(_ROWS)  # the good file is never harmed by its neighbours
        # what ingestion returns can be stored: the step that follows would crash otherwise
        storage.content_hash({"tickets": res.tickets, "quarantine": res.quarantine, "files": res.files})
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_the_valid_seed_files_are_read_whole(tmp_path, fmt):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / f"x.{fmt}").write_bytes(_valid(fmt))
    res = ingest_landing(load_config(None, warehouse=str(tmp_path)))
    assert len(res.tickets) == len(_ROWS) and res.quarantine.empty
