"""Runs that outlive the run before them: dead runs released, concurrent runs serialised, a full disk.

Fast tests work on a real Dagster instance and real processes (killed with SIGKILL) without running the
graph. The kill-and-rerun tests of whole runs are in test_faults_kill.py."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from assets import runner
from pipeline.config import load_config
from pipeline.errors import UserError

ROOT = Path(__file__).resolve().parent.parent


def _dead_identity() -> str:
    """The identity of a process that really ran and is gone."""
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    ident = runner.process_identity(p.pid)
    p.send_signal(signal.SIGKILL)
    p.wait()
    return ident


def test_process_identity_tells_live_from_dead():
    assert runner.process_alive(runner.process_identity())
    assert not runner.process_alive(_dead_identity())
    boot, pid, start = runner.process_identity().rsplit(":", 2)
    assert not runner.process_alive(f"another-boot:{pid}:{start}")  # a power cut: the machine restarted


@pytest.fixture
def instance(tmp_path, monkeypatch):
    from dagster import DagsterInstance

    cfg = load_config(None, warehouse=str(tmp_path / "wh"))
    monkeypatch.setenv("DAGSTER_HOME", str(runner.dagster_home(cfg)))
    with DagsterInstance.get() as inst:
        yield inst


def _started_run(instance, ident: str):
    from dagster import DagsterRunStatus
    from dagster._core.storage.dagster_run import DagsterRun

    from assets.definitions import defs

    job = defs.resolve_job_def("refresh_dataset")
    run = instance.create_run_for_job(job, tags={runner.TAG_PROCESS: ident}, status=DagsterRunStatus.NOT_STARTED)
    instance.handle_run_event(run.run_id, _event(run))
    storage = instance.event_log_storage
    storage.initialize_concurrency_limit_to_default(runner.POOL)
    claim = storage.claim_concurrency_slot(runner.POOL, run.run_id, "raw_tickets")
    assert claim.is_claimed
    return instance.get_run_by_id(run.run_id)


def _event(run):
    from dagster import DagsterEvent, DagsterEventType

    return DagsterEvent(event_type_value=DagsterEventType.RUN_START.value, job_name=run.job_name)


@pytest.mark.slow
def test_a_killed_run_is_marked_failed_and_its_slot_released(instance, capsys):
    from dagster import DagsterRunStatus

    dead = _started_run(instance, _dead_identity())
    assert dead.status == DagsterRunStatus.STARTED
    assert instance.event_log_storage.get_concurrency_info(runner.POOL).active_run_ids == {dead.run_id}

    assert runner.release_dead_runs(instance) == [dead.run_id]
    assert instance.get_run_by_id(dead.run_id).status == DagsterRunStatus.FAILURE
    info = instance.event_log_storage.get_concurrency_info(runner.POOL)
    assert info.claimed_slots == [] and info.pending_steps == []
    err = capsys.readouterr().err
    assert dead.run_id[:8] in err and "marked failed" in err


@pytest.mark.slow
def test_a_live_run_keeps_its_slot(instance):
    from dagster import DagsterRunStatus

    live = _started_run(instance, runner.process_identity())
    assert runner.release_dead_runs(instance) == []
    assert instance.get_run_by_id(live.run_id).status == DagsterRunStatus.STARTED
    assert instance.event_log_storage.get_concurrency_info(runner.POOL).active_run_ids == {live.run_id}


@pytest.mark.slow
def test_a_slot_held_by_a_finished_run_is_freed(instance):
    run = _started_run(instance, runner.process_identity())
    instance.report_run_failed(run, "ended")
    storage = instance.event_log_storage
    if storage.get_concurrency_info(runner.POOL).claimed_slots:  # Dagster may already free it on failure
        runner.release_dead_runs(instance)
    assert storage.get_concurrency_info(runner.POOL).claimed_slots == []


HOLD = textwrap.dedent("""
    import sys, time
    from assets import runner
    from pipeline.config import load_config
    cfg = load_config(None, warehouse=sys.argv[1])
    with runner.warehouse_lock(cfg, "refresh_dataset"):
        print("held", flush=True)
        time.sleep(120)
""")


def _holder(wh: Path) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(wh)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


@pytest.mark.slow
def test_a_second_run_waits_says_who_holds_the_lock_and_refuses(tmp_path, capsys):
    wh = tmp_path / "wh"
    p = _holder(wh)
    try:
        cfg = load_config(None, warehouse=str(wh))
        t0 = time.monotonic()
        with pytest.raises(UserError) as err:
            with runner.warehouse_lock(cfg, "refresh_dataset", wait_s=1.5):
                pass
        assert 1.4 < time.monotonic() - t0 < 10
        msg = str(err.value)
        assert "\n" not in msg and f"PID {p.pid}" in msg and f"kill {p.pid}" in msg
        assert f"PID {p.pid}" in capsys.readouterr().err  # said on the console while waiting
    finally:
        p.kill()
        p.wait()


@pytest.mark.slow
def test_the_lock_of_a_killed_run_is_free_at_once(tmp_path):
    wh = tmp_path / "wh"
    p = _holder(wh)
    p.send_signal(signal.SIGKILL)
    p.wait()
    cfg = load_config(None, warehouse=str(wh))
    t0 = time.monotonic()
    with runner.warehouse_lock(cfg, "refresh_dataset", wait_s=5) as me:
        assert me["pid"] == os.getpid()
    assert time.monotonic() - t0 < 1.0
    assert json.loads((wh / ".run.json").read_text())["pid"] == os.getpid()


@pytest.mark.slow
def test_a_waiting_run_goes_on_when_the_first_finishes(tmp_path):
    wh = tmp_path / "wh"
    p = _holder(wh)
    cfg = load_config(None, warehouse=str(wh))
    killer = threading.Timer(1.5, p.send_signal, [signal.SIGTERM])  # the first run is stopped in 1.5 s
    killer.start()
    try:
        t0 = time.monotonic()
        # serialised: it waited for the first, then ran (a lock never freed would raise after wait_s; the
        # bound is loose because two Python processes start first, slowly on a loaded machine)
        with runner.warehouse_lock(cfg, "refresh_dataset", wait_s=90):
            waited = time.monotonic() - t0
        assert 1.0 < waited < 90
    finally:
        killer.join()
        p.kill()
        p.wait()


def test_stale_temporary_folders_of_dead_writers_only_are_removed(tmp_path):
    from pipeline import storage

    zone = tmp_path / storage.CLEAN_ZONE / "masked_tickets"
    zone.mkdir(parents=True)
    dead_pid = int(_dead_identity().rsplit(":", 2)[1])
    (zone / f".tmp-0123456789abcdef-{dead_pid}-deadbeef").mkdir()
    (zone / f".tmp-0123456789abcdef-{os.getppid()}-cafe0000").mkdir()  # a live writer (our parent)
    (zone / ".tmp-0123456789abcdef-1a2b3c4d").mkdir()  # the format of earlier releases
    assert storage.clean_stale_tmp(tmp_path) == 2
    assert [p.name for p in zone.iterdir()] == [f".tmp-0123456789abcdef-{os.getppid()}-cafe0000"]


def test_version_prefix_is_not_a_pattern(tmp_path):
    import pandas as pd

    from pipeline.catalog import Catalog

    cat = Catalog(tmp_path / "catalog.duckdb")
    empty = pd.DataFrame(columns=["ticket_id", "split", "group_key", "first_version", "reason"])
    cat.publish_dataset("a1b2c3d4e5f60718", str(tmp_path), "cfg", {"train": 1}, empty, pd.DataFrame(), None, None)
    assert cat.dataset_version("a1b2")["version"] == "a1b2c3d4e5f60718"
    for pattern in ("%", "_", "a1b2%", "a_b2", ""):
        with pytest.raises(LookupError):
            cat.dataset_version(pattern)


@pytest.mark.slow
def test_a_run_blocked_on_the_pool_names_the_holder_and_stops_on_sigterm(tmp_path, monkeypatch):
    """A live run (started from the UI, say) holds the catalog pool: `tunegate run` says who holds it
    and for how long, and SIGTERM stops it (it used to wait silently and ignore SIGTERM)."""
    import yaml
    from dagster import DagsterInstance, DagsterRunStatus

    from pipeline.data.sample.generator import generate_sample

    generate_sample(tmp_path / "landing", tmp_path / "manifest.json", n_tickets=150)
    cfg_path = tmp_path / "tunegate.yaml"
    cfg_path.write_text(yaml.safe_dump({"warehouse": str(tmp_path / "wh"), "landing": {"path": str(tmp_path / "landing")}}))
    cfg = load_config(cfg_path)
    monkeypatch.setenv("DAGSTER_HOME", str(runner.dagster_home(cfg)))
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    log = tmp_path / "run.log"
    env = {k: v for k, v in os.environ.items() if k not in ("TUNEGATE_WAREHOUSE",)}
    try:
        with DagsterInstance.get() as inst:
            holder = _started_run(inst, runner.process_identity(other.pid))
            with open(log, "w") as out:
                p = subprocess.Popen([sys.executable, "-m", "assets.cli", "run", "--config", str(cfg_path), "--data-only"],
                                     cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + 240
            expected = f"waiting for a slot of pool {runner.POOL}, held by run {holder.run_id[:8]}"
            while expected not in log.read_text():
                assert p.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.5)
            assert f"PID {other.pid}" in log.read_text()
            p.send_signal(signal.SIGTERM)
            t0 = time.monotonic()
            p.wait(timeout=60)
            stopped_in = time.monotonic() - t0
            assert stopped_in < 30
            runs = [r for r in inst.get_runs() if r.run_id != holder.run_id]
            assert len(runs) == 1 and runs[0].status == DagsterRunStatus.FAILURE
            assert inst.event_log_storage.get_concurrency_info(runner.POOL).active_run_ids == {holder.run_id}
            print(f"\nSIGTERM -> exit of a run waiting for a pool slot: {stopped_in:.1f} s")
    finally:
        other.kill()
        other.wait()
        if "p" in locals() and p.poll() is None:
            p.kill()
