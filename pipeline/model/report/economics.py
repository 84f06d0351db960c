"""What each candidate costs a month: corrections, cost of errors (critical labels apart), inference, payback.

The arithmetic: the share of answers an operator must correct (invalid answers and failed requests
included) x monthly volume x seconds per correction x hourly cost; plus the extra cost of misrouting,
per label (its error rate x its share of volume x its error cost; shares from `business.volume_shares`,
else the test set's label mix); plus the inference bill (price per answer x volume). A fine-tuned
candidate also carries its one-off training cost and its payback period.

`sensitivity` moves each cost assumption (seconds per correction, hourly cost, error costs, volume)
to 50% and 150% of its value, alone and in every combination, and reports the range of a saving.
"""
from __future__ import annotations

import itertools

NEVER = "never"
# the cost assumptions the sensitivity analysis moves, with their names in the report
ASSUMPTIONS = {"seconds_per_correction": "seconds per correction", "hourly_cost": "hourly cost",
               "error_cost": "error costs", "monthly_volume": "monthly volume"}
SWING = (0.5, 1.5)


def label_error_costs(config) -> dict[str, float]:
    default = config.business.default_error_cost
    return {lab: (spec.error_cost if spec.error_cost is not None else default)
            for lab, spec in config.taxonomy.labels.items()}


def critical_labels(config) -> list[str]:
    return [lab for lab, spec in config.taxonomy.labels.items() if spec.critical]


def volume_shares(label_counts: dict[str, int], config) -> dict[str, float]:
    """Each label's share of monthly tickets: `business.volume_shares` normalised, else the test mix."""
    given = config.business.volume_shares
    if given is None:
        total = sum(label_counts.values())
        return {lab: n / total for lab, n in label_counts.items()} if total else {}
    total = sum(given.values())
    return {lab: x / total for lab, x in given.items() if x > 0}


def _error_rates(metrics: dict, shares: dict[str, float]) -> dict[str, float]:
    return {lab: 1.0 - metrics["per_class"][lab]["recall"] if lab in metrics["per_class"] else 1.0 for lab in shares}


def candidate_economics(metrics: dict, label_counts: dict[str, int], config,
                        training_cost: float | None = None, scales: dict[str, float] | None = None) -> dict:
    """Monthly figures for one candidate (see the module docstring); `scales` multiplies assumptions."""
    b = config.business
    s = {k: 1.0 for k in ASSUMPTIONS} | (scales or {})
    volume = b.monthly_volume * s["monthly_volume"]
    shares = volume_shares(label_counts, config)
    err_rate = _error_rates(metrics, shares)
    # with the test set's own mix this is 1 - accuracy; with production shares each class's error
    # rate is weighted by its share of real traffic
    error_share = 1.0 - metrics["accuracy"] if b.volume_shares is None else \
        sum(shares[lab] * err_rate[lab] for lab in shares)
    corrections = error_share * volume
    hours = corrections * b.seconds_per_correction * s["seconds_per_correction"] / 3600.0
    correction_cost = hours * b.hourly_cost * s["hourly_cost"]
    costs = label_error_costs(config)
    critical = set(critical_labels(config))
    error_cost = critical_cost = 0.0
    for lab, share in shares.items():
        c = err_rate[lab] * share * volume * costs.get(lab, b.default_error_cost) * s["error_cost"]
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


def critical_label_rows(metrics: dict, label_counts: dict[str, int], config, econ: dict) -> list[dict]:
    """Per critical label: recall, errors a month, their cost (misrouting + correction time), share of the total."""
    b = config.business
    shares = volume_shares(label_counts, config)
    costs = label_error_costs(config)
    per_correction = b.seconds_per_correction / 3600.0 * b.hourly_cost
    rows = []
    for lab in critical_labels(config):
        pc = metrics["per_class"].get(lab)
        share = shares.get(lab, 0.0)
        recall = pc["recall"] if pc else None
        errors = (1.0 - (recall or 0.0)) * share * b.monthly_volume
        cost = errors * (costs.get(lab, b.default_error_cost) + per_correction)
        rows.append({"label": lab, "recall": recall, "support": pc["support"] if pc else 0, "volume_share": share,
                     "errors_per_month": errors, "error_cost": costs.get(lab, b.default_error_cost),
                     "cost_per_month": cost,
                     "share_of_total": cost / econ["total_monthly_cost"] if econ["total_monthly_cost"] else None})
    return sorted(rows, key=lambda r: -r["cost_per_month"])


def payback_months(training_cost: float, monthly_saving: float) -> float | str:
    """Months until a one-off training cost is recovered; "never" when nothing is saved."""
    if monthly_saving <= 0:
        return NEVER
    return max(0.0, training_cost) / monthly_saving


def sensitivity(saving_at, base: float | None = None) -> dict:
    """Range of a saving when each cost assumption moves to 50% and 150%: alone and all combined.

    `saving_at(scales)` returns the saving for a dict of assumption -> multiplier."""
    base = saving_at({}) if base is None else base
    one = []
    for key, name in ASSUMPTIONS.items():
        lo, hi = (saving_at({key: f}) for f in SWING)
        one.append({"assumption": key, "name": name, "at_50": lo, "at_150": hi, "swing": abs(hi - lo)})
    one.sort(key=lambda r: -r["swing"])
    corners = [saving_at(dict(zip(ASSUMPTIONS, combo))) for combo in itertools.product(SWING, repeat=len(ASSUMPTIONS))]
    return {"base": base, "low": min(corners + [base]), "high": max(corners + [base]), "one_at_a_time": one,
            "corners": len(corners), "swing": list(SWING)}
