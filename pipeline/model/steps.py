"""The model half as steps: fine-tuning files, jobs, holdout evaluation and the decision report.

Like `pipeline.data.steps`, each function is what one Dagster asset does: it reads its parents by version,
writes its outputs under the warehouse, records the artifact and its lineage edges in the catalog,
and returns a `StepOutput` with JSON-safe metadata (figures, never ticket text).
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import openai
import pandas as pd

from pipeline import storage
from pipeline.catalog import Catalog
from pipeline.config import TunegateConfig
from pipeline.data.steps import CODE_VERSION, StepOutput, _json_safe, read_split


def _record(cfg: TunegateConfig, artifact: str, version: str, path: str, rows: int | None,
            parents: list[tuple[str, str]], run_id: str | None, meta: dict) -> StepOutput:
    Catalog(cfg.catalog_path).record_artifact(artifact, version, path, rows, parents=parents, run_id=run_id,
                                              code_version=CODE_VERSION, config_hash=cfg.hash(), meta=meta)
    return StepOutput(artifact, version, path, rows or 0, meta)


class EndpointUnreachable(RuntimeError):
    """The model endpoint did not answer; the message names it and where it is configured."""


def _unreachable(endpoint: str, exc: Exception) -> EndpointUnreachable:
    return EndpointUnreachable(f"the model endpoint {endpoint} cannot be reached ({type(exc).__name__}); "
                               "check endpoint.base_url in the config or OPENAI_BASE_URL")


def finetuned_bases(cfg: TunegateConfig) -> list:
    return [m for m in cfg.evaluation.models if m.finetune]


def client_for(cfg: TunegateConfig):
    """(openai client, endpoint id): the configured endpoint, OPENAI_BASE_URL, or the embedded provider.

    The id is the base URL, except for the embedded provider, whose port changes on every start:
    there it names the provider's state folder, so jobs are found again after a restart."""
    from pipeline.model.endpoint import make_client, resolve_endpoint

    state = cfg.warehouse_path / "provider"
    base_url, _ = resolve_endpoint(cfg.endpoint, state)
    embedded = not (cfg.endpoint.base_url or os.environ.get("OPENAI_BASE_URL"))
    return make_client(cfg.endpoint, state), (f"embedded:{state}" if embedded else base_url)


# -- finetune_files --------------------------------------------------------------------------------
def step_finetune_files(cfg: TunegateConfig, dataset_version: str, run_id: str | None = None) -> StepOutput:
    from pipeline.model.finetune_files import build_finetune_files, validate_jsonl

    splits = {s: read_split(cfg, dataset_version, s) for s in ("train", "val")}
    root = cfg.warehouse_path / storage.CLEAN_ZONE / "finetune_files"
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{uuid.uuid4().hex[:12]}"
    try:
        files = build_finetune_files(splits, cfg.taxonomy, tmp, style=cfg.finetune.prompt_style)
        candidate = next((m for m in cfg.evaluation.models if m.name == cfg.finetune.base_model), None)
        reports = {s: validate_jsonl(files[s]["path"], cfg.finetune.max_tokens_per_example, candidate,
                                     cfg.finetune.n_epochs) for s in ("train", "val")}
        (tmp / "validation.json").write_text(json.dumps(reports, indent=2, sort_keys=True, default=str))
        final = root / files["files_hash"][:16]  # named by content: other files, other folder
        if not final.exists():
            os.rename(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    for s in ("train", "val"):
        files[s]["path"] = str(final / Path(files[s]["path"]).name)
    files["out_dir"] = str(final)
    meta = {"files": files, "validation": reports, "ok": all(r["ok"] for r in reports.values())}
    return _record(cfg, "finetune_files", final.name, str(final),
                   files["train"]["rows"] + files["val"]["rows"], [("dataset_splits", dataset_version)], run_id,
                   _json_safe(meta))


# -- finetune_job ----------------------------------------------------------------------------------
def step_finetune_job(cfg: TunegateConfig, dataset_version: str, files_ref: dict, run_id: str | None = None,
                      log=print) -> StepOutput:
    from pipeline.model.finetune import follow, submit_or_reuse

    catalog = Catalog(cfg.catalog_path)
    files = files_ref["meta"]["files"]
    client, base_url = client_for(cfg)
    try:
        client.models.list()
    except (openai.APIConnectionError, openai.APITimeoutError) as exc:
        raise _unreachable(base_url, exc) from None
    jobs = {}
    for model in finetuned_bases(cfg):
        row = submit_or_reuse(client, catalog, files, dataset_version, cfg.finetune_hash(), cfg.finetune, model.name, base_url,
                              price_training_per_1m=model.price_training_per_1m, seed=cfg.splits.seed)
        log(f"fine-tuning {model.name}: job {row['job_id']} ({'reused from ' + row['reused'] if row.get('reused') else 'submitted'})")
        row = follow(client, catalog, row["job_id"], cfg.endpoint.poll_interval_s, timeout_s=cfg.finetune.follow_timeout_s,
                     on_event=lambda ev: log(f"  {ev.get('message')}"), price_training_per_1m=model.price_training_per_1m)
        jobs[model.name] = {"job_id": row["job_id"], "fine_tuned_model": row["fine_tuned_model"], "status": row["status"],
                            "trained_tokens": row.get("trained_tokens"), "cost": row.get("cost")}
        _record(cfg, "finetune_job", row["job_id"], base_url, row.get("trained_tokens"),
                [("finetune_files", files_ref["version"])], run_id, {"base_model": model.name, **jobs[model.name]})
        _record(cfg, "model", row["fine_tuned_model"], base_url, None, [("finetune_job", row["job_id"])], run_id,
                {"base_model": model.name, "dataset_version": dataset_version})
    version = storage.content_hash({"jobs": pd.DataFrame(jobs).T.reset_index().astype(str)})
    meta = {"jobs": jobs, "endpoint": base_url, "training_cost_total": sum((j["cost"] or 0) for j in jobs.values())}
    return StepOutput("finetune_job", version, base_url, len(jobs), _json_safe(meta))


# -- holdout_evaluation ----------------------------------------------------------------------------
def step_holdout_evaluation(cfg: TunegateConfig, dataset_version: str, job_ref: dict, run_id: str | None = None,
                            log=print) -> StepOutput:
    from pipeline.model.evaluation import candidates_from_config, record, run_evaluation

    test = read_split(cfg, dataset_version, "test")
    train = read_split(cfg, dataset_version, "train")
    fine_tuned = {base: j["fine_tuned_model"] for base, j in job_ref["meta"]["jobs"].items()}
    client, _ = client_for(cfg)
    candidates = candidates_from_config(cfg, fine_tuned)
    result = run_evaluation(client, test, train, cfg, candidates, dataset_version, log=log)
    failed = [n for n, m in result.metrics.items() if m.get("n_errors", 0) >= result.n_rows]
    if failed:  # a candidate with no answer at all is an outage, not a model to score
        samples = {n: (result.metrics[n].get("errors_sample") or [None])[0] for n in failed}
        raise RuntimeError(f"every request failed for {len(failed)} candidate(s) {failed}: {samples}")
    summary = result.to_dict()
    version = storage.content_hash({"predictions": result.predictions[["ticket_id", "candidate", "predicted"]].astype(str)},
                                   extra=json.dumps(fine_tuned, sort_keys=True) + cfg.hash())
    tables = {"predictions": result.predictions}
    version, folder = storage.write_version(cfg.warehouse_path, storage.CLEAN_ZONE, "holdout_evaluation", tables, version=version)
    (folder / "result.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    record(Catalog(cfg.catalog_path), result, cfg.hash(), report_path=None)
    parents = [("dataset_splits", dataset_version)] + [("model", j["fine_tuned_model"]) for j in job_ref["meta"]["jobs"].values()]
    meta = {"rows": result.n_rows, "best": result.best, "runner_up": result.runner_up,
            "best_vs_runner_up": result.best_vs_runner_up,
            "candidates": {n: {k: m.get(k) for k in ("accuracy", "accuracy_ci", "macro_f1", "macro_f1_ci", "format_validity",
                                                    "latency_p50_s", "latency_p95_s", "price_per_1000")}
                           for n, m in result.metrics.items()}}
    return _record(cfg, "holdout_evaluation", version, str(folder), result.n_rows, parents, run_id, _json_safe(meta))


def load_evaluation(path: str):
    from pipeline.model.evaluation import EvaluationResult

    folder = Path(path)
    d = json.loads((folder / "result.json").read_text())
    return EvaluationResult.from_dict(d, predictions=pd.read_parquet(folder / "predictions.parquet"))


# -- decision_report -------------------------------------------------------------------------------
def step_decision_report(cfg: TunegateConfig, eval_ref: dict, job_ref: dict, run_id: str | None = None) -> StepOutput:
    from pipeline.model.report import build_report

    catalog = Catalog(cfg.catalog_path)
    result = load_evaluation(eval_ref["path"])
    training_cost = {base: (j.get("cost") or 0.0) for base, j in job_ref["meta"]["jobs"].items()}
    out_dir = cfg.warehouse_path / "reports" / eval_ref["version"]
    report = build_report(result, cfg, training_cost, catalog.current_route(), out_dir)
    # "latest" is a symlink swapped in one step: a reader never finds it missing or half-written
    latest = cfg.warehouse_path / "reports" / "latest"
    link = latest.with_name(f".latest-{uuid.uuid4().hex[:8]}")
    link.symlink_to(out_dir.name, target_is_directory=True)
    if latest.exists() and not latest.is_symlink():
        shutil.rmtree(latest)
    os.replace(link, latest)
    # the route comparison (pipeline.routes) reads each candidate's economics from the catalog
    from pipeline.model.evaluation import eval_id

    for cand in report.get("candidates", []):
        metrics = {k: v for k, v in cand.items() if k not in ("per_class_f1", "per_class")}
        metrics.update({k: v for k, v in (cand.get("economics") or {}).items()})
        catalog.record_evaluation(eval_id(result.dataset_version, cand["name"], cfg.hash()), result.dataset_version,
                                  cand["name"], cand["model"], cand["approach"], metrics,
                                  str(out_dir / "report.json"))
    recommendation = report.get("recommendation") or {}
    meta = {"report": str(out_dir / "report.html"), "recommendation": recommendation,
            "headline": recommendation.get("headline")}
    return _record(cfg, "decision_report", eval_ref["version"], str(out_dir), None,
                   [("holdout_evaluation", eval_ref["version"])], run_id, _json_safe(meta))
