"""The data half as assets: landing files -> raw -> masked -> deduplicated -> labelled -> splits.

Each asset calls one `pipeline.data.steps` function, passes on a small version reference (not the data)
and attaches what a data engineer needs to trust it: counts, reasons, statistics, the version id.
All of them write the catalog, so they share the `tunegate_catalog` concurrency pool.
"""

from dagster import AssetExecutionContext, MetadataValue, Output, asset

from assets.resources import TunegateConfigResource
from pipeline.data import steps

POOL = "tunegate_catalog"


def _table_md(rows: dict, key: str = "reason", value: str = "rows") -> MetadataValue:
    lines = [f"| {key} | {value} |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows.items()]
    return MetadataValue.md("\n".join(lines) if rows else "_none_")


def _output(out: steps.StepOutput, extra: dict) -> Output:
    meta = {"version": out.version, "path": MetadataValue.path(out.path), "rows": out.rows, **extra}
    return Output(out.ref(), metadata=meta)


@asset(group_name="data", pool=POOL, description="Landing files mapped to the canonical schema; bad rows quarantined with a reason.")
def raw_tickets(context: AssetExecutionContext, tunegate: TunegateConfigResource) -> Output:
    out = steps.step_raw_tickets(tunegate.load(), run_id=context.run_id)
    m = out.meta
    return _output(out, {
        "rows_in": m["rows_in"], "rows_kept": m["rows_kept"], "rows_quarantined": m["rows_quarantined"],
        "quarantine_by_reason": _table_md(m["quarantine_by_reason"]),
        "files": MetadataValue.json(m["files"]), "warnings": MetadataValue.json(m["warnings"]),
    })


@asset(group_name="data", pool=POOL, description="PII masked with Presidio + market recognizers; raw text stays in the raw zone.")
def masked_tickets(context: AssetExecutionContext, tunegate: TunegateConfigResource, raw_tickets: dict) -> Output:
    out = steps.step_masked_tickets(tunegate.load(), raw_tickets["version"], run_id=context.run_id)
    m = out.meta
    return _output(out, {
        "tickets_with_pii": m["tickets_with_pii"], "pii_share": m["pii_share"],
        "entities_by_type": _table_md(m["entities_by_type"], "entity", "masked"),
        "residual_rows": m["residual_rows"], "residual_by_type": MetadataValue.json(m["residual_by_type"]),
    })


@asset(group_name="data", pool=POOL, description="Exact and near-duplicate clusters; one deterministic representative per cluster.")
def deduplicated_tickets(context: AssetExecutionContext, tunegate: TunegateConfigResource, masked_tickets: dict) -> Output:
    out = steps.step_deduplicated_tickets(tunegate.load(), masked_tickets["version"], run_id=context.run_id)
    return _output(out, {k: (MetadataValue.json(v) if isinstance(v, (dict, list)) else v)
                         for k, v in out.meta.items()})


@asset(group_name="data", pool=POOL, description="Labels mapped to the taxonomy; conflicts, renames and cross-validated label issues.")
def labelled_tickets(context: AssetExecutionContext, tunegate: TunegateConfigResource, deduplicated_tickets: dict) -> Output:
    out = steps.step_labelled_tickets(tunegate.load(), deduplicated_tickets["version"], run_id=context.run_id)
    return _output(out, {k: (MetadataValue.json(v) if isinstance(v, (dict, list)) else v)
                         for k, v in out.meta.items()})


@asset(group_name="data", pool=POOL, description="Template-aware, stratified, stable train/val/test; published as an immutable version.")
def dataset_splits(context: AssetExecutionContext, tunegate: TunegateConfigResource, labelled_tickets: dict,
                   raw_tickets: dict) -> Output:
    out = steps.step_dataset_splits(tunegate.load(), labelled_tickets["version"], raw_version=raw_tickets["version"],
                                    run_id=context.run_id)
    m = out.meta
    return _output(out, {
        "split_sizes": MetadataValue.json(m["sizes"]), "split_ratios": MetadataValue.json(m["ratios"]),
        "groups": m["groups"], "multi_ticket_groups": m["multi_ticket_groups"], "largest_group": m["largest_group"],
        "assignment_reasons": _table_md(m["reasons"], "reason", "tickets"),
        "cross_split_near_duplicates": m["cross_split_near_duplicates"],
        "class_balance_min": MetadataValue.json(m["class_balance_min"]),
        "labels_missing_in_test": MetadataValue.json(m["labels_missing_in_test"]),
        "max_ratio_deviation": m["max_ratio_deviation"],
    })
