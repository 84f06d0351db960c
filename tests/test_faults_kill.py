"""kill -9 of `tunegate run` at many points, then run again: the re-run starts at once, finishes, and
ends with the version ids of a clean run; during fine-tuning, no second job is submitted.

These run the real command line in a subprocess on a small sample of the bundled data and kill it
with SIGKILL (no clean-up code runs), so they take minutes: one kill point (between dedup and labels) runs
in every full suite, the whole matrix with TUNEGATE_FULL_FAULTS=1.
Each prints the time from the kill to the end of the completed re-run."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipeline.catalog import Catalog

ROOT = Path(__file__).resolve().parent.parent
FULL = os.environ.get("TUNEGATE_FULL_FAULTS") == "1"
pytestmark = pytest.mark.slow
# one kill point runs in every full suite (CI); the whole matrix with TUNEGATE_FULL_FAULTS=1
full_only = pytest.mark.skipif(not FULL, reason="the whole kill matrix: set TUNEGATE_FULL_FAULTS=1")


@pytest.fixture(scope="module")
def landing(tmp_path_factory):
    from pipeline.data.sample.generator import generate_sample

    root = tmp_path_factory.mktemp("kill-landing")
    generate_sample(root / "landing", root / "manifest.json", n_tickets=400)  # 300 trips a labels bug (empty issues table)
    return root / "landing"


def _config(tmp_path: Path, landing: Path, name: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"warehouse": str(tmp_path / name), "landing": {"path": str(landing)},
                                    "evaluation": {"sample_size": 40, "bootstrap": 100, "repeats": 1}}))
    return path


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("TUNEGATE_WAREHOUSE", "DAGSTER_HOME", "OPENAI_BASE_URL")}
    env.update(extra)
    return env


def _start(config: Path, data_only: bool, **env) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "assets.cli", "run", "--config", str(config)] + (["--data-only"] if data_only else [])
    return subprocess.Popen(cmd, cwd=ROOT, env=_env(**env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


class Finished(str):
    """The output of a finished run, with the time the run started (time.monotonic())."""

    first_step_at: float | None = None


def _finish(p: subprocess.Popen, timeout: float = 900) -> Finished:
    lines, first = [], None
    deadline = time.monotonic() + timeout
    for line in p.stdout:
        if first is None and ") starting on " in line:  # said by the runner when the run starts
            first = time.monotonic()
        lines.append(line)
        assert time.monotonic() < deadline
    p.wait(timeout=60)
    out = Finished("".join(lines))
    out.first_step_at = first
    assert p.returncode == 0, out[-3000:]
    return out


def _versions(wh: Path) -> dict:
    cat = Catalog(wh / "catalog.duckdb")
    rows = cat.query("SELECT artifact, version FROM artifact_versions ORDER BY artifact, version")
    return {a: sorted(g["version"]) for a, g in rows.groupby("artifact")}


def _dataset_versions(wh: Path) -> list:
    return Catalog(wh / "catalog.duckdb").query("SELECT version FROM dataset_versions ORDER BY 1")["version"].tolist()


def _kill_when(p: subprocess.Popen, cond, timeout: float = 600, delay: float = 0.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        what = cond()
        if what:
            break
        assert p.poll() is None, "the run ended before the kill point: " + p.stdout.read()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(delay)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    return what


def _dagster_statuses(wh: Path) -> list[str]:
    from dagster import DagsterInstance

    old = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(wh / ".dagster")
    try:
        with DagsterInstance.get() as inst:
            return [r.status.value for r in inst.get_runs()]
    finally:
        if old is None:
            os.environ.pop("DAGSTER_HOME")
        else:
            os.environ["DAGSTER_HOME"] = old


@pytest.fixture(scope="module")
def clean(tmp_path_factory, landing):
    tmp = tmp_path_factory.mktemp("clean")
    cfg = _config(tmp, landing, "wh")
    t0 = time.monotonic()
    _finish(_start(cfg, data_only=True))
    print(f"\n[clean] data half from scratch: {time.monotonic() - t0:.1f} s")
    return _versions(tmp / "wh"), _dataset_versions(tmp / "wh")


def _has(wh: Path, pattern: str):
    return lambda: next((str(p.relative_to(wh)) for p in wh.glob(pattern)), None)


KILL_POINTS = {
    # mid-stage: raw is written, masking (spaCy + Presidio) is running
    "mid-masking": ("raw/raw_tickets/[0-9a-f]*", 2.0),
    # in the middle of writing a version folder
    "mid-write": ("datasets/*/.tmp-*", 0.0),
    # between stages: a version was just written, the next step is starting
    "between-dedup-and-labels": ("datasets/deduplicated_tickets/[0-9a-f]*", 0.0),
    # the split version is on disk, its publication in the catalog may or may not have happened
    "at-publication": ("datasets/dataset_splits/[0-9a-f]*", 0.0),
}


@pytest.mark.parametrize("point", [p if p == "between-dedup-and-labels" else pytest.param(p, marks=full_only)
                                   for p in KILL_POINTS])
def test_kill_minus_nine_then_rerun_equals_a_clean_run(tmp_path, landing, clean, point):
    pattern, delay = KILL_POINTS[point]
    cfg = _config(tmp_path, landing, "wh")
    wh = tmp_path / "wh"
    p = _start(cfg, data_only=True)
    hit = _kill_when(p, _has(wh, pattern), delay=delay)
    t_kill = time.monotonic()
    assert "STARTED" in _dagster_statuses(wh)  # the killed run was left behind as started

    again = _start(cfg, data_only=True)
    out = _finish(again)
    elapsed = time.monotonic() - t_kill
    print(f"\n[{point}] killed at {hit}; kill -> re-run started: {out.first_step_at - t_kill:.1f} s; "
          f"kill -> completed re-run: {elapsed:.1f} s")
    assert "died without finishing" in out
    assert "waiting for" not in out  # no lock or slot held by the dead run
    statuses = _dagster_statuses(wh)
    assert "STARTED" not in statuses and statuses.count("SUCCESS") == 1
    clean_versions, clean_datasets = clean
    assert _dataset_versions(wh) == clean_datasets
    mine = _versions(wh)
    assert {a: v for a, v in mine.items()} == clean_versions
    assert not list(wh.rglob(".tmp-*"))
    (tmp_path / f"kill-{point}.json").write_text(json.dumps({"point": point, "hit": hit, "seconds": elapsed}))


def _provider_jobs(wh: Path) -> list[tuple[str, str]]:
    db = wh / "provider" / "provider.sqlite3"
    if not db.exists():
        return []
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("SELECT id, status, json_extract(obj, '$.model') FROM jobs ORDER BY seq").fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return []


@full_only
@pytest.mark.parametrize("also_provider", [False, True], ids=["run-killed", "run-and-provider-killed"])
def test_kill_during_fine_tuning_submits_no_second_job(tmp_path, landing, clean, also_provider):
    from pipeline.model.endpoint import LocalProvider

    cfg = _config(tmp_path, landing, "wh")
    wh = tmp_path / "wh"
    env = {"TUNEGATE_PROVIDER_MIN_EPOCH_S": "3"}  # a job long enough to be killed in the middle
    p = _start(cfg, data_only=False, **env)
    try:
        _kill_when(p, lambda: any(s == "running" for _, s, _ in _provider_jobs(wh)), timeout=900)
        submitted = _provider_jobs(wh)
        if also_provider:  # a power cut: the provider dies too
            prov = LocalProvider.find(wh / "provider")
            assert prov is not None
            os.kill(prov.pid, signal.SIGKILL)
        t_kill = time.monotonic()
        out = _finish(_start(cfg, data_only=False, **env))
        elapsed = time.monotonic() - t_kill
        print(f"\n[fine-tuning, provider killed too: {also_provider}] kill -> re-run started: "
              f"{out.first_step_at - t_kill:.1f} s; kill -> completed re-run: {elapsed:.1f} s")
        jobs = _provider_jobs(wh)
        models = [m for _, _, m in jobs]
        assert len(models) == len(set(models)), jobs  # one job per fine-tuned base model, never two
        assert [j for j, _, _ in jobs][:len(submitted)] == [j for j, _, _ in submitted]  # the killed job was kept
        assert all(s == "succeeded" for _, s, _ in jobs), jobs
        assert "died without finishing" in out
        assert _dataset_versions(wh) == clean[1]
        assert (wh / "reports" / "latest" / "report.json").exists()
        statuses = _dagster_statuses(wh)
        assert "STARTED" not in statuses and statuses.count("SUCCESS") == 1
    finally:
        prov = LocalProvider.find(wh / "provider")
        if prov is not None:
            prov.stop(force=True)
