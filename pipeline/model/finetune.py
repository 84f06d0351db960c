"""Fine-tuning jobs on any OpenAI-compatible endpoint: idempotent submission and following.

`submit_or_reuse` never pays twice for the same job. The key is (dataset version, config hash,
files hash, base model). It looks in the catalog first, then on the endpoint (jobs whose metadata
carry the same key: a job created by a run that died before it wrote the catalog), and only then
uploads the two files and creates the job. A job that already succeeded is returned as it is; a
failed or cancelled job is never reused, and the audit log says why a new one was submitted.

`follow` polls a job to a terminal state within a time budget, recording status, events, trained
tokens, cost and the fine-tuned model in the catalog on every poll; `poll_once` does one such poll,
for a sensor that follows a long job between ticks. A failed or cancelled job raises
`FinetuneFailed` with the endpoint's own error code and message. Cost is trained tokens times the
candidate's training price per 1M tokens from config, as a paid endpoint would bill it.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import openai

from pipeline.catalog import Catalog, now
from pipeline.config import FinetuneSpec

TERMINAL = ("succeeded", "failed", "cancelled")
FAILED = ("failed", "cancelled")
METADATA_KEYS = ("dataset_version", "config_hash", "files_hash")
MAX_METADATA_VALUE = 512
MAX_TRANSIENT_POLL_ERRORS = 5  # consecutive failed polls `follow` tolerates before giving up
MAX_JOBS_SCANNED = 1000  # how far back the endpoint's job list is searched for an orphaned job


class FinetuneFailed(RuntimeError):
    """A fine-tuning job ended failed or cancelled; the message names the job, status and the endpoint's error."""

    def __init__(self, job_id: str, status: str, code: str | None = None, message: str | None = None):
        self.job_id, self.status, self.code, self.error_message = job_id, status, code, message
        if status == "cancelled":
            text = f"fine-tuning job {job_id} was cancelled"
            if message:
                text += f": {message}"
        else:
            detail = f"[{code}] {message}" if code else (message or "no error message from the endpoint")
            text = f"fine-tuning job {job_id} {status}: {detail}"
        super().__init__(text)


class FinetuneTimeout(TimeoutError):
    """`follow` ran out of its time budget; the job keeps running and `poll_once` can pick it up."""

    def __init__(self, job_id: str, status: str, waited_s: float, row: dict):
        self.job_id, self.status, self.row = job_id, status, row
        super().__init__(f"fine-tuning job {job_id} is still {status} after {waited_s:.0f}s; it keeps running "
                         "on the endpoint and will be followed by the next poll")


# -- helpers -------------------------------------------------------------------------------------
def _ts(unix: int | float | None) -> datetime | None:
    return None if unix is None else datetime.fromtimestamp(unix, tz=timezone.utc)


def _plain(value: Any) -> Any:
    """Catalog values (pandas / numpy / NaT) to plain JSON-friendly Python."""
    if value is None:
        return None
    try:
        import pandas as pd
        if value is pd.NaT or (not isinstance(value, (str, list, dict)) and pd.isna(value)):
            return None
        if isinstance(value, pd.Timestamp):
            return value.to_pydatetime()
    except (TypeError, ValueError):
        pass
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value


def job_row(catalog: Catalog, job_id: str) -> dict | None:
    """The catalog's row for a job, as plain Python (events decoded)."""
    df = catalog.query("SELECT * FROM finetune_jobs WHERE job_id = ?", [job_id])
    if df.empty:
        return None
    return _normalise(df.iloc[0].to_dict())


def _normalise(row: dict) -> dict:
    row = {k: _plain(v) for k, v in row.items()}
    if isinstance(row.get("events"), str):
        row["events"] = json.loads(row["events"])
    return row


def job_metadata(dataset_version: str, config_hash: str, files_hash: str) -> dict[str, str]:
    meta = {"dataset_version": str(dataset_version), "config_hash": str(config_hash),
            "files_hash": str(files_hash), "source": "tunegate"}
    for key, value in meta.items():
        if len(value) > MAX_METADATA_VALUE:
            raise ValueError(f"job metadata {key!r} is {len(value)} characters; the endpoint allows {MAX_METADATA_VALUE}")
    return meta


def _error_of(job: Any) -> tuple[str | None, str | None]:
    err = getattr(job, "error", None)
    if err is None:
        return None, None
    if isinstance(err, dict):
        return err.get("code"), err.get("message")
    return getattr(err, "code", None), getattr(err, "message", None)


def _training_price(catalog: Catalog, job_id: str) -> float | None:
    """The training price recorded with the submission (audit log)."""
    df = catalog.query("""SELECT detail FROM audit_log WHERE subject = ? AND action IN
                          ('submit_finetune_job', 'adopt_finetune_job') ORDER BY created_at DESC LIMIT 1""", [job_id])
    if df.empty:
        return None
    return json.loads(df.iloc[0]["detail"]).get("price_training_per_1m")


@contextmanager
def _submit_lock(catalog: Catalog, key: dict):
    """Serialise submissions for one key across processes on this machine (two materializations
    started at once must not both pay for a job)."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    lock_dir = Path(catalog.path).parent / "locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f"finetune-{digest}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _check_sha256(path: str | Path, expected: str | None) -> None:
    if not expected:
        return
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    if h.hexdigest() != expected:
        raise ValueError(f"{path} changed since it was built (sha256 {h.hexdigest()[:12]}..., expected "
                         f"{expected[:12]}...); rebuild the fine-tuning files before submitting")


def guard_file(path: str | Path) -> None:
    """The last gate before data leaves: the independent leak guard on every message of a JSONL file.
    Raises with line numbers and types only (files are built without flagged rows, so this fires only
    on a file that was changed or written by other means)."""
    from pipeline.pii.leak_guard import scan_residual

    with open(path, encoding="utf-8") as fh:
        lines = [[str(m.get("content", "")) for m in json.loads(line).get("messages", [])] if line.strip() else []
                 for line in fh]
    unique = sorted({c for msgs in lines for c in msgs})  # the system prompt repeats on every line
    kinds = {c: k for c, k in zip(unique, scan_residual(unique)) if k}
    hits = [i + 1 for i, msgs in enumerate(lines) if any(c in kinds for c in msgs)]
    if hits:
        raise ValueError(f"{Path(path).name}: the leak guard found structured PII on {len(hits)} lines "
                         f"(first lines {hits[:10]}, types {sorted({t for k in kinds.values() for t in k})}); "
                         f"nothing was uploaded")


def _upload(client: openai.OpenAI, path: str | Path) -> str:
    path = Path(path)
    guard_file(path)
    with open(path, "rb") as fh:
        uploaded = client.files.create(file=(path.name, fh), purpose="fine-tune")
    return uploaded.id


def _row_from_job(job: Any, base: dict | None, endpoint_url: str | None = None) -> dict:
    """Merge an endpoint job object into a catalog row (keeping the row's key fields)."""
    row = dict(base or {})
    meta = dict(getattr(job, "metadata", None) or {})
    code, message = _error_of(job)
    row.update({
        "job_id": job.id,
        "endpoint": row.get("endpoint") or endpoint_url,
        "base_model": row.get("base_model") or job.model,
        "dataset_version": row.get("dataset_version") or meta.get("dataset_version"),
        "config_hash": row.get("config_hash") or meta.get("config_hash"),
        "files_hash": row.get("files_hash") or meta.get("files_hash"),
        "training_file": job.training_file,
        "validation_file": getattr(job, "validation_file", None),
        "status": job.status,
        "fine_tuned_model": getattr(job, "fine_tuned_model", None),
        "trained_tokens": getattr(job, "trained_tokens", None),
        "error": None if code is None and message is None else json.dumps({"code": code, "message": message}),
        "created_at": row.get("created_at") or _ts(getattr(job, "created_at", None)) or now(),
        "finished_at": _ts(getattr(job, "finished_at", None)),
    })
    row.setdefault("events", [])
    row.setdefault("cost", None)
    return row


def _key_matches(job: Any, dataset_version: str, config_hash: str, files_hash: str, base_model: str) -> bool:
    meta = getattr(job, "metadata", None) or {}
    return (meta.get("dataset_version") == dataset_version and meta.get("config_hash") == config_hash
            and meta.get("files_hash") == files_hash and job.model == base_model)


def _find_on_endpoint(client: openai.OpenAI, dataset_version: str, config_hash: str, files_hash: str,
                      base_model: str) -> Any | None:
    """The newest usable (not failed/cancelled) job on the endpoint carrying this key in its metadata."""
    filt = {"dataset_version": dataset_version, "files_hash": files_hash}
    try:
        page = client.fine_tuning.jobs.list(limit=100, metadata=filt)
    except openai.BadRequestError:  # an endpoint that does not filter by metadata
        page = client.fine_tuning.jobs.list(limit=100)
    best = None
    for i, job in enumerate(page):  # auto-paginates
        if i >= MAX_JOBS_SCANNED:
            break
        if job.status in FAILED or not _key_matches(job, dataset_version, config_hash, files_hash, base_model):
            continue
        if best is None or (job.created_at or 0) > (best.created_at or 0):
            best = job
    return best


# -- submission ----------------------------------------------------------------------------------
def submit_or_reuse(client: openai.OpenAI, catalog: Catalog, files: dict, dataset_version: str, config_hash: str,
                    spec: FinetuneSpec, base_model: str, endpoint_url: str, *,
                    price_training_per_1m: float | None = None, seed: int | None = None) -> dict:
    """Return the job row for this key, submitting a new job only when no usable one exists.

    `files` is the result of `build_finetune_files` (train/val paths and sha256, files_hash).
    The returned row has `reused`: "catalog", "endpoint" or None (a new submission)."""
    files_hash = files["files_hash"]
    key = {"dataset_version": dataset_version, "config_hash": config_hash, "files_hash": files_hash,
           "base_model": base_model}
    with _submit_lock(catalog, key):
        return _submit_or_reuse(client, catalog, files, key, spec, endpoint_url, price_training_per_1m, seed)


def _submit_or_reuse(client: openai.OpenAI, catalog: Catalog, files: dict, key: dict, spec: FinetuneSpec,
                     endpoint_url: str, price_training_per_1m: float | None, seed: int | None) -> dict:
    dataset_version, config_hash = key["dataset_version"], key["config_hash"]
    files_hash, base_model = key["files_hash"], key["base_model"]

    # 1. the catalog
    found = catalog.find_job(dataset_version, config_hash, files_hash, base_model, endpoint=endpoint_url)
    if found is not None:
        row = _normalise(found)
        if row["status"] == "succeeded":
            return {**row, "reused": "catalog"}
        try:  # still running: make sure the endpoint still knows it
            job = client.fine_tuning.jobs.retrieve(row["job_id"])
        except openai.NotFoundError:
            # recorded as failed so that it is never reused; the error says it was lost
            catalog.upsert_job({**row, "status": "failed", "error": json.dumps(
                {"code": "job_lost", "message": f"job unknown to the endpoint {endpoint_url}"})})
            catalog.audit("finetune_job_lost", row["job_id"], {**key, "endpoint": endpoint_url})
        else:
            row = _row_from_job(job, row, endpoint_url)
            catalog.upsert_job(row)
            if job.status not in FAILED:
                return {**row, "reused": "catalog"}
            # it failed since the last poll: fall through to a new submission

    # why a new submission: earlier attempts with this key that failed, were cancelled or got lost
    previous = catalog.query("""SELECT job_id, status, error FROM finetune_jobs WHERE dataset_version = ?
                                AND config_hash = ? AND files_hash = ? AND base_model = ? ORDER BY created_at""",
                             [dataset_version, config_hash, files_hash, base_model])

    # 2. the endpoint (a job submitted by a run that died before writing the catalog)
    job = _find_on_endpoint(client, dataset_version, config_hash, files_hash, base_model)
    if job is not None:
        row = _row_from_job(job, {**key, "endpoint": endpoint_url}, endpoint_url)
        catalog.upsert_job(row)
        catalog.audit("adopt_finetune_job", job.id, {**key, "endpoint": endpoint_url, "status": job.status,
                                                      "price_training_per_1m": price_training_per_1m,
                                                      "reason": "found on the endpoint by its metadata"})
        return {**row, "reused": "endpoint"}

    # 3. upload and create
    for split in ("train", "val"):
        if files.get(split):
            _check_sha256(files[split]["path"], files[split].get("sha256"))
    training_file = _upload(client, files["train"]["path"])
    validation_file = None
    if files.get("val") and files["val"].get("rows", 1) > 0:
        validation_file = _upload(client, files["val"]["path"])
    if seed is None:
        seed = int(files_hash[:8], 16) % (2**31 - 1)
    kwargs: dict[str, Any] = {}
    if spec.n_epochs != "auto":
        kwargs["method"] = {"type": "supervised",
                            "supervised": {"hyperparameters": {"n_epochs": int(spec.n_epochs)}}}
    job = client.fine_tuning.jobs.create(
        model=base_model, training_file=training_file, validation_file=validation_file,
        suffix=spec.suffix or None, metadata=job_metadata(dataset_version, config_hash, files_hash),
        seed=seed, **kwargs)
    row = _row_from_job(job, {**key, "endpoint": endpoint_url}, endpoint_url)
    catalog.upsert_job(row)
    detail = {**key, "endpoint": endpoint_url, "training_file": training_file, "validation_file": validation_file,
              "train_sha256": files["train"]["sha256"],
              "val_sha256": (files.get("val") or {}).get("sha256"), "n_epochs": spec.n_epochs, "seed": seed,
              "suffix": spec.suffix, "price_training_per_1m": price_training_per_1m,
              "reason": "no usable job for this key"}
    if len(previous):
        detail["reason"] = "earlier jobs for this key are not usable: " + "; ".join(
            f"{r.job_id} {r.status}" for r in previous.itertuples())
        detail["previous_jobs"] = previous.to_dict("records")
    catalog.audit("submit_finetune_job", job.id, detail)
    return {**row, "reused": None}


# -- following -----------------------------------------------------------------------------------
def _events(client: openai.OpenAI, job_id: str, limit: int = 1000) -> list[dict]:
    out = []
    for i, ev in enumerate(client.fine_tuning.jobs.list_events(job_id, limit=100)):
        if i >= limit:
            break
        out.append({"id": ev.id, "created_at": ev.created_at, "level": ev.level, "message": ev.message,
                    "type": getattr(ev, "type", None), "data": getattr(ev, "data", None)})
    # endpoints list events newest first; timestamps are whole seconds, so keep the listed order within a second
    out.reverse()
    out.sort(key=lambda e: e["created_at"] or 0)
    return out


def poll_once(client: openai.OpenAI, catalog: Catalog, job_id: str,
              price_training_per_1m: float | None = None) -> dict:
    """One poll: fetch the job and its events, record them in the catalog, return the row.

    The price defaults to the one recorded with the submission; without any, cost stays None."""
    job = client.fine_tuning.jobs.retrieve(job_id)
    row = _row_from_job(job, job_row(catalog, job_id))
    row["events"] = _events(client, job_id)
    price = price_training_per_1m if price_training_per_1m is not None else _training_price(catalog, job_id)
    if row.get("trained_tokens") is not None and price is not None:
        row["cost"] = round(row["trained_tokens"] * price / 1e6, 6)
    catalog.upsert_job(row)
    return row


def unfinished_jobs(catalog: Catalog) -> list[str]:
    """Ids of jobs the catalog still sees as queued or running (what a sensor polls each tick)."""
    df = catalog.query("SELECT job_id FROM finetune_jobs WHERE status NOT IN ('succeeded', 'failed', 'cancelled') "
                       "ORDER BY created_at")
    return df.job_id.tolist()


def raise_if_failed(row: dict) -> None:
    if row["status"] in FAILED:
        err = json.loads(row["error"]) if row.get("error") else {}
        raise FinetuneFailed(row["job_id"], row["status"], err.get("code"), err.get("message"))


def follow(client: openai.OpenAI, catalog: Catalog, job_id: str, poll_interval_s: float,
           timeout_s: float | None = None, on_event: Callable[[dict], None] | None = None,
           price_training_per_1m: float | None = None) -> dict:
    """Poll a job until it succeeds (returns the row), fails or is cancelled (FinetuneFailed),
    or `timeout_s` passes (FinetuneTimeout; the job keeps running). `on_event` sees each new event once."""
    row = job_row(catalog, job_id)
    if row is not None and row["status"] == "succeeded" and row.get("fine_tuned_model"):
        # finished earlier: nothing to poll; price it if it was recorded without a price
        if row.get("cost") is None and price_training_per_1m is not None and row.get("trained_tokens") is not None:
            row["cost"] = round(row["trained_tokens"] * price_training_per_1m / 1e6, 6)
            catalog.upsert_job(row)
        return row
    start = time.monotonic()
    seen: set[str] = set()
    transient = 0
    while True:
        try:
            row = poll_once(client, catalog, job_id, price_training_per_1m)
            transient = 0
        except (openai.APIConnectionError, openai.InternalServerError, openai.RateLimitError):
            # the client already retried; a long follow rides out a few more failed polls
            transient += 1
            if transient > MAX_TRANSIENT_POLL_ERRORS or (
                    timeout_s is not None and time.monotonic() - start + poll_interval_s > timeout_s):
                raise
            time.sleep(poll_interval_s)
            continue
        if on_event is not None:
            for ev in row["events"]:
                if ev["id"] not in seen:
                    seen.add(ev["id"])
                    on_event(ev)
        if row["status"] in TERMINAL:
            raise_if_failed(row)
            return row
        waited = time.monotonic() - start
        if timeout_s is not None and waited + poll_interval_s > timeout_s:
            raise FinetuneTimeout(job_id, row["status"], waited, row)
        time.sleep(poll_interval_s)
