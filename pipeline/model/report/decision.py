"""The recommendation: keep prompting, fine-tune, or switch base model, and the rule that decided.

A change is proposed only when its accuracy gain over the incumbent (what runs today) is statistically
significant (exact McNemar and paired bootstrap agree), at least `business.min_accuracy_gain`, lowers
the total monthly cost, and, for a fine-tuned model, pays its training back within
`business.max_payback_months`. Among qualifying candidates whose accuracy the test cannot tell apart,
the cheaper one per answer wins.
"""
from __future__ import annotations

from pipeline.model.evaluation import PROMPTING, EvaluationResult
from pipeline.model.report.economics import NEVER, payback_months
from pipeline.model.report.formats import money, months, pct, price, pts


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
            why.append(f"not more accurate ({pts(gain)})")
        elif not (comp and comp["significant"] and comp["diff"] > 0):
            p = comp["mcnemar_p"] if comp else float("nan")
            why.append(f"gain of {pts(gain)} is not statistically significant (McNemar p={p:.3g}, "
                       f"95% CI of the difference [{pts(comp['diff_low'])}, {pts(comp['diff_high'])}])"
                       if comp else "no paired test available")
        elif gain < min_gain:
            why.append(f"gain of {pts(gain)} is below the required {pts(min_gain)}")
        if saving <= 0:
            why.append(f"does not lower the monthly cost ({money(-saving, cur)} more per month)")
        if m["approach"] == "fine_tuned":
            pb = payback_months(e["training_cost"] or 0.0, saving)
            if pb == NEVER or pb > max_payback:
                why.append(f"training does not pay back within {max_payback:g} months (payback: "
                           f"{months(pb)})")
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
                        f"({price(result.metrics[cheapest['candidate']]['price_per_1000'], cur)} vs "
                        f"{price(result.metrics[top]['price_per_1000'], cur)} per 1,000).")
            winners = [cheapest] + [v for v in winners if v is not cheapest]
    reasons = [f"Incumbent: {inc} ({inc_why}); accuracy {pct(inc_m['accuracy'])}, "
               f"total monthly cost {money(inc_e['total_monthly_cost'], cur)}."]
    if not winners:
        action, chosen = "keep_prompting", inc
        reasons.append("No alternative clears every rule (significant gain of at least "
                       f"{pts(min_gain)}, lower monthly cost, training paid back within "
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
            f"{chosen} is {pts(w['accuracy_gain'])} more accurate than {inc}: significant "
            f"(McNemar exact p={comp['mcnemar_p']:.3g}, {comp['a_only']} vs {comp['b_only']} discordant rows; "
            f"paired bootstrap 95% CI [{pts(comp['diff_low'])}, {pts(comp['diff_high'])}]) and above the "
            f"required {pts(min_gain)}.")
        reasons.append(f"It saves {money(w['monthly_saving'], cur)} per month in total cost "
                       "(inference + corrections + cost of errors).")
        if m["approach"] == "fine_tuned":
            e = econ[chosen]
            reasons.append(f"Training ({money(e['training_cost'] or 0.0, cur)}) pays back in "
                           f"{months(payback_months(e['training_cost'] or 0.0, w['monthly_saving']))}.")
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
