"""The model half as steps: fine-tuning files, jobs, holdout evaluation and the decision report.

Endpoints are per role: fine-tuning runs on `finetune.endpoint` (where the fine-tuned models are then
served and evaluated), each base model is evaluated on its `evaluation.models[].endpoint`, and both
default to `endpoint`. Before any paid work `step_finetune_job` probes every endpoint it will use
(models, fine-tuning API, context length) and checks the configured model names; an endpoint
without a fine-tuning API means the run evaluates prompt candidates only and says so.

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

import pandas as pd

from pipeline import storage
from pipeline.catalog import Catalog
from pipeline.config import TunegateConfig
from pipeline.data.steps import CODE_VERSION, StepOutput, _json_safe, read_split
from pipeline.model.endpoint import EndpointError, EndpointUnreachable  # noqa: F401 - raised by the steps
from pipeline.progress import tracker


def _record(cfg: TunegateConfig, artifact: str, version: str, path: str, rows: int | None,
            parents: list[tuple[str, str]], run_id: str | None, meta: dict) -> StepOutput:
    Catalog(cfg.catalog_path).record_artifact(artifact, version, path, rows, parents=parents, run_id=run_id,
                                              code_version=CODE_VERSION, config_hash=cfg.hash(), meta=meta)
    return StepOutput(artifact, version, path, rows or 0, meta)


def finetuned_bases(cfg: TunegateConfig) -> list:
    return [m for m in cfg.evaluation.models if m.finetune]


def client_for(cfg: TunegateConfig, spec=None):
    """(openai client, endpoint id) for `spec` (default: the fine-tuning endpoint, where jobs live):
    the configured base URL, OPENAI_BASE_URL, or the embedded provider.

    The id is the base URL, except for the embedded provider, whose port changes on every start:
    there it names the provider's state folder, so jobs are found again after a restart."""
    from pipeline.model.endpoint import connect

    client, endpoint_id, _ = connect(spec or cfg.finetune_endpoint, cfg.warehouse_path / "provider")
    return client, endpoint_id


class _Endpoints:
    """The clients and probes of the endpoints one step uses, each connected and probed once."""

    def __init__(self, cfg: TunegateConfig):
        self.cfg = cfg
        self._seen: dict[str, tuple] = {}

    def get(self, spec, fine_tuning: bool = False):
        """(client, endpoint id, base url, probe) for `spec`."""
        from pipeline.model.endpoint import connect, probe

        client, endpoint_id, url = connect(spec, self.cfg.warehouse_path / "provider")
        known = self._seen.get(endpoint_id)
        if known is None or (fine_tuning and known[3].fine_tuning is None):
            known = (client, endpoint_id, url, probe(client, endpoint_id, fine_tuning=fine_tuning,
                                                     api_key_env=spec.api_key_env))
            self._seen[endpoint_id] = known
        return known

    def probes(self) -> dict:
        return {eid: v[3].to_dict() for eid, v in self._seen.items()}


def evaluation_routes(cfg: TunegateConfig, candidates, eps: "_Endpoints | None" = None) -> tuple[dict, dict]:
    """(candidate name -> Route, provenance): each candidate's endpoint, probed, its model checked against the
    endpoint's models list. A fine-tuned model is evaluated where it was trained and is served."""
    from pipeline.model.evaluation import Route

    eps = eps or _Endpoints(cfg)
    routes = {}
    for cand in candidates:
        spec = cfg.finetune_endpoint if cand.approach == "fine_tuned" else cfg.model_endpoint(cand.base_model)
        client, endpoint_id, _, pr = eps.get(spec)
        pr.check_models([cand.model], cand.name)
        routes[cand.name] = Route(client, spec, endpoint_id, pr.context_tokens.get(cand.model))
    return routes, _provenance(candidates, routes)


def _provenance(candidates, routes) -> dict:
    """`provenance.describe` per endpoint the candidates use, merged: which models are the embedded stand-ins."""
    from pipeline.model.provenance import describe_with_switch

    merged: dict = {}
    for endpoint in dict.fromkeys(routes[c.name].endpoint for c in candidates):
        group = [c for c in candidates if routes[c.name].endpoint == endpoint]
        facts = describe_with_switch(routes[group[0].name].client, endpoint, group)
        if not merged:
            merged = facts
            continue
        merged["models"].update(facts["models"])
        merged["stand_in_candidates"] += facts["stand_in_candidates"]
        merged["endpoint"] = f'{merged["endpoint"]}; {facts["endpoint"]}'
        merged["embedded"] = merged["embedded"] and facts["embedded"]
        merged["note"] = " ".join(x for x in (merged["note"], facts["note"]) if x)
    return merged


def _no_finetuning_line(url: str, detail: str) -> str:
    return (f"no fine-tuning API at {url}: evaluating prompt candidates only; set finetune.endpoint to "
            f"fine-tune elsewhere ({detail})")


def plan_endpoints(cfg: TunegateConfig, log=print) -> dict:
    """Probe every endpoint the model half will use, before any paid work.

    Checks each evaluated model against its endpoint's models list and, when fine-tuning is asked
    for, whether the fine-tuning endpoint has a fine-tuning API. Returns {"finetune": bool, "skipped":
    the one-line reason or None, "endpoint": fine-tuning endpoint id, "probes": ...}."""
    eps = _Endpoints(cfg)
    for m in cfg.evaluation.models:
        _, _, _, pr = eps.get(cfg.endpoint_for(m.endpoint))
        pr.check_models([m.name], f"evaluation.models[{m.name}]")
    bases = finetuned_bases(cfg)
    _, ft_id, ft_url, ft_probe = eps.get(cfg.finetune_endpoint, fine_tuning=bool(bases))
    skipped = None
    if bases and not ft_probe.fine_tuning:
        skipped = _no_finetuning_line(ft_url, ft_probe.fine_tuning_detail)
        log(skipped)
    elif bases:
        ft_probe.check_models([m.name for m in bases], "fine-tuning base models")
    return {"finetune": bool(bases) and skipped is None, "skipped": skipped, "endpoint": ft_id,
            "probes": eps.probes()}


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
    plan = plan_endpoints(cfg, log=log)
    client, base_url = client_for(cfg)
    jobs = {}
    if not plan["finetune"]:
        version = storage.content_hash({"jobs": pd.DataFrame({"skipped": [str(plan["skipped"])]})})
        meta = {"jobs": {}, "endpoint": base_url, "training_cost_total": 0.0, "probes": plan["probes"],
                "finetune_skipped": plan["skipped"] or "no model has finetune: true"}
        return StepOutput("finetune_job", version, base_url, 0, _json_safe(meta))
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
    meta = {"jobs": jobs, "endpoint": base_url, "training_cost_total": sum((j["cost"] or 0) for j in jobs.values()),
            "probes": plan["probes"], "finetune_skipped": None}
    return StepOutput("finetune_job", version, base_url, len(jobs), _json_safe(meta))


# -- holdout_evaluation ----------------------------------------------------------------------------
def step_holdout_evaluation(cfg: TunegateConfig, dataset_version: str, job_ref: dict, run_id: str | None = None,
                            log=print) -> StepOutput:
    from pipeline.model.evaluation import candidates_from_config, record, run_evaluation

    test = read_split(cfg, dataset_version, "test")
    train = read_split(cfg, dataset_version, "train")
    from pipeline.model.fresh import estimate_checks

    fine_tuned = {base: j["fine_tuned_model"] for base, j in job_ref["meta"]["jobs"].items()}
    candidates = candidates_from_config(cfg, fine_tuned)
    eps = _Endpoints(cfg)
    routes, provenance = evaluation_routes(cfg, candidates, eps)
    partial = cfg.warehouse_path / storage.CLEAN_ZONE / "holdout_evaluation" / ".partial"
    skipped = job_ref["meta"].get("finetune_skipped")
    result = run_evaluation(None, test, train, cfg, candidates, dataset_version, log=log, routes=routes,
                            partial_dir=partial, provenance=provenance, progress=tracker("evaluation"),
                            settings_extra={"finetune_skipped": skipped, "probes": eps.probes()})
    if result.best is None:  # nothing complete to rank: the answers received wait in the partial store
        samples = {n: (m.get("errors_sample") or [None])[0] for n, m in result.metrics.items()}
        raise RuntimeError(f"no candidate answered every row ({samples}); the answers received are kept and "
                           "the next run asks only for the missing rows")
    result.settings.update(estimate_checks(cfg, None, result, test, train, candidates, provenance, log, routes=routes))
    summary = result.to_dict()
    version = storage.content_hash({"predictions": result.predictions[["ticket_id", "candidate", "predicted"]].astype(str)},
                                   extra=json.dumps(fine_tuned, sort_keys=True) + cfg.hash())
    tables = {"predictions": result.predictions}
    version, folder = storage.write_version(cfg.warehouse_path, storage.CLEAN_ZONE, "holdout_evaluation", tables, version=version)
    (folder / "result.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    record(Catalog(cfg.catalog_path), result, cfg.hash(), report_path=None)
    parents = [("dataset_splits", dataset_version)] + [("model", j["fine_tuned_model"]) for j in job_ref["meta"]["jobs"].values()]
    fresh = result.settings.get("fresh_sample") or {}
    meta = {"rows": result.n_rows, "best": result.best, "runner_up": result.runner_up,
            "best_vs_runner_up": result.best_vs_runner_up,
            "incomplete": result.settings.get("incomplete"), "finetune_skipped": skipped,
            "endpoint": provenance["endpoint"],
            "stand_in_candidates": provenance["stand_in_candidates"], "endpoint_note": provenance["note"],
            "fresh_gap": {n: [c["gap"], c["gap_ci"]] for n, c in (fresh.get("candidates") or {}).items()},
            "masking_ablation": _ablation_meta(fresh.get("masking_ablation")),
            "candidates": {n: {k: m.get(k) for k in ("accuracy", "accuracy_ci", "macro_f1", "macro_f1_ci", "format_validity",
                                                    "latency_p50_s", "latency_p95_s", "price_per_1000", "complete",
                                                    "failed_rows", "retries", "structured_mode", "few_shot_examples",
                                                    "endpoint")}
                           for n, m in result.metrics.items()}}
    return _record(cfg, "holdout_evaluation", version, str(folder), result.n_rows, parents, run_id, _json_safe(meta))


def _ablation_meta(ab: dict | None) -> dict | None:
    """The masking ablation's figures for the Dagster metadata: per candidate the masked and unmasked accuracy
    and what masking costs, per entity type the rows and the cost (counts and figures only)."""
    if not ab:
        return None
    keep = ("n", "masked_accuracy", "unmasked_accuracy", "masking_cost", "masking_cost_ci", "mcnemar_p")
    return {"run": ab.get("run"), "reason": ab.get("reason"), "note": ab.get("note", ""),
            "rows": ab.get("rows"), "rows_with_masks": ab.get("rows_with_masks"),
            "candidates": {n: {k: c.get(k) for k in keep} for n, c in (ab.get("candidates") or {}).items()},
            "by_type": {t: {"rows": e["rows"], "cost": {n: [c["masking_cost"], c["masking_cost_ci"], c["mcnemar_p"]]
                                                        for n, c in e["candidates"].items()}}
                        for t, e in (ab.get("by_type") or {}).items()}}


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
    from datetime import datetime, timezone

    report = build_report(result, cfg, training_cost, catalog.current_route(), out_dir, run_id=run_id,
                          endpoint=job_ref["meta"].get("endpoint"),
                          generated_at=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
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
