"""The client side of the model endpoint: where to send requests, and how to send many of them well.

* `resolve_endpoint(spec, state_dir)` -> (base_url, api_key): the configured `base_url`, else the
  `OPENAI_BASE_URL` environment variable, else the embedded local provider for `state_dir`
  (started if no server is running for it, reused if one is).
* `LocalProvider`: the embedded provider as a subprocess on 127.0.0.1 with a free port. It is found
  again through `<state_dir>/provider.json` (pid, port) and stopped by its own PID, never by name.
* `make_client(spec, state_dir)`: an `openai.OpenAI` client with the spec's timeout and retries.
* `complete_many(client, requests, concurrency, max_retries)`: concurrent chat completions with
  retries (exponential backoff with full jitter) on 429, 5xx, timeouts and connection errors; every
  request yields a `Result` (content, usage, latency, attempts, or an error): one bad row never
  raises.
"""
from __future__ import annotations

import fcntl
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
from openai.types.chat import ChatCompletion

from pipeline.config import EndpointSpec

INFO_FILE = "provider.json"


# ------------------------------------------------------------------------------ local provider
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _health(url_root: str, timeout: float = 1.0) -> dict | None:
    try:
        with urllib.request.urlopen(f"{url_root}/health", timeout=timeout) as resp:
            return json.loads(resp.read())
    except (OSError, urllib.error.URLError, ValueError):
        return None


class LocalProvider:
    """A handle on the embedded provider serving one state directory.

    `LocalProvider.start(state_dir)` reuses a healthy server already running for that directory or
    starts one; `stop()` stops it by PID if this handle started it (or always with `force=True`).
    """

    def __init__(self, state_dir: Path, pid: int, port: int, owned: bool, proc: subprocess.Popen | None = None):
        self.state_dir = Path(state_dir)
        self.pid = pid
        self.port = port
        self.owned = owned
        self._proc = proc

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def api_key(self) -> str:
        """The bearer key of this state directory (made per warehouse, see pipeline.provider.auth)."""
        from pipeline.provider.auth import api_key

        return api_key(self.state_dir)

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def find(cls, state_dir: str | os.PathLike) -> "LocalProvider | None":
        """The healthy server already serving `state_dir`, if any."""
        state = Path(state_dir).resolve()
        try:
            info = json.loads((state / INFO_FILE).read_text())
        except (OSError, ValueError):
            return None
        pid, port = int(info.get("pid", 0)), int(info.get("port", 0))
        if not pid or not port or not _pid_alive(pid):
            return None
        h = None
        for attempt in range(3):  # the process is alive: a busy machine may answer slowly, not never
            if attempt:
                time.sleep(0.5)
            h = _health(f"http://127.0.0.1:{port}", timeout=5.0)
            if h:
                break
        if not h or h.get("pid") != pid or Path(h.get("state_dir", "")) != state:
            return None
        return cls(state, pid, port, owned=False)

    @classmethod
    def start(cls, state_dir: str | os.PathLike, *, env: dict[str, str] | None = None,
              idle_timeout_s: float | None = None, timeout_s: float = 60.0) -> "LocalProvider":
        state = Path(state_dir).resolve()
        state.mkdir(parents=True, exist_ok=True)
        with open(state / "start.lock", "w") as lock:  # two callers never start two servers
            fcntl.flock(lock, fcntl.LOCK_EX)
            found = cls.find(state)
            if found is not None:
                return found
            cmd = [sys.executable, "-m", "pipeline.provider.app", "--port", "0", "--state", str(state)]
            if idle_timeout_s:
                cmd += ["--idle-timeout", str(idle_timeout_s)]
            log = open(state / "provider.log", "ab")
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env={**os.environ, **(env or {})}, start_new_session=True,
                                    cwd=str(Path(__file__).resolve().parent.parent))
            log.close()
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    tail = (state / "provider.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"the local provider exited with code {proc.returncode}:\n{tail}")
                try:
                    info = json.loads((state / INFO_FILE).read_text())
                except (OSError, ValueError):
                    info = {}
                if info.get("pid") == proc.pid:
                    h = _health(f"http://127.0.0.1:{info['port']}")
                    if h and h.get("pid") == proc.pid:
                        return cls(state, proc.pid, int(info["port"]), owned=True, proc=proc)
                time.sleep(0.1)
            os.kill(proc.pid, signal.SIGKILL)
            raise RuntimeError(f"the local provider did not become healthy within {timeout_s:.0f} s "
                               f"(see {state / 'provider.log'})")

    def stop(self, force: bool = False, timeout_s: float = 10.0) -> None:
        """Stop the server by its PID (only if this handle started it, unless `force`)."""
        if not (self.owned or force) or not _pid_alive(self.pid):
            return
        os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc is not None:
                if self._proc.poll() is not None:
                    return
            elif not _pid_alive(self.pid):
                return
            time.sleep(0.05)
        os.kill(self.pid, signal.SIGKILL)
        if self._proc is not None:
            self._proc.wait(timeout=5)


# ------------------------------------------------------------------------------ resolution
def resolve_endpoint(spec: EndpointSpec, state_dir: str | os.PathLike) -> tuple[str, str]:
    """(base_url, api_key): spec.base_url, else $OPENAI_BASE_URL, else the embedded provider."""
    base_url = spec.base_url or os.environ.get("OPENAI_BASE_URL")
    if base_url:
        key = _local_key(base_url, state_dir) or os.environ.get(spec.api_key_env)
        if not key:
            # OpenAI-compatible servers such as vLLM need no key; a paid endpoint will answer 401,
            # whose message names the variable to set.
            key = "unset:" + spec.api_key_env
        return base_url.rstrip("/"), key
    provider = LocalProvider.start(state_dir, idle_timeout_s=1800)
    return provider.url, provider.api_key


def _local_key(base_url: str, state_dir: str | os.PathLike) -> str | None:
    """The embedded provider's key when `base_url` is the provider serving `state_dir` (`serve-local`)."""
    try:
        info = json.loads((Path(state_dir) / INFO_FILE).read_text())
    except (OSError, ValueError):
        return None
    if info.get("url", "").rstrip("/") != base_url.rstrip("/") or not (Path(state_dir) / "api_key").exists():
        return None
    from pipeline.provider.auth import api_key

    return api_key(state_dir)


def make_client(spec: EndpointSpec, state_dir: str | os.PathLike) -> openai.OpenAI:
    base_url, key = resolve_endpoint(spec, state_dir)
    return openai.OpenAI(base_url=base_url, api_key=key, max_retries=spec.max_retries, timeout=spec.timeout_s)


# ------------------------------------------------------------------------------ many requests
# keyword arguments of chat.completions.create that are request options, not body fields
_SDK_OPTIONS = {"extra_headers": "headers", "extra_query": "params", "extra_body": "extra_json", "timeout": "timeout"}

@dataclass
class Result:
    index: int
    content: str | None = None
    model: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float | None = None  # of the successful attempt
    elapsed_s: float = 0.0  # wall time including retries and backoff
    attempts: int = 0
    response_id: str | None = None
    error: str | None = None  # set when the request finally failed
    status_code: int | None = None  # HTTP status of the last failed attempt, if any
    retried_errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def usage(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens}

    @property
    def latency(self) -> float | None:
        return self.latency_s


def _retryable(exc: Exception) -> bool:
    if isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError)):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in (408, 409, 429) or exc.status_code >= 500
    return False


def _retry_after(exc: Exception) -> float | None:
    resp = getattr(exc, "response", None)
    if resp is None:
        return None
    try:
        ms = resp.headers.get("retry-after-ms")
        if ms is not None:
            return float(ms) / 1000
        s = resp.headers.get("retry-after")
        return float(s) if s is not None else None
    except (TypeError, ValueError):
        return None


def complete_many(client: openai.OpenAI, requests: list[dict[str, Any]], concurrency: int = 8,
                  max_retries: int = 5, *, backoff_base_s: float = 0.25, backoff_max_s: float = 20.0,
                  seed: int | None = None) -> list[Result]:
    """Run chat completions concurrently; `requests[i]` are keyword arguments of
    `client.chat.completions.create` (model, messages, temperature, ...). Results keep input order."""
    c = client.with_options(max_retries=0)  # retries are ours: backoff with jitter, per-row accounting
    rng = random.Random(seed)
    rng_lock = threading.Lock()

    def jitter(cap: float) -> float:
        with rng_lock:
            return rng.uniform(0, cap)

    def one(i: int, req: dict[str, Any]) -> Result:
        res = Result(index=i)
        t_start = time.perf_counter()
        for attempt in range(max_retries + 1):
            res.attempts = attempt + 1
            t0 = time.perf_counter()
            try:
                # The SDK's own HTTP path (auth, errors, response parsing) without its per-field
                # parameter transform, which costs ~0.25 s of CPU for a prompt with hundreds of
                # few-shot messages; the requests here are plain JSON-ready dicts already.
                body = {k: v for k, v in req.items() if k not in _SDK_OPTIONS}
                options = {opt: req[k] for k, opt in _SDK_OPTIONS.items() if req.get(k) is not None}
                if "extra_json" in options:
                    body.update(options.pop("extra_json"))
                resp = c.post("/chat/completions", body=body, cast_to=ChatCompletion, options=options)
            except Exception as exc:  # noqa: BLE001 - every failure becomes a row, never a crash
                res.status_code = getattr(exc, "status_code", None)
                msg = f"{type(exc).__name__}: {getattr(exc, 'message', None) or exc}"
                if _retryable(exc) and attempt < max_retries:
                    res.retried_errors.append(msg)
                    delay = jitter(min(backoff_max_s, backoff_base_s * 2 ** attempt))
                    hint = _retry_after(exc)
                    if hint is not None:
                        delay = max(delay, min(hint, backoff_max_s))
                    time.sleep(delay)
                    continue
                res.error = msg
                break
            res.latency_s = time.perf_counter() - t0
            res.status_code = None
            choice = resp.choices[0] if resp.choices else None
            res.content = choice.message.content if choice else None
            res.finish_reason = choice.finish_reason if choice else None
            res.model = resp.model
            res.response_id = resp.id
            if resp.usage is not None:
                res.prompt_tokens = resp.usage.prompt_tokens
                res.completion_tokens = resp.usage.completion_tokens
            break
        res.elapsed_s = time.perf_counter() - t_start
        return res

    if not requests:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(requests)))) as pool:
        return list(pool.map(lambda ir: one(*ir), enumerate(requests)))
