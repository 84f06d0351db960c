"""Decision report: turns a holdout evaluation into money and a recommendation a finance lead acts on.

`build_report` prices every candidate (pipeline.model.report.economics), picks the action with the
rule that decided it (decision), measures how far the money moves when each cost assumption is halved
or raised by half (a sensitivity range), and writes, from Jinja2 templates (render):

- report.html: one self-contained page that reads on a phone, charts inline as base64 PNG, in this
  order: the recommendation and its money with the range; critical labels per candidate; accuracy and
  macro-F1 with intervals; cost against accuracy; per-class F1 (worst and best labels, the rest in a
  table); the candidates table and evaluation details; the assumptions; identification (endpoint,
  the exact model ids `tunegate promote` accepts, dataset version, run id, time);
- report.md (the same order, for the terminal and the Dagster UI), report.json, plots/*.png.

Optional inputs are rendered when present and skipped when absent: `notes` (a list of sentences, e.g.
"fine-tuning skipped"), a candidate's `details` dict or known extra metrics (retries, few-shot
examples used, structured-output mode, frozen vs fresh accuracy) in the evaluation details table.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

from pipeline.model.evaluation import EvaluationResult
from pipeline.model.report import charts, formats
from pipeline.model.report.decision import _training_cost_for, best_prompting, incumbent, recommend
from pipeline.model.report.economics import (ASSUMPTIONS, NEVER, SWING, candidate_economics, critical_label_rows,
                                             critical_labels, label_error_costs, payback_months, sensitivity,
                                             volume_shares)
from pipeline.model.report.render import render_html, render_markdown

__all__ = ["NEVER", "build_report", "candidate_economics", "decide", "payback_months", "recommend", "volume_shares",
           "label_error_costs", "best_prompting", "incumbent", "sensitivity"]

KEEP = ("model", "approach", "base_model", "n", "accuracy", "accuracy_ci", "macro_f1", "macro_f1_ci",
        "accuracy_lenient", "format_validity", "n_invalid", "n_errors", "n_retried", "latency_p50_s", "latency_p95_s",
        "prompt_tokens_mean", "completion_tokens_mean", "price_per_answer", "price_per_1000", "price_in_per_1m",
        "price_out_per_1m", "stability", "order_sensitivity")
# metrics other stages may add; shown in the evaluation details when present
OPTIONAL = {"accuracy_frozen": "accuracy (frozen set)", "accuracy_fresh": "accuracy (fresh set)",
            "n_failed_rows": "failed rows", "failed_rows": "failed rows", "retries": "retries",
            "few_shot_used": "few-shot examples used", "few_shot_configured": "few-shot examples configured",
            "structured_output": "structured output", "output_mode": "output mode"}


def _economics_all(result: EvaluationResult, config, training_cost, scales=None) -> dict[str, dict]:
    by_name = {c["name"]: c for c in result.candidates}
    econ = {n: candidate_economics(result.metrics[n], result.label_counts, config,
                                   _training_cost_for(by_name[n], training_cost), scales=scales)
            for n in result.ranking}
    bp = best_prompting(result)
    for n in result.ranking:
        if result.metrics[n]["approach"] == "fine_tuned" and bp:
            saving = econ[bp]["total_monthly_cost"] - econ[n]["total_monthly_cost"]
            econ[n]["monthly_saving_vs_best_prompt"] = saving
            econ[n]["payback_months"] = payback_months(econ[n]["training_cost"] or 0.0, saving)
    return econ


def decide(result: EvaluationResult, config, training_cost, current_route: dict | None = None
           ) -> tuple[dict[str, dict], dict]:
    """(economics per candidate, recommendation): the decision `build_report` writes, without the files."""
    econ = _economics_all(result, config, training_cost)
    return econ, recommend(result, config, econ, current_route)


def _decision_money(result, config, training_cost, current_route, econ, rec) -> dict:
    """The money behind the recommendation, with its range over the cost assumptions at 50% and 150%.

    A change: its monthly saving against the incumbent. No change: what the closest alternative
    (the most accurate other candidate) would save, negative when it would cost more."""
    chosen, inc = rec["candidate"], rec["incumbent"]
    if chosen != inc:
        a, b, kind = inc, chosen, "saving"
    else:
        others = [n for n in result.ranking if n != inc]
        if not others:
            return {"kind": "none"}
        a, b, kind = inc, others[0], "alternative"

    def saving_at(scales: dict) -> float:
        e = _economics_all(result, config, training_cost, scales) if scales else econ
        return e[a]["total_monthly_cost"] - e[b]["total_monthly_cost"]

    sens = sensitivity(saving_at)
    holds = 0
    for combo in itertools.product(SWING, repeat=len(ASSUMPTIONS)):
        e = _economics_all(result, config, training_cost, dict(zip(ASSUMPTIONS, combo)))
        holds += recommend(result, config, e, current_route)["candidate"] == chosen
    return {"kind": kind, "from": a, "to": b, "monthly": sens["base"], "sensitivity": sens,
            "holds_in": holds, "corners": sens["corners"], "training_cost": econ[b].get("training_cost"),
            "payback_months": (payback_months(econ[b]["training_cost"] or 0.0, sens["base"])
                               if econ[b].get("training_cost") is not None else None)}


def _assumptions(config, result: EvaluationResult) -> list[dict]:
    b = config.business
    cur = b.currency
    costs = label_error_costs(config)
    crit = critical_labels(config)
    rows = [
        {"name": "Tickets per month", "value": f"{b.monthly_volume:,}", "key": "business.monthly_volume", "swung": True},
        {"name": "Operator time per correction", "value": f"{b.seconds_per_correction:g} s",
         "key": "business.seconds_per_correction", "swung": True},
        {"name": "Operator cost per hour", "value": f"{b.hourly_cost:g} {cur}", "key": "business.hourly_cost", "swung": True},
        {"name": "Cost of a misrouted ticket (default)", "value": f"{b.default_error_cost:g} {cur}",
         "key": "business.default_error_cost", "swung": True},
    ]
    for lab in crit:
        rows.append({"name": f"Cost of a misrouted ticket: {lab} (critical)", "value": f"{costs[lab]:g} {cur}",
                     "key": f"taxonomy.labels.{lab}.error_cost", "swung": True})
    rows += [
        {"name": "Label mix of the traffic", "value": "from production shares" if b.volume_shares else
         "the test set's label mix", "key": "business.volume_shares", "swung": False},
        {"name": "Minimum accuracy gain for a change", "value": f"{100 * b.min_accuracy_gain:g} points",
         "key": "business.min_accuracy_gain", "swung": False},
        {"name": "Training must pay back within", "value": f"{b.max_payback_months:g} months",
         "key": "business.max_payback_months", "swung": False},
        {"name": "Test rows evaluated", "value": f"{result.n_rows:,}" + (
            f" (stratified sample of {result.settings.get('test_rows_total'):,})" if result.sampled else ""),
         "key": "evaluation.sample_size", "swung": False},
        {"name": "Bootstrap resamples for intervals", "value": f"{config.evaluation.bootstrap:,}",
         "key": "evaluation.bootstrap", "swung": False},
    ]
    for m in config.evaluation.models:
        rows.append({"name": f"Price of {m.name} per 1M tokens (in / out)",
                     "value": f"{m.price_input_per_1m:g} / {m.price_output_per_1m:g} {cur}",
                     "key": "evaluation.models", "swung": False})
    return rows


def _endpoint(endpoint, settings: dict) -> dict:
    if isinstance(endpoint, dict):
        return endpoint
    prov = settings.get("provenance") or {}
    url = endpoint or prov.get("endpoint") or settings.get("endpoint")
    stand_in = settings.get("stand_in", settings.get("embedded"))
    if prov:  # what the endpoint itself says about its models (pipeline.model.provenance)
        stand_in = bool(prov.get("stand_in_candidates"))
    if stand_in is None and isinstance(url, str):
        stand_in = url.startswith("embedded:")
    return {"url": url, "stand_in": stand_in, "described_as": prov.get("endpoint"),
            "stand_in_candidates": prov.get("stand_in_candidates") or []}


def _limits(settings: dict) -> list[str]:
    """Plain sentences on what the figures do not cover."""
    out = ["Every interval covers sampling noise only: not a shift between the test period and production, "
           "not a leak between splits, not the stand-in nature of embedded models."]
    prov = settings.get("provenance") or {}
    if prov.get("note"):
        out.append(prov["note"])
    fs = settings.get("few_shot") or {}
    if fs.get("differs"):
        out.append(f"Few-shot used {fs['used_per_label']} example(s) per label ({fs['examples_total']} in all), "
                   f"not the configured {fs['configured_per_label']}: {fs['reason'] or 'see few_shot'}.")
    return out


def _run_notes(settings: dict) -> list[str]:
    """How the requests went, where it matters to the reader: fine-tuning skipped, incomplete candidates."""
    out = []
    if settings.get("finetune_skipped"):
        out.append(f"Fine-tuning was skipped: {settings['finetune_skipped']}.")
    for name, inc in (settings.get("incomplete") or {}).items():
        out.append(f"{name} is incomplete: {inc['failed_rows']} row(s) failed after {inc['retries']} retries. It is "
                   "left out of the ranking; the next run asks only for the missing rows.")
    return out


REQUEST_DETAILS = {"failed_rows": "failed rows", "retries": "retries", "rows_resumed": "rows resumed",
                   "structured_mode": "response format", "few_shot_examples": "few-shot examples used",
                   "context_tokens": "context (tokens)", "endpoint": "endpoint"}


def _fresh_table(fresh: dict | None) -> list[dict]:
    """Frozen against fresh accuracy per candidate, as display strings."""
    if not fresh:
        return []
    gap = lambda c, k: (f"{100 * c[k]:+.1f} pts [{100 * c[k + '_ci'][0]:+.1f}, {100 * c[k + '_ci'][1]:+.1f}]"  # noqa: E731
                        if c.get(k) is not None else "n/a")
    return [{"candidate": n, "frozen": formats.ci(c["frozen_accuracy"], c["frozen_accuracy_ci"]),
             "fresh": formats.ci(c["fresh_accuracy"], c["fresh_accuracy_ci"]), "gap": gap(c, "gap"),
             "fresh_no_twins": formats.pct(c.get("fresh_accuracy_without_train_twins")),
             "gap_no_twins": gap(c, "gap_without_train_twins")}
            for n, c in fresh["candidates"].items()]


def _cost(c: dict | None) -> str:
    """What masking costs, unmasked minus masked accuracy, in points with its interval and McNemar's p."""
    if not c:
        return "n/a"
    lo, hi = c["masking_cost_ci"]
    return f"{100 * c['masking_cost']:+.1f} pts [{100 * lo:+.1f}, {100 * hi:+.1f}], p={c['mcnemar_p']:.2g}"


def _masking_tables(fresh: dict | None) -> dict | None:
    """The masking ablation (`pipeline.model.fresh.masking_ablation`) as display rows: per candidate, and
    per masked entity type on the rows that had such a mask."""
    ab = (fresh or {}).get("masking_ablation")
    if not ab:
        return None
    rows = [{"candidate": n, "masked": formats.pct(c["masked_accuracy"]), "unmasked": formats.pct(c["unmasked_accuracy"]),
             "cost": _cost(c), "masked_rows": _cost(c.get("rows_with_masks")),
             "n_masked_rows": (c.get("rows_with_masks") or {}).get("n", 0)}
            for n, c in ab.get("candidates", {}).items()]
    by_type = [{"type": t, "rows": e["rows"], "candidate": n, "masked": formats.pct(c["masked_accuracy"]),
                "unmasked": formats.pct(c["unmasked_accuracy"]), "cost": _cost(c)}
               for t, e in sorted(ab.get("by_type", {}).items(), key=lambda kv: -kv[1]["rows"])
               for n, c in e["candidates"].items()]
    return {"run": ab.get("run"), "reason": ab.get("reason"), "note": ab.get("note", ""), "rows": rows,
            "by_type": by_type, "n": ab.get("rows"), "rows_with_masks": ab.get("rows_with_masks")}


def build_report(result: EvaluationResult, config, training_cost: float | dict[str, float] | None,
                 current_route: dict | None, out_dir: Path, *, run_id: str | None = None,
                 endpoint: str | dict | None = None, generated_at: str | None = None,
                 notes: list[str] | None = None) -> dict:
    """Write report.html, report.md, report.json and plots/*.png under `out_dir`; return the JSON dict.

    `training_cost` is the one-off cost of the fine-tuning job (or a dict base model -> cost when
    several were trained); `current_route` is the catalog's current route row (its `model` names the
    incumbent), or None. `run_id`, `endpoint` (its URL or id; "embedded:..." marks the stand-in
    provider) and `generated_at` identify the report; `notes` are sentences shown under the
    recommendation."""
    out = Path(out_dir)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    cur = config.business.currency
    order = list(result.ranking)
    econ, rec = decide(result, config, training_cost, current_route)
    by_name = {c["name"]: c for c in result.candidates}
    cands = []
    for n in order:
        m = result.metrics[n]
        c = {"name": n, **{k: m.get(k) for k in KEEP}, "economics": econ[n],
             "per_class_f1": {lab: v["f1"] for lab, v in m["per_class"].items()},
             "critical_labels": critical_label_rows(m, result.label_counts, config, econ[n]),
             "details": {**{label: m[k] for k, label in OPTIONAL.items() if m.get(k) is not None},
                         **{label: v for k, label in REQUEST_DETAILS.items()
                            if (v := ((result.settings.get("requests") or {}).get(n) or {}).get(k)) not in (None, "")},
                         **{k: "n/a (stand-in)" for k in (m.get("not_applicable") or {})},
                         **(m.get("details") or {})}}
        c["display_name"] = charts.display_name({**by_name.get(n, {}), **c})
        cands.append(c)
    money = _decision_money(result, config, training_cost, current_route, econ, rec)
    notes = list(notes or []) + list(result.settings.get("notes") or []) + _run_notes(result.settings)
    ep = _endpoint(endpoint, result.settings)
    if ep.get("stand_in"):
        notes.append("These figures come from the embedded stand-in provider (small lexical models on this "
                     "machine), not from a real model: they show how the decision is made, not what a real "
                     "endpoint would achieve.")
    models = {}
    for c in cands:
        models.setdefault(c["model"], []).append(c["name"])

    images: dict[str, bytes] = {"accuracy": charts.accuracy_chart(cands, rec["candidate"]),
                                "cost_vs_accuracy": charts.cost_accuracy_chart(cands, rec["candidate"],
                                                                               rec["incumbent"], cur),
                                "monthly_cost": charts.monthly_cost_chart(cands, cur)}
    crit = charts.critical_chart(cands, cur)
    if crit:
        images["critical_labels"] = crit
    images["per_class_f1"], per_class = charts.per_class_chart(cands, rec["candidate"])
    if money.get("sensitivity"):
        images["sensitivity"] = charts.sensitivity_chart(money["sensitivity"], cur)
    plots = {}
    for key, data in images.items():
        plots[key] = f"plots/{key}.png"
        (out / plots[key]).write_bytes(data)

    report = {
        "project": config.project, "dataset_version": result.dataset_version, "n_rows": result.n_rows,
        "sampled": result.sampled, "test_rows_total": result.settings.get("test_rows_total", result.n_rows),
        "currency": cur, "business": config.business.model_dump(mode="json"), "settings": result.settings,
        "candidates": cands, "ranking": order, "best": result.best, "runner_up": result.runner_up,
        "best_prompting": best_prompting(result), "best_vs_runner_up": result.best_vs_runner_up,
        "recommendation": rec, "decision_money": money, "notes": notes,
        "top_confusions": result.metrics[rec["candidate"]]["top_confusions"],
        "current_route": {k: str(v) for k, v in current_route.items()} if current_route else None,
        "critical_labels": critical_labels(config), "per_class": per_class,
        "assumptions": _assumptions(config, result),
        "identification": {"endpoint": ep, "models": [{"model": k, "candidates": v} for k, v in models.items()],
                           "dataset_version": result.dataset_version, "run_id": run_id,
                           "generated_at": generated_at},
        "plots": plots, "files": {"markdown": "report.md", "html": "report.html", "json": "report.json"},
        # the checks of the estimate and the report's limits (pipeline.model.fresh, pipeline.model.provenance)
        "endpoint": result.settings.get("provenance"), "fresh_sample": result.settings.get("fresh_sample"),
        "fresh_table": _fresh_table(result.settings.get("fresh_sample")),
        "masking_ablation": _masking_tables(result.settings.get("fresh_sample")),
        "out_of_time": result.settings.get("out_of_time"), "few_shot": result.settings.get("few_shot"),
        "limits": _limits(result.settings),
    }
    report = json.loads(json.dumps(report, default=str))
    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True), encoding="utf-8")
    (out / "report.md").write_text(render_markdown(report), encoding="utf-8")
    (out / "report.html").write_text(render_html(report, images), encoding="utf-8")
    return report
