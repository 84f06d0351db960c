"""Fine-tuning jobs against the embedded OpenAI-compatible provider, through the real SDK.

Covers: a job on a small Banking77 subset succeeds and is recorded; the same inputs never submit a
second job (catalog, then endpoint metadata); a broken training file fails with the endpoint's
message; a cancelled job raises FinetuneFailed; a follow with a short budget times out cleanly.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from pipeline.catalog import Catalog
from pipeline.config import EndpointSpec, FinetuneSpec, load_config
from pipeline.model.finetune import (FinetuneFailed, FinetuneTimeout, follow, job_row, poll_once,
                               submit_or_reuse)
from pipeline.model.finetune_files import build_finetune_files, files_hash
from pipeline.config import DATA_DIR

import pipeline.model.endpoint as endpoint

BANKING77 = DATA_DIR / "banking77" / "train.csv"
if not BANKING77.exists():
    BANKING77 = Path(__file__).resolve().parents[1] / "pipeline" / "bundled" / "banking77" / "train.csv"

POLL = 0.2
TIMEOUT = 90.0


@pytest.fixture(scope="module")
def provider(tmp_path_factory):
    """(client, endpoint url) of a provider started for this module, stopped by its PID at the end.

    Epochs take at least 0.3 s so that a job can be seen running and cancelled."""
    state = tmp_path_factory.mktemp("provider")
    prov = endpoint.LocalProvider.start(state, env={"TUNEGATE_PROVIDER_MIN_EPOCH_S": "0.3"})
    try:
        client = endpoint.make_client(EndpointSpec(base_url=prov.url, max_retries=1, timeout_s=30), state)
        yield client, prov.url
    finally:
        prov.stop()


@pytest.fixture(scope="module")
def config():
    return load_config()


@pytest.fixture(scope="module")
def files(tmp_path_factory, config):
    df = pd.read_csv(BANKING77).rename(columns={"category": "label"})
    df["ticket_id"] = [f"b77-{i:05d}" for i in range(len(df))]
    per_label = df.groupby("label", sort=True).head(6)
    val = per_label.groupby("label", sort=True).head(1)
    train = per_label.drop(val.index)
    return build_finetune_files({"train": train, "val": val}, config.taxonomy, tmp_path_factory.mktemp("ft"))


@pytest.fixture()
def catalog(tmp_path):
    return Catalog(tmp_path / "catalog.duckdb")


def _count_jobs(client) -> int:
    return sum(1 for _ in client.fine_tuning.jobs.list(limit=100))


def _broken_files(tmp_path: Path, files: dict) -> dict:
    """The same tickets without their assistant answers."""
    out = {}
    for split in ("train", "val"):
        src = Path(files[split]["path"])
        dst = tmp_path / f"broken_{split}.jsonl"
        lines = []
        for line in src.read_text(encoding="utf-8").splitlines():
            obj = json.loads(line)
            obj["messages"] = [m for m in obj["messages"] if m["role"] != "assistant"]
            lines.append(json.dumps(obj))
        dst.write_text("\n".join(lines) + "\n", encoding="utf-8")
        import hashlib
        out[split] = {"path": str(dst), "rows": len(lines), "sha256": hashlib.sha256(dst.read_bytes()).hexdigest()}
    out["files_hash"] = files_hash(out["train"]["sha256"], out["val"]["sha256"])
    return out


def test_submit_follow_and_reuse(provider, catalog, files, config):
    client, url = provider
    spec = FinetuneSpec()
    price = config.evaluation.models[0].price_training_per_1m
    before = _count_jobs(client)
    row = submit_or_reuse(client, catalog, files, "ds-v1", "cfg-1", spec, spec.base_model, url,
                          price_training_per_1m=price)
    assert row["reused"] is None and row["job_id"]
    assert _count_jobs(client) == before + 1
    job = client.fine_tuning.jobs.retrieve(row["job_id"])
    assert job.metadata["dataset_version"] == "ds-v1" and job.metadata["files_hash"] == files["files_hash"]

    events = []
    done = follow(client, catalog, row["job_id"], POLL, timeout_s=TIMEOUT, on_event=events.append)
    assert done["status"] == "succeeded" and done["fine_tuned_model"]
    assert done["trained_tokens"] > 0
    assert done["cost"] == pytest.approx(done["trained_tokens"] * price / 1e6)
    assert events and len({e["id"] for e in events}) == len(events)

    stored = job_row(catalog, row["job_id"])
    assert stored["fine_tuned_model"] == done["fine_tuned_model"] and stored["trained_tokens"] == done["trained_tokens"]
    assert stored["dataset_version"] == "ds-v1" and stored["events"]
    audit = catalog.query("SELECT action, subject FROM audit_log WHERE action = 'submit_finetune_job'")
    assert audit.subject.tolist() == [row["job_id"]]

    # the same inputs again: same job, nothing new on the endpoint, no polling needed
    again = submit_or_reuse(client, catalog, files, "ds-v1", "cfg-1", spec, spec.base_model, url)
    assert again["job_id"] == row["job_id"] and again["reused"] == "catalog"
    assert _count_jobs(client) == before + 1
    assert follow(client, catalog, row["job_id"], POLL, timeout_s=1)["status"] == "succeeded"

    # a fresh catalog (a run that died before writing it) finds the job by its metadata
    other = Catalog(Path(catalog.path).with_name("other.duckdb"))
    adopted = submit_or_reuse(client, other, files, "ds-v1", "cfg-1", spec, spec.base_model, url)
    assert adopted["job_id"] == row["job_id"] and adopted["reused"] == "endpoint"
    assert _count_jobs(client) == before + 1

    # another key (dataset version) is another job
    assert submit_or_reuse(client, other, files, "ds-v2", "cfg-1", spec, spec.base_model, url)["reused"] is None


def test_broken_training_file_fails_with_endpoint_message(provider, catalog, files, tmp_path):
    client, url = provider
    spec = FinetuneSpec()
    broken = _broken_files(tmp_path, files)
    row = submit_or_reuse(client, catalog, broken, "ds-broken", "cfg-1", spec, spec.base_model, url)
    with pytest.raises(FinetuneFailed) as info:
        follow(client, catalog, row["job_id"], POLL, timeout_s=TIMEOUT)
    err = info.value
    assert err.status == "failed" and err.job_id == row["job_id"]
    assert row["job_id"] in str(err) and err.error_message and err.error_message in str(err)
    stored = job_row(catalog, row["job_id"])
    assert stored["status"] == "failed" and json.loads(stored["error"])["message"] == err.error_message

    # a failed job is not reused: a new submission, and the audit log says why
    again = submit_or_reuse(client, catalog, broken, "ds-broken", "cfg-1", spec, spec.base_model, url)
    assert again["reused"] is None and again["job_id"] != row["job_id"]
    detail = catalog.query("SELECT detail FROM audit_log WHERE subject = ?", [again["job_id"]]).detail[0]
    assert row["job_id"] in json.loads(detail)["reason"]


def _wait_running(client, job_id: str, timeout: float = 30.0) -> None:
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.fine_tuning.jobs.retrieve(job_id).status == "running":
            return
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never ran")


def test_timeout_then_cancel(provider, catalog, files):
    client, url = provider
    spec = FinetuneSpec(n_epochs=50)  # >= 15 s of training: it cannot finish within the budget below
    row = submit_or_reuse(client, catalog, files, "ds-cancel", "cfg-1", spec, spec.base_model, url)
    with pytest.raises(FinetuneTimeout) as info:
        follow(client, catalog, row["job_id"], POLL, timeout_s=0.5)
    assert info.value.row["job_id"] == row["job_id"] and info.value.row["status"] not in ("succeeded", "failed")
    assert job_row(catalog, row["job_id"])["status"] == info.value.row["status"]

    _wait_running(client, row["job_id"])
    client.fine_tuning.jobs.cancel(row["job_id"])
    with pytest.raises(FinetuneFailed, match="cancelled") as failed:
        follow(client, catalog, row["job_id"], POLL, timeout_s=TIMEOUT)
    assert failed.value.status == "cancelled" and row["job_id"] in str(failed.value)
    assert poll_once(client, catalog, row["job_id"])["status"] == "cancelled"
    assert job_row(catalog, row["job_id"])["fine_tuned_model"] is None


def test_changed_file_is_not_uploaded(provider, catalog, files, tmp_path):
    client, url = provider
    copy = tmp_path / "train.jsonl"
    copy.write_bytes(Path(files["train"]["path"]).read_bytes() + b"\n")  # edited after it was built
    changed = {**files, "train": {**files["train"], "path": str(copy)}, "files_hash": "f" * 64}
    before = _count_jobs(client)
    with pytest.raises(ValueError, match="changed since it was built"):
        submit_or_reuse(client, catalog, changed, "ds-changed", "cfg-1", FinetuneSpec(), "tg-small", url)
    assert _count_jobs(client) == before


def test_unfinished_jobs_for_a_sensor(provider, catalog, files):
    from pipeline.model.finetune import unfinished_jobs
    client, url = provider
    spec = FinetuneSpec(n_epochs=50)  # >= 15 s: still running when the sensor looks and the test cancels
    row = submit_or_reuse(client, catalog, files, "ds-sensor", "cfg-1", spec, spec.base_model, url)
    assert unfinished_jobs(catalog) == [row["job_id"]]
    _wait_running(client, row["job_id"])
    assert poll_once(client, catalog, row["job_id"])["status"] == "running"
    client.fine_tuning.jobs.cancel(row["job_id"])
    assert poll_once(client, catalog, row["job_id"])["status"] == "cancelled"
    assert unfinished_jobs(catalog) == []
