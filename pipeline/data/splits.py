"""Template-aware, stratified, stable train / val / test assignment.

1. Group: tickets whose template texts (placeholders to their type, digits to 0, see
   `dedup.normalize_template`) are near-duplicates at the split threshold are joined into one group
   (connected components of the verified MinHash pairs). Unlike dedup, no size cap: a group that
   straddled two splits would leak, and a big group only costs stratification, which we report.
2. Keep: a ticket assigned in an earlier version keeps its split (the catalog's split_assignments).
3. Inherit: a new ticket whose group already has assigned members joins that split, except that
   frozen test groups take no new members: a new ticket close to a published test group is held
   out (split `held_out`, reason `near_frozen_test`) so the test set of a published version never
   changes and nothing like it enters train. A new ticket that bridges groups in different splits is
   held out too (`bridges_splits`).
4. Assign new groups by a salted hash of the group key (`bucket_split`): a pure function of the
   group, so a refresh assigns a new group exactly as a full rebuild of the same tickets would, and
   no assignment depends on the order or the batch in which tickets arrived. Stratification is by
   expectation: each label gets the configured ratios up to binomial noise, reported in the stats
   (`max_ratio_deviation`, `labels_missing_in_test`).

The blocking check `cross_split_pairs` verifies the result: zero near-duplicate pairs between test
and train or val.

Frozen means frozen across refreshes (`pin_published`): a ticket published in any earlier version is
split again whatever dedup now says about it, so it keeps its split even when a new, earlier-dated copy
became its cluster's representative. Such a copy is a duplicate of a pinned ticket: it is not split, and
its lineage points at the pinned ticket's split. Label decisions on published tickets are frozen the same
way (`pipeline.data.labels.check_labels(frozen=...)`).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from pipeline.config import DedupSpec, SplitSpec
from pipeline.data.dedup import NearDupIndex, cross_pairs
from pipeline.data.template_cache import templates

SPLITS = ("train", "val", "test")


@dataclass
class SplitResult:
    tables: dict[str, pd.DataFrame]  # train, val, test, held_out
    new_assignments: pd.DataFrame  # ticket_id, split, group_key, first_version (filled on publish), reason
    stats: dict
    index: NearDupIndex | None = None  # the grouping's index of every split row (ticket ids as keys)


def _hash(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()


def template_groups(df: pd.DataFrame, dedup: DedupSpec, threshold: float, out: dict | None = None,
                    template_cache=None) -> pd.Series:
    """Group key per ticket: connected components of near-duplicate template texts.

    The key is content-derived from the group's anchor: its earliest member (by `created_at` when the
    table has it, then by template text). New tickets arrive after the history, so a group that gains
    members in a refresh keeps the anchor, and the key, that it had before; a full rebuild of the same
    tickets finds the same anchor. `out["index"]` receives the index of the tickets, for the cross-split check."""
    n = len(df)
    if n == 0:
        return pd.Series([], dtype=object)
    index = NearDupIndex(dedup, threshold=threshold)
    templ = templates(df["text"].tolist(), template_cache)  # once: the index and the anchors both use them
    index.add_templates([str(k) for k in df["ticket_id"]], templ)
    if out is not None:
        out["index"] = index
    pairs = index.self_pairs()
    if pairs:
        i, j, _ = zip(*pairs)
        graph = coo_matrix((np.ones(len(i)), (np.array(i), np.array(j))), shape=(n, n))
        _, comp = connected_components(graph, directed=False)
    else:
        comp = np.arange(n)
    order = pd.DataFrame({"comp": comp, "t": np.array(templ, dtype=object),
                          "id": df["ticket_id"].astype(str).to_numpy()})
    by = ["comp", "t", "id"]
    if "created_at" in df.columns:
        order["at"] = pd.to_datetime(df["created_at"], utc=True).to_numpy()
        by = ["comp", "at", "t", "id"]
    anchor = order.sort_values(by, kind="mergesort").groupby("comp")["t"].first()
    keys = anchor.map(lambda t: "g_" + hashlib.sha1(t.encode()).hexdigest()[:12])
    return pd.Series(keys.loc[comp].to_numpy(), index=df.index)


def bucket_split(spec: SplitSpec, group_key: str) -> str:
    """The split of a new group: its salted hash as a number in [0, 1) against the cumulative ratios.

    It depends on nothing but the group's key and the config, never on what else is in the batch, so
    every label gets the configured ratios in expectation (not exactly: a label with g groups varies by
    about sqrt(g * p * (1 - p)) groups per split)."""
    u = int(_hash(spec.seed, group_key)[:15], 16) / 16 ** 15
    if u < spec.train:
        return "train"
    return "val" if u < spec.train + spec.val else "test"


def pin_published(labelled: pd.DataFrame, published_ids) -> pd.DataFrame:
    """Which labelled rows are split, and which ticket stands for each cluster in the lineage.

    Input: the labelled members (ticket_id, cluster_id, representative_id, is_representative, label).
    Adds `split_row` (this row goes into the split) and `split_representative_id` (the ticket whose
    split the row follows). A cluster with a published member is pinned: its published members are
    split (each keeps its split in `assign_splits`) and every other member, the dedup representative
    included, follows the earliest published member by ticket id. Other clusters are split through
    their dedup representative, as before."""
    out = labelled.copy()
    published = out["ticket_id"].isin(set(published_ids))
    pinned_rep = (out.loc[published].sort_values("ticket_id").groupby("cluster_id")["ticket_id"].first())
    pinned = out["cluster_id"].isin(pinned_rep.index)
    out["split_representative_id"] = out["cluster_id"].map(pinned_rep).where(pinned, out["representative_id"])
    out.loc[published, "split_representative_id"] = out.loc[published, "ticket_id"]
    out["split_row"] = out["label"].notna() & (published | (~pinned & out["is_representative"].astype(bool)))
    return out


def pinning_stats(pinned: pd.DataFrame) -> dict:
    """Counts for the metadata: published tickets split although dedup no longer picks them, and dedup
    representatives that follow a published ticket instead of being split."""
    rep = pinned["is_representative"].astype(bool)
    follows = pinned["split_representative_id"] != pinned["ticket_id"]
    return {"published_kept_as_non_representative": int((pinned["split_row"] & ~rep).sum()),
            "representatives_following_published": int((rep & follows).sum())}


def assign_splits(df: pd.DataFrame, previous: pd.DataFrame, spec: SplitSpec, dedup: DedupSpec,
                  template_cache=None) -> SplitResult:
    """Split labelled, deduplicated tickets (ticket_id, text, label, ...) into train/val/test/held_out.

    `template_cache`: a folder keeping the templates of masked texts already seen (`pipeline.data.template_cache`)."""
    df = df.reset_index(drop=True).copy()
    built: dict = {}
    df["group_key"] = template_groups(df, dedup, spec.near_dup_threshold, out=built, template_cache=template_cache)
    prev = previous.set_index("ticket_id") if len(previous) else pd.DataFrame(columns=["split", "reason"])
    df["split"] = df["ticket_id"].map(prev["split"]).astype(object)
    # a kept ticket keeps its stored reason too, so an unchanged input gives an unchanged version
    df["reason"] = df["ticket_id"].map(prev["reason"]).astype(object)
    is_new = df["split"].isna()

    # inherit or hold out, per group: the splits its kept members have (held_out aside)
    kept = df.loc[df["split"].notna() & (df["split"] != "held_out"), ["group_key", "split"]].drop_duplicates()
    known = kept.groupby("group_key")["split"].agg(["nunique", "first"])
    new_groups = df.loc[is_new, "group_key"]
    n_known = new_groups.map(known["nunique"]).fillna(0).astype(int)
    one = new_groups.map(known["first"])
    bridges = n_known.index[n_known > 1]
    frozen = n_known.index[(n_known == 1) & (one == "test")]
    inherit = n_known.index[(n_known == 1) & (one != "test")]
    df.loc[bridges, ["split", "reason"]] = ["held_out", "bridges_splits"]
    df.loc[frozen, ["split", "reason"]] = ["held_out", "near_frozen_test"]
    df.loc[inherit, "split"] = one.loc[inherit]
    df.loc[inherit, "reason"] = "inherited"

    # new groups: a pure function of the group's anchor, so a refresh gives what a full rebuild gives
    unassigned = df[df["split"].isna()]
    if len(unassigned):
        df.loc[unassigned.index, "split"] = unassigned["group_key"].map(lambda k: bucket_split(spec, k))
        df.loc[unassigned.index, "reason"] = "new_group"

    ratios = {"train": spec.train, "val": spec.val, "test": spec.test}
    new_assign = df[is_new][["ticket_id", "split", "group_key", "reason"]].copy()
    tables = {}
    cols = [c for c in df.columns if c not in ("split", "reason")]
    for s in SPLITS:
        tables[s] = df[df["split"] == s][cols].sort_values("ticket_id").reset_index(drop=True)
    held = df[df["split"] == "held_out"]
    tables["held_out"] = held[cols + ["reason"]].sort_values("ticket_id").reset_index(drop=True)

    sizes = {s: len(t) for s, t in tables.items()}
    labels = sorted(df["label"].unique())
    balance = class_balance(tables).reindex(labels, fill_value=0)
    group_sizes = df.groupby("group_key").size()
    stats = {
        "sizes": sizes,
        "ratios": {s: round(sizes[s] / max(1, sum(sizes[x] for x in SPLITS)), 4) for s in SPLITS},
        "groups": int(group_sizes.size),
        "multi_ticket_groups": int((group_sizes > 1).sum()),
        "largest_group": int(group_sizes.max()) if len(group_sizes) else 0,
        "reasons": {str(k): int(v) for k, v in df["reason"].value_counts().sort_index().items()},
        "kept_from_earlier_versions": int((~is_new).sum()),
        "class_balance_min": {sp: int(balance[sp].min()) for sp in SPLITS},
        "class_balance_max": {sp: int(balance[sp].max()) for sp in SPLITS},
        "labels_missing_in_test": [lab for lab in labels if balance.loc[lab, "test"] == 0],
        "labels_missing_in_val": [lab for lab in labels if balance.loc[lab, "val"] == 0],
        "max_ratio_deviation": float(
            (balance.div(balance.sum(axis=1), axis=0) - pd.Series(ratios)).abs().max().max()) if len(balance) else 0.0,
    }
    return SplitResult(tables=tables, new_assignments=new_assign, stats=stats, index=built.get("index"))


def class_balance(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    labels = sorted(set().union(*[set(tables[s]["label"]) for s in SPLITS]))
    return pd.DataFrame({s: tables[s]["label"].value_counts().reindex(labels, fill_value=0) for s in SPLITS})


CROSS_COMBOS = (("test", "train"), ("test", "val"), ("val", "train"))


def cross_split_pairs(tables: dict[str, pd.DataFrame], dedup: DedupSpec, threshold: float,
                      checked=None, index: NearDupIndex | None = None) -> pd.DataFrame:
    """Near-duplicate pairs between test and train/val, and between val and train (must be empty).

    `checked`: ticket ids whose pairs with each other are known to be clean (the rows of the latest
    published version, same split and same text, checked with the same settings). Only pairs with at
    least one other row are then looked for: the other rows are indexed once and every row queries them
    (new x old and new x new), which finds the same pairs the full check finds outside checked x checked.
    `index`: an index (same settings and threshold, ticket ids as keys) that holds at least every row of the
    tables, e.g. `SplitResult.index`; the other rows then query it and nothing else is encoded."""
    if checked is not None:
        return _cross_split_pairs_new(tables, dedup, threshold, set(checked), index)
    frames = []
    for a, b in CROSS_COMBOS:
        pairs = cross_pairs(tables[a], tables[b], dedup, threshold=threshold)
        if len(pairs):
            pairs = pairs.assign(split_a=a, split_b=b)
            frames.append(pairs)
    cols = ["ticket_id_a", "ticket_id_b", "jaccard", "split_a", "split_b"]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


def _cross_split_pairs_new(tables: dict[str, pd.DataFrame], dedup: DedupSpec, threshold: float,
                           checked: set, index: NearDupIndex | None = None) -> pd.DataFrame:
    cols = ["ticket_id_a", "ticket_id_b", "jaccard", "split_a", "split_b"]
    rows = pd.concat([tables[s][["ticket_id", "text"]].assign(split=s) for s in SPLITS], ignore_index=True)
    rows["ticket_id"] = rows["ticket_id"].astype(str)
    new = rows[~rows["ticket_id"].isin(checked)]
    if new.empty:
        return pd.DataFrame(columns=cols)
    if index is None:  # the new rows indexed, every row queries them
        index = NearDupIndex(dedup, threshold=threshold)
        index.add(new["ticket_id"].tolist(), new["text"].tolist())
        query = rows
    else:  # every row indexed already: only the new rows query it
        query = new
    split_of = dict(zip(rows["ticket_id"], rows["split"]))
    order = {c: k for k, c in enumerate(CROSS_COMBOS)}
    found = {}
    for kb, sb, hits in zip(query["ticket_id"], query["split"], index.query_scored(query["text"].tolist())):
        for ka, j in hits:
            sa = split_of.get(ka)  # None: a held-out row of the index
            for (x, sx), (y, sy) in (((ka, sa), (kb, sb)), ((kb, sb), (ka, sa))):
                if (sx, sy) in order:
                    found[(x, y)] = (x, y, j, sx, sy)
    out = pd.DataFrame(list(found.values()), columns=cols)
    out["_c"] = [order[(a, b)] for a, b in zip(out["split_a"], out["split_b"])]
    out = out.sort_values(["_c", "ticket_id_b", "ticket_id_a"], kind="mergesort")
    return out[cols].reset_index(drop=True)
