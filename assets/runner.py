"""Run the asset graph outside the UI (CLI, tests) against the same Dagster instance the UI uses.

The instance lives under `<warehouse>/.dagster` with the project's dagster.yaml, so runs started from
the command line show up in `tunegate ui`, and runs from either share the concurrency pools.
"""
import os
import shutil
from pathlib import Path

from dagster import DagsterInstance

from pipeline.config import TunegateConfig

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def dagster_home(cfg: TunegateConfig) -> Path:
    home = Path(os.environ.get("DAGSTER_HOME") or cfg.warehouse_path / ".dagster")
    home.mkdir(parents=True, exist_ok=True)
    src = PROJECT_ROOT / "dagster.yaml"
    if src.exists() and not (home / "dagster.yaml").exists():
        shutil.copyfile(src, home / "dagster.yaml")
    return home


def run_job(cfg: TunegateConfig, config_path: str | None, job: str = "full_pipeline", raise_on_error: bool = True,
            on_event=None):
    """Execute a job in process; returns the ExecuteInProcessResult. `on_event` sees each event as it is logged."""
    home = dagster_home(cfg)
    os.environ["DAGSTER_HOME"] = str(home)
    if config_path:
        os.environ["TUNEGATE_CONFIG"] = str(Path(config_path).resolve())
    else:
        os.environ.pop("TUNEGATE_CONFIG", None)
    from assets.definitions import defs

    instance = DagsterInstance.get()
    level = os.environ.get("TUNEGATE_LOG_LEVEL", "INFO")
    run_id = None
    if on_event is not None:  # the listener prints the run (assets.run_console); Dagster's console stays quiet
        level = "CRITICAL"
        from dagster._core.utils import make_new_run_id

        run_id = make_new_run_id()
        instance.add_event_listener(run_id, on_event)
    run_config = {"loggers": {"console": {"config": {"log_level": level}}}}
    return defs.resolve_job_def(job).execute_in_process(instance=instance, raise_on_error=raise_on_error,
                                                        run_config=run_config, run_id=run_id)
