"""Hostile landing files: each is read or quarantined on its own, the good files next to it are kept,
and every physical record is accounted for (rows in = kept + quarantined, per file).

The tickets are real Banking77 texts; the faults are the ones a new user or an attacker can drop in."""
import csv
import io
import json
import os

import pandas as pd
import pytest

from pipeline.config import DATA_DIR, load_config
from pipeline.data.ingest import ingest_landing

HEADER = ["ticket_id", "created_at", "channel", "customer_text", "operator_label", "operator_id"]


@pytest.fixture(scope="module")
def banking():
    df = pd.read_csv(DATA_DIR / "banking77" / "train.csv").head(400)
    return list(zip(df["text"], df["category"]))


def _csv(rows, prefix: str) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(HEADER)
    for i, (text, label) in enumerate(rows):
        w.writerow([f"{prefix}{i}", "2024-03-01T10:00:00Z", "email", text, label, "op1"])
    return buf.getvalue()


def _ingest(tmp_path, **landing):
    cfg = load_config(None, warehouse=str(tmp_path), landing=landing or None) if landing else \
        load_config(None, warehouse=str(tmp_path))
    return ingest_landing(cfg)


def _balanced(res):
    kept = res.tickets.groupby("source_file").size()
    quar = res.quarantine.groupby("source_file").size()
    for f in res.files.itertuples():
        assert f.rows_in == kept.get(f.source_file, 0) + quar.get(f.source_file, 0), f.source_file
        assert f.rows_kept == kept.get(f.source_file, 0) and f.rows_quarantined == quar.get(f.source_file, 0)


@pytest.fixture
def landing(tmp_path, banking):
    d = tmp_path / "landing"
    d.mkdir()
    (d / "a_good.csv").write_text(_csv(banking[:20], "good-"))
    return d


def _good_kept(res):
    assert (res.tickets["source_file"] == "a_good.csv").sum() == 20


def test_binary_garbage_named_csv(tmp_path, landing):
    (landing / "b.csv").write_bytes(bytes(range(256)) * 40 + os.urandom(4000))
    res = _ingest(tmp_path)
    _good_kept(res)
    _balanced(res)
    assert res.files.set_index("source_file").loc["b.csv", "rows_in"] > 0


def test_deep_json_nesting_and_huge_number(tmp_path, landing, banking):
    good = json.dumps({"ticket_id": "j1", "customer_text": banking[30][0], "operator_label": banking[30][1]})
    (landing / "c.jsonl").write_text("[" * 100_000 + "]" * 100_000 + "\n" + good + "\n"
                                     + json.dumps({"ticket_id": "j2", "customer_text": {"a": [[[[{"b": 1}]]]]}}) + "\n")
    (landing / "d.jsonl").write_text('{"ticket_id": ' + "9" * 100_000 + ', "customer_text": "x"}\n' + good.replace("j1", "j3") + "\n")
    res = _ingest(tmp_path, max_json_depth=4)
    _good_kept(res)
    _balanced(res)
    q = res.quarantine.set_index(["source_file", "source_row"])["reason"]
    assert q[("c.jsonl", 1)] == "over_limit" and q[("c.jsonl", 3)] == "over_limit"
    assert q[("d.jsonl", 1)] == "over_limit"
    assert set(res.tickets["ticket_id"]) >= {"j1", "j3"}
    assert all(len(d) < 200 for d in res.quarantine["detail"])


def test_fifty_megabyte_line_and_long_field(tmp_path, landing, banking):
    text = _csv(banking[40:43], "long-").splitlines()
    text.insert(2, "long-x,,,\"" + "x" * 50_000_000 + "\",card_arrival,")
    (landing / "e.csv").write_text("\n".join(text) + "\n")
    (landing / "f.csv").write_text(_csv([("y" * 200_000, "card_arrival"), banking[44]], "field-"))
    res = _ingest(tmp_path)
    _good_kept(res)
    _balanced(res)
    reasons = res.quarantine.groupby("source_file")["reason"].apply(list).to_dict()
    assert reasons["e.csv"] == ["over_limit"] and reasons["f.csv"] == ["over_limit"]
    assert (res.tickets["source_file"] == "e.csv").sum() == 3
    assert res.quarantine["record"].str.len().max() < 20_000  # the quarantine keeps a preview, not 50 MB


def test_byte_order_mark_is_stripped(tmp_path, landing, banking):
    (landing / "g.csv").write_bytes(b"\xef\xbb\xbf" + _csv(banking[50:60], "bom-").encode())
    res = _ingest(tmp_path)
    _balanced(res)
    assert (res.tickets["source_file"] == "g.csv").sum() == 10


def test_symlink_is_reported_and_not_followed(tmp_path, landing, banking):
    outside = tmp_path / "elsewhere.csv"
    outside.write_text(_csv(banking[100:125], "secret-"))
    (landing / "h.csv").symlink_to(outside)
    res = _ingest(tmp_path)
    _good_kept(res)
    row = res.files.set_index("source_file").loc["h.csv"]
    assert row["status"] == "skipped_symlink" and row["rows_in"] == 0
    assert not res.quarantine["source_file"].eq("h.csv").any() and not res.tickets["source_file"].eq("h.csv").any()
    assert any("h.csv" in w and "symlink" in w for w in res.warnings)
    followed = _ingest(tmp_path, follow_symlinks=True)
    assert (followed.tickets["source_file"] == "h.csv").sum() == 25


def test_unbalanced_quote_hides_no_row(tmp_path, landing, banking):
    lines = _csv(banking[200:207], "q-").splitlines()
    lines[1] = lines[1].replace(",email,", ',email,"', 1)  # a quote opens and never closes on its line
    (landing / "i.csv").write_text("\n".join(lines) + "\n")
    res = _ingest(tmp_path)
    _balanced(res)
    row = res.files.set_index("source_file").loc["i.csv"]
    assert row["rows_in"] == 7  # the physical records, not what the parser made of them
    assert row["rows_kept"] == 6 and row["rows_quarantined"] == 1
    assert res.quarantine.loc[res.quarantine.source_file == "i.csv", "reason"].tolist() == ["malformed_row"]


def test_legitimate_quoted_newline_is_one_record(tmp_path, landing, banking):
    (landing / "j.csv").write_text(_csv([(banking[0][0] + "\n" + banking[1][0], banking[0][1])], "nl-"))
    res = _ingest(tmp_path)
    _balanced(res)
    assert res.files.set_index("source_file").loc["j.csv", "rows_in"] == 1
    assert (res.tickets["source_file"] == "j.csv").sum() == 1


@pytest.mark.parametrize("text", ["\x00\x00\x00\x00", "\u200b\u200b\u200b", "\x07\t\x1b\x7f"])
def test_control_character_texts_are_quarantined(tmp_path, landing, text):
    (landing / "k.jsonl").write_text(json.dumps({"ticket_id": "k1", "customer_text": text,
                                                 "operator_label": "card_arrival"}) + "\n")
    res = _ingest(tmp_path)
    _balanced(res)
    assert res.quarantine.set_index("source_file").loc["k.jsonl", "reason"] == "control_text"


def test_lone_surrogates_and_odd_names_do_not_crash(tmp_path, landing, banking):
    (landing / "l.jsonl").write_text('{"ticket_id": "s1", "customer_text": "card \\ud800 lost", "operator_label": "x"}\n')
    (landing / os.fsdecode(b"m\xff.csv")).write_text(_csv(banking[300:302], "name-"))
    (landing / "n.parquet").write_bytes(b"PAR1" + os.urandom(300) + b"PAR1")
    res = _ingest(tmp_path)
    _good_kept(res)
    _balanced(res)
    assert res.quarantine.set_index("source_file").loc["l.jsonl", "reason"] == "bad_encoding"
    assert (res.tickets["source_file"] == "m\ufffd.csv").sum() == 2
    assert res.quarantine.set_index("source_file").loc["n.parquet", "reason"] == "unreadable_file"
    # what ingestion produced can be written (the step would crash otherwise)
    from pipeline import storage
    storage.write_version(tmp_path, storage.RAW_ZONE, "raw_tickets",
                          {"tickets": res.tickets, "quarantine": res.quarantine, "files": res.files})


def test_any_exception_becomes_an_unreadable_file_row(tmp_path, landing, banking, monkeypatch):
    import pipeline.data.ingest as ingest

    (landing / "o.csv").write_text(_csv(banking[310:315], "boom-"))
    real = ingest._read_records

    def exploding(path, *a, **k):
        if path.name == "o.csv":
            raise MemoryError("secret ticket text in the message")
        return real(path, *a, **k)

    monkeypatch.setattr(ingest, "_read_records", exploding)
    res = _ingest(tmp_path)
    _good_kept(res)
    _balanced(res)
    q = res.quarantine.set_index("source_file").loc["o.csv"]
    assert q["reason"] == "unreadable_file" and q["detail"] == "cannot read the file: MemoryError"
    assert "secret" not in " ".join(res.warnings)


def test_out_of_range_timestamp_is_a_bad_timestamp(tmp_path, landing, banking):
    rows = _csv(banking[320:322], "ts-").replace("2024-03-01T10:00:00Z", "0001-01-01T00:00:00+14:00", 1)
    (landing / "p.csv").write_text(rows)
    res = _ingest(tmp_path)
    _balanced(res)
    assert res.quarantine.set_index("source_file").loc["p.csv", "reason"] == "bad_timestamp"
