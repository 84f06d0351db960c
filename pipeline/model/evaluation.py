"""Holdout evaluation: every candidate on the same frozen test rows, under the same rules.

A candidate is one way of answering with one base model: the short zero-shot prompt, the long prompt
(label descriptions and rules), few-shot (k examples per label drawn from TRAIN only), or the
fine-tuned model. Each is scored at temperature 0 on the same rows; extra runs measure stability
(temperature 0.7) and, for few-shot, sensitivity to the order of the examples. A request that finally
failed counts as a wrong answer and is reported, never dropped; an answer that does not name a real
label in the expected format is invalid and also counts as wrong.

`run_evaluation` returns an `EvaluationResult`: per-candidate metrics with bootstrap intervals, paired
tests between candidates (exact McNemar and a paired bootstrap of the accuracy difference), and a
per-row predictions table (ticket ids, labels, correctness, latency, tokens: never the ticket text).
"""
from __future__ import annotations

import itertools
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

from pipeline.model import stats

Approach = Literal["zero_shot", "long_prompt", "few_shot", "fine_tuned"]
PROMPTING = ("zero_shot", "long_prompt", "few_shot")
STABILITY_TEMPERATURE = 0.7
MAX_ANSWER_TOKENS = 64
ERROR_LABEL = "<request failed>"
INVALID_LABEL = "<invalid answer>"


@dataclass
class Candidate:
    name: str
    model: str
    approach: Approach
    base_model: str
    price_in_per_1m: float
    price_out_per_1m: float
    style: str = ""  # the prompt a fine-tuned model was trained with (config.finetune.prompt_style)

    @property
    def prompt_style(self) -> str:
        """zero_shot and few_shot use the short prompt (label names only), so few-shot measures what
        the examples add; long_prompt adds descriptions and rules; a fine-tuned model sees the prompt
        it was trained with (`config.finetune.prompt_style`, set by `candidates_from_config`)."""
        if self.style:
            return self.style
        return "long" if self.approach in ("long_prompt", "fine_tuned") else "short"


def candidates_from_config(config, fine_tuned: dict[str, str] | None = None) -> list[Candidate]:
    """Candidates for every base model in `config.evaluation.models`: zero_shot, long_prompt,
    few_shot, and fine_tuned when `fine_tuned` maps that base model to a fine-tuned model id."""
    fine_tuned = fine_tuned or {}
    out: list[Candidate] = []
    for m in config.evaluation.models:
        for approach in PROMPTING:
            out.append(Candidate(f"{m.name}/{approach}", m.name, approach, m.name,
                                 m.price_input_per_1m, m.price_output_per_1m))
        if fine_tuned.get(m.name):
            p_in = m.ft_price_input_per_1m if m.ft_price_input_per_1m is not None else m.price_input_per_1m
            p_out = m.ft_price_output_per_1m if m.ft_price_output_per_1m is not None else m.price_output_per_1m
            out.append(Candidate(f"{m.name}/fine_tuned", fine_tuned[m.name], "fine_tuned", m.name, p_in, p_out,
                                 style=config.finetune.prompt_style))
    return out


@dataclass
class EvaluationResult:
    dataset_version: str
    n_rows: int
    sampled: bool
    seed: int
    labels: list[str]
    label_counts: dict[str, int]          # support of each label in the evaluated rows
    candidates: list[dict]                # Candidate fields
    metrics: dict[str, dict]              # candidate name -> metrics (see `_candidate_metrics`)
    ranking: list[str]                    # candidate names, best first (accuracy, then price)
    best: str
    runner_up: str | None
    best_vs_runner_up: dict | None        # paired test of the two best candidates
    comparisons: list[dict]               # paired tests for every pair of candidates
    settings: dict = field(default_factory=dict)
    predictions: pd.DataFrame | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        d = asdict(self) if self.predictions is None else asdict(
            EvaluationResult(**{**self.__dict__, "predictions": None}))
        d.pop("predictions", None)
        return json.loads(json.dumps(d, default=_json_default))

    @classmethod
    def from_dict(cls, d: dict, predictions: pd.DataFrame | None = None) -> "EvaluationResult":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__}, predictions=predictions)

    def comparison(self, a: str, b: str) -> dict | None:
        """The paired test of A against B (signs flipped when it was stored as B against A)."""
        for c in self.comparisons:
            if c["a"] == a and c["b"] == b:
                return c
            if c["a"] == b and c["b"] == a:
                return _flip(c)
        return None


def _json_default(o: Any):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return None if not np.isfinite(o) else float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def _flip(c: dict) -> dict:
    return {**c, "a": c["b"], "b": c["a"], "accuracy_a": c["accuracy_b"], "accuracy_b": c["accuracy_a"],
            "diff": -c["diff"], "diff_low": -c["diff_high"], "diff_high": -c["diff_low"],
            "a_only": c["b_only"], "b_only": c["a_only"]}


# ------------------------------------------------------------------------------------ prompting
def _prompts():
    from pipeline.model import prompts  # the prompt protocol lives in one module
    return prompts


def select_few_shot(train: pd.DataFrame, labels: Sequence[str], k: int, max_total: int, seed: int,
                    text_col: str = "text", label_col: str = "label") -> list[tuple[str, str]]:
    """k examples per label from the training rows (seeded), at most `max_total` in all.

    When k x labels exceeds the cap, k shrinks to fit (at least one per label, then truncated).
    Examples are returned in a seeded shuffled order, not grouped by label."""
    k_eff = max(1, min(k, max_total // max(1, len(labels))))
    rng = np.random.default_rng(seed)
    picked: list[tuple[str, str]] = []
    by_label = train.groupby(label_col, sort=False)[text_col]
    for lab in labels:
        if lab not in by_label.groups:
            continue
        texts = by_label.get_group(lab).tolist()
        idx = rng.choice(len(texts), size=min(k_eff, len(texts)), replace=False)
        picked += [(texts[i], lab) for i in sorted(idx)]
    order = rng.permutation(len(picked))
    return [picked[i] for i in order][:max_total]


def shuffled(examples: list[tuple[str, str]], seed: int) -> list[tuple[str, str]]:
    order = np.random.default_rng(seed).permutation(len(examples))
    return [examples[i] for i in order]


def stratified_sample(df: pd.DataFrame, size: int | None, seed: int, label_col: str = "label") -> pd.DataFrame:
    """A seeded sample of `size` rows with label shares kept (largest-remainder allocation).

    Written by hand because scikit-learn's stratified split refuses labels with a single row."""
    if size is None or size >= len(df):
        return df.reset_index(drop=True)
    counts = df[label_col].value_counts().sort_index()
    quota = counts / counts.sum() * size
    alloc = np.floor(quota).astype(int)
    rest = size - int(alloc.sum())
    order = (quota - alloc).sort_values(ascending=False, kind="stable").index[:rest]
    alloc[order] += 1
    parts = [g.sample(n=int(alloc[lab]), random_state=seed) for lab, g in df.groupby(label_col, sort=True)
             if alloc.get(lab, 0) > 0]
    return pd.concat(parts).sort_index().reset_index(drop=True)


# ------------------------------------------------------------------------------------ requests
def _get(obj: Any, name: str, default=None):
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _run(client, requests: list[dict], config) -> list[dict]:
    """Send requests through `endpoint.complete_many` (retries, backoff, bounded concurrency): one
    `endpoint.Result` per request, in order, a failed request carrying its error; each becomes a row dict."""
    from pipeline.model.endpoint import complete_many

    results = complete_many(client, requests, concurrency=config.endpoint.concurrency,
                            max_retries=config.endpoint.max_retries)
    out = []
    for r in results:
        usage = _get(r, "usage")
        out.append({"content": _get(r, "content"), "error": _get(r, "error"),
                    "latency_s": _get(r, "latency", _get(r, "latency_s")),
                    "prompt_tokens": _get(usage, "prompt_tokens"),
                    "completion_tokens": _get(usage, "completion_tokens"),
                    "attempts": _get(r, "attempts", 1)})
    return out


def _requests(candidate: Candidate, texts: Sequence[str], taxonomy, examples, temperature: float,
              seed: int | None, structured: bool) -> list[dict]:
    pr = _prompts()
    labels = list(taxonomy.labels)
    fmt = pr.label_response_format(labels) if structured else None
    shots = pd.DataFrame(examples, columns=["text", "label"]) if examples else None
    reqs = []
    for text in texts:
        req = {"model": candidate.model, "temperature": temperature, "max_tokens": MAX_ANSWER_TOKENS,
               "messages": pr.build_messages(taxonomy, text, candidate.prompt_style, examples=shots)}
        if seed is not None:
            req["seed"] = seed
        if fmt is not None:
            req["response_format"] = fmt
        reqs.append(req)
    return reqs


def _parse(results: list[dict], labels: list[str]) -> pd.DataFrame:
    pr = _prompts()
    rows = []
    for r in results:
        if r["error"] is not None or r["content"] is None:
            rows.append((None, None, False, str(r["error"] or "empty response")))
            continue
        parsed, valid = pr.parse_answer(r["content"], labels)
        rows.append((parsed if valid else None, parsed, bool(valid), None))
    return pd.DataFrame(rows, columns=["predicted", "parsed", "valid", "error"])


# ------------------------------------------------------------------------------------ metrics
def _percentile(values: pd.Series, q: float) -> float | None:
    v = pd.to_numeric(values, errors="coerce").dropna()
    return None if v.empty else float(np.percentile(v, q))


def _agreement(a: Sequence, b: Sequence) -> float:
    a = pd.Series(list(a), dtype=object).fillna(INVALID_LABEL)
    b = pd.Series(list(b), dtype=object).fillna(INVALID_LABEL)
    return float((a.values == b.values).mean())


def _candidate_metrics(cand: Candidate, y_true: list[str], pred: pd.DataFrame, labels: list[str],
                       config, n_boot: int, seed: int) -> dict:
    y_pred = pred["predicted"].tolist()
    y_shown = [p if p is not None else (ERROR_LABEL if e is not None else INVALID_LABEL)
               for p, e in zip(y_pred, pred["error"])]
    present = [l for l in labels if l in set(y_true)]
    prec, rec, f1, sup = precision_recall_fscore_support(y_true, y_shown, labels=present, zero_division=0)
    per_class = {l: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                 for l, p, r, f, s in zip(present, prec, rec, f1, sup)}
    pairs = (pd.DataFrame({"true": y_true, "predicted": y_shown})
             .query("true != predicted").value_counts().head(15))
    confusions = [{"true": t, "predicted": p, "count": int(c)} for (t, p), c in pairs.items()]
    lenient = [p for p in pred["parsed"]]
    pt = pd.to_numeric(pred["prompt_tokens"], errors="coerce")
    ct = pd.to_numeric(pred["completion_tokens"], errors="coerce")
    answered = pred["error"].isna()
    mean_pt = float(pt[answered].mean()) if answered.any() and pt[answered].notna().any() else 0.0
    mean_ct = float(ct[answered].mean()) if answered.any() and ct[answered].notna().any() else 0.0
    price_per_answer = (mean_pt * cand.price_in_per_1m + mean_ct * cand.price_out_per_1m) / 1e6
    acc = stats.bootstrap_ci(y_true, y_pred, "accuracy", n_boot, seed)
    mf1 = stats.bootstrap_ci(y_true, y_pred, "macro_f1", n_boot, seed, labels=present)
    return {
        "candidate": cand.name, "model": cand.model, "approach": cand.approach, "base_model": cand.base_model,
        "n": len(y_true),
        "accuracy": acc["value"], "accuracy_ci": [acc["low"], acc["high"]],
        # over the labels present in the evaluated rows; invalid answers and failures are wrong
        "macro_f1": float(f1_score(y_true, y_shown, labels=present, average="macro", zero_division=0)),
        "macro_f1_ci": [mf1["low"], mf1["high"]],
        "accuracy_lenient": float(accuracy_score(y_true, [p if p is not None else INVALID_LABEL for p in lenient])),
        "format_validity": float(pred["valid"].mean()),
        "n_invalid": int((~pred["valid"] & answered).sum()),
        "n_errors": int((~answered).sum()),
        "errors_sample": sorted(set(pred.loc[~answered, "error"].astype(str)))[:3],
        "n_retried": int((pd.to_numeric(pred.get("attempts", pd.Series(1, index=pred.index)),
                                        errors="coerce").fillna(1) > 1).sum()),
        "latency_p50_s": _percentile(pred["latency_s"], 50), "latency_p95_s": _percentile(pred["latency_s"], 95),
        "prompt_tokens_mean": mean_pt, "completion_tokens_mean": mean_ct,
        "prompt_tokens_total": int(pt.fillna(0).sum()), "completion_tokens_total": int(ct.fillna(0).sum()),
        "price_in_per_1m": cand.price_in_per_1m, "price_out_per_1m": cand.price_out_per_1m,
        "price_per_answer": price_per_answer, "price_per_1000": price_per_answer * 1000,
        "per_class": per_class, "top_confusions": confusions,
        "stability": None, "order_sensitivity": None,
    }


def _paired(a: str, b: str, ca: np.ndarray, cb: np.ndarray, n_boot: int, seed: int) -> dict:
    mc = stats.mcnemar(ca, cb)
    bd = stats.paired_bootstrap_diff(ca, cb, n_boot, seed)
    return {"a": a, "b": b, "accuracy_a": float(ca.mean()), "accuracy_b": float(cb.mean()),
            "diff": bd["diff"], "diff_low": bd["low"], "diff_high": bd["high"],
            "bootstrap_p": bd["p_value"], "a_only": mc["a_only"], "b_only": mc["b_only"],
            "n_discordant": mc["n_discordant"], "mcnemar_p": mc["p_value"],
            # significant when both the exact test and the bootstrap interval agree
            "significant": bool(mc["p_value"] < 0.05 and (bd["low"] > 0 or bd["high"] < 0))}


# ------------------------------------------------------------------------------------ driver
def run_evaluation(client, test: pd.DataFrame, train: pd.DataFrame, config, candidates: Sequence[Candidate],
                   dataset_version: str, *, structured: bool = False, text_col: str = "text",
                   label_col: str = "label", id_col: str = "ticket_id", log=None) -> EvaluationResult:
    """Score every candidate on the same (optionally sampled) frozen test rows.

    `structured=True` asks for `{"label": ...}` through a json_schema response format; by default the
    answer is free text, so format validity measures how often a model strays from the label list."""
    if not candidates:
        raise ValueError("no candidates to evaluate")
    ev = config.evaluation
    taxonomy = config.taxonomy
    labels = list(taxonomy.labels)
    unknown = sorted(set(test[label_col]) - set(labels))
    if unknown:
        raise ValueError(f"test rows carry labels outside the taxonomy: {unknown[:5]}")
    rows = stratified_sample(test, ev.sample_size, ev.seed, label_col)
    if id_col not in rows.columns:
        rows = rows.assign(**{id_col: [f"row-{i}" for i in range(len(rows))]})
    texts = rows[text_col].astype(str).tolist()
    y_true = rows[label_col].astype(str).tolist()
    examples = select_few_shot(train, labels, ev.few_shot_k, ev.few_shot_max, ev.seed, text_col, label_col)
    say = log or (lambda msg: None)

    scored: dict[str, pd.DataFrame] = {}
    extras: dict[str, dict] = {}
    for cand in candidates:
        ex = examples if cand.approach == "few_shot" else None
        say(f"evaluating {cand.name} on {len(rows)} rows")
        raw = _run(client, _requests(cand, texts, taxonomy, ex, 0.0, ev.seed, structured), config)
        pred = pd.concat([_parse(raw, labels),
                          pd.DataFrame(raw)[["latency_s", "prompt_tokens", "completion_tokens", "attempts"]]],
                         axis=1)
        scored[cand.name] = pred
        extras[cand.name] = {}
        if ev.repeats > 1:  # same prompts at temperature > 0: how often does the answer stay put?
            agree = []
            for r in range(1, ev.repeats):
                again = _parse(_run(client, _requests(cand, texts, taxonomy, ex, STABILITY_TEMPERATURE,
                                                      ev.seed + r, structured), config), labels)
                agree.append(_agreement(pred["predicted"], again["predicted"]))
            extras[cand.name]["stability"] = {"temperature": STABILITY_TEMPERATURE, "runs": ev.repeats,
                                              "agreement": float(np.mean(agree))}
        if cand.approach == "few_shot" and len(examples) > 1:  # same examples, another order
            other = _parse(_run(client, _requests(cand, texts, taxonomy, shuffled(examples, ev.seed + 1000),
                                                  0.0, ev.seed, structured), config), labels)
            acc = float(np.mean([p == t for p, t in zip(pred["predicted"], y_true)]))
            acc_other = float(np.mean([p == t for p, t in zip(other["predicted"], y_true)]))
            extras[cand.name]["order_sensitivity"] = {
                "agreement": _agreement(pred["predicted"], other["predicted"]), "accuracy_shuffled": acc_other,
                "accuracy_delta": acc_other - acc, "n_examples": len(examples)}
    settings = {"structured": structured, "few_shot_examples": len(examples), "repeats": ev.repeats,
                "bootstrap": ev.bootstrap, "stability_temperature": STABILITY_TEMPERATURE,
                "sample_size": ev.sample_size, "test_rows_total": len(test)}
    return score_candidates(config, candidates, rows[id_col].astype(str).tolist(), y_true, scored, extras,
                            dataset_version, settings)


def score_candidates(config, candidates: Sequence[Candidate], ticket_ids: Sequence[str], y_true: Sequence[str],
                     scored: dict[str, pd.DataFrame], extras: dict[str, dict] | None = None,
                     dataset_version: str = "", settings: dict | None = None) -> EvaluationResult:
    """Metrics, ranking and paired tests from each candidate's scored answers on the same rows.

    `scored[name]` has one row per ticket, in `ticket_ids` order, with columns predicted (a valid
    label or None), parsed, valid, error, latency_s, prompt_tokens, completion_tokens."""
    ev = config.evaluation
    labels = list(config.taxonomy.labels)
    y_true = [str(v) for v in y_true]
    extras = extras or {}
    settings = dict(settings or {})
    settings.setdefault("test_rows_total", len(y_true))
    metrics: dict[str, dict] = {}
    frames: list[pd.DataFrame] = []
    correct: dict[str, np.ndarray] = {}
    for cand in candidates:
        pred = scored[cand.name].reset_index(drop=True)
        if len(pred) != len(y_true):
            raise ValueError(f"{cand.name}: {len(pred)} answers for {len(y_true)} rows")
        m = _candidate_metrics(cand, y_true, pred, labels, config, ev.bootstrap, ev.seed)
        m.update(extras.get(cand.name, {}))
        metrics[cand.name] = m
        ok = np.array([p == t for p, t in zip(pred["predicted"], y_true)], dtype=bool)
        correct[cand.name] = ok
        frames.append(pd.DataFrame({
            "ticket_id": list(ticket_ids), "candidate": cand.name, "model": cand.model,
            "approach": cand.approach, "true_label": y_true, "predicted": pred["predicted"].values,
            "valid": pred["valid"].astype(bool).values, "correct": ok, "error": pred["error"].values,
            "latency_s": pd.to_numeric(pred["latency_s"], errors="coerce").values,
            "prompt_tokens": pd.to_numeric(pred["prompt_tokens"], errors="coerce").values,
            "completion_tokens": pd.to_numeric(pred["completion_tokens"], errors="coerce").values}))

    names = [c.name for c in candidates]
    ranking = sorted(names, key=lambda n: (-metrics[n]["accuracy"], metrics[n]["price_per_answer"], n))
    comparisons = [_paired(a, b, correct[a], correct[b], ev.bootstrap, ev.seed)
                   for a, b in itertools.combinations(ranking, 2)]
    best, runner = ranking[0], (ranking[1] if len(ranking) > 1 else None)
    return EvaluationResult(
        dataset_version=dataset_version, n_rows=len(y_true), sampled=len(y_true) < settings["test_rows_total"],
        seed=ev.seed, labels=labels, label_counts={k: int(v) for k, v in pd.Series(y_true).value_counts().items()},
        candidates=[asdict(c) for c in candidates], metrics=metrics, ranking=ranking, best=best,
        runner_up=runner, best_vs_runner_up=comparisons[0] if runner else None, comparisons=comparisons,
        settings=settings, predictions=pd.concat(frames, ignore_index=True))


def eval_id(dataset_version: str, candidate: str, config_hash: str) -> str:
    """A stable id for one candidate's evaluation on one dataset version under one config."""
    import hashlib
    return hashlib.sha256(f"{dataset_version}|{candidate}|{config_hash}".encode()).hexdigest()[:16]


def record(catalog, result: EvaluationResult, config_hash: str, report_path: str | None = None) -> list[str]:
    """Write one catalog row per candidate (metrics without per-row data); returns the eval ids."""
    ids = []
    for cand in result.candidates:
        m = dict(result.metrics[cand["name"]])
        eid = eval_id(result.dataset_version, cand["name"], config_hash)
        catalog.record_evaluation(eid, result.dataset_version, cand["name"], cand["model"], cand["approach"],
                                  m, report_path)
        ids.append(eid)
    return ids
