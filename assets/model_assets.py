"""The model half as assets: fine-tuning files and jobs, holdout evaluation, the decision report.

Thin wrappers over `pipeline.model.steps`. A fine-tuning job that outlives `finetune.follow_timeout_s`
does not hold the run: the asset fails with a clear message and `finetune_job_sensor` (assets/sensors.py)
starts a new run of the model half when the job reaches a terminal state (submission is idempotent, so
the new run picks the same job up). Figures are numeric, rounded metadata (accuracy and price per
candidate, monthly cost) so the UI plots them across runs; the checks live in assets/checks.py.
With the embedded provider (the default endpoint) the figures come from its small stand-in models, not
from a production LLM.
"""
import os

import dagster as dg

from assets.metadata import inline_images, num
from assets.resources import EndpointResource, TunegateConfigResource
from pipeline.model import steps as model_steps

POOL = "tunegate_catalog"
OWNERS = ["team:ml-engineering"]
CODE_VERSION = model_steps.CODE_VERSION


# `finetune_job` and `holdout_evaluation` take the `endpoint` resource so the UI lists which assets call
# the (possibly paid) endpoint and which variable holds its key; their steps build the client from the
# same `endpoint` config section (`pipeline.model.steps.client_for`).


def _ref(out) -> dict:
    return {**out.ref(), "meta": out.meta}


def _output(out, metadata: dict, folder: bool = True) -> dg.Output:
    extra = {"version": out.version}
    if folder:
        extra["path"] = dg.MetadataValue.path(out.path)
    return dg.Output(_ref(out), metadata={**extra, **metadata}, data_version=dg.DataVersion(out.version))


@dg.asset(group_name="model", pool=POOL, code_version=CODE_VERSION, kinds={"openai", "python"}, owners=OWNERS,
          tags={"layer": "model", "pii": "masked"},
          description="Chat-format JSONL for train and val, validated like the OpenAI cookbook.")
def finetune_files(context: dg.AssetExecutionContext, tunegate: TunegateConfigResource,
                   dataset_splits: dict) -> dg.Output:
    out = model_steps.step_finetune_files(tunegate.load(), dataset_splits["version"], run_id=context.run_id)
    v = out.meta["validation"]
    return _output(out, {
        "dataset_version": dataset_splits["version"], "ok": out.meta["ok"],
        "train_examples": out.meta["files"]["train"]["rows"], "val_examples": out.meta["files"]["val"]["rows"],
        "format_errors": dg.MetadataValue.json({s: r["errors"] for s, r in v.items()}),
        "train_report": dg.MetadataValue.json({k: x for k, x in v["train"].items() if k != "errors"}),
    })


@dg.asset(group_name="model", pool=POOL, code_version=CODE_VERSION, kinds={"openai", "duckdb"}, owners=OWNERS,
          tags={"layer": "model", "cost": "paid"},
          description="Fine-tuning job per base model on the configured endpoint; idempotent.")
def finetune_job(context: dg.AssetExecutionContext, tunegate: TunegateConfigResource, endpoint: EndpointResource,
                 dataset_splits: dict, finetune_files: dict) -> dg.Output:
    from pipeline.model.endpoint import EndpointError
    from pipeline.model.finetune import FinetuneFailed, FinetuneTimeout

    try:
        out = model_steps.step_finetune_job(tunegate.load(), dataset_splits["version"], finetune_files,
                                            run_id=context.run_id, log=context.log.info)
    except FinetuneTimeout as exc:
        raise dg.Failure(description=f"{exc}; finetune_job_sensor will start the model half again when it finishes",
                         allow_retries=False) from None
    except (FinetuneFailed, EndpointError) as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    jobs = out.meta["jobs"]
    return _output(out, {
        "jobs": dg.MetadataValue.json(jobs), "endpoint": out.meta["endpoint"],
        "training_cost_total": num(out.meta["training_cost_total"]),
        "finetune_skipped": out.meta.get("finetune_skipped") or "",
        **{f"trained_tokens/{base}": j.get("trained_tokens") for base, j in jobs.items()
           if j.get("trained_tokens") is not None},
    }, folder=False)


@dg.asset(group_name="model", pool=POOL, code_version=CODE_VERSION, kinds={"openai", "parquet"}, owners=OWNERS,
          tags={"layer": "model", "cost": "paid"},
          description="Zero-shot, long prompt, few-shot and fine-tuned candidates on the same frozen test set.")
def holdout_evaluation(context: dg.AssetExecutionContext, tunegate: TunegateConfigResource, endpoint: EndpointResource,
                       dataset_splits: dict, finetune_job: dict) -> dg.Output:
    from pipeline.model.endpoint import EndpointError

    try:
        out = model_steps.step_holdout_evaluation(tunegate.load(), dataset_splits["version"], finetune_job,
                                                  run_id=context.run_id, log=context.log.info)
    except EndpointError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    m = out.meta
    lines = ["| candidate | accuracy | macro-F1 | format validity | price / 1,000 |", "|---|---|---|---|---|"]
    for name, c in m["candidates"].items():
        fmt = lambda x: "n/a" if x is None else f"{x:.3f}"  # noqa: E731 - n/a: not applicable to a stand-in
        lines.append(f"| {name} | {fmt(c['accuracy'])} | {fmt(c['macro_f1'])} | {fmt(c['format_validity'])} | "
                     f"{num(c['price_per_1000'])} |")
    per_candidate = {}
    for name, c in m["candidates"].items():
        per_candidate[f"accuracy/{name}"] = num(c["accuracy"])
        per_candidate[f"macro_f1/{name}"] = num(c["macro_f1"])
        per_candidate[f"price_per_1000/{name}"] = num(c["price_per_1000"])
    ablation = m.get("masking_ablation") or {}  # masked vs unmasked accuracy on the fresh sample
    for name, c in (ablation.get("candidates") or {}).items():
        per_candidate[f"masking_cost/{name}"] = num(c["masking_cost"])
    if ablation:
        per_candidate["masking_ablation"] = dg.MetadataValue.json(ablation)
    return _output(out, {"rows": m["rows"], "best": m["best"], "runner_up": m["runner_up"] or "",
                         "endpoint": m.get("endpoint") or "", "endpoint_note": m.get("endpoint_note") or "real models",
                         "incomplete_candidates": len(m.get("incomplete") or {}),
                         "candidates": dg.MetadataValue.md("\n".join(lines)), **per_candidate,
                         "best_vs_runner_up": dg.MetadataValue.json(m["best_vs_runner_up"] or {})})


@dg.asset(group_name="model", pool=POOL, code_version=CODE_VERSION, kinds={"html", "duckdb"}, owners=OWNERS,
          tags={"layer": "model"},
          description="Cost of errors, monthly ROI, payback and a recommendation (md, html, json).")
def decision_report(context: dg.AssetExecutionContext, tunegate: TunegateConfigResource, holdout_evaluation: dict,
                    finetune_job: dict) -> dg.Output:
    import json

    out = model_steps.step_decision_report(tunegate.load(), holdout_evaluation, finetune_job, run_id=context.run_id)
    md_path = os.path.join(out.path, "report.md")
    if os.path.exists(md_path):  # the preview shows the charts inline; report_html links the full page
        with open(md_path, encoding="utf-8") as fh:
            md = inline_images(fh.read(), out.path)
    else:
        md = f"The report is {out.meta['report']}."
    rec = out.meta.get("recommendation") or {}
    per_candidate = {}
    report_json = os.path.join(out.path, "report.json")
    if os.path.exists(report_json):
        with open(report_json, encoding="utf-8") as fh:
            for c in json.load(fh).get("candidates", []):
                cost = (c.get("economics") or {}).get("total_monthly_cost")
                if cost is not None:
                    per_candidate[f"monthly_cost/{c['name']}"] = num(cost, 2)
    return _output(out, {"report_html": dg.MetadataValue.path(out.meta["report"]),
                         "recommendation": rec.get("headline") or rec.get("action") or "",
                         "recommended_candidate": rec.get("candidate") or "",
                         "recommendation_detail": dg.MetadataValue.json(rec),
                         **per_candidate,
                         "report": dg.MetadataValue.md(md)})
