"""Decision report: turns a holdout evaluation into money and a recommendation for a finance lead.

For every candidate it prices what the business pays each month: the share of answers an operator must
correct (invalid answers and failed requests included), the operator time and cost of those
corrections, the extra cost of misrouting weighted by critical labels (per-class error rate x the
class's share of volume x its error cost; shares from `business.volume_shares`, else the test set's label
mix), and the inference bill (price per answer x volume). A
fine-tuned candidate also carries its one-off training cost, and its payback period against the best
prompting candidate (training cost / monthly saving; "never" when it saves nothing).

The recommendation (keep prompting / fine-tune <base> / switch base model) only proposes a change
whose accuracy gain over the incumbent is statistically significant (exact McNemar and paired
bootstrap agree), at least `business.min_accuracy_gain`, lowers the total monthly cost, and, for a
fine-tuned model, pays its training back within `business.max_payback_months`; the reasons say which rule
decided.

`build_report` writes report.md (headline table first), report.html (self-contained, plots embedded
as base64 PNG), report.json and plots/*.png, and returns the JSON dict.
"""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import confusion_matrix  # noqa: E402

from pipeline.model.evaluation import PROMPTING, EvaluationResult  # noqa: E402

NEVER = "never"


# ------------------------------------------------------------------------------------ economics
def label_error_costs(config) -> dict[str, float]:
    default = config.business.default_error_cost
    return {lab: (spec.error_cost if spec.error_cost is not None else default)
            for lab, spec in config.taxonomy.labels.items()}


def candidate_economics(metrics: dict, label_counts: dict[str, int], config,
                        training_cost: float | None = None) -> dict:
    """Monthly figures for one candidate (see the module docstring for the arithmetic)."""
    b = config.business
    volume = b.monthly_volume
    shares = volume_shares(label_counts, config)
    err_rate = {lab: 1.0 - metrics["per_class"][lab]["recall"] if lab in metrics["per_class"] else 1.0
                for lab in shares}
    # with the test set's own mix this is 1 - accuracy; with production shares each class's error
    # rate is weighted by its share of real traffic
    error_share = 1.0 - metrics["accuracy"] if b.volume_shares is None else \
        sum(shares[lab] * err_rate[lab] for lab in shares)
    corrections = error_share * volume
    hours = corrections * b.seconds_per_correction / 3600.0
    correction_cost = hours * b.hourly_cost
    costs = label_error_costs(config)
    critical = {lab for lab, spec in config.taxonomy.labels.items() if spec.critical}
    error_cost = critical_cost = 0.0
    for lab, share in shares.items():
        c = err_rate[lab] * share * volume * costs.get(lab, b.default_error_cost)
        error_cost += c
        if lab in critical:
            critical_cost += c
    inference = metrics["price_per_answer"] * volume
    return {
        "error_share": error_share, "corrections_per_month": corrections, "correction_hours": hours,
        "correction_cost": correction_cost, "error_cost": error_cost, "critical_error_cost": critical_cost,
        "inference_cost": inference, "total_monthly_cost": inference + correction_cost + error_cost,
        "training_cost": training_cost if metrics["approach"] == "fine_tuned" else None,
        "payback_months": None, "monthly_saving_vs_best_prompt": None,
    }


def volume_shares(label_counts: dict[str, int], config) -> dict[str, float]:
    """Each label's share of monthly tickets: `business.volume_shares` normalised, else the test mix."""
    given = config.business.volume_shares
    if given is None:
        total = sum(label_counts.values())
        return {lab: n / total for lab, n in label_counts.items()} if total else {}
    total = sum(given.values())
    return {lab: x / total for lab, x in given.items() if x > 0}


def payback_months(training_cost: float, monthly_saving: float) -> float | str:
    """Months until a one-off training cost is recovered; "never" when nothing is saved."""
    if monthly_saving <= 0:
        return NEVER
    return max(0.0, training_cost) / monthly_saving


def _training_cost_for(cand: dict, training_cost) -> float | None:
    if isinstance(training_cost, dict):
        return training_cost.get(cand["base_model"], training_cost.get(cand["model"]))
    return training_cost


def best_prompting(result: EvaluationResult) -> str | None:
    """The prompting candidate with the highest accuracy (the evaluation's ranking order)."""
    return next((n for n in result.ranking if result.metrics[n]["approach"] in PROMPTING), None)


def incumbent(result: EvaluationResult, config, current_route: dict | None) -> tuple[str, str]:
    """The candidate that stands for what runs today, and how it was chosen."""
    names = result.ranking
    if current_route and current_route.get("model"):
        model = current_route["model"]
        same = [n for n in names if result.metrics[n]["model"] == model]
        if same:  # several prompts on one model: assume the team runs its best prompt
            return same[0], f"current route serves {model}"
    default_base = config.finetune.base_model
    same = [n for n in names if result.metrics[n]["base_model"] == default_base
            and result.metrics[n]["approach"] in PROMPTING]
    if same:
        return same[0], f"no route recorded; best prompt on the default base model {default_base}"
    bp = best_prompting(result) or names[0]
    return bp, "no route recorded; best prompting candidate"


def _pct(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None else f"{100 * x:.{digits}f}%"


def _pts(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:+.1f} points"


def _months(x: float | str | None) -> str:
    if x is None:
        return "—"
    if isinstance(x, str):
        return x
    return "< 0.1 months" if x < 0.1 else f"{x:.1f} months"


def _money(x: float | None, cur: str) -> str:
    return "n/a" if x is None else f"{x:,.2f} {cur}"


def _significantly_better(result: EvaluationResult, a: str, b: str) -> bool:
    comp = result.comparison(a, b)
    return bool(comp and comp["significant"] and comp["diff"] > 0)


def recommend(result: EvaluationResult, config, econ: dict[str, dict], current_route: dict | None) -> dict:
    """Pick the action; every challenger gets a verdict with the rule that decided it."""
    cur = config.business.currency
    min_gain = config.business.min_accuracy_gain
    max_payback = config.business.max_payback_months
    inc, inc_why = incumbent(result, config, current_route)
    inc_m, inc_e = result.metrics[inc], econ[inc]
    verdicts = []
    for name in result.ranking:
        if name == inc:
            continue
        m, e = result.metrics[name], econ[name]
        comp = result.comparison(name, inc)
        gain = m["accuracy"] - inc_m["accuracy"]
        saving = inc_e["total_monthly_cost"] - e["total_monthly_cost"]
        why = []
        if gain <= 0:
            why.append(f"not more accurate ({_pts(gain)})")
        elif not (comp and comp["significant"] and comp["diff"] > 0):
            p = comp["mcnemar_p"] if comp else float("nan")
            why.append(f"gain of {_pts(gain)} is not statistically significant (McNemar p={p:.3g}, "
                       f"95% CI of the difference [{_pts(comp['diff_low'])}, {_pts(comp['diff_high'])}])"
                       if comp else "no paired test available")
        elif gain < min_gain:
            why.append(f"gain of {_pts(gain)} is below the required {_pts(min_gain)}")
        if saving <= 0:
            why.append(f"does not lower the monthly cost ({_money(-saving, cur)} more per month)")
        if m["approach"] == "fine_tuned":
            pb = payback_months(e["training_cost"] or 0.0, saving)
            if pb == NEVER or pb > max_payback:
                why.append(f"training does not pay back within {max_payback:g} months (payback: "
                           f"{_months(pb)})")
        verdicts.append({"candidate": name, "accuracy_gain": gain, "monthly_saving": saving,
                         "significant": bool(comp and comp["significant"] and comp["diff"] > 0),
                         "mcnemar_p": comp["mcnemar_p"] if comp else None,
                         "qualifies": not why, "why_not": why})
    winners = sorted((v for v in verdicts if v["qualifies"]), key=lambda v: -v["monthly_saving"])
    tie_note = None
    if len(winners) > 1:
        # Saving differences that come from an accuracy difference the test cannot tell from noise
        # are not evidence: among the winners not significantly less accurate than the top one,
        # take the cheapest per answer.
        top = winners[0]["candidate"]
        level = [v for v in winners if v["candidate"] == top or not _significantly_better(result, top, v["candidate"])]
        cheapest = min(level, key=lambda v: (result.metrics[v["candidate"]]["price_per_answer"], -v["monthly_saving"]))
        if cheapest["candidate"] != top:
            comp = result.comparison(top, cheapest["candidate"])
            tie_note = (f"{cheapest['candidate']} is preferred to {top}: their accuracy difference is not significant "
                        f"(McNemar p={comp['mcnemar_p']:.3g}) and it costs less per answer "
                        f"({_money(result.metrics[cheapest['candidate']]['price_per_1000'], cur)} vs "
                        f"{_money(result.metrics[top]['price_per_1000'], cur)} per 1,000).")
            winners = [cheapest] + [v for v in winners if v is not cheapest]
    reasons = [f"Incumbent: {inc} ({inc_why}); accuracy {_pct(inc_m['accuracy'])}, "
               f"total monthly cost {_money(inc_e['total_monthly_cost'], cur)}."]
    if not winners:
        action, chosen = "keep_prompting", inc
        reasons.append("No alternative clears every rule (significant gain of at least "
                       f"{_pts(min_gain)}, lower monthly cost, training paid back within "
                       f"{max_payback:g} months), so nothing changes.")
        headline = f"Keep prompting with {inc}."
    else:
        w = winners[0]
        chosen = w["candidate"]
        m = result.metrics[chosen]
        if m["approach"] == "fine_tuned":
            action = "fine_tune"
            headline = f"Fine-tune {m['base_model']} ({chosen})."
            if m["base_model"] != inc_m["base_model"]:
                headline = f"Fine-tune {m['base_model']}, switching base model from {inc_m['base_model']} ({chosen})."
        elif m["base_model"] != inc_m["base_model"]:
            action = "switch_base_model"
            headline = f"Switch base model to {m['base_model']} ({chosen})."
        else:
            action = "keep_prompting"
            headline = f"Keep prompting, with the {m['approach'].replace('_', ' ')} prompt ({chosen})."
        comp = result.comparison(chosen, inc)
        reasons.append(
            f"{chosen} is {_pts(w['accuracy_gain'])} more accurate than {inc}: significant "
            f"(McNemar exact p={comp['mcnemar_p']:.3g}, {comp['a_only']} vs {comp['b_only']} discordant rows; "
            f"paired bootstrap 95% CI [{_pts(comp['diff_low'])}, {_pts(comp['diff_high'])}]) and above the "
            f"required {_pts(min_gain)}.")
        reasons.append(f"It saves {_money(w['monthly_saving'], cur)} per month in total cost "
                       "(inference + corrections + cost of errors).")
        if m["approach"] == "fine_tuned":
            e = econ[chosen]
            reasons.append(f"Training ({_money(e['training_cost'] or 0.0, cur)}) pays back in "
                           f"{_months(payback_months(e['training_cost'] or 0.0, w['monthly_saving']))}.")
            if e["training_cost"] is None:
                reasons.append("The training cost was not recorded; the payback assumes it was free.")
        if tie_note:
            reasons.append(tie_note)
        if len(winners) > 1:
            reasons.append("Other candidates that also qualify: " + ", ".join(v["candidate"] for v in winners[1:]) + ".")
    rejected = [v for v in verdicts if not v["qualifies"]]
    if rejected:
        best_rej = max(rejected, key=lambda v: v["accuracy_gain"])
        reasons.append(f"Closest rejected: {best_rej['candidate']}: " + "; ".join(best_rej["why_not"]) + ".")
    return {"action": action, "candidate": chosen, "model": result.metrics[chosen]["model"],
            "base_model": result.metrics[chosen]["base_model"], "incumbent": inc, "headline": headline,
            "reasons": reasons, "verdicts": verdicts, "min_accuracy_gain": min_gain,
            "max_payback_months": max_payback}


# ------------------------------------------------------------------------------------ plots
def _plot_confusion(result: EvaluationResult, name: str, path: Path, top: int = 12) -> None:
    m = result.metrics[name]
    labels = []
    for c in m["top_confusions"]:
        for lab in (c["true"], c["predicted"]):
            if lab not in labels:
                labels.append(lab)
        if len(labels) >= top:
            break
    labels = labels[:top] or result.labels[:top]
    pred = result.predictions
    rows = pred[pred["candidate"] == name]
    shown = rows["predicted"].where(rows["predicted"].notna(),
                                    np.where(rows["error"].notna(), "<request failed>", "<invalid answer>"))
    keep = rows["true_label"].isin(labels)
    other = "(other)"
    y_pred = shown[keep].where(shown[keep].isin(labels), other)
    cols = labels + ([other] if (y_pred == other).any() else [])
    cm = confusion_matrix(rows.loc[keep, "true_label"], y_pred, labels=cols)[: len(labels)]
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * len(cols), 1.0 + 0.5 * len(labels)))
    im = ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(cols)), cols, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            if cm[i, j]:
                ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=6,
                        color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"Most confused labels: {name}", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.03)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_f1(result: EvaluationResult, order: list[str], path: Path) -> None:
    labels = [lab for lab in result.labels if lab in result.label_counts]
    mat = np.array([[result.metrics[n]["per_class"].get(lab, {}).get("f1", 0.0) for n in order] for lab in labels])
    idx = np.argsort(mat[:, 0]) if len(order) else np.arange(len(labels))  # worst first, by the first column
    mat, labels = mat[idx], [labels[i] for i in idx]
    fig, ax = plt.subplots(figsize=(2.5 + 0.9 * len(order), 1.2 + 0.16 * len(labels)))
    im = ax.imshow(mat, aspect="auto", cmap="RdYlGn", vmin=0, vmax=1)
    ax.set_xticks(range(len(order)), order, rotation=40, ha="right", fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=6)
    ax.set_title(f"Per-class F1 by candidate (sorted by {order[0]})", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_costs(order: list[str], econ: dict[str, dict], currency: str, path: Path) -> None:
    parts = [("inference_cost", "inference"), ("correction_cost", "corrections"), ("error_cost", "cost of errors")]
    fig, ax = plt.subplots(figsize=(2.5 + 0.8 * len(order), 4.2))
    bottom = np.zeros(len(order))
    for key, label in parts:
        vals = np.array([econ[n][key] for n in order])
        ax.bar(order, vals, bottom=bottom, label=label)
        bottom += vals
    ax.set_ylabel(f"{currency} per month")
    ax.set_title("Monthly cost by candidate", fontsize=9)
    ax.tick_params(axis="x", labelrotation=40, labelsize=7)
    for lab in ax.get_xticklabels():
        lab.set_ha("right")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------------ documents
def _ci(v: float, ci: list) -> str:
    return f"{100 * v:.1f}% [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def _headline_rows(report: dict) -> tuple[list[str], list[list[str]]]:
    cur = report["currency"]
    head = ["candidate", "accuracy [95% CI]", "macro-F1 [95% CI]", "format validity", "price / 1,000 answers",
            "corrections / month", "monthly cost", "payback"]
    rows = []
    for c in report["candidates"]:
        e = c["economics"]
        pb = e["payback_months"]
        rows.append([c["name"] + (" (recommended)" if c["name"] == report["recommendation"]["candidate"] else ""),
                     _ci(c["accuracy"], c["accuracy_ci"]), _ci(c["macro_f1"], c["macro_f1_ci"]),
                     _pct(c["format_validity"]), _money(c["price_per_1000"], cur),
                     f"{e['corrections_per_month']:,.0f}", _money(e["total_monthly_cost"], cur),
                     _months(pb)])
    return head, rows


def _detail_rows(report: dict) -> tuple[list[str], list[list[str]]]:
    cur = report["currency"]
    head = ["candidate", "invalid", "failed", "latency p50 / p95", "tokens in / out", "stability",
            "order sensitivity", "inference", "corrections (h)", "cost of errors (critical)", "training"]
    rows = []
    for c in report["candidates"]:
        e = c["economics"]
        st = c["stability"]
        os_ = c["order_sensitivity"]
        lat = (f"{c['latency_p50_s'] * 1000:.0f} / {c['latency_p95_s'] * 1000:.0f} ms"
               if c["latency_p50_s"] is not None else "n/a")
        rows.append([c["name"], str(c["n_invalid"]), str(c["n_errors"]), lat,
                     f"{c['prompt_tokens_mean']:.0f} / {c['completion_tokens_mean']:.1f}",
                     _pct(st["agreement"]) if st else ("n/a" if "stability" in (c.get("not_applicable") or {}) else "—"),
                     (f"{_pct(os_['agreement'])} agree, Δacc {100 * os_['accuracy_delta']:+.1f} pts" if os_ else
                      "n/a" if c["approach"] == "few_shot" and "order_sensitivity" in (c.get("not_applicable") or {})
                      else "—"),
                     _money(e["inference_cost"], cur), f"{e['correction_hours']:,.0f} h",
                     f"{_money(e['error_cost'], cur)} ({_money(e['critical_error_cost'], cur)})",
                     _money(e["training_cost"], cur) if e["training_cost"] is not None else "—"])
    return head, rows


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    trs = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"


def _comparison_text(c: dict | None) -> str:
    if not c:
        return "Only one candidate was evaluated."
    verdict = "significant" if c["significant"] else "not significant"
    return (f"{c['a']} vs {c['b']}: accuracy difference {100 * c['diff']:+.1f} points, paired bootstrap "
            f"95% CI [{100 * c['diff_low']:+.1f}, {100 * c['diff_high']:+.1f}]; exact McNemar p={c['mcnemar_p']:.3g} "
            f"({c['a_only']} rows only {c['a']} got right, {c['b_only']} only {c['b']}): {verdict}.")


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


def _fresh_rows(report: dict) -> tuple[list[str], list[list[str]]]:
    head = ["candidate", "frozen test", "fresh sample", "gap (frozen - fresh) [95% CI]",
            "fresh, no near-duplicate in train", "gap on those"]
    gap = lambda c, k: f"{100 * c[k]:+.1f} pts [{100 * c[k + '_ci'][0]:+.1f}, {100 * c[k + '_ci'][1]:+.1f}]"  # noqa: E731
    rows = [[n, _ci(c["frozen_accuracy"], c["frozen_accuracy_ci"]), _ci(c["fresh_accuracy"], c["fresh_accuracy_ci"]),
             gap(c, "gap"), _pct(c.get("fresh_accuracy_without_train_twins")),
             gap(c, "gap_without_train_twins") if "gap_without_train_twins" in c else "n/a"]
            for n, c in report["fresh_sample"]["candidates"].items()]
    return head, rows


def _estimate_lines(report: dict) -> list[str]:
    """A few Markdown lines: endpoint, frozen vs fresh accuracy, out-of-time, limits."""
    lines = []
    ep = report.get("endpoint") or {}
    if ep:
        lines += [f"Endpoint: {ep.get('endpoint')}.", ""]
    fresh = report.get("fresh_sample")
    if fresh:
        lines += [f"## Frozen test vs fresh sample ({fresh['file']}, {fresh['rows_scored']} tickets never in the pipeline)",
                  "", _md_table(*_fresh_rows(report))]
        if "train_twins" in fresh:
            lines += ["", f"{fresh['train_twins']} fresh tickets ({_pct(fresh['train_twins_share'])}) have a "
                          "near-duplicate in the training split; the frozen test set has none by construction."]
        lines += ["", f"Best on the frozen test: {fresh['best_on_frozen']}; best on the fresh sample: "
                      f"{fresh['best_on_fresh']}. {fresh['note']}", ""]
    oot = report.get("out_of_time") or {}
    if oot.get("available"):
        rec = report["recommendation"]["candidate"]
        c = oot["candidates"].get(rec)
        if c:
            lines += [f"Out of time ({rec}): {_pct(c['latest_accuracy'])} on {oot['latest_month']} against "
                      f"{_pct(c['earlier_accuracy'])} on the earlier months ({100 * c['latest_minus_earlier']:+.1f} pts "
                      f"[{100 * c['latest_minus_earlier_ci'][0]:+.1f}, {100 * c['latest_minus_earlier_ci'][1]:+.1f}]).", ""]
    lines += ["## Limits", ""] + [f"- {x}" for x in report.get("limits") or []] + [""]
    return lines


def _markdown(report: dict) -> str:
    rec = report["recommendation"]
    parts = [f"# Fine-tuning decision report: {report['project']}", "",
             f"Dataset version `{report['dataset_version']}`, {report['n_rows']} frozen test rows"
             + (f" (stratified sample of {report['test_rows_total']})" if report["sampled"] else "")
             + f"; monthly volume {report['business']['monthly_volume']:,} tickets; "
             f"a correction takes {report['business']['seconds_per_correction']:g} s at "
             f"{report['business']['hourly_cost']:g} {report['currency']}/h.", "",
             _md_table(*_headline_rows(report)), "", *_estimate_lines(report),
             f"## Recommendation: {rec['headline']}", ""]
    parts += [f"- {r}" for r in rec["reasons"]]
    parts += ["", "## Best vs runner-up", "", _comparison_text(report["best_vs_runner_up"]), "",
              "## Details", "", _md_table(*_detail_rows(report)), "",
              "Corrections count every answer that was wrong, invalid (not exactly a label) or failed. "
              "Cost of errors weights each class's error rate by its share of volume "
              f"({'from business.volume_shares' if report['business'].get('volume_shares') else 'the test set mix'}) "
              "and its error cost "
              "(critical labels in brackets). Stability: agreement of the repeat run(s) at temperature "
              f"{report['settings'].get('stability_temperature', 'n/a')} with the scored run at temperature 0. "
              "Order sensitivity: the same few-shot examples shuffled with another seed.", "",
              f"## Top confusions of {rec['candidate']}", ""]
    conf = report["top_confusions"]
    parts += [_md_table(["true", "predicted", "count"], [[c["true"], c["predicted"], c["count"]] for c in conf])
              if conf else "None.", "", "## Plots", ""]
    parts += [f"![{k}]({v})" for k, v in report["plots"].items()]
    return "\n".join(parts) + "\n"


_CSS = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:4px 8px;"
        "text-align:left}th{background:#f3f3f3}img{max-width:100%;display:block;margin:1em 0}"
        ".rec{background:#eef6ee;border-left:4px solid #3a3;padding:.5em 1em}")


def _html(report: dict, images: dict[str, bytes]) -> str:
    rec = report["recommendation"]
    e = html.escape
    body = [f"<h1>Fine-tuning decision report: {e(report['project'])}</h1>",
            f"<p>Dataset version <code>{e(report['dataset_version'])}</code>, {report['n_rows']} frozen test rows"
            + (f" (stratified sample of {report['test_rows_total']})" if report["sampled"] else "")
            + f"; monthly volume {report['business']['monthly_volume']:,} tickets.</p>",
            _html_table(*_headline_rows(report)),
            f"<p>Endpoint: {e(str((report.get('endpoint') or {}).get('endpoint', 'n/a')))}</p>",
            _html_table(*_fresh_rows(report)) if report.get("fresh_sample") else "",
            "<h2>Limits</h2><ul>" + "".join(f"<li>{e(x)}</li>" for x in report.get("limits") or []) + "</ul>",
            f"<div class='rec'><h2>Recommendation: {e(rec['headline'])}</h2><ul>"
            + "".join(f"<li>{e(r)}</li>" for r in rec["reasons"]) + "</ul></div>",
            f"<h2>Best vs runner-up</h2><p>{e(_comparison_text(report['best_vs_runner_up']))}</p>",
            "<h2>Details</h2>", _html_table(*_detail_rows(report)),
            f"<h2>Top confusions of {e(rec['candidate'])}</h2>",
            _html_table(["true", "predicted", "count"],
                        [[c["true"], c["predicted"], c["count"]] for c in report["top_confusions"]]),
            "<h2>Plots</h2>"]
    body += [f"<h3>{e(k)}</h3><img alt='{e(k)}' src='data:image/png;base64,{base64.b64encode(v).decode()}'>"
             for k, v in images.items()]
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>tunegate report</title>"
            f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>\n")


def build_report(result: EvaluationResult, config, training_cost: float | dict[str, float] | None,
                 current_route: dict | None, out_dir: Path) -> dict:
    """Write report.md, report.html, report.json and plots/*.png under `out_dir`; return the JSON dict.

    `training_cost` is the one-off cost of the fine-tuning job (or a dict base model -> cost when
    several were trained); `current_route` is the catalog's current route row (its `model` names the
    incumbent), or None."""
    out = Path(out_dir)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    cur = config.business.currency
    by_name = {c["name"]: c for c in result.candidates}
    order = list(result.ranking)
    econ = {n: candidate_economics(result.metrics[n], result.label_counts, config,
                                   _training_cost_for(by_name[n], training_cost)) for n in order}
    bp = best_prompting(result)
    for n in order:
        if result.metrics[n]["approach"] == "fine_tuned" and bp:
            saving = econ[bp]["total_monthly_cost"] - econ[n]["total_monthly_cost"]
            econ[n]["monthly_saving_vs_best_prompt"] = saving
            econ[n]["payback_months"] = payback_months(econ[n]["training_cost"] or 0.0, saving)
    rec = recommend(result, config, econ, current_route)

    plots = {"confusion_matrix": "plots/confusion_matrix.png", "per_class_f1": "plots/per_class_f1.png",
             "monthly_cost": "plots/monthly_cost.png"}
    f1_order = [rec["candidate"]] + [n for n in order if n != rec["candidate"]]
    if result.predictions is not None:
        _plot_confusion(result, rec["candidate"], out / plots["confusion_matrix"])
    else:
        plots.pop("confusion_matrix")
    _plot_f1(result, f1_order, out / plots["per_class_f1"])
    _plot_costs(order, econ, cur, out / plots["monthly_cost"])

    keep = ("model", "approach", "base_model", "n", "accuracy", "accuracy_ci", "macro_f1", "macro_f1_ci",
            "accuracy_lenient", "format_validity", "n_invalid", "n_errors", "latency_p50_s", "latency_p95_s",
            "prompt_tokens_mean", "completion_tokens_mean", "price_per_answer", "price_per_1000",
            "stability", "order_sensitivity", "not_applicable")
    st = result.settings
    report = {
        "project": config.project, "dataset_version": result.dataset_version, "n_rows": result.n_rows,
        "sampled": result.sampled, "test_rows_total": result.settings.get("test_rows_total", result.n_rows),
        "currency": cur, "business": config.business.model_dump(mode="json"), "settings": result.settings,
        "candidates": [{"name": n, **{k: result.metrics[n].get(k) for k in keep}, "economics": econ[n],
                        "per_class_f1": {lab: v["f1"] for lab, v in result.metrics[n]["per_class"].items()}}
                       for n in order],
        "ranking": order, "best": result.best, "runner_up": result.runner_up, "best_prompting": bp,
        "best_vs_runner_up": result.best_vs_runner_up, "recommendation": rec,
        "top_confusions": result.metrics[rec["candidate"]]["top_confusions"],
        "current_route": {k: str(v) for k, v in current_route.items()} if current_route else None,
        "plots": plots, "files": {"markdown": "report.md", "html": "report.html", "json": "report.json"},
        # what answered, the checks of the estimate and the report's limits (pipeline.model.fresh, .provenance)
        "endpoint": st.get("provenance"), "fresh_sample": st.get("fresh_sample"),
        "out_of_time": st.get("out_of_time"), "few_shot": st.get("few_shot"), "limits": _limits(st),
    }
    report = json.loads(json.dumps(report, default=str))
    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True), encoding="utf-8")
    (out / "report.md").write_text(_markdown(report), encoding="utf-8")
    images = {k: (out / v).read_bytes() for k, v in plots.items()}
    (out / "report.html").write_text(_html(report, images), encoding="utf-8")
    return report
