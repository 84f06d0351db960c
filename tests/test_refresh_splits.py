"""A refresh assigns new tickets the split a full rebuild of the same tickets gives them.

Histories are built from Banking77 requests (`pipeline.data.sample.scale`). The only new tickets
allowed to differ are the ones the frozen-test rule holds out: a full rebuild has no published test
set, so it puts a new member of a test group in test; a refresh holds it out instead, and it never
reaches train or val either way.
"""
import pandas as pd
import pytest

from pipeline.config import DedupSpec, SplitSpec
from pipeline.data.sample.generator import _near_edit
from pipeline.data.sample.scale import generate_history
from pipeline.data.splits import SPLITS, assign_splits, bucket_split

DEDUP = DedupSpec()
SPEC = SplitSpec()
FROZEN_HOLDS = {"near_frozen_test", "bridges_splits"}


def _history(n: int, seed: int) -> pd.DataFrame:
    h = generate_history(n, seed=seed)
    return h.rename(columns={"customer_text": "text", "operator_label": "label"})[
        ["ticket_id", "created_at", "text", "label"]]


def _split_of(result) -> pd.Series:
    return pd.concat([result.tables[s][["ticket_id"]].assign(split=s) for s in result.tables]
                     ).set_index("ticket_id")["split"]


def _publish(previous: pd.DataFrame, result, version: str) -> pd.DataFrame:
    return pd.concat([previous, result.new_assignments.assign(first_version=version)], ignore_index=True)


def test_bucket_split_is_a_pure_function_of_the_group_key():
    keys = [f"g_{i:012x}" for i in range(20000)]
    got = pd.Series([bucket_split(SPEC, k) for k in keys]).value_counts(normalize=True)
    assert abs(got["train"] - 0.8) < 0.015 and abs(got["val"] - 0.1) < 0.01 and abs(got["test"] - 0.1) < 0.01
    assert [bucket_split(SPEC, k) for k in keys[:50]] == [bucket_split(SPEC, k) for k in keys[:50]]
    other = SplitSpec(seed=SPEC.seed + 1)
    assert sum(bucket_split(SPEC, k) != bucket_split(other, k) for k in keys[:1000]) > 100  # the seed salts it


@pytest.mark.slow
def test_two_nightly_refreshes_give_the_full_rebuilds_split_for_every_new_ticket():
    h = _history(2400, seed=11)
    h1, h2 = int(len(h) * 0.9), int(len(h) * 0.95)
    history, night1, night2 = h.iloc[:h1], h.iloc[h1:h2], h.iloc[h2:]
    # a customer re-sends a published test ticket, reworded: the frozen-test rule must hold it out
    r0 = assign_splits(history, pd.DataFrame(), SPEC, DEDUP)
    tests = r0.tables["test"].sort_values("ticket_id").head(12)
    import random

    rng = random.Random(3)
    resent = tests.assign(ticket_id="R" + tests["ticket_id"], text=[_near_edit(rng, t) for t in tests["text"]],
                          created_at=night2["created_at"].iloc[-1])
    everything = pd.concat([h, resent], ignore_index=True)

    full = _split_of(assign_splits(everything, pd.DataFrame(), SPEC, DEDUP))
    prev = _publish(pd.DataFrame(), r0, "v0")
    r1 = assign_splits(pd.concat([history, night1], ignore_index=True), prev, SPEC, DEDUP)
    prev = _publish(prev, r1, "v1")
    r2 = assign_splits(everything, prev, SPEC, DEDUP)
    refresh = _split_of(r2)
    reason = pd.concat([r1.new_assignments, r2.new_assignments]).set_index("ticket_id")["reason"]

    new_ids = pd.concat([night1, night2, resent])["ticket_id"]
    cmp = pd.DataFrame({"full": full.loc[new_ids].to_numpy(), "refresh": refresh.loc[new_ids].to_numpy(),
                        "reason": reason.loc[new_ids].to_numpy()}, index=new_ids)
    assigned = cmp[~cmp["reason"].isin(FROZEN_HOLDS)]
    assert len(assigned) > 200 and (assigned["reason"] == "new_group").sum() > 100
    assert (assigned["full"] == assigned["refresh"]).all(), cmp[cmp["full"] != cmp["refresh"]]
    # the held-out ones: never trained on, in the refresh as in the full rebuild
    held = cmp[cmp["reason"].isin(FROZEN_HOLDS)]
    assert len(held) >= 8 and (held["refresh"] == "held_out").all()
    assert held.loc[held["reason"] == "near_frozen_test", "full"].eq("test").all()
    # and the published splits did not move
    old = _split_of(r0)
    assert (refresh.loc[old.index] == old).all()
    assert set(r0.tables["test"]["ticket_id"]) <= set(r2.tables["test"]["ticket_id"])


@pytest.mark.slow
def test_order_and_batching_of_the_history_do_not_change_any_split():
    """The history built in three batches, in a shuffled row order, gives the one-batch build's splits."""
    h = _history(1500, seed=5)
    once = _split_of(assign_splits(h, pd.DataFrame(), SPEC, DEDUP))
    prev = pd.DataFrame()
    for i, cut in enumerate((500, 1000, 1500)):
        part = h.iloc[:cut].sample(frac=1, random_state=i)
        res = assign_splits(part, prev, SPEC, DEDUP)
        prev = _publish(prev, res, f"v{i}")
    batched = _split_of(res)
    held = res.tables["held_out"]["ticket_id"]
    same = batched.drop(held) == once.loc[batched.drop(held).index]
    assert same.all() and len(held) <= 0.01 * len(h)
    assert set(SPLITS) <= set(batched)
