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
- `masking_ablation`: the fine-tuned candidates and the best prompt candidate are scored on the same fresh
  rows masked (as above) and unmasked; per candidate the accuracy both ways, what masking costs (unmasked
  minus masked) with its paired interval and McNemar's test, and the same per masked entity type on the
  rows that had a mask of that type, so a masking rule that costs accuracy shows. The unmasked arm sends
  the fresh file's raw text to the endpoint, so it runs only where `evaluation.masking_ablation` allows
  (auto: the embedded local provider only). The landing tickets' raw text is never used: only the fresh
  file, which the user hands to evaluation, and nothing of its raw arm is stored but counts.

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
    """The same masking as the pipeline's masked_tickets step, applied to the fresh texts; `pii_types`
    lists the entity types masked in each row (comma-separated, empty when none)."""
    from pipeline.pii.masker import Masker

    results = Masker(masking_spec).mask_texts(rows["text"].tolist())
    return rows.assign(text=[r.text for r in results], pii_types=[",".join(sorted(r.counts)) for r in results])


def fresh_sample_check(client, fresh: pd.DataFrame, facts: dict, train: pd.DataFrame, config,
                       candidates: Sequence, frozen, provenance: dict | None = None, log=None,
                       routes: dict | None = None, unmasked: pd.DataFrame | None = None) -> dict:
    """Score every candidate on the (already masked) fresh rows and compare with the frozen result.

    `frozen` is the frozen test set's `EvaluationResult` (with predictions); `train` gives the same
    few-shot examples as on the frozen test set. With `unmasked` (the same rows before masking), the
    masking ablation runs where `evaluation.masking_ablation` allows it (`masking_ablation` in the result)."""
    from pipeline.model.evaluation import run_evaluation

    ev = config.evaluation
    cfg = config.model_copy(update={"evaluation": ev.model_copy(update={"sample_size": ev.fresh_sample_size})})
    fresh_result = run_evaluation(client, fresh, train, cfg, candidates, "fresh-sample", log=log,
                                  provenance=provenance, extra_runs=False, routes=routes)
    twins = train_twins(fresh_result.predictions, fresh, train, config)
    out = compare(frozen, fresh_result, facts, ev.bootstrap, ev.seed, twins)
    if unmasked is not None:
        out["masking_ablation"] = masking_ablation(client, fresh, unmasked, fresh_result, train, cfg, candidates,
                                                   frozen, provenance, log, routes)
    return out


# -- masked vs unmasked ------------------------------------------------------------------------------
def ablation_candidates(frozen, candidates: Sequence) -> list:
    """The fine-tuned candidates and the best prompt candidate on the frozen test set (the cheap reference)."""
    tuned = [c for c in candidates if c.approach == "fine_tuned"]
    prompts = [n for n in frozen.ranking if frozen.metrics[n].get("approach") != "fine_tuned"]
    best_prompt = [c for c in candidates if prompts and c.name == prompts[0]]
    return tuned + best_prompt


def ablation_allowed(setting: bool | None, candidates: Sequence, routes: dict | None) -> tuple[bool, str]:
    """(run the unmasked arm?, why): it sends raw fresh text to the candidates' endpoints."""
    embedded = bool(candidates) and all(
        str(getattr((routes or {}).get(c.name), "endpoint", "")).startswith("embedded:") for c in candidates)
    if setting is False:
        return False, "evaluation.masking_ablation is off"
    if setting is True:
        return True, ("evaluation.masking_ablation is on: the fresh sample's raw text was sent to "
                      + ("the embedded local provider" if embedded else "the configured endpoint(s)"))
    if embedded:
        return True, "the candidates run on the embedded local provider (evaluation.masking_ablation: auto)"
    return False, ("not run: it would send the fresh sample's raw text to an external endpoint; set "
                   "evaluation.masking_ablation: true to allow it")


def _paired(masked_ok: np.ndarray, unmasked_ok: np.ndarray, n_boot: int, seed: int) -> dict:
    d = stats.paired_bootstrap_diff(unmasked_ok, masked_ok, n_boot, seed)
    mc = stats.mcnemar(unmasked_ok, masked_ok)
    return {"n": int(masked_ok.size), "masked_accuracy": float(masked_ok.mean()),
            "unmasked_accuracy": float(unmasked_ok.mean()), "masking_cost": d["diff"],
            "masking_cost_ci": [d["low"], d["high"]], "mcnemar_p": mc["p_value"],
            "right_only_unmasked": mc["a_only"], "right_only_masked": mc["b_only"],
            "beyond_noise": bool(d["low"] > 0 or d["high"] < 0)}


def ablation_figures(masked: pd.DataFrame, unmasked: pd.DataFrame, names: Sequence[str], types: pd.Series | None,
                     n_boot: int = 1000, seed: int = 0) -> dict:
    """From the predictions of the two arms (ticket_id, candidate, correct) and the masked types per ticket
    id (comma-separated): per candidate masked and unmasked accuracy and the cost with its paired interval
    and McNemar's test, on all rows and on the rows with a mask; per entity type the same on its rows."""
    out: dict = {"candidates": {}, "by_type": {}}
    for name in names:
        pm = masked[masked["candidate"] == name]
        pu = unmasked[unmasked["candidate"] == name]
        both = pm[["ticket_id", "correct"]].merge(pu[["ticket_id", "correct"]], on="ticket_id",
                                                  suffixes=("_masked", "_unmasked"), validate="one_to_one")
        mk, um = both["correct_masked"].to_numpy(bool), both["correct_unmasked"].to_numpy(bool)
        row = _paired(mk, um, n_boot, seed)
        if types is not None:
            tt = both["ticket_id"].map(types).fillna("").to_numpy(dtype=str)
            any_mask = tt != ""
            row["rows_with_masks"] = _paired(mk[any_mask], um[any_mask], n_boot, seed) if any_mask.any() else None
            for t in sorted({x for v in tt for x in v.split(",") if x}):
                sel = np.array([t in v.split(",") for v in tt])
                entry = out["by_type"].setdefault(t, {"rows": int(sel.sum()), "candidates": {}})
                entry["candidates"][name] = _paired(mk[sel], um[sel], n_boot, seed)
        out["candidates"][name] = row
    scored = set(masked["ticket_id"])
    out["rows"] = len(scored)
    if types is not None:
        out["rows_with_masks"] = int(sum(1 for i, v in types.items() if i in scored and v))
    return out


def masking_ablation(client, fresh: pd.DataFrame, unmasked: pd.DataFrame, fresh_result, train: pd.DataFrame,
                     config, candidates: Sequence, frozen, provenance: dict | None = None, log=None,
                     routes: dict | None = None) -> dict:
    """Masked vs unmasked accuracy on the same fresh rows, for the fine-tuned candidates and the best prompt
    candidate; overall, on the rows with any mask, and per masked entity type. `config` is the fresh
    sample's (its sample size); `fresh` carries `pii_types` (`mask_fresh`), `unmasked` the same rows' raw
    text. Cost = unmasked minus masked accuracy: positive when masking costs accuracy."""
    from pipeline.model.evaluation import run_evaluation
    from pipeline.model.provenance import STAND_IN_NOTE

    ev = config.evaluation
    chosen = ablation_candidates(frozen, candidates)
    on, why = ablation_allowed(ev.masking_ablation, chosen, routes)
    out: dict = {"run": on, "reason": why, "candidates": {}, "by_type": {}}
    if on and not fresh["ticket_id"].is_unique:  # the two arms are paired by ticket id
        out.update(run=False, reason="not run: the fresh sample's ticket_id values are not unique")
    if not out["run"] or not chosen:
        return out
    (log or (lambda m: None))(f"masking ablation: {len(chosen)} candidates on the fresh rows unmasked")
    if len(unmasked) != len(fresh) or not (unmasked["ticket_id"].to_numpy() == fresh["ticket_id"].to_numpy()).all():
        raise ValueError("masking ablation: the unmasked rows must be the masked rows before masking, in order")
    raw = fresh.assign(text=unmasked["text"].to_numpy())  # same rows, same order: the same stratified sample
    res = run_evaluation(client, raw, train, config, chosen, "fresh-sample-unmasked", log=log,
                         provenance=provenance, extra_runs=False, routes=routes)
    types = fresh.set_index("ticket_id")["pii_types"].fillna("") if "pii_types" in fresh.columns else None
    out.update(ablation_figures(fresh_result.predictions, res.predictions, [c.name for c in chosen], types,
                                ev.bootstrap, ev.seed))
    stand_ins = [c.name for c in chosen if ((provenance or {}).get("models", {}).get(c.name) or {}).get("stand_in")]
    out["stand_in_candidates"] = stand_ins
    out["note"] = ("Cost = unmasked minus masked accuracy on the same fresh rows (positive: masking costs "
                   "accuracy); intervals are paired bootstraps, p from McNemar's exact test."
                   + (f" {len(stand_ins)} of these candidates are {STAND_IN_NOTE}; a chat model may lean on "
                      "masked words differently." if stand_ins else ""))
    return out


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
                                                 candidates, frozen, provenance, log, routes=routes, unmasked=rows)
    return out
