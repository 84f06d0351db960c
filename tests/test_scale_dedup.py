"""Compact dedup signatures, the persisted dedup index and the history generator, on real data."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.config import DATA_DIR, DedupSpec, load_config
from pipeline.data import signatures as sig
from pipeline.data.dedup import NearDupIndex, _char_ngrams, _one_edit, find_clusters, normalize_template
from pipeline.data.dedup_index import DedupIndexStore, find_clusters_indexed
from pipeline.data.sample.scale import generate_history


@pytest.fixture(scope="module")
def banking_templates() -> list[str]:
    tr = pd.read_csv(DATA_DIR / "banking77" / "train.csv")
    return sorted({normalize_template(t) for t in tr["text"]}) + ["", "abc"]


@pytest.fixture(scope="module")
def sample_tickets(sample_warehouse) -> pd.DataFrame:
    """The bundled sample's tickets as ingestion keeps them (raw text: these tests only compare clusterings)."""
    from pipeline.data.ingest import ingest_landing

    wh, _ = sample_warehouse
    t = ingest_landing(load_config(None), wh / "landing").tickets
    return t[["ticket_id", "text", "created_at"]].reset_index(drop=True)


def test_shingle_hashes_and_intersections_match_string_sets(banking_templates):
    T = banking_templates
    flat, off = sig.shingle_hashes(T, 5)
    assert (np.diff(off) == [len(_char_ngrams(t, 5)) for t in T]).all()
    rng = np.random.default_rng(0)
    ia = rng.integers(0, len(T), 3000)
    ib = np.where(np.arange(3000) % 2 == 0, rng.integers(0, len(T), 3000), ia)
    inter, la, lb = sig.intersections(flat, off, ia, flat, off, ib)
    assert (inter == [len(_char_ngrams(T[a], 5) & _char_ngrams(T[b], 5)) for a, b in zip(ia, ib)]).all()
    assert inter[1::2].tolist() == la[1::2].tolist()  # a set against itself


@pytest.mark.slow
def test_deletion_keys_find_every_one_edit_pair(banking_templates):
    T = [t for t in banking_templates if 20 <= len(t) <= 120]
    keys, rows = sig.deletion_keys(T, np.ones(len(T), bool))
    found = {tuple(p) for p in sig.pairs_sharing_key(keys, rows).tolist()}
    # reference: every one-character deletion as a string
    by_key: dict[str, set[int]] = {}
    for i, t in enumerate(T):
        for s in {t} | {t[:k] + t[k + 1:] for k in range(len(t))}:
            by_key.setdefault(s, set()).add(i)
    ref = {(a, b) for g in by_key.values() for a in g for b in g if a < b}
    assert found == ref and len(ref) > 20
    assert sum(_one_edit(T[a], T[b]) for a, b in ref) >= 0.5 * len(ref)


def test_index_memory_is_compact(banking_templates):
    """About a kilobyte per template (the set-based index held ~21 KB per ticket)."""
    idx = NearDupIndex(DedupSpec())
    idx.add_templates([str(i) for i in range(len(banking_templates))], banking_templates)
    per_template = sum(a.nbytes for a in idx._arrays()) / len(banking_templates)
    assert per_template < 2500, per_template


@pytest.mark.slow
def test_persisted_index_matches_full_build_on_bundled_sample(sample_tickets, tmp_path):
    spec = DedupSpec()
    full, st = find_clusters(sample_tickets, spec)
    indexed, ist = find_clusters_indexed(sample_tickets, spec, tmp_path / "a")
    pd.testing.assert_frame_equal(indexed, full)
    assert ist["index"]["templates_new"] == st["n_templates"] and ist["n_clusters"] == st["n_clusters"]

    # a 1% refresh: the history first, then everything; only the new templates are hashed
    order = sample_tickets.sort_values(["created_at", "ticket_id"], kind="mergesort")
    cut = int(len(order) * 0.99)
    history = order.iloc[:cut].reset_index(drop=True)
    find_clusters_indexed(history, spec, tmp_path / "b")
    refreshed, rst = find_clusters_indexed(sample_tickets, spec, tmp_path / "b")
    pd.testing.assert_frame_equal(refreshed, full)
    hist_templates = {normalize_template(t) for t in history["text"]}
    new_templates = {normalize_template(t) for t in sample_tickets["text"]} - hist_templates
    assert rst["index"]["templates_indexed_before"] == len(hist_templates)
    assert rst["index"]["templates_new"] == len(new_templates) > 50
    assert not rst["index"]["rebuilt"]
    assert rst["index"]["tickets_normalised"] == len(sample_tickets) - cut  # only the new tickets
    store = DedupIndexStore(tmp_path / "b", spec)
    assert store.manifest()["parts"] == [0, 1]
    # the same data again: nothing new is hashed, nothing is written
    _, again = find_clusters_indexed(sample_tickets, spec, tmp_path / "b")
    assert again["index"]["templates_new"] == 0 and store.manifest()["parts"] == [0, 1]
    assert again["index"]["tickets_normalised"] == 0


@pytest.mark.slow
def test_index_is_rebuilt_when_the_history_shrinks(sample_tickets, tmp_path):
    spec = DedupSpec()
    part = sample_tickets.iloc[:3000].reset_index(drop=True)
    find_clusters_indexed(sample_tickets.iloc[:5000].reset_index(drop=True), spec, tmp_path)
    got, st = find_clusters_indexed(part, spec, tmp_path)
    assert st["index"]["rebuilt"]
    pd.testing.assert_frame_equal(got, find_clusters(part, spec)[0])


@pytest.mark.slow
def test_history_generator_gives_distinct_labelled_tickets():
    a = generate_history(30_000, seed=3)
    assert a.equals(generate_history(30_000, seed=3))  # deterministic
    assert not a.equals(generate_history(30_000, seed=4))
    assert a["customer_text"].is_unique and a["ticket_id"].is_unique
    templates = a["customer_text"].map(normalize_template)
    assert templates.nunique() >= 0.95 * len(a)  # new combinations, not copies
    train = pd.read_csv(DATA_DIR / "banking77" / "train.csv")
    assert set(a["operator_label"]) <= set(train["category"])
    first = a["customer_text"].str.replace(r"^(Hi|Hello|Hey|Good \w+|Dear support|Excuse me|Hi there), ", "",
                                           regex=True)
    requests = set(train["text"].str.strip())
    lead = first.iloc[:2000].map(lambda t: next((t[:k] for k in range(len(t), 0, -1) if t[:k] in requests), None))
    assert lead.notna().mean() > 0.99  # every ticket opens with a Banking77 train request
    assert 0.12 <= a["customer_text"].str.contains(r"My name is|call me on|reply to|here, phone").mean() <= 0.18
    assert a["created_at"].is_monotonic_increasing
