"""The label-check model kept between runs: a refresh scores only its new rows, finds wrong labels among
them, refits when it must, and a re-run gives the same table (Banking77 train history, test split as
the new tickets)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.config import DATA_DIR, DEFAULT_TAXONOMY_FILE, DedupSpec, LabelCheckSpec, load_taxonomy
from pipeline.data.dedup import find_clusters
from pipeline.data.labels import check_labels

B77 = DATA_DIR / "banking77"
pytestmark = pytest.mark.slow  # two full label checks on 10,000 rows


def _frame(df: pd.DataFrame, prefix: str, start: str) -> pd.DataFrame:
    n = len(df)
    return pd.DataFrame({"ticket_id": [f"{prefix}{i:05d}" for i in range(n)],
                         "created_at": pd.Timestamp(start, tz="UTC") + pd.to_timedelta(np.arange(n), unit="min"),
                         "channel": "chat", "text": df["text"].to_numpy(), "label_raw": df["category"].to_numpy(),
                         "operator_id": "op1"})


@pytest.fixture(scope="module")
def data():
    history = _frame(pd.read_csv(B77 / "train.csv"), "h", "2024-01-01")
    fresh = _frame(pd.read_csv(B77 / "test.csv").sample(100, random_state=3), "n", "2025-01-01")
    # 12 of the new tickets get another label's name: the refresh must find them
    vocab = sorted(fresh["label_raw"].unique())
    wrong = fresh.index[:12]
    fresh.loc[wrong, "label_raw"] = [vocab[(vocab.index(v) + 7) % len(vocab)] for v in fresh.loc[wrong, "label_raw"]]
    return history, fresh, set(fresh.loc[wrong, "ticket_id"])


def _check(df, spec, state_dir):
    clusters, _ = find_clusters(df, DedupSpec())
    return check_labels(df, clusters, load_taxonomy(DEFAULT_TAXONOMY_FILE), spec, state_dir=state_dir)


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory):
    history, fresh, wrong = data
    state = tmp_path_factory.mktemp("labels") / "state"
    spec = LabelCheckSpec()
    _, first = _check(history, spec, state)
    both = pd.concat([history, fresh], ignore_index=True)
    refreshed, rep = _check(both, spec, state)
    again, rep_again = _check(both, spec, state)
    return {"state": state, "spec": spec, "first": first, "refreshed": refreshed, "rep": rep, "again": again,
            "rep_again": rep_again, "both": both}


def test_a_refresh_scores_only_its_new_rows_and_finds_their_wrong_labels(runs, data):
    _, fresh, wrong = data
    assert runs["first"]["label_model"] == {"mode": "full"}
    assert runs["rep"]["label_model"]["mode"] == "incremental"
    assert runs["rep"]["label_model"]["rows_scored_new"] == len(fresh)
    lab = runs["refreshed"].set_index("ticket_id")
    flagged = set(lab.index[lab["label_issue"]]) & set(fresh["ticket_id"])
    assert len(flagged & wrong) >= 0.75 * len(wrong)                  # the planted wrong labels
    assert len(flagged - wrong) <= 0.15 * (len(fresh) - len(wrong))   # and few of the right ones
    # the flagged wrong labels mostly come with their true label as the suggestion
    truth = pd.read_csv(B77 / "test.csv").sample(100, random_state=3)["category"].to_numpy()
    true_of = dict(zip(fresh["ticket_id"], truth))
    hits = [t for t in flagged & wrong if lab.loc[t, "suggested_label"] == true_of[t]]
    assert len(hits) >= 0.6 * len(flagged & wrong)


def test_a_rerun_gives_the_same_table(runs):
    assert runs["again"].equals(runs["refreshed"])


def test_refit_on_growth_on_an_unknown_label_and_on_a_broken_state(runs, data, tmp_path):
    history, fresh, _ = data
    small = LabelCheckSpec(refit_after_share=0.005)  # 100 new rows > 0.5% of 10,003
    state = tmp_path / "state"
    _check(history, small, state)
    _, rep = _check(runs["both"], small, state)
    assert rep["label_model"]["mode"] == "full" and "refit_after_share" in rep["label_model"]["refit"]
    # a label the stored model does not know (the taxonomy's, on rows that are new)
    spec = LabelCheckSpec()
    _check(history[history["label_raw"] != "card_arrival"], spec, tmp_path / "s2")
    _, rep = _check(history, spec, tmp_path / "s2")
    assert rep["label_model"]["mode"] == "full" and "does not know" in rep["label_model"]["refit"]
    # garbage in the stored model: a full check, never a crash and never an unpickled object
    (runs["state"] / "model.npz").write_bytes(b"not a model")
    _, rep = _check(runs["both"], spec, runs["state"])
    assert rep["label_model"] == {"mode": "full"}
