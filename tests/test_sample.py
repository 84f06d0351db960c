"""Tests for the bundled demo sample: determinism, manifest accuracy and planted problems."""
from __future__ import annotations

import csv
import io
import json
import re
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from pipeline.data.sample.generator import (FILE_EMPTY, FILE_LEGACY, FILE_Q1, FILE_Q2, FILE_Q3, generate_sample,
                             iban_valid, iin_check_digit, iin_valid, luhn_valid, main)

SMALL_N = 1500

IBAN_RE = re.compile(r"\b(KZ\d{2}(?: *[A-Z0-9]){16}|(?:GB|DE)\d{2}(?: *[A-Z0-9]){18})\b", re.I)
CARD_RE = re.compile(r"(?<![\d-])\d{4}(?:[ -]*\d{4}){3}(?![\d-])")
IIN_RE = re.compile(r"(?<!\d)\d{12}(?!\d)")


def _records(landing: Path) -> dict[str, list[list[str]]]:
    """Raw records per file (CSV records include malformed ones; JSONL lines stay strings)."""
    out: dict[str, list] = {}
    for name, enc in [(FILE_Q1, "utf-8"), (FILE_LEGACY, "cp1251")]:
        rows = list(csv.reader(io.StringIO((landing / name).read_bytes().decode(enc), newline="")))
        out[name] = rows[1:]
    out[FILE_Q2] = (landing / FILE_Q2).read_text(encoding="utf-8").splitlines()
    out[FILE_Q3] = pd.read_parquet(landing / FILE_Q3).values.tolist()
    return out


def _tickets(landing: Path) -> list[dict]:
    """Every parseable row as a dict with the export's columns (plus the file name)."""
    recs = _records(landing)
    cols = ["ticket_id", "created_at", "channel", "customer_text", "operator_label", "operator_id"]
    rows = []
    for name in (FILE_Q1, FILE_LEGACY):
        rows += [dict(zip(cols, r), file=name) for r in recs[name] if len(r) == 6]
    for line in recs[FILE_Q2]:
        try:
            rows.append(dict(json.loads(line), file=FILE_Q2))
        except json.JSONDecodeError:
            pass
    rows += [dict(zip(cols, r), file=FILE_Q3) for r in recs[FILE_Q3]]
    return rows


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    d = tmp_path_factory.mktemp("small")
    m = generate_sample(d / "landing", d / "manifest.json", seed=7, n_tickets=SMALL_N)
    return d, m


@pytest.fixture(scope="module")
def full(sample_warehouse):
    return sample_warehouse  # the full default sample, generated once per session (tests/conftest.py)


def test_checksum_helpers():
    assert luhn_valid("4111 1111 1111 1111") and not luhn_valid("4111 1111 1111 1112")
    assert iban_valid("GB82 WEST 1234 5698 7654 32") and not iban_valid("GB82 WEST 1234 5698 7654 33")
    assert iban_valid("KZ86125KZT5004100100")
    # weights 1..11 give 131 % 11 == 10, so weights 3..11,1,2 decide: 78 % 11 == 1
    assert iin_check_digit("90010130081") == 1 and iin_valid("900101300811")
    assert not iin_valid("900101300812")
    # both weightings give 10 (120 and 76): no valid IIN has this prefix
    assert iin_check_digit("90010130080") is None
    assert not any(iin_valid("90010130080" + str(c)) for c in range(10))
    # weights 1..11 decide directly: 9*1 + 1*4 + 1*6 + 3*7 + 2*10 = 60, 60 % 11 == 5
    assert iin_check_digit("90010130020") == 5 and iin_valid("900101300205")


def test_minimum_size(tmp_path):
    with pytest.raises(ValueError):
        generate_sample(tmp_path / "l", tmp_path / "m.json", n_tickets=5)


def test_same_seed_same_bytes(small, tmp_path):
    d, _ = small
    generate_sample(tmp_path / "landing", tmp_path / "manifest.json", seed=7, n_tickets=SMALL_N)
    names = sorted(p.name for p in (d / "landing").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "landing").iterdir())
    for name in names:
        assert (d / "landing" / name).read_bytes() == (tmp_path / "landing" / name).read_bytes(), name
    assert (d / "manifest.json").read_bytes() == (tmp_path / "manifest.json").read_bytes()


def test_other_seed_differs(small, tmp_path):
    d, _ = small
    generate_sample(tmp_path / "l", tmp_path / "m.json", seed=8, n_tickets=SMALL_N)
    assert (d / "landing" / FILE_Q1).read_bytes() != (tmp_path / "l" / FILE_Q1).read_bytes()


def test_rows_per_file_match_manifest(small):
    d, m = small
    landing = d / "landing"
    recs = _records(landing)
    for name in (FILE_Q1, FILE_LEGACY, FILE_Q2, FILE_Q3):
        assert len(recs[name]) == m["files"][name]["rows"], name
    assert pq.ParquetFile(landing / FILE_Q3).metadata.num_rows == m["files"][FILE_Q3]["rows"]
    assert (landing / FILE_EMPTY).stat().st_size == 0 and m["files"][FILE_EMPTY]["rows"] == 0
    assert m["total_rows"] == sum(f["rows"] for f in m["files"].values())
    assert m["source"]["rows_used"] == SMALL_N


def test_every_planted_kind_present(small):
    _, m = small
    for kind, v in m["planted"].items():
        if isinstance(v, dict) and "count" in v:
            assert v["count"] > 0, kind
            if "ticket_ids" in v:
                assert len(set(v["ticket_ids"])) == len(v["ticket_ids"]) or kind == "duplicate_ticket_ids", kind


def test_manifest_ids_exist_and_match_texts(small):
    d, m = small
    rows = _tickets(d / "landing")
    by_id: dict[str, list[dict]] = {}
    for r in rows:
        by_id.setdefault(r["ticket_id"], []).append(r)
    p = m["planted"]
    for kind in ("exact_duplicates", "near_duplicates", "templates", "mislabelled", "label_variants",
                 "missing_labels", "empty_texts", "whitespace_texts", "oversized_texts"):
        assert all(t in by_id for t in p[kind]["ticket_ids"]), kind
    norm = lambda s: " ".join(s.lower().split())  # noqa: E731
    for dup, orig in p["exact_duplicates"]["pairs"]:
        a, b = by_id[dup][0]["customer_text"], by_id[orig][0]["customer_text"]
        assert norm(a) == norm(b)
        assert (a == b) == (dup not in p["exact_duplicates"]["normalised_only"])
    for near, orig in p["near_duplicates"]["pairs"]:
        a, b = by_id[near][0]["customer_text"], by_id[orig][0]["customer_text"]
        assert norm(a) != norm(b) and len(set(a.split()) & set(b.split())) >= len(b.split()) // 2
    for pair in p["label_conflicts"]["pairs"]:
        (a,), (b,) = by_id[pair["ticket_ids"][0]], by_id[pair["ticket_ids"][1]]
        assert a["customer_text"] == b["customer_text"] and a["operator_label"] != b["operator_label"]
        assert a["operator_id"] != b["operator_id"]
    for it in p["mislabelled"]["items"]:
        assert by_id[it["ticket_id"]][0]["operator_label"] == it["given_label"] != it["true_label"]
    for it in p["label_variants"]["items"]:
        assert by_id[it["ticket_id"]][0]["operator_label"] == it["written"] != it["canonical"]
    for t in p["missing_labels"]["ticket_ids"]:
        assert by_id[t][0]["operator_label"] in ("", None)
    for t in p["empty_texts"]["ticket_ids"]:
        assert by_id[t][0]["customer_text"] in ("", None)
    for t in p["whitespace_texts"]["ticket_ids"]:
        assert by_id[t][0]["customer_text"].strip() == "" and by_id[t][0]["customer_text"] != ""
    for t in p["oversized_texts"]["ticket_ids"]:
        assert len(by_id[t][0]["customer_text"]) > 2000
    for t in p["duplicate_ticket_ids"]["ticket_ids"]:
        assert len({r["customer_text"] for r in by_id[t]}) == 2
    for t in p["reexport_overlap"]["ticket_ids"]:
        files = sorted(r["file"] for r in by_id[t])
        assert files == [FILE_Q1, FILE_Q2]
        assert by_id[t][0]["customer_text"] == by_id[t][1]["customer_text"]
    for it in p["bad_timestamps"]["items"]:
        with pytest.raises((ValueError, TypeError)):
            datetime.fromisoformat(by_id[it["ticket_id"]][0]["created_at"])
        assert pd.isna(pd.to_datetime(it["value"], errors="coerce", format="ISO8601"))


def test_broken_rows_are_broken(small):
    d, m = small
    recs = _records(d / "landing")
    q1_lines = (d / "landing" / FILE_Q1).read_text(encoding="utf-8").split("\n")
    q2_lines = recs[FILE_Q2]
    items = m["planted"]["broken_rows"]["items"]
    assert {i["problem"] for i in items} == {"too_many_fields", "too_few_fields", "truncated_json", "not_json"}
    for it in items:
        if it["file"] == FILE_Q1:
            line = q1_lines[it["line"] - 1]
            assert line.startswith(it["ticket_id"] + ",")
            n_fields = len(next(csv.reader([line])))
            assert (n_fields > 6) if it["problem"] == "too_many_fields" else (n_fields < 6)
        else:
            line = q2_lines[it["line"] - 1]
            assert it["ticket_id"] in line
            with pytest.raises(json.JSONDecodeError):
                json.loads(line)
    # every other CSV record has exactly six fields
    assert sum(len(r) != 6 for r in recs[FILE_Q1]) == sum(i["file"] == FILE_Q1 for i in items)


def test_bad_encoding_file_fails_strict_utf8(small):
    d, m = small
    data = (d / "landing" / FILE_LEGACY).read_bytes()
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    info = m["planted"]["bad_encoding"]
    assert info["count"] > 0 and info["file"] == FILE_LEGACY
    text = data.decode("cp1251")
    bad_lines = [ln for ln in data.split(b"\n") if not _utf8_ok(ln)]
    assert len(bad_lines) >= len(info["cyrillic_name_ticket_ids"])
    for t in info["cyrillic_name_ticket_ids"]:
        line = next(ln for ln in text.split("\n") if ln.startswith(t + ","))
        assert re.search("[А-Яа-я]", line)
        assert not _utf8_ok(line.encode("cp1251"))


def _utf8_ok(b: bytes) -> bool:
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def test_unknown_column_only_in_jsonl(small):
    d, m = small
    first = json.loads((d / "landing" / FILE_Q2).read_text(encoding="utf-8").splitlines()[-1])
    assert "priority" in first and m["planted"]["unknown_columns"] == {FILE_Q2: ["priority"]}
    assert "priority" not in pq.read_schema(d / "landing" / FILE_Q3).names


def _check_rename(rows: list[dict], m: dict) -> None:
    info = m["planted"]["label_rename"]
    d0 = date.fromisoformat(info["from_date"])
    seen_new = 0
    for r in rows:
        try:
            day = datetime.fromisoformat(r["created_at"]).date()
        except (TypeError, ValueError):
            continue
        if r["operator_label"] == info["new"]:
            assert day >= d0
            seen_new += 1
        elif r["operator_label"] == info["old"]:
            assert day < d0
    assert seen_new > 0
    assert info["new"] not in m["planted"]["templates"]["by_template"]


def test_rename_only_after_date(small):
    d, m = small
    _check_rename(_tickets(d / "landing"), m)


def _check_pii(rows: list[dict], m: dict) -> None:
    text = {r["ticket_id"]: r["customer_text"] for r in rows}
    assert 0.12 <= m["pii_share"] <= 0.18
    assert m["pii_ticket_count"] == len(m["pii_tickets"])
    counts = {k: 0 for k in m["pii"]}
    n_iban = n_card = n_iin = 0
    for tid, kinds in m["pii_tickets"]:
        for k in kinds:
            counts[k] += 1
        t = text[tid]
        ibans = [re.sub(r"\s", "", x).upper() for x in IBAN_RE.findall(t)]
        assert all(iban_valid(x) for x in ibans), tid
        rest = IBAN_RE.sub(" ", t)
        cards = CARD_RE.findall(rest)
        assert all(luhn_valid(c) for c in cards), tid
        iins = IIN_RE.findall(rest)
        assert all(iin_valid(x) for x in iins), tid
        if "IBAN_CODE" in kinds:
            assert ibans, tid
            n_iban += len(ibans)
        if "CREDIT_CARD" in kinds:
            assert cards, tid
            n_card += len(cards)
        if "KZ_IIN" in kinds:
            assert iins, tid
            n_iin += len(iins)
    assert counts == m["pii"]
    assert n_iban >= m["pii"]["IBAN_CODE"] and n_card >= m["pii"]["CREDIT_CARD"] and n_iin >= m["pii"]["KZ_IIN"]
    # tickets not listed carry no card numbers or IINs
    listed = {t for t, _ in m["pii_tickets"]}
    for tid, t in text.items():
        if tid not in listed and t:
            assert not IIN_RE.findall(IBAN_RE.sub(" ", t)), tid
            assert not [c for c in CARD_RE.findall(t) if luhn_valid(c)], tid


def test_pii_small(small):
    d, m = small
    _check_pii(_tickets(d / "landing"), m)


def test_full_sample(full):
    d, m = full
    landing = d / "landing"
    assert m["source"]["rows_used"] == 10003  # the training split only: the test split is the fresh sample
    recs = _records(landing)
    for name in (FILE_Q1, FILE_LEGACY, FILE_Q2, FILE_Q3):
        assert len(recs[name]) == m["files"][name]["rows"], name
    rows = _tickets(landing)
    _check_pii(rows, m)
    _check_rename(rows, m)
    p = m["planted"]
    for kind in ("exact_duplicates", "near_duplicates", "templates", "label_variants", "label_conflicts"):
        assert 30 <= p[kind]["count"] <= 600, kind
    for kind in ("mislabelled", "missing_labels", "duplicate_ticket_ids", "bad_timestamps"):
        assert 10 <= p[kind]["count"] <= 100, kind
    bad = set(p["bad_timestamps"]["ticket_ids"])
    months = {datetime.fromisoformat(r["created_at"]).strftime("%Y-%m") for r in rows if r["ticket_id"] not in bad}
    assert months == {f"2026-{i:02d}" for i in range(1, 10)}
    assert {r["channel"] for r in rows} == {"app", "web", "email", "phone", "chat"}


def test_cli(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "l"), "--manifest", str(tmp_path / "m.json"), "--n", "300"]) == 0
    m = json.loads((tmp_path / "m.json").read_text(encoding="utf-8"))
    assert m["source"]["rows_used"] == 300 and "total rows" in capsys.readouterr().out


def test_fresh_sample_is_banking77_test_and_never_lands(full, tmp_path):
    from pipeline.data.sample.generator import load_banking77, write_fresh_sample

    d, m = full
    info = write_fresh_sample(tmp_path / "fresh.csv")
    fresh = pd.read_csv(tmp_path / "fresh.csv", dtype=str, keep_default_na=False)
    official = load_banking77("test")
    assert info["rows"] == len(fresh) == len(official) == 3080 and fresh["label"].nunique() == 77
    assert fresh["ticket_id"].is_unique and fresh["label"].tolist() == official["label"].tolist()
    # the same kind of tickets: personal data at the landing files' rate, around the untouched request
    changed = fresh["text"] != official["text"]
    assert changed.sum() == info["rows_with_personal_data"] == round(0.15 * 3080)
    assert all(o.strip() in f for o, f in zip(official["text"][changed], fresh["text"][changed]))
    assert write_fresh_sample(tmp_path / "again.csv") and (tmp_path / "again.csv").read_bytes() == (
        tmp_path / "fresh.csv").read_bytes()
    assert m["source"]["split"] == "train"
    # no landing text is a test-split request, unless the training split holds the same words too
    norm = lambda s: " ".join(str(s).lower().split())  # noqa: E731
    train_texts = {norm(t) for t in load_banking77("train")["text"]}
    only_test = {norm(t) for t in official["text"]} - train_texts
    landed = {norm(r["customer_text"]) for r in _tickets(d / "landing")}
    assert len(only_test) > 3000 and not landed & only_test
