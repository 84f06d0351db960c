"""Sensors: new files in the landing folder start a refresh; a finished fine-tuning job restarts the model half."""
import hashlib
import json

import dagster as dg

from assets.jobs import model_half_job, refresh_dataset_job
from assets.resources import CatalogResource, EndpointResource, TunegateConfigResource

TERMINAL = ("succeeded", "failed", "cancelled")


def landing_fingerprint(cfg) -> tuple[str, int]:
    """A hash of the landing folder's file names, sizes and modification times."""
    folder = cfg.landing_path
    if not folder.exists():
        return "", 0
    entries = sorted((p.name, p.stat().st_size, int(p.stat().st_mtime))
                     for pat in cfg.landing.patterns for p in folder.glob(pat) if p.is_file())
    return hashlib.sha256(repr(entries).encode()).hexdigest()[:16], len(entries)


@dg.sensor(job=refresh_dataset_job, minimum_interval_seconds=60,
           description="Starts a dataset refresh when files in the landing folder are added or change.")
def landing_files_sensor(context: dg.SensorEvaluationContext, tunegate: TunegateConfigResource):
    cfg = tunegate.load()
    fp, n = landing_fingerprint(cfg)
    if not n:
        return dg.SkipReason(f"no files in {cfg.landing_path}")
    if fp == context.cursor:
        return dg.SkipReason(f"{n} landing files, unchanged")
    context.update_cursor(fp)
    return dg.RunRequest(run_key=f"landing-{fp}", tags={"tunegate/landing": fp})


@dg.sensor(job=model_half_job, minimum_interval_seconds=120,
           description="Follows fine-tuning jobs that outlived their run; starts the model half when one finishes.")
def finetune_job_sensor(context: dg.SensorEvaluationContext, catalog: CatalogResource, endpoint: EndpointResource):
    from pipeline.model.finetune import poll_once

    if not catalog.exists():
        return dg.SkipReason("no catalog yet")
    pending = catalog.catalog().query(
        f"SELECT job_id FROM finetune_jobs WHERE status NOT IN {TERMINAL}")
    if pending.empty:
        return dg.SkipReason("no fine-tuning job in progress")
    client, _ = endpoint.client()
    done = []
    for job_id in pending["job_id"]:
        row = poll_once(client, catalog.catalog(), job_id)
        if row["status"] in TERMINAL:
            done.append(f"{job_id}:{row['status']}")
    if not done:
        return dg.SkipReason(f"{len(pending)} job(s) still running")
    return dg.RunRequest(run_key="ft-" + "-".join(sorted(done)), tags={"tunegate/jobs": json.dumps(done)})


ALL_SENSORS = [landing_files_sensor, finetune_job_sensor]
