"""Run the asset graph outside the UI (CLI, tests) against the same Dagster instance the UI uses.

The instance lives under `<warehouse>/.dagster` with the project's dagster.yaml, so runs started from
the command line show up in `tunegate ui`, and runs from either share the concurrency pools.

A run survives the death of the one before it:

* One run at a time per warehouse: a run holds an exclusive lock on `<warehouse>/.run.lock` (the
  kernel releases it when the process dies, even on `kill -9`). A second run waits for it, saying on
  the console which process holds it and for how long it has waited, and refuses with one line after
  `TUNEGATE_RUN_WAIT_S` seconds (default 600).
* Every run is tagged with its process (boot id, PID, process start time). Before a run starts, runs
  left STARTED by a process that no longer exists (killed, or a power cut) are marked failed and the
  concurrency slots they held are released; so are slots held by runs that have already ended.
* While a step waits for a slot of the `tunegate_catalog` pool, the console says which run holds it
  and for how long; a holder found dead meanwhile is released at once.
* SIGTERM stops a run like Ctrl-C, also while a step waits for a pool slot (where Dagster does not
  look for signals): the run is marked failed, its slots freed, and the process exits.
"""
import fcntl
import json
import logging
import os
import shutil
import signal
import socket
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.utils import make_new_run_id

from pipeline.config import TunegateConfig
from pipeline.errors import UserError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
POOL = "tunegate_catalog"
TAG_PROCESS = "tunegate/process"  # "<boot id>:<pid>:<process start time>"
WAIT_ENV = "TUNEGATE_RUN_WAIT_S"
NOTICE_EVERY_S = 10.0

log = logging.getLogger("tunegate.runner")


def _say(msg: str) -> None:
    print(f"tunegate: {msg}", file=sys.stderr, flush=True)


_HOME_SET_HERE: str | None = None  # the DAGSTER_HOME that run_job set last in this process


def dagster_home(cfg: TunegateConfig) -> Path:
    """The Dagster instance folder: $DAGSTER_HOME when the user set it, else <warehouse>/.dagster.

    A value that an earlier run_job of this process set is not the user's: a second warehouse in the same
    process (tests, notebooks) gets its own instance, not the first one's."""
    env = os.environ.get("DAGSTER_HOME")
    home = Path(env) if env and env != _HOME_SET_HERE else cfg.warehouse_path / ".dagster"
    home.mkdir(parents=True, exist_ok=True)
    src = PROJECT_ROOT / "dagster.yaml"
    if src.exists() and not (home / "dagster.yaml").exists():
        shutil.copyfile(src, home / "dagster.yaml")
    return home


# -- who is running ---------------------------------------------------------------------------------
def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return socket.gethostname()


def _start_time(pid: int) -> str | None:
    """The process start time (clock ticks since boot) from /proc, or None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return "?"
        return "?"  # no /proc here: alive is all we know
    return stat.rsplit(")", 1)[1].split()[19]


def process_identity(pid: int | None = None) -> str:
    pid = pid or os.getpid()
    return f"{_boot_id()}:{pid}:{_start_time(pid)}"


def process_alive(identity: str) -> bool:
    """Is the process named by `process_identity` still running (same boot, same PID, same start)?"""
    try:
        boot, pid, start = identity.rsplit(":", 2)
        pid_i = int(pid)
    except ValueError:
        return True  # not ours to judge
    if boot != _boot_id():
        return False  # the machine restarted since (a power cut)
    now = _start_time(pid_i)
    return now is not None and (now == start or "?" in (now, start))


def _describe(holder: dict) -> str:
    started = holder.get("started_at")
    since = f", started {time.time() - started:.0f} s ago" if isinstance(started, (int, float)) else ""
    return f"PID {holder.get('pid', '?')} ({holder.get('command', 'a tunegate run')}{since})"


# -- the warehouse lock ----------------------------------------------------------------------------
@contextmanager
def warehouse_lock(cfg: TunegateConfig, job: str, wait_s: float | None = None):
    """Hold `<warehouse>/.run.lock` for the duration of a run; wait (and say so) while another run holds it."""
    root = cfg.warehouse_path
    root.mkdir(parents=True, exist_ok=True)
    lock_path, info_path = root / ".run.lock", root / ".run.json"
    if wait_s is None:
        wait_s = float(os.environ.get(WAIT_ENV, "600"))
    fh = open(lock_path, "a+")
    t0 = time.monotonic()
    said = -NOTICE_EVERY_S
    try:
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - t0
                try:
                    holder = json.loads(info_path.read_text())
                except (OSError, ValueError):
                    holder = {}
                if waited >= wait_s:
                    raise UserError(f"another run holds the warehouse {root}: {_describe(holder)}; waited "
                                    f"{waited:.0f} s. Let it finish, or stop it (kill {holder.get('pid', 'PID')}), "
                                    f"or set {WAIT_ENV} to wait longer") from None
                if waited - said >= NOTICE_EVERY_S:
                    said = waited
                    _say(f"waiting for the run lock on {root}, held by {_describe(holder)}: waited {waited:.0f} s")
                time.sleep(0.2)
        if time.monotonic() - t0 > 1:
            _say(f"run lock on {root} acquired after {time.monotonic() - t0:.0f} s")
        me = {"pid": os.getpid(), "process": process_identity(), "job": job, "started_at": time.time(),
              "command": " ".join(Path(sys.argv[0]).name.split() + sys.argv[1:3]) or job}
        tmp = info_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(me))
        os.replace(tmp, info_path)
        yield me
    finally:
        fh.close()  # releases the lock


# -- dead runs and their slots ---------------------------------------------------------------------
_ACTIVE = [DagsterRunStatus.STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.NOT_STARTED,
           DagsterRunStatus.CANCELING]


def release_dead_runs(instance: DagsterInstance, exclude: str | None = None) -> list[str]:
    """Mark runs whose process is gone as failed and free the concurrency slots they (or any run that
    has ended) still hold. Returns the ids of the runs released."""
    released = []
    for run in instance.get_runs(filters=RunsFilter(statuses=_ACTIVE)):
        ident = run.tags.get(TAG_PROCESS)
        if run.run_id == exclude or not ident or process_alive(ident):
            continue
        pid = ident.rsplit(":", 2)[1]
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        instance.report_run_failed(run, f"the process that ran this run (PID {pid}) is gone: killed, or the "
                                        "machine stopped. Marked failed by the next run, its slots released.")
        released.append(run.run_id)
        _say(f"run {run.run_id[:8]} ({run.job_name}, PID {pid}) died without finishing: marked failed, "
             "its concurrency slots released")
    storage = instance.event_log_storage
    try:
        keys = storage.get_concurrency_keys()
    except Exception:  # noqa: BLE001 - an instance without concurrency storage
        keys = set()
    for key in keys:
        info = storage.get_concurrency_info(key)
        for run_id in {s.run_id for s in info.claimed_slots} | {s.run_id for s in info.pending_steps}:
            if run_id == exclude:
                continue
            run = instance.get_run_by_id(run_id)
            if run is None or run.is_finished:
                storage.free_concurrency_slots_for_run(run_id)
                _say(f"freed pool {key} slots held by run {run_id[:8]}, which has ended")
    return released


def _watch_pool(instance: DagsterInstance, run_id: str, stop: threading.Event) -> None:
    """Say on the console while this run's step waits for a `tunegate_catalog` slot held by another run."""
    t0 = None
    said = -NOTICE_EVERY_S
    signalled = None
    while not stop.wait(1.0):
        # Dagster turns SIGTERM and SIGINT into a flag it checks inside steps only; a step waiting for
        # a pool slot would never see it. Give Dagster 5 s to act, then stop the run ourselves.
        if _interrupted():
            signalled = signalled or time.monotonic()
            if time.monotonic() - signalled > 5.0 and not stop.is_set():
                _stop_stuck_run(instance, run_id)
        else:
            signalled = None
        try:
            info = instance.event_log_storage.get_concurrency_info(POOL)
        except Exception:  # noqa: BLE001 - the watcher never breaks a run
            continue
        mine = any(p.run_id == run_id and p.assigned_timestamp is None for p in info.pending_steps)
        holders = {s.run_id for s in info.claimed_slots} - {run_id}
        if not (mine and holders):
            t0 = None
            continue
        t0 = t0 or time.monotonic()
        waited = time.monotonic() - t0
        if waited - said < NOTICE_EVERY_S:
            continue
        said = waited
        names = []
        for h in sorted(holders):
            run = instance.get_run_by_id(h)
            ident = run.tags.get(TAG_PROCESS, "") if run else ""
            pid = ident.rsplit(":", 2)[1] if ident.count(":") >= 2 else "?"
            names.append(f"run {h[:8]} ({run.job_name if run else 'unknown'}, {run.status.value if run else '?'}, PID {pid})")
        _say(f"waiting for a slot of pool {POOL}, held by {', '.join(names)}: waited {waited:.0f} s")
        release_dead_runs(instance, exclude=run_id)


def _interrupted() -> bool:
    """Has Dagster captured a SIGINT/SIGTERM it has not acted on yet?"""
    try:
        from dagster._utils.interrupts import check_captured_interrupt

        return check_captured_interrupt()
    except Exception:  # noqa: BLE001 - a private helper that may move
        return False


def _stop_stuck_run(instance: DagsterInstance, run_id: str) -> None:
    """A signal arrived while the run waits where Dagster does not look for one (a pool slot): mark
    the run failed, free its slots and exit, as the user asked."""
    run = instance.get_run_by_id(run_id)
    if run is not None and not run.is_finished:
        instance.event_log_storage.free_concurrency_slots_for_run(run_id)
        instance.report_run_failed(run, "stopped by a signal (SIGTERM or Ctrl-C) while waiting")
    _say(f"run {run_id[:8]} stopped by a signal while waiting; marked failed")
    logging.shutdown()
    os._exit(143)


def run_job(cfg: TunegateConfig, config_path: str | None, job: str = "full_pipeline", raise_on_error: bool = True,
            wait_s: float | None = None, on_event=None):
    """Execute a job in process, one run per warehouse at a time; returns the ExecuteInProcessResult.
    `on_event` sees each event as it is logged (assets.run_console prints the run; Dagster's console stays quiet)."""
    global _HOME_SET_HERE
    home = dagster_home(cfg)
    os.environ["DAGSTER_HOME"] = _HOME_SET_HERE = str(home)
    if config_path:
        os.environ["TUNEGATE_CONFIG"] = str(Path(config_path).resolve())
    else:
        os.environ.pop("TUNEGATE_CONFIG", None)
    from assets.definitions import defs

    with warehouse_lock(cfg, job, wait_s):
        instance = DagsterInstance.get()
        release_dead_runs(instance)
        run_id = make_new_run_id()
        stop = threading.Event()
        watcher = threading.Thread(target=_watch_pool, args=(instance, run_id, stop), name="pool-watch", daemon=True)
        watcher.start()
        level = os.environ.get("TUNEGATE_LOG_LEVEL", "INFO")
        if on_event is not None:
            level = "CRITICAL"
            instance.add_event_listener(run_id, on_event)
        run_config = {"loggers": {"console": {"config": {"log_level": level}}}}
        _say(f"run {run_id[:8]} ({job}) starting on {cfg.warehouse_path}")
        old_term = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
        try:
            return defs.resolve_job_def(job).execute_in_process(
                instance=instance, raise_on_error=raise_on_error, run_config=run_config, run_id=run_id,
                tags={TAG_PROCESS: process_identity()})
        finally:
            stop.set()
            if old_term is not None:  # Dagster leaves SIGTERM mapped to the SIGINT handler
                signal.signal(signal.SIGTERM, old_term)
