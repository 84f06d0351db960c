"""Ingestion on the bundled sample: every planted bad row is quarantined with its reason, nothing is lost."""
import json

import pandas as pd
import pytest

from pipeline.config import load_config
from pipeline.data.ingest import ingest_landing


@pytest.fixture(scope="module")
def ingested(sample_warehouse):
    wh, manifest = sample_warehouse
    cfg = load_config(None, warehouse=str(wh))
    return ingest_landing(cfg), manifest


def _count(manifest, kind):
    v = manifest["planted"][kind]
    return v["count"] if isinstance(v, dict) else len(v)


def test_rows_in_equal_kept_plus_quarantined(ingested):
    res, manifest = ingested
    assert res.rows_in == manifest["total_rows"]
    assert res.files["rows_in"].sum() == len(res.tickets) + len(res.quarantine)
    per_file = res.tickets.groupby("source_file").size().add(res.quarantine.groupby("source_file").size(), fill_value=0)
    for f in res.files.itertuples():
        assert f.rows_in == per_file.get(f.source_file, 0), f.source_file
        assert f.rows_in == manifest["files"].get(f.source_file, {}).get("rows", f.rows_in)


# quarantine reason -> the generator's manifest entries of the problems it planted for that reason
PLANTED = [
    ("bad_encoding", ["bad_encoding"]),
    ("bad_timestamp", ["bad_timestamps"]),
    ("missing_label", ["missing_labels"]),
    ("oversized_text", ["oversized_texts"]),
    ("empty_text", ["empty_texts", "whitespace_texts"]),
    ("duplicate_ticket_id", ["duplicate_ticket_ids"]),
    ("redelivered_row", ["reexport_overlap"]),
]


@pytest.mark.parametrize("reason,kinds", PLANTED)
def test_each_planted_problem_is_quarantined(ingested, reason, kinds):
    res, manifest = ingested
    expected = sum(_count(manifest, k) for k in kinds)
    assert expected > 0
    assert res.quarantine_counts().get(reason, 0) == expected


@pytest.mark.parametrize("reason,kinds", PLANTED + [({"malformed_row", "malformed_json"}, ["broken_rows"])])
def test_each_quarantined_ticket_is_the_one_the_generator_planted(ingested, reason, kinds):
    """Ids, not counts: the quarantine of each reason names exactly the tickets the generator's manifest
    says it broke that way (rows rejected before parsing included: their id is read from the raw line)."""
    res, manifest = ingested
    planted = set()
    for k in kinds:
        v = manifest["planted"][k]
        planted |= set(v["ticket_ids"]) if "ticket_ids" in v else {i["ticket_id"] for i in v["items"]}
    q = res.quarantine
    reasons = reason if isinstance(reason, set) else {reason}
    got = q.loc[q["reason"].isin(reasons), "ticket_id"]
    assert got.notna().all() and got.is_unique
    assert set(got) == planted


def test_no_planted_problem_is_kept_and_every_clean_ticket_is(ingested):
    res, manifest = ingested
    p = manifest["planted"]
    broken = {i["ticket_id"] for i in p["broken_rows"]["items"]}
    for k in ("bad_encoding", "bad_timestamps", "missing_labels", "oversized_texts", "empty_texts", "whitespace_texts"):
        broken |= set(p[k]["ticket_ids"])
    kept = set(res.tickets["ticket_id"])
    assert not broken & kept
    # a reused or re-delivered id keeps its first row: the id stays among the kept tickets once
    assert set(p["duplicate_ticket_ids"]["ticket_ids"]) <= kept and set(p["reexport_overlap"]["ticket_ids"]) <= kept
    # every planted duplicate, template and label problem that is not also broken reaches the tickets
    for k in ("exact_duplicates", "near_duplicates", "templates", "label_variants", "label_conflicts", "mislabelled"):
        ids = set(p[k]["ticket_ids"]) - broken
        assert ids and ids <= kept, k


def test_broken_rows_are_quarantined(ingested):
    res, manifest = ingested
    counts = res.quarantine_counts()
    assert counts.get("malformed_row", 0) + counts.get("malformed_json", 0) == _count(manifest, "broken_rows")


def test_unknown_columns_and_empty_files_are_reported(ingested):
    res, _ = ingested
    assert (res.files["status"] == "empty").sum() == 1
    assert res.files["unknown_columns"].str.contains("priority").any()
    assert any("priority" in w for w in res.warnings)


def test_quarantine_messages_never_hold_ticket_text(ingested):
    res, _ = ingested
    texts = set(res.tickets["text"].head(2000))
    for detail in res.quarantine["detail"]:
        assert detail not in texts
        assert len(detail) < 200


def test_kept_rows_are_valid(ingested):
    res, _ = ingested
    t = res.tickets
    assert t["ticket_id"].is_unique
    assert t["text"].str.len().between(3, 2000).all()
    assert t["label_raw"].notna().all()
    assert str(t["created_at"].dtype) == "datetime64[ns, UTC]"


def test_missing_required_column_is_a_clear_quarantine(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    pd.DataFrame({"ticket_id": ["a", "b"], "body": ["my card is lost", "where is my card"]}).to_csv(landing / "x.csv", index=False)
    res = ingest_landing(load_config(None, warehouse=str(tmp_path)))
    # both rows and the header (which might have been a data row) are kept in the quarantine
    assert len(res.tickets) == 0 and len(res.quarantine) == 3 and res.files["rows_in"].iloc[0] == 3
    assert set(res.quarantine["reason"]) == {"missing_column"}
    assert "customer_text" in res.files["message"].iloc[0]


def test_wrong_types_and_corrupt_parquet(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    rows = [{"ticket_id": "a", "customer_text": {"nested": 1}, "operator_label": "card_arrival"},
            {"ticket_id": "b", "customer_text": "where is my card", "operator_label": "card_arrival"}]
    (landing / "x.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (landing / "y.parquet").write_bytes(b"not a parquet file")
    res = ingest_landing(load_config(None, warehouse=str(tmp_path)))
    assert res.quarantine_counts() == {"unreadable_file": 1, "wrong_type": 1}
    assert res.files["rows_in"].sum() == 3
    assert list(res.tickets["ticket_id"]) == ["b"]


def test_headerless_file_loses_no_row_and_leaks_no_text(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "x.csv").write_text("My name is Aigerim Nurlanovna my card 4400430123456789 is lost,lost_or_stolen_card\n"
                                   "where is my card,card_arrival\n")
    res = ingest_landing(load_config(None, warehouse=str(tmp_path)))
    assert len(res.quarantine) == 2 and set(res.quarantine["reason"]) == {"missing_column"}
    assert res.files["rows_in"].iloc[0] == 2  # the first line, read as a header, is counted and kept
    shown = " ".join(res.warnings) + " ".join(res.files["unknown_columns"]) + " ".join(res.files["message"])
    assert "Aigerim" not in shown and "4400" not in shown


def test_ids_are_read_from_broken_rows_but_never_text(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "a.csv").write_bytes(
        b"ticket_id,customer_text,operator_label\n"
        b"T-1,where is my card,card_arrival\n"
        b"T-2,my card,card_arrival,extra\n"                       # too many fields: the id is read
        b"T-3,\xcc\xee\xff \xea\xe0\xf0\xf2\xe0,card_arrival\n"     # cp1251 bytes in a UTF-8 file: the id is read
        b"Aigerim Nurlanovna 4400,x,card_arrival,extra\n")        # the id field holds text: not taken
    (landing / "b.jsonl").write_text('{"ticket_id": "J-1", "customer_text": "lost card", "operator_label": "x"}\n'
                                     "{'ticket_id': 'J-2', 'customer_text': 'lost card'}\n"
                                     '{"ticket_id": "J-3", "customer_text": "lost\n')
    res = ingest_landing(load_config(None, warehouse=str(tmp_path)))
    q = res.quarantine.set_index("source_row")
    by_file = {f: dict(zip(g["reason"], g["ticket_id"])) for f, g in res.quarantine.groupby("source_file")}
    assert list(res.tickets["ticket_id"]) == ["T-1", "J-1"]
    assert sorted(res.quarantine.loc[res.quarantine.source_file == "a.csv", "ticket_id"].fillna("-")) == ["-", "T-2", "T-3"]
    assert by_file["a.csv"]["bad_encoding"] == "T-3"
    assert sorted(res.quarantine.loc[res.quarantine.source_file == "b.jsonl", "ticket_id"]) == ["J-2", "J-3"]
    assert "Aigerim" not in " ".join(res.quarantine["ticket_id"].dropna()) and len(q) == 5
