"""The model half as assets: fine-tuning files and jobs, holdout evaluation, the decision report.

Thin wrappers over `pipeline.model.steps`. A fine-tuning job that outlives `finetune.follow_timeout_s`
does not hold the run: the asset fails with a clear message and `finetune_job_sensor` starts a new
run of the model half when the job reaches a terminal state (submission is idempotent, so the new run
picks the same job up).
"""
import json
import os

from dagster import (AssetCheckResult, AssetExecutionContext, AssetSelection, Failure, MetadataValue, Output,
                     RunRequest, SensorEvaluationContext, SkipReason, asset, asset_check, define_asset_job, sensor)

from assets.resources import TunegateConfigResource
from pipeline.model import steps as model_steps

POOL = "tunegate_catalog"


def _ref(out) -> dict:
    return {**out.ref(), "meta": out.meta}


@asset(group_name="model", pool=POOL, description="Chat-format JSONL for train and val, validated like the OpenAI cookbook.")
def finetune_files(context: AssetExecutionContext, tunegate: TunegateConfigResource, dataset_splits: dict) -> Output:
    out = model_steps.step_finetune_files(tunegate.load(), dataset_splits["version"], run_id=context.run_id)
    v = out.meta["validation"]
    return Output(_ref(out), metadata={
        "version": out.version, "dataset_version": dataset_splits["version"], "ok": out.meta["ok"],
        "train_examples": out.meta["files"]["train"]["rows"], "val_examples": out.meta["files"]["val"]["rows"],
        "format_errors": MetadataValue.json({s: r["errors"] for s, r in v.items()}),
        "train_report": MetadataValue.json({k: x for k, x in v["train"].items() if k != "errors"}),
    })


@asset_check(asset=finetune_files, blocking=True, description="No format errors and no example over the token limit.")
def finetune_files_valid(finetune_files: dict) -> AssetCheckResult:
    v = finetune_files["meta"]["validation"]
    errors = {s: sum(r["errors"].values()) for s, r in v.items()}
    return AssetCheckResult(passed=finetune_files["meta"]["ok"], metadata={"errors": MetadataValue.json(errors)})


@asset(group_name="model", pool=POOL, description="Fine-tuning job per base model on the configured endpoint; idempotent.")
def finetune_job(context: AssetExecutionContext, tunegate: TunegateConfigResource, dataset_splits: dict,
                 finetune_files: dict) -> Output:
    from pipeline.model.endpoint import EndpointError
    from pipeline.model.finetune import FinetuneFailed, FinetuneTimeout

    try:
        out = model_steps.step_finetune_job(tunegate.load(), dataset_splits["version"], finetune_files,
                                            run_id=context.run_id, log=context.log.info)
    except FinetuneTimeout as exc:
        raise Failure(description=f"{exc}; finetune_job_sensor will start the model half again when it finishes",
                      allow_retries=False) from None
    except (FinetuneFailed, EndpointError) as exc:
        raise Failure(description=str(exc), allow_retries=False) from None
    return Output(_ref(out), metadata={
        "jobs": MetadataValue.json(out.meta["jobs"]), "endpoint": out.meta["endpoint"],
        "training_cost_total": out.meta["training_cost_total"],
        "finetune_skipped": out.meta.get("finetune_skipped") or ""})


@asset(group_name="model", pool=POOL,
       description="Zero-shot, long prompt, few-shot and fine-tuned candidates on the same frozen test set.")
def holdout_evaluation(context: AssetExecutionContext, tunegate: TunegateConfigResource, dataset_splits: dict,
                       finetune_job: dict) -> Output:
    from pipeline.model.endpoint import EndpointError

    try:
        out = model_steps.step_holdout_evaluation(tunegate.load(), dataset_splits["version"], finetune_job,
                                                  run_id=context.run_id, log=context.log.info)
    except EndpointError as exc:
        raise Failure(description=str(exc), allow_retries=False) from None
    m = out.meta
    lines = ["| candidate | accuracy | macro-F1 | format validity | price / 1,000 |", "|---|---|---|---|---|"]
    for name, c in m["candidates"].items():
        fv = "n/a" if c["format_validity"] is None else f"{c['format_validity']:.3f}"
        lines.append(f"| {name} | {c['accuracy']:.3f} | {c['macro_f1']:.3f} | {fv} | {c['price_per_1000']} |")
    return Output(_ref(out), metadata={"rows": m["rows"], "best": m["best"], "runner_up": m["runner_up"] or "",
                                       "endpoint": m["endpoint"], "endpoint_note": m["endpoint_note"] or "real models",
                                       "candidates": MetadataValue.md("\n".join(lines)),
                                       "best_vs_runner_up": MetadataValue.json(m["best_vs_runner_up"] or {})})


@asset(group_name="model", pool=POOL, description="Cost of errors, monthly ROI, payback and a recommendation (md, html, json).")
def decision_report(context: AssetExecutionContext, tunegate: TunegateConfigResource, holdout_evaluation: dict,
                    finetune_job: dict) -> Output:
    out = model_steps.step_decision_report(tunegate.load(), holdout_evaluation, finetune_job, run_id=context.run_id)
    md_path = os.path.join(out.path, "report.md")
    with open(md_path, encoding="utf-8") as fh:
        md = fh.read()
    return Output(_ref(out), metadata={"report_html": MetadataValue.path(out.meta["report"]),
                                       "recommendation": MetadataValue.json(out.meta["recommendation"] or {}),
                                       "report": MetadataValue.md(md[:20000])})


model_half_job = define_asset_job("model_half", selection=AssetSelection.groups("model"))


@sensor(job=model_half_job, minimum_interval_seconds=120,
        description="Follows fine-tuning jobs that outlived their run; starts the model half when one finishes.")
def finetune_job_sensor(context: SensorEvaluationContext):
    from pipeline.catalog import Catalog
    from pipeline.config import load_config
    from pipeline.model.finetune import poll_once

    cfg = load_config(os.environ.get("TUNEGATE_CONFIG") or None)
    if not cfg.catalog_path.exists():
        return SkipReason("no catalog yet")
    pending = Catalog(cfg.catalog_path).query(
        "SELECT job_id FROM finetune_jobs WHERE status NOT IN ('succeeded', 'failed', 'cancelled')")
    if pending.empty:
        return SkipReason("no fine-tuning job in progress")
    client, _ = model_steps.client_for(cfg)
    done = []
    for job_id in pending["job_id"]:
        row = poll_once(client, Catalog(cfg.catalog_path), job_id)
        if row["status"] in ("succeeded", "failed", "cancelled"):
            done.append(f"{job_id}:{row['status']}")
    if not done:
        return SkipReason(f"{len(pending)} job(s) still running")
    return RunRequest(run_key="ft-" + "-".join(sorted(done)), tags={"tunegate/jobs": json.dumps(done)})


sensors = [finetune_job_sensor]
jobs = [model_half_job]
