"""Tests of the label checks on Banking77 train with planted label problems."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.config import DEFAULT_TAXONOMY_FILE, DedupSpec, LabelCheckSpec, load_taxonomy
from pipeline.data.dedup import find_clusters
from pipeline.data.labels import apply_policy, check_labels, detect_renames, label_key, normalize_labels
from pipeline.config import DATA_DIR

DATA = str(DATA_DIR / "banking77")
SWITCH = pd.Timestamp("2024-07-01", tz="UTC")
RECALL_FLOOR = 0.85  # the planted set below: 98 of the 100 wrong labels flagged (issue rate 2.2%)


@pytest.fixture(scope="module")
def taxonomy():
    tax = load_taxonomy(DEFAULT_TAXONOMY_FILE)
    tax.labels["card_linking"].aliases.append("Link Card")
    tax.renames["topup_failed_old"] = "top_up_failed"
    return tax


@pytest.fixture(scope="module")
def planted():
    tr = pd.read_csv(f"{DATA}/train.csv")
    rng = np.random.default_rng(21)
    n = len(tr)
    df = pd.DataFrame({
        "ticket_id": [f"t{i:05d}" for i in range(n)],
        "created_at": pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 365 * 24 * 60, n), unit="m"),
        "channel": "chat",
        "text": tr["text"],
        "label_raw": tr["category"],
        "operator_id": [f"op{k}" for k in rng.integers(1, 9, n)],
    })
    truth = df["label_raw"].copy()
    touched: set[int] = set()

    def pick(label, k):
        idx = [i for i in df.index[df["label_raw"] == label] if i not in touched][:k]
        touched.update(idx)
        return idx

    # spelling variants, an alias, a declared rename
    for raw, idx in zip(["Card_Arrival", "card arrival ", "CARD-ARRIVAL"], np.array_split(pick("card_arrival", 30), 3)):
        df.loc[idx, "label_raw"] = raw
    df.loc[pick("card_linking", 10), "label_raw"] = "link card"
    df.loc[pick("top_up_failed", 8), "label_raw"] = "topup_failed_old"
    # undeclared rename: lost_or_stolen_phone becomes 'phone_lost_v2' from SWITCH on
    phone = df.index[df["label_raw"] == "lost_or_stolen_phone"].tolist()
    touched.update(phone)
    before, after = phone[: len(phone) // 2], phone[len(phone) // 2:]
    df.loc[before, "created_at"] = SWITCH - pd.to_timedelta(rng.integers(60, 180 * 24 * 60, len(before)), unit="m")
    df.loc[after, "created_at"] = SWITCH + pd.to_timedelta(rng.integers(60, 180 * 24 * 60, len(after)), unit="m")
    df.loc[after, "label_raw"] = "phone_lost_v2"
    # a label nobody knows, on texts of mixed intents: stays unknown
    df.loc[pick("cash_withdrawal_charge", 3) + pick("exchange_rate", 3), "label_raw"] = "misc"
    # a rare class
    rare_drop = df.index[df["label_raw"] == "contactless_not_working"][4:]
    df = df.drop(index=rare_drop)
    truth = truth.drop(index=rare_drop)
    # wrong labels
    labels = np.array(sorted(truth.unique()))
    free = [i for i in df.index if i not in touched and df.at[i, "label_raw"] != "contactless_not_working"]
    wrong = rng.choice(free, 100, replace=False)
    touched.update(wrong.tolist())
    for i in wrong:
        df.at[i, "label_raw"] = rng.choice(labels[labels != truth[i]])
    # exact copies labelled differently by another operator
    src = df.loc[[i for i in df.index if i not in touched][:5]]
    copies = src.assign(ticket_id=[f"c{i}" for i in range(5)], text=src["text"].str.upper() + " ",
                        label_raw="pending_transfer", operator_id="op42")
    copies.loc[src["label_raw"].to_numpy() == "pending_transfer", "label_raw"] = "pending_top_up"
    df = pd.concat([df, copies], ignore_index=True)
    meta = {
        "wrong": set(f"t{i:05d}" for i in wrong),
        "renamed": set(f"t{i:05d}" for i in after),
        "switch": df.loc[df["label_raw"] == "phone_lost_v2", "created_at"].min(),
        "conflict_pairs": list(zip(src["ticket_id"], copies["ticket_id"])),
        "misc": set(df.loc[df["label_raw"] == "misc", "ticket_id"]),
    }
    return df, meta


@pytest.fixture(scope="module")
def checked(planted, taxonomy):
    df, meta = planted
    clusters, _ = find_clusters(df, DedupSpec())
    labelled, report = check_labels(df, clusters, taxonomy, LabelCheckSpec())
    return labelled.set_index("ticket_id"), report


def test_label_key():
    assert label_key("  Card_Arrival ") == label_key("card arrival") == label_key("CARD-ARRIVAL") == "card_arrival"
    assert label_key("   ") is None and label_key(None) is None


def test_variants_aliases_and_declared_renames(planted, taxonomy):
    df, _ = planted
    out, variants = normalize_labels(df, taxonomy)
    got = out[["label_raw", "label", "label_status"]].drop_duplicates().set_index("label_raw")
    for raw in ["Card_Arrival", "card arrival ", "CARD-ARRIVAL"]:
        assert tuple(got.loc[raw]) == ("card_arrival", "variant")
    assert tuple(got.loc["link card"]) == ("card_linking", "alias")
    assert tuple(got.loc["topup_failed_old"]) == ("top_up_failed", "renamed")
    assert tuple(got.loc["phone_lost_v2"]) == (None, "unknown")
    v = variants.set_index("raw")
    assert v.loc["Card_Arrival", "count"] == 10 and v.loc["link card", "status"] == "alias"
    assert "card_arrival" not in v.index  # exact names are not variants


@pytest.mark.slow
def test_undeclared_rename_detected_with_date(checked, planted):
    labelled, report = checked
    _, meta = planted
    renames = report["renames"]
    assert len(renames) == 1
    r = renames[0]
    assert (r["old"], r["new"], r["label"], r["direction"]) == ("lost_or_stolen_phone", "phone_lost_v2",
                                                                "lost_or_stolen_phone", "after")
    assert pd.Timestamp(r["switch_date"]) == meta["switch"]
    assert r["evidence_share"] >= 0.5 and r["n_rows"] == len(meta["renamed"])
    kept = labelled.loc[sorted(meta["renamed"])]
    assert (kept["label"] == "lost_or_stolen_phone").all() and (kept["label_status"] == "renamed").all()


@pytest.mark.slow
def test_no_rename_without_time_disjointness(planted, taxonomy):
    df, _ = planted
    out, _ = normalize_labels(df, taxonomy)
    # the same relabelling but spread over the whole year is not a rename
    mixed = out.copy()
    both = mixed["label_raw"].isin(["phone_lost_v2", "lost_or_stolen_phone"])
    rng = np.random.default_rng(3)
    mixed.loc[both, "created_at"] = SWITCH + pd.to_timedelta(rng.integers(-150, 150, both.sum()), unit="D")
    assert detect_renames(mixed, taxonomy, LabelCheckSpec()).empty


@pytest.mark.slow
def test_conflicts_found(checked, planted):
    labelled, report = checked
    _, meta = planted
    for a, b in meta["conflict_pairs"]:
        assert labelled.at[a, "conflict"] and labelled.at[b, "conflict"]
        assert labelled.at[a, "conflict_level"] == "exact"
    assert report["conflicts"]["n_exact_groups"] >= 5 and report["conflicts"]["n_cross_operator"] >= 5


@pytest.mark.slow
def test_label_issue_recall_on_planted_errors(checked, planted):
    labelled, report = checked
    _, meta = planted
    flagged = set(labelled.index[labelled["label_issue"]])
    recall = len(flagged & meta["wrong"]) / len(meta["wrong"])
    assert recall >= RECALL_FLOOR, recall
    assert report["issue_rate"] < 0.05  # flags a few percent, not a share of every class
    sugg = labelled.loc[sorted(meta["wrong"] & flagged), "suggested_label"]
    assert sugg.notna().all()


@pytest.mark.slow
def test_unknown_and_rare_rows(checked, planted):
    labelled, report = checked
    df, meta = planted
    rejected = report["rejected"]
    assert set(rejected["ticket_id"]) == meta["misc"]
    assert rejected["reason"].str.startswith("unknown_label: misc").all()
    assert len(labelled) + len(rejected) == len(df)
    assert report["rare_classes"] == {"contactless_not_working": 4}
    rare = labelled[labelled["label"] == "contactless_not_working"]
    assert len(rare) == 4 and rare["label_quality"].isna().all() and not rare["label_issue"].any()
    assert set(labelled.columns) >= {"label", "label_status", "label_issue", "suggested_label", "label_quality",
                                     "conflict"}


def test_drop_policy_rejects_with_reasons():
    df = pd.DataFrame({
        "ticket_id": ["a", "b", "c", "d", "e", "f"],
        "label_raw": ["x", "x", "y", "x", "zz", None],
        "label": ["x", "x", "y", "x", None, None],
        "label_status": ["ok", "ok", "ok", "ok", "unknown", "unknown"],
    })
    issues = pd.DataFrame({"ticket_id": ["d"], "given_label": ["x"], "suggested_label": ["y"],
                           "label_quality": [0.01], "rank": [1]})
    conflicts = pd.DataFrame([{"level": "exact", "group_id": "e_1", "cluster_id": "c_1", "labels": ["x", "y"],
                               "counts": [2, 1], "ticket_ids": ["a", "b", "c"], "operators": ["o1", "o2"],
                               "n_operators": 2}])
    kept, info = apply_policy(df, issues, conflicts, LabelCheckSpec(policy="drop"))
    assert list(kept["ticket_id"]) == ["a", "b"]
    reasons = info["rejected"].set_index("ticket_id")["reason"]
    assert reasons["c"].startswith("conflict_minority") and reasons["d"].startswith("label_issue")
    assert reasons["e"] == "unknown_label: zz" and reasons["f"] == "missing_label"
    flagged, info = apply_policy(df, issues, conflicts, LabelCheckSpec(policy="flag"))
    assert list(flagged["ticket_id"]) == ["a", "b", "c", "d"] and flagged["label_issue"].tolist() == [0, 0, 0, 1]
    assert flagged["conflict"].tolist() == [True, True, True, False]
    assert info["n_kept"] + info["n_rejected"] == len(df)
    # published tickets keep their label decision: the drop policy does not remove them
    kept, info = apply_policy(df, issues, conflicts, LabelCheckSpec(policy="drop"), keep_ids=frozenset({"c", "d"}))
    assert list(kept["ticket_id"]) == ["a", "b", "c", "d"] and set(info["rejected"]["ticket_id"]) == {"e", "f"}


@pytest.mark.slow
def test_published_labels_are_frozen_when_the_rename_detection_flips(planted, taxonomy):
    """Rows of the undeclared rename were published with the label the detection gave them. When the
    detection no longer fires (the old name is used again after the switch), they keep that label; new
    rows with the unknown name are not mapped, and the report counts the changed decisions."""
    df, meta = planted
    renamed = df[df["label_raw"] == "phone_lost_v2"].sort_values("ticket_id")
    published = pd.Series("lost_or_stolen_phone", index=renamed["ticket_id"].iloc[:-5].to_numpy())
    late = df[df["label_raw"] == "lost_or_stolen_phone"].head(5).assign(
        created_at=meta["switch"] + pd.Timedelta(days=30), ticket_id=lambda d: "late-" + d["ticket_id"])
    labelled, report = check_labels(pd.concat([df, late], ignore_index=True), None, taxonomy,
                                    LabelCheckSpec(policy="drop"), frozen=published)
    assert not [r for r in report["renames"] if r["new"] == "phone_lost_v2"]  # the detection flipped
    by_id = labelled.set_index("ticket_id")
    assert (by_id.loc[published.index, "label"] == "lost_or_stolen_phone").all()
    assert (by_id.loc[published.index, "label_status"] == "frozen").all()
    assert not by_id.index.isin(renamed["ticket_id"].iloc[-5:]).any()  # new rows: unknown label, rejected
    assert report["frozen_labels"] == {"n_published": len(published), "n_decision_changed": len(published)}
