"""What a refresh need not redo: the leak guard's stored findings and the cross-split check limited to
pairs with a new row, each checked against the full computation on real data."""
import json

import pandas as pd
import pytest

from pipeline.config import DATA_DIR, DedupSpec, SplitSpec
from pipeline.data.dedup import NearDupIndex
from pipeline.data.splits import assign_splits, cross_split_pairs
from pipeline.pii.leak_guard import scan_residual, scan_residual_cached

DEDUP = DedupSpec()
SPEC = SplitSpec()


@pytest.fixture(scope="module")
def pii_texts():
    rows = json.loads((DATA_DIR / "pii" / "synth_dataset_v2.json").read_text())
    return [r["full_text"] for r in rows]


def test_leak_guard_cache_gives_the_guard_answer_and_scans_only_unseen_texts(pii_texts, tmp_path):
    history, new = pii_texts[:1000], pii_texts[1000:1100]
    truth = scan_residual(history + new)
    assert sum(1 for t in truth if t) > 100  # raw synthetic PII: the guard finds plenty

    first, info = scan_residual_cached(history, tmp_path)
    assert first == truth[:1000] and info["texts_scanned"] == len(set(history))

    seen = []

    def counting(texts):
        seen.extend(texts)
        return scan_residual(texts)

    again, info = scan_residual_cached(history + new, tmp_path, scan=counting)
    assert again == truth
    assert info["texts_scanned"] == len(set(new) - set(history)) and set(seen) == set(new) - set(history)

    # a damaged part is ignored: its texts are scanned again, never answered wrongly
    part = sorted(tmp_path.glob("*/part-*.parquet"))[0]
    part.write_bytes(b"not parquet")
    third, info = scan_residual_cached(history + new, tmp_path)
    assert third == truth and info["texts_scanned"] == len(set(history))


@pytest.fixture(scope="module")
def banking_split():
    df = pd.read_csv(DATA_DIR / "banking77" / "train.csv").rename(columns={"category": "label"})
    df["ticket_id"] = [f"T{i:05d}" for i in range(len(df))]
    history = df.iloc[:3000].reset_index(drop=True)
    res = assign_splits(history, pd.DataFrame(), SPEC, DEDUP)
    return df, res.tables


@pytest.mark.slow
def test_cross_split_check_on_new_rows_finds_what_the_full_check_finds(banking_split):
    df, tables = banking_split
    assert len(cross_split_pairs(tables, DEDUP, SPEC.near_dup_threshold)) == 0
    checked = set(pd.concat([tables[s]["ticket_id"] for s in ("train", "val", "test")]))
    # new rows: unseen Banking77 requests, plus near-copies of history rows put in another split on purpose
    fresh = df.iloc[3000:3300].assign(split=lambda d: ["train", "val", "test"] * 100)
    near = []
    for s_old, s_new in (("train", "test"), ("test", "val"), ("val", "train")):
        src = tables[s_old].iloc[:5]
        near.append(src.assign(ticket_id=[f"N{s_old}{i}" for i in range(5)], text=src["text"] + " please",
                               split=s_new))
    new = pd.concat([fresh, *near], ignore_index=True)
    grown = {s: pd.concat([tables[s], new[new["split"] == s].drop(columns=["split"])], ignore_index=True)
             for s in ("train", "val", "test")}
    full = cross_split_pairs(grown, DEDUP, SPEC.near_dup_threshold)
    quick = cross_split_pairs(grown, DEDUP, SPEC.near_dup_threshold, checked=checked)
    assert len(full) >= 15  # every planted near-copy straddles two splits
    pd.testing.assert_frame_equal(quick.reset_index(drop=True), full.reset_index(drop=True), check_dtype=False)
    # with the grouping's index of every row, only the new rows are encoded and they query it
    index = NearDupIndex(DEDUP, threshold=SPEC.near_dup_threshold)
    every = pd.concat([grown[s] for s in ("train", "val", "test")], ignore_index=True)
    index.add(every["ticket_id"].tolist(), every["text"].tolist())
    indexed = cross_split_pairs(grown, DEDUP, SPEC.near_dup_threshold, checked=checked, index=index)
    pd.testing.assert_frame_equal(indexed.reset_index(drop=True), full.reset_index(drop=True), check_dtype=False)
    # nothing new: nothing to look at
    assert len(cross_split_pairs(tables, DEDUP, SPEC.near_dup_threshold, checked=checked)) == 0


@pytest.mark.slow
def test_a_refresh_through_the_steps_scans_and_checks_only_the_new_tickets(tmp_path, monkeypatch):
    """A generated Banking77 history (99% first, then the last day as the refresh), through every data step."""
    from pipeline.config import load_config
    from pipeline.data import steps
    from pipeline.data.sample.scale import generate_history, write_landing

    monkeypatch.setenv("TUNEGATE_WAREHOUSE", str(tmp_path))
    hist = generate_history(2000, seed=3, days=20)
    last_day = sorted(write_landing(hist, tmp_path / "all"))[-1]
    for f in sorted((tmp_path / "all").iterdir())[:-1]:
        (tmp_path / "landing").mkdir(exist_ok=True)
        f.rename(tmp_path / "landing" / f.name)
    cfg = load_config(None)
    first = steps.run_data_half(cfg)
    assert first[1].meta["leak_guard_cache"]["texts_from_cache"] == 0
    assert first[4].meta["cross_split_check"] == "all pairs"

    last_day.rename(tmp_path / "landing" / last_day.name)
    n_new = len(pd.read_parquet(tmp_path / "landing" / last_day.name))
    refresh = steps.run_data_half(cfg)
    guard = refresh[1].meta["leak_guard_cache"]
    assert 0 < guard["texts_scanned"] <= n_new and guard["texts_from_cache"] >= refresh[1].meta["rows_in"] - n_new
    meta = refresh[4].meta
    assert meta["cross_split_near_duplicates"] == 0 and meta["cross_split_check"].startswith("pairs with the ")
    assert 0 < int(meta["cross_split_check"].split()[3]) <= n_new
    # the restricted check finds what the full check finds on the published tables: nothing
    tables = {s: steps.read_split(cfg, refresh[4].version, s) for s in ("train", "val", "test")}
    assert len(cross_split_pairs(tables, cfg.dedup, cfg.splits.near_dup_threshold)) == 0
    # a re-run of the refresh changes nothing and has nothing new to check
    again = steps.run_data_half(cfg)
    assert [o.version for o in again] == [o.version for o in refresh]
    assert again[1].meta["leak_guard_cache"]["texts_scanned"] == 0
    assert again[4].meta["cross_split_check"].startswith("pairs with the 0 rows")


def test_stored_templates_are_the_normalised_texts_and_only_unseen_texts_are_normalised(tmp_path, monkeypatch):
    from pipeline.data import dedup
    from pipeline.data.template_cache import templates

    texts = pd.read_csv(DATA_DIR / "banking77" / "train.csv")["text"].tolist()[:800]
    truth = [dedup.normalize_template(t) for t in texts]
    assert templates(texts[:600], tmp_path) == truth[:600]
    calls = []
    real = dedup.normalize_template
    monkeypatch.setattr(dedup, "normalize_template", lambda t: calls.append(t) or real(t))
    assert templates(texts, tmp_path) == truth
    assert set(calls) == set(texts[600:]) - set(texts[:600])
    for p in tmp_path.glob("*/part-*.parquet"):
        p.write_bytes(b"damaged")
    assert templates(texts, tmp_path) == truth
