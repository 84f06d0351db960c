"""Lineage queries over the catalog: from a model back to raw tickets, and from a ticket forward.

`lineage(cfg, subject)` accepts a fine-tuned model id, a fine-tuning job id, a dataset version (or a
prefix of one) or a ticket id, and answers from the catalog alone (no Dagster, no recomputation).
"""
from __future__ import annotations

from pipeline.catalog import Catalog
from pipeline.config import TunegateConfig

TRAINED_ON = "('train', 'val')"


def _records(df):
    return df.astype(object).where(df.notna(), None).to_dict("records")


def dataset_lineage(catalog: Catalog, version: str, limit: int) -> dict:
    dv = catalog.dataset_version(version)
    v = dv["version"]
    counts = catalog.query("SELECT split, count(*) AS tickets FROM ticket_lineage WHERE dataset_version = ? GROUP BY split ORDER BY split", [v])
    samples = catalog.query("""SELECT split, list(ticket_id ORDER BY ticket_id)[1:?] AS ticket_ids FROM ticket_lineage
                               WHERE dataset_version = ? GROUP BY split ORDER BY split""", [limit, v])
    files = catalog.query("SELECT source_file, count(*) AS tickets FROM ticket_lineage WHERE dataset_version = ? GROUP BY 1 ORDER BY 1", [v])
    return {"dataset_version": v, "path": dv["path"], "created_at": dv["created_at"],
            "tickets_by_split": dict(zip(counts.split, counts.tickets.astype(int))),
            "ticket_ids_sample": {r.split: list(r.ticket_ids) for r in samples.itertuples()},
            "source_files": dict(zip(files.source_file, files.tickets.astype(int))),
            "artifacts_upstream": _records(catalog.upstream("dataset_splits", v)[["artifact", "version", "depth", "rows"]]),
            "artifacts_downstream": _records(catalog.downstream("dataset_splits", v))}


def lineage(cfg: TunegateConfig, subject: str, limit: int = 20) -> dict:
    catalog = Catalog(cfg.catalog_path)
    job = catalog.query("SELECT * FROM finetune_jobs WHERE fine_tuned_model = ? OR job_id = ? ORDER BY created_at DESC LIMIT 1",
                        [subject, subject])
    if not job.empty:
        j = job.iloc[0].to_dict()
        routes = catalog.query("SELECT route, action, created_at FROM model_routes WHERE model = ? ORDER BY seq", [j["fine_tuned_model"]])
        evals = catalog.query("SELECT candidate, approach, json_extract(metrics, '$.accuracy')::DOUBLE AS accuracy FROM evaluations WHERE model = ?",
                              [j["fine_tuned_model"]])
        trained = catalog.query(f"""SELECT count(*) AS n FROM ticket_lineage WHERE dataset_version = ? AND split IN {TRAINED_ON}""",
                                [j["dataset_version"]])
        return {"kind": "model", "model": j["fine_tuned_model"], "job_id": j["job_id"], "base_model": j["base_model"],
                "status": j["status"], "trained_tokens": j["trained_tokens"], "endpoint": j["endpoint"],
                "raw_tickets_trained_on": int(trained.n.iloc[0]),
                "routes": _records(routes), "evaluations": _records(evals),
                "dataset": dataset_lineage(catalog, j["dataset_version"], limit)}
    dv = catalog.query("SELECT version FROM dataset_versions WHERE version = ? OR version LIKE ?", [subject, subject + "%"])
    if len(dv) == 1:
        v = dv.version.iloc[0]
        jobs = catalog.query("SELECT job_id, fine_tuned_model, status FROM finetune_jobs WHERE dataset_version = ?", [v])
        return {"kind": "dataset_version", **dataset_lineage(catalog, v, limit), "jobs": _records(jobs)}
    rows = catalog.query("SELECT * FROM ticket_lineage WHERE ticket_id = ? ORDER BY dataset_version", [subject])
    if not rows.empty:
        models = catalog.query(f"""SELECT DISTINCT j.job_id, j.fine_tuned_model, j.dataset_version, l.split
                                   FROM ticket_lineage l JOIN finetune_jobs j USING (dataset_version)
                                   WHERE l.ticket_id = ? AND l.split IN {TRAINED_ON} ORDER BY 1""", [subject])
        return {"kind": "ticket", "ticket_id": subject, "versions": _records(rows), "models_trained_on_it": _records(models)}
    raise LookupError(f"{subject!r} is not a model, job, dataset version or ticket id in the catalog")
