"""Model routes: which model serves the ticket router, with promotion and rollback history in the catalog.

A promotion is refused unless the candidate's holdout evaluation beats the current route on the
business metric (monthly total cost of the route: inference + corrections + error cost; accuracy
when no cost is recorded), unless forced. A rollback returns to the model that served before the
current one; history is replayed as a stack, so repeated rollbacks walk further back.
"""
from __future__ import annotations

import json

from pipeline.catalog import Catalog
from pipeline.config import TunegateConfig


class RouteError(LookupError):
    pass


def _latest_eval(catalog: Catalog, model: str, dataset_version: str | None = None) -> dict | None:
    """The model's latest evaluation (its best candidate, when it served several), optionally on one test set."""
    if dataset_version is None:
        latest = catalog.query("SELECT dataset_version FROM evaluations WHERE model = ? ORDER BY created_at DESC LIMIT 1",
                               [model])
        if latest.empty:
            return None
        dataset_version = latest.dataset_version.iloc[0]
    df = catalog.query("""SELECT eval_id, candidate, dataset_version, metrics FROM evaluations
                          WHERE model = ? AND dataset_version = ?
                          ORDER BY json_extract(metrics, '$.total_monthly_cost')::DOUBLE ASC NULLS LAST,
                                   json_extract(metrics, '$.accuracy')::DOUBLE DESC, eval_id LIMIT 1""",
                       [model, dataset_version])
    if df.empty:
        return None
    row = df.iloc[0].to_dict()
    row["metrics"] = json.loads(row["metrics"])
    return row


def business_score(metrics: dict) -> tuple[str, float, bool]:
    """(metric name, value, lower is better)."""
    for key in ("monthly_total_cost", "total_monthly_cost"):
        if metrics.get(key) is not None:
            return key, float(metrics[key]), True
    return "accuracy", float(metrics.get("accuracy", 0.0)), False


def route_stack(catalog: Catalog, route: str) -> list[str]:
    stack: list[str] = []
    for row in catalog.route_history(route).itertuples():
        if row.action == "rollback":
            if stack:
                stack.pop()
        else:
            stack.append(row.model)
    return stack


def promote(cfg: TunegateConfig, model: str, force: bool = False, route: str = "default") -> str:
    catalog = Catalog(cfg.catalog_path)
    cand = _latest_eval(catalog, model)
    current = route_stack(catalog, route)
    incumbent = current[-1] if current else None
    if incumbent == model:
        return f"{model} already serves route {route!r}"
    if cand is None and not force:
        raise RouteError(f"{model} has no holdout evaluation in the catalog; evaluate it first or pass --force")
    reason = "forced" if force else "first route"
    if incumbent is not None and cand is not None:
        inc = _latest_eval(catalog, incumbent, cand["dataset_version"])
        if inc is None and not force:
            raise RouteError(f"refused: {incumbent} (the current route) has no evaluation on dataset version "
                             f"{cand['dataset_version']}, the test set {model} was scored on; pass --force to override")
        if inc is not None:
            name, c_val, lower = business_score(cand["metrics"])
            _, i_val, _ = business_score(inc["metrics"])
            better = c_val < i_val if lower else c_val > i_val
            reason = f"{name}: {c_val:,.4g} vs {i_val:,.4g} for {incumbent}"
            if not better and not force:
                raise RouteError(f"refused: {model} does not beat {incumbent} on {reason}; pass --force to override")
            if force and not better:
                reason = f"forced ({reason})"
    catalog.set_route(model, "promote", route=route, eval_id=cand["eval_id"] if cand else None, reason=reason)
    return f"route {route!r}: {incumbent or '(none)'} -> {model} [{reason}]"


def rollback(cfg: TunegateConfig, route: str = "default") -> str:
    catalog = Catalog(cfg.catalog_path)
    stack = route_stack(catalog, route)
    if len(stack) < 2:
        raise RouteError(f"route {route!r} has no previous model to roll back to")
    current, previous = stack[-1], stack[-2]
    catalog.set_route(previous, "rollback", route=route, reason=f"rolled back from {current}")
    return f"route {route!r}: {current} -> {previous} (rollback)"
