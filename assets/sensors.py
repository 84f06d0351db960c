"""Sensors: new files in the landing folder start a refresh."""

import hashlib
import os

from dagster import RunRequest, SensorEvaluationContext, SkipReason, sensor

from assets.schedules import refresh_dataset_job
from pipeline.config import load_config


def landing_fingerprint(cfg) -> tuple[str, int]:
    """A hash of the landing folder's file names, sizes and modification times."""
    folder = cfg.landing_path
    if not folder.exists():
        return "", 0
    entries = sorted((p.name, p.stat().st_size, int(p.stat().st_mtime))
                     for pat in cfg.landing.patterns for p in folder.glob(pat) if p.is_file())
    return hashlib.sha256(repr(entries).encode()).hexdigest()[:16], len(entries)


@sensor(job=refresh_dataset_job, minimum_interval_seconds=60,
        description="Starts a dataset refresh when files in the landing folder are added or change.")
def landing_files_sensor(context: SensorEvaluationContext):
    cfg = load_config(os.environ.get("TUNEGATE_CONFIG") or None)
    fp, n = landing_fingerprint(cfg)
    if not n:
        return SkipReason(f"no files in {cfg.landing_path}")
    if fp == context.cursor:
        return SkipReason(f"{n} landing files, unchanged")
    context.update_cursor(fp)
    return RunRequest(run_key=f"landing-{fp}", tags={"tunegate/landing": fp})
