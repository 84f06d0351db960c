"""Great Expectations suites for the raw and split tables (GX Core 1.x, in memory).

Results are reduced to counts per expectation: GX's unexpected-value lists would copy ticket text into
check metadata, so they are never kept (result format BOOLEAN_ONLY plus the unexpected counts).
"""
from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass

import pandas as pd

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")


@dataclass
class SuiteResult:
    suite: str
    success: bool
    results: list[dict]

    def failed(self) -> list[dict]:
        return [r for r in self.results if not r["success"]]

    def to_dict(self) -> dict:
        return {"suite": self.suite, "success": self.success, "results": self.results}


_CONTEXT = None


def _context():
    global _CONTEXT
    if _CONTEXT is None:
        import great_expectations as gx

        logging.getLogger("great_expectations").setLevel(logging.ERROR)
        from great_expectations.data_context.types.base import ProgressBarsConfig

        _CONTEXT = gx.get_context(mode="ephemeral")
        _CONTEXT.variables.progress_bars = ProgressBarsConfig(globally=False)
    return _CONTEXT


def _run(name: str, df: pd.DataFrame, expectations: list) -> SuiteResult:
    import great_expectations as gx

    ctx = _context()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = ctx.data_sources.add_or_update_pandas(f"ds_{name}")
        asset = ds.add_dataframe_asset(name=f"asset_{name}")
        batch_def = asset.add_batch_definition_whole_dataframe(f"batch_{name}")
        try:
            ctx.suites.delete(f"suite_{name}")
        except Exception:
            pass
        suite = ctx.suites.add(gx.ExpectationSuite(name=f"suite_{name}"))
        for exp in expectations:
            suite.add_expectation(exp)
        batch = batch_def.get_batch(batch_parameters={"dataframe": df})
        res = batch.validate(suite, result_format="SUMMARY")
    results = []
    for r in res.results:
        cfg = r.expectation_config
        results.append({
            "expectation": cfg.type,
            "column": cfg.kwargs.get("column") or ",".join(cfg.kwargs.get("column_list", []) or []),
            "success": bool(r.success),
            "unexpected_count": int((r.result or {}).get("unexpected_count") or 0),
            "observed": _observed((r.result or {}).get("observed_value")),
        })
    return SuiteResult(name, bool(res.success), results)


def _observed(value):
    # only numbers and short column lists: never a value taken from a text column
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    if isinstance(value, list) and all(isinstance(v, str) and len(v) < 40 for v in value):
        return value[:20]
    return None


def validate_raw_tickets(df: pd.DataFrame, min_chars: int, max_chars: int) -> SuiteResult:
    import great_expectations.expectations as gxe

    lengths = pd.DataFrame({"ticket_id": df["ticket_id"], "text_length": df["text"].str.len(),
                            "label_raw": df["label_raw"], "created_at": df["created_at"]})
    return _run("raw_tickets", lengths, [
        gxe.ExpectTableColumnsToMatchSet(column_set=["ticket_id", "text_length", "label_raw", "created_at"]),
        gxe.ExpectColumnValuesToNotBeNull(column="ticket_id"),
        gxe.ExpectColumnValuesToBeUnique(column="ticket_id"),
        gxe.ExpectColumnValuesToNotBeNull(column="text_length"),
        gxe.ExpectColumnValuesToBeBetween(column="text_length", min_value=min_chars, max_value=max_chars),
        gxe.ExpectColumnValuesToNotBeNull(column="label_raw"),
    ])


def validate_split(name: str, df: pd.DataFrame, labels: list[str], min_chars: int, max_chars: int) -> SuiteResult:
    import great_expectations.expectations as gxe

    view = pd.DataFrame({"ticket_id": df["ticket_id"], "label": df["label"],
                         "text_length": df["text"].str.len(), "group_key": df["group_key"]})
    return _run(f"split_{name}", view, [
        gxe.ExpectColumnValuesToNotBeNull(column="ticket_id"),
        gxe.ExpectColumnValuesToBeUnique(column="ticket_id"),
        gxe.ExpectColumnValuesToNotBeNull(column="label"),
        gxe.ExpectColumnValuesToBeInSet(column="label", value_set=labels),
        gxe.ExpectColumnValuesToBeBetween(column="text_length", min_value=min_chars, max_value=max_chars),
        gxe.ExpectColumnValuesToNotBeNull(column="group_key"),
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
    ])
