"""The data half as assets: landing files -> raw -> masked -> deduplicated -> labelled -> splits.

Each asset calls one `pipeline.data.steps` function, passes on a small version reference (not the data)
and attaches what a data engineer needs to trust it: counts, shares the UI can plot over runs, reasons,
the version id and the `path` of the Parquet version folder. The output's `DataVersion` is the step's
content hash, so Dagster shows an asset as stale exactly when its data would change. All of them write
the catalog, so they share the `tunegate_catalog` concurrency pool.
"""
import dagster as dg

from assets.metadata import num, plain, table_md
from assets.resources import TunegateConfigResource
from pipeline.data import steps

POOL = "tunegate_catalog"
OWNERS = ["team:data-engineering"]
CODE_VERSION = steps.CODE_VERSION


def _output(out: steps.StepOutput, extra: dict) -> dg.Output:
    meta = {"version": out.version, "path": dg.MetadataValue.path(out.path), "rows": out.rows, **extra}
    return dg.Output(out.ref(), metadata=meta, data_version=dg.DataVersion(out.version))


@dg.asset(group_name="data", pool=POOL, code_version=CODE_VERSION, kinds={"parquet", "duckdb"}, owners=OWNERS,
          tags={"layer": "data", "pii": "raw"},
          description="Landing files mapped to the canonical schema; bad rows quarantined with a reason.")
def raw_tickets(context: dg.AssetExecutionContext, tunegate: TunegateConfigResource) -> dg.Output:
    out = steps.step_raw_tickets(tunegate.load(), run_id=context.run_id)
    m = out.meta
    return _output(out, {
        "rows_in": m["rows_in"], "rows_kept": m["rows_kept"], "rows_quarantined": m["rows_quarantined"],
        "quarantine_share": num(m["rows_quarantined"] / max(1, m["rows_in"])),
        "quarantine_by_reason": table_md(m["quarantine_by_reason"]),
        "files": dg.MetadataValue.json(m["files"]), "warnings": dg.MetadataValue.json(m["warnings"]),
    })


@dg.asset(group_name="data", pool=POOL, code_version=CODE_VERSION, kinds={"presidio", "parquet"}, owners=OWNERS,
          tags={"layer": "data", "pii": "masked"},
          description="PII masked with Presidio + market recognizers; raw text stays in the raw zone.")
def masked_tickets(context: dg.AssetExecutionContext, tunegate: TunegateConfigResource, raw_tickets: dict) -> dg.Output:
    out = steps.step_masked_tickets(tunegate.load(), raw_tickets["version"], run_id=context.run_id)
    m = out.meta
    return _output(out, {
        "tickets_with_pii": m["tickets_with_pii"], "pii_share": num(m["pii_share"]),
        "entities_by_type": table_md(m["entities_by_type"], "entity", "masked"),
        "residual_rows": m["residual_rows"], "residual_by_type": dg.MetadataValue.json(m["residual_by_type"]),
        # near-identical tickets masked differently, before and after harmonising (pipeline/pii/consistency.py)
        "inconsistent_near_duplicates_before": num(m["inconsistent_near_duplicates"]["share_before"]),
        "inconsistent_near_duplicates_after": num(m["inconsistent_near_duplicates"]["share_after"]),
        "inconsistent_near_duplicates": dg.MetadataValue.json(m["inconsistent_near_duplicates"]),
    })


@dg.asset(group_name="data", pool=POOL, code_version=CODE_VERSION, kinds={"parquet"}, owners=OWNERS,
          tags={"layer": "data", "pii": "masked"},
          description="Exact and near-duplicate clusters; one deterministic representative per cluster.")
def deduplicated_tickets(context: dg.AssetExecutionContext, tunegate: TunegateConfigResource,
                         masked_tickets: dict) -> dg.Output:
    out = steps.step_deduplicated_tickets(tunegate.load(), masked_tickets["version"], run_id=context.run_id)
    return _output(out, {**plain(out.meta),
                         "removed_share": num(out.meta["rows_removed"] / max(1, out.meta["rows_in"]))})


@dg.asset(group_name="data", pool=POOL, code_version=CODE_VERSION, kinds={"parquet"}, owners=OWNERS,
          tags={"layer": "data", "pii": "masked"},
          description="Labels mapped to the taxonomy; conflicts, renames and cross-validated label issues.")
def labelled_tickets(context: dg.AssetExecutionContext, tunegate: TunegateConfigResource,
                     deduplicated_tickets: dict) -> dg.Output:
    out = steps.step_labelled_tickets(tunegate.load(), deduplicated_tickets["version"], run_id=context.run_id)
    return _output(out, plain(out.meta))


@dg.asset(group_name="data", pool=POOL, code_version=CODE_VERSION, kinds={"parquet", "duckdb"}, owners=OWNERS,
          tags={"layer": "data", "pii": "masked"},
          description="Template-aware, stratified, stable train/val/test; published as an immutable version.")
def dataset_splits(context: dg.AssetExecutionContext, tunegate: TunegateConfigResource, labelled_tickets: dict,
                   raw_tickets: dict) -> dg.Output:
    out = steps.step_dataset_splits(tunegate.load(), labelled_tickets["version"], raw_version=raw_tickets["version"],
                                    run_id=context.run_id)
    m = out.meta
    return _output(out, {
        "split_sizes": dg.MetadataValue.json(m["sizes"]), "split_ratios": dg.MetadataValue.json(m["ratios"]),
        **{f"rows_{s}": n for s, n in m["sizes"].items()},
        "groups": m["groups"], "multi_ticket_groups": m["multi_ticket_groups"], "largest_group": m["largest_group"],
        "assignment_reasons": table_md(m["reasons"], "reason", "tickets"),
        "cross_split_near_duplicates": m["cross_split_near_duplicates"],
        "class_balance_min": dg.MetadataValue.json(m["class_balance_min"]),
        "labels_missing_in_test": dg.MetadataValue.json(m["labels_missing_in_test"]),
        "max_ratio_deviation": num(m["max_ratio_deviation"]),
    })
