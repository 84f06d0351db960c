"""Checks of the frozen-test estimate on tickets the pipeline never saw, and over time.

A frozen test set can still flatter a model (paraphrases on both sides of the split, masking that
differs between copies, a drift the test set predates). Two checks say how far to trust it:

- `fresh_sample_check`: every candidate is scored on an external labelled file (`evaluation.fresh_sample`
  or `tunegate evaluate --fresh FILE`) through the same masking (the project's `Masker`), the same
  prompts and the same few-shot examples as on the frozen test set. Per candidate: frozen and fresh
  accuracy side by side, the gap (frozen minus fresh) and its interval, and whether the best candidate
  is the same on both. It also counts the fresh tickets that have a near-duplicate in the training split
  (at the split threshold) and gives fresh accuracy without them: the frozen test set, split by
  template-aware groups, has no such tickets by construction, so this is the like-for-like comparison
  and the difference between the two fresh figures is what near-repeats of training tickets add.
- `out_of_time`: accuracy on the most recent month of the frozen test set against the earlier months.

Intervals are percentile bootstraps (`pipeline.model.stats`) and cover sampling noise only.
The fresh file's text is masked before any request and is never stored: the results hold counts,
ids and labels.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from pipeline.model import stats

NOISE_NOTE = ("Intervals cover sampling noise only: not a shift between the test period and production, "
              "not a leak between splits, and not the stand-in nature of the embedded models.")


def load_fresh_sample(path: str | Path, taxonomy) -> tuple[pd.DataFrame, dict]:
    """(rows with ticket_id, text, label; facts) from a CSV, JSONL or Parquet file with `text` and `label`
    columns (`ticket_id` optional). Labels are read through the taxonomy's normalisation (spelling
    variants, aliases, declared renames); rows whose label is not in the taxonomy are left out and counted."""
    from pipeline.data.labels import normalize_labels

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"fresh sample {p} does not exist")
    suffix = p.suffix.lower()
    if suffix == ".parquet":
        df = pd.read_parquet(p)
    elif suffix in (".jsonl", ".json"):
        df = pd.read_json(p, lines=True, dtype=False)
    else:
        df = pd.read_csv(p, dtype=str, keep_default_na=False)
    missing = {"text", "label"} - set(df.columns)
    if missing:
        raise ValueError(f"fresh sample {p.name} needs columns text and label; missing {sorted(missing)}")
    if "ticket_id" not in df.columns:
        df["ticket_id"] = [f"fresh-{i:06d}" for i in range(len(df))]
    df = df[["ticket_id", "text", "label"]].astype(str)
    normed, _ = normalize_labels(df.rename(columns={"label": "label_raw"}), taxonomy)
    known = normed["label"].notna() & normed["text"].str.strip().ne("")
    rows = normed.loc[known, ["ticket_id", "text", "label"]].reset_index(drop=True)
    facts = {"file": p.name, "rows_in": int(len(df)), "rows_used": int(len(rows)),
             "rows_left_out": int((~known).sum())}
    if rows.empty:
        raise ValueError(f"fresh sample {p.name}: no row has a text and a label of the taxonomy")
    return rows, facts


def mask_fresh(rows: pd.DataFrame, masking_spec) -> pd.DataFrame:
    """The same masking as the pipeline's masked_tickets step, applied to the fresh texts."""
    from pipeline.pii.masker import Masker

    results = Masker(masking_spec).mask_texts(rows["text"].tolist())
    return rows.assign(text=[r.text for r in results])


def fresh_sample_check(client, fresh: pd.DataFrame, facts: dict, train: pd.DataFrame, config,
                       candidates: Sequence, frozen, provenance: dict | None = None, log=None,
                       routes: dict | None = None) -> dict:
    """Score every candidate on the (already masked) fresh rows and compare with the frozen result.

    `frozen` is the frozen test set's `EvaluationResult` (with predictions); `train` gives the same
    few-shot examples as on the frozen test set."""
    from pipeline.model.evaluation import run_evaluation

    ev = config.evaluation
    cfg = config.model_copy(update={"evaluation": ev.model_copy(update={"sample_size": ev.fresh_sample_size})})
    fresh_result = run_evaluation(client, fresh, train, cfg, candidates, "fresh-sample", log=log,
                                  provenance=provenance, extra_runs=False, routes=routes)
    twins = train_twins(fresh_result.predictions, fresh, train, config)
    return compare(frozen, fresh_result, facts, ev.bootstrap, ev.seed, twins)


def train_twins(predictions: pd.DataFrame, fresh: pd.DataFrame, train: pd.DataFrame, config) -> set[str]:
    """Ids of the scored fresh tickets with a near-duplicate in the training split (template-aware, at the
    split threshold: the same test the split uses to keep such pairs apart)."""
    from pipeline.data.dedup import cross_pairs

    scored = fresh[fresh["ticket_id"].isin(set(predictions["ticket_id"]))]
    pairs = cross_pairs(train[["ticket_id", "text"]], scored[["ticket_id", "text"]], config.dedup,
                        threshold=config.splits.near_dup_threshold)
    return set(pairs["ticket_id_b"])


def _correct(result, name: str) -> np.ndarray:
    p = result.predictions
    return p.loc[p["candidate"] == name, "correct"].to_numpy(dtype=bool)


def compare(frozen, fresh, facts: dict, n_boot: int = 1000, seed: int = 0, twins: set[str] | None = None) -> dict:
    """Frozen vs fresh accuracy per candidate, the gap (frozen minus fresh) with its interval; with `twins`
    (fresh ticket ids that have a near-duplicate in train), the same on the fresh tickets without them."""
    rows = {}
    twins = set(twins or ())
    for name in frozen.ranking:
        if name not in fresh.metrics:
            continue
        fm, nm = frozen.metrics[name], fresh.metrics[name]
        gap = stats.independent_bootstrap_diff(_correct(frozen, name), _correct(fresh, name), n_boot, seed)
        rows[name] = {"frozen_accuracy": fm["accuracy"], "frozen_accuracy_ci": fm["accuracy_ci"],
                      "fresh_accuracy": nm["accuracy"], "fresh_accuracy_ci": nm["accuracy_ci"],
                      "fresh_macro_f1": nm["macro_f1"], "gap": gap["diff"], "gap_ci": [gap["low"], gap["high"]],
                      "gap_beyond_noise": bool(gap["low"] > 0 or gap["high"] < 0)}
        if twins:
            p = fresh.predictions[fresh.predictions["candidate"] == name]
            keep = ~p["ticket_id"].isin(twins).to_numpy()
            ok = p["correct"].to_numpy(dtype=bool)
            g2 = stats.independent_bootstrap_diff(_correct(frozen, name), ok[keep], n_boot, seed)
            rows[name].update({"fresh_accuracy_without_train_twins": float(ok[keep].mean()),
                               "fresh_accuracy_on_train_twins": float(ok[~keep].mean()) if (~keep).any() else None,
                               "gap_without_train_twins": g2["diff"],
                               "gap_without_train_twins_ci": [g2["low"], g2["high"]]})
    best_frozen = max(rows, key=lambda n: (rows[n]["frozen_accuracy"], n)) if rows else None
    best_fresh = max(rows, key=lambda n: (rows[n]["fresh_accuracy"], n)) if rows else None
    return {**facts, "rows_scored": fresh.n_rows, "sampled": fresh.sampled, "candidates": rows,
            "train_twins": len(twins), "train_twins_share": len(twins) / max(1, fresh.n_rows),
            "best_on_frozen": best_frozen, "best_on_fresh": best_fresh, "same_best": best_frozen == best_fresh,
            "note": NOISE_NOTE}


def out_of_time(predictions: pd.DataFrame, test: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> dict:
    """Accuracy by month of `created_at` on the frozen test set, and the latest month against the earlier ones.

    A model that is worse on the latest month than on the earlier ones is meeting tickets the test set
    predates; the difference comes with an interval (sampling noise only)."""
    if "created_at" not in test.columns or predictions is None or predictions.empty:
        return {"available": False, "reason": "the test rows carry no created_at"}
    month = pd.to_datetime(test.set_index("ticket_id")["created_at"], utc=True).dt.strftime("%Y-%m")
    p = predictions.assign(month=predictions["ticket_id"].map(month))
    p = p[p["month"].notna()]
    months = sorted(p["month"].unique())
    if len(months) < 2:
        return {"available": False, "reason": f"the test rows span {len(months)} month(s)"}
    latest = months[-1]
    out = {}
    for name, g in p.groupby("candidate", sort=True):
        by = g.groupby("month")["correct"].agg(["size", "mean"])
        recent, earlier = g[g["month"] == latest]["correct"], g[g["month"] != latest]["correct"]
        d = stats.independent_bootstrap_diff(recent.to_numpy(bool), earlier.to_numpy(bool), n_boot, seed)
        out[name] = {"by_month": {m: {"n": int(r["size"]), "accuracy": float(r["mean"])} for m, r in by.iterrows()},
                     "latest_accuracy": float(recent.mean()), "earlier_accuracy": float(earlier.mean()),
                     "latest_minus_earlier": d["diff"], "latest_minus_earlier_ci": [d["low"], d["high"]]}
    return {"available": True, "latest_month": latest, "earlier_months": months[:-1],
            "n_latest": int((p["month"] == latest).sum() // max(1, p["candidate"].nunique())),
            "candidates": out, "note": NOISE_NOTE}


def estimate_checks(config, client, frozen, test: pd.DataFrame, train: pd.DataFrame, candidates: Sequence,
                    provenance: dict | None = None, log=None, routes: dict | None = None) -> dict:
    """Both checks for the holdout evaluation step: `fresh_sample` (None when `evaluation.fresh_sample`
    is not set) and `out_of_time`; JSON-safe, stored in the evaluation's settings and shown by the report."""
    out = {"out_of_time": out_of_time(frozen.predictions, test, config.evaluation.bootstrap, config.evaluation.seed),
           "fresh_sample": None}
    path = config.fresh_sample_path
    if path is not None:
        rows, facts = load_fresh_sample(path, config.taxonomy)
        (log or (lambda m: None))(f"fresh sample {facts['file']}: masking {facts['rows_used']} rows")
        out["fresh_sample"] = fresh_sample_check(client, mask_fresh(rows, config.masking), facts, train, config,
                                                 candidates, frozen, provenance, log, routes=routes)
    return out
