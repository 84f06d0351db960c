"""The client side of the model endpoint: where to send requests, and how to send many of them well.

* `resolve_endpoint(spec, state_dir)` -> (base_url, api_key): the configured `base_url`, else the
  `OPENAI_BASE_URL` environment variable, else the embedded local provider for `state_dir`
  (started if no server is running for it, reused if one is).
* `LocalProvider`: the embedded provider as a subprocess on 127.0.0.1 with a free port. It is found
  again through `<state_dir>/provider.json` (pid, port) and stopped by its own PID, never by name.
* `make_client(spec, state_dir)`: an `openai.OpenAI` client with the spec's timeout and retries;
  `connect(spec, state_dir)` also returns the endpoint's id and URL.
* `probe(client, url)`: what an endpoint offers, asked before any paid work: its models (and their
  context length where the server reports it), whether it has a fine-tuning API, and whether the key
  is accepted. `probe_structured` finds the response format a model accepts with one request.
* `complete_many(client, requests, concurrency, max_retries)`: concurrent chat completions with
  retries (exponential backoff with full jitter) on 429, 5xx, timeouts and connection errors; every
  request yields a `Result` (content, usage, latency, attempts, or an error): one bad row never
  raises. Concurrency adapts (`AdaptiveLimit`): it starts low, rises while latency holds and halves
  on 429, 5xx and timeouts. Latency is timed per attempt from the moment the request is sent, so
  neither the client's wait for a free slot nor retries and backoff count in it. Each request's
  timeout grows with its prompt.
"""
from __future__ import annotations

import fcntl
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import openai
from openai.types.chat import ChatCompletion

from pipeline.config import EndpointSpec
from pipeline.storage import pid_alive

INFO_FILE = "provider.json"


# ------------------------------------------------------------------------------ local provider
_pid_alive = pid_alive  # the provider's PID file is checked like a writer's temporary folder


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
    return connect(spec, state_dir)[0]


def connect(spec: EndpointSpec, state_dir: str | os.PathLike) -> tuple[openai.OpenAI, str, str]:
    """(client, endpoint id, base URL). The id is the base URL, except for the embedded provider, whose
    port changes on every start: there it names the provider's state folder, so jobs are found again."""
    base_url, key = resolve_endpoint(spec, state_dir)
    embedded = not (spec.base_url or os.environ.get("OPENAI_BASE_URL"))
    client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=spec.max_retries, timeout=spec.timeout_s)
    return client, (f"embedded:{Path(state_dir).resolve()}" if embedded else base_url), base_url


# ------------------------------------------------------------------------------ probing
class EndpointError(RuntimeError):
    """An endpoint that cannot be used as configured; the message says which and what to do."""


class EndpointUnreachable(EndpointError):
    """The model endpoint did not answer; the message names it and where it is configured."""


# fields in which servers report a model's context window in `/v1/models` (vLLM: max_model_len;
# LiteLLM's /model/info: max_input_tokens; others: context_length / context_window)
_CONTEXT_FIELDS = ("max_model_len", "context_length", "context_window", "max_context_length", "max_input_tokens")


@dataclass
class EndpointProbe:
    """What one endpoint offers, as probed (`probe`)."""

    endpoint: str
    models: list[str] | None = None  # None: the server has no models list
    models_detail: str = ""
    context_tokens: dict[str, int] = field(default_factory=dict)
    fine_tuning: bool | None = None  # None: not asked
    fine_tuning_detail: str = ""

    def check_models(self, names: list[str], where: str) -> None:
        """An unknown model name is an error that names the models on offer."""
        if self.models is None:
            return
        missing = [n for n in names if n not in self.models]
        if missing:
            offer = ", ".join(self.models[:20]) + (" ..." if len(self.models) > 20 else "")
            raise EndpointError(f"{', '.join(missing)} not served at {self.endpoint} ({where}); "
                                f"the endpoint offers: {offer or 'no models'}")

    def to_dict(self) -> dict:
        return asdict(self)


def _status(exc: Exception) -> int | None:
    return getattr(exc, "status_code", None)


def _context_of(entry: dict) -> int | None:
    for key in _CONTEXT_FIELDS:
        v = entry.get(key)
        if isinstance(v, int) and v > 0:
            return v
    for nested in ("meta", "model_info"):
        sub = entry.get(nested)
        if isinstance(sub, dict):
            v = _context_of(sub) or (sub.get("n_ctx") if isinstance(sub.get("n_ctx"), int) else None)
            if v:
                return v
    return None


def probe(client: openai.OpenAI, endpoint: str, *, fine_tuning: bool = False, api_key_env: str = "") -> EndpointProbe:
    """Ask an endpoint what it offers, with a few cheap GET requests (nothing is paid for).

    Raises `EndpointError` when the endpoint cannot be reached or refuses the key."""
    c = client.with_options(max_retries=1, timeout=min(30.0, float(client.timeout or 30.0)))
    out = EndpointProbe(endpoint=endpoint)
    key_hint = ""
    if api_key_env:
        key_hint = (f"; set {api_key_env} to a key this endpoint accepts" if os.environ.get(api_key_env)
                    else f"; {api_key_env} is not set")
    try:
        raw = c.get("/models", cast_to=object)
    except (openai.APIConnectionError, openai.APITimeoutError) as exc:
        raise EndpointUnreachable(f"the endpoint {endpoint} cannot be reached ({type(exc).__name__}); check its "
                            "base_url in the config or OPENAI_BASE_URL") from None
    except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
        raise EndpointError(f"the endpoint {endpoint} refused the API key ({exc.status_code}){key_hint}") from None
    except openai.APIStatusError as exc:
        if exc.status_code not in (404, 405, 501):  # e.g. a gateway's 400 for a key it does not know
            text = re.sub(r"^Error code: \d+ - ", "", str(exc.message))[:200]
            raise EndpointError(f"the endpoint {endpoint} refused GET /models ({exc.status_code}: {text})"
                                f"{key_hint}") from None
        raw, out.models_detail = None, f"GET /models answered {exc.status_code}: model names are not checked"
    if isinstance(raw, dict) and isinstance(raw.get("data"), list):
        out.models = [str(m.get("id")) for m in raw["data"] if isinstance(m, dict) and m.get("id")]
        out.context_tokens = {str(m["id"]): n for m in raw["data"] if isinstance(m, dict) and m.get("id")
                              and (n := _context_of(m))}
    try:  # a LiteLLM gateway reports context windows in /model/info
        info = c.get("/model/info", cast_to=object)
        for m in (info or {}).get("data", []) if isinstance(info, dict) else []:
            n = _context_of(m.get("model_info") or {})
            if n and m.get("model_name"):
                out.context_tokens.setdefault(str(m["model_name"]), n)
    except openai.APIError:
        pass
    if fine_tuning:
        try:
            c.fine_tuning.jobs.list(limit=1)
            out.fine_tuning, out.fine_tuning_detail = True, "GET /fine_tuning/jobs answered 200"
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise EndpointError(f"the endpoint {endpoint} refused the API key for fine-tuning "
                                f"({exc.status_code}){key_hint}") from None
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            raise EndpointUnreachable(f"the endpoint {endpoint} cannot be reached ({type(exc).__name__})") from None
        except openai.APIStatusError as exc:
            out.fine_tuning, out.fine_tuning_detail = False, f"GET /fine_tuning/jobs answered {exc.status_code}"
    return out


STRUCTURED_MODES = ("json_schema", "json_object", "text")
# a status that says "this server does not do that", as opposed to "try again later"
_REFUSALS = (400, 404, 405, 415, 422, 500, 501)


def probe_structured(client: openai.OpenAI, requests: dict[str, dict[str, Any]], max_retries: int = 3,
                     timeout_s: float | None = None) -> tuple[str | None, list[dict]]:
    """Send one request per response-format mode (`requests`: mode -> the request as that mode sends
    it, in order of preference) until one is accepted; returns (accepted mode or None, the exchanges).
    A refusal (400, 404,
    415, 422, 500, 501) moves to the next mode at once; a 500 is asked once more first, since some
    servers fail that way when busy. Other errors (429, 502-504, timeouts) are retried, then end the
    probe with no mode: the endpoint is failing, not refusing."""
    tried: list[dict] = []
    c = client.with_options(max_retries=0)
    for mode, req in requests.items():
        refusals = 0
        for attempt in range(max_retries + 1):
            try:
                c.post("/chat/completions", body=req, cast_to=ChatCompletion,
                       options={"timeout": timeout_s} if timeout_s else {})
                tried.append({"mode": mode, "accepted": True})
                return mode, tried
            except openai.APIStatusError as exc:
                text = re.sub(r"^Error code: \d+ - ", "", str(getattr(exc, "message", None) or exc))
                detail = f"{exc.status_code}: {text[:200]}"
                if exc.status_code in _REFUSALS:
                    refusals += 1
                    if exc.status_code != 500 or refusals >= 2:
                        tried.append({"mode": mode, "accepted": False, "answer": detail})
                        break
                    continue
                if attempt == max_retries:
                    tried.append({"mode": mode, "accepted": False, "answer": detail, "transient": True})
                    return None, tried
            except (openai.APIConnectionError, openai.APITimeoutError) as exc:
                if attempt == max_retries:
                    tried.append({"mode": mode, "accepted": False, "answer": type(exc).__name__, "transient": True})
                    return None, tried
            time.sleep(min(5.0, 0.25 * 2 ** attempt))
    return None, tried


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


def prompt_chars(req: dict[str, Any]) -> int:
    """Characters of a chat request's messages (about 4 per token for English text)."""
    n = 0
    for m in req.get("messages") or ():
        c = m.get("content") if isinstance(m, dict) else None
        n += len(c) if isinstance(c, str) else len(json.dumps(c or ""))
    return n


def scaled_timeout(req: dict[str, Any], base_s: float, per_1k_tokens_s: float) -> float:
    """A request's timeout: the base plus `per_1k_tokens_s` per 1,000 prompt tokens (estimated)."""
    return base_s + per_1k_tokens_s * prompt_chars(req) / 4 / 1000


class AdaptiveLimit:
    """How many requests may be in flight: additive increase while latency holds, decrease when it
    grows (the server is queueing), halving on 429, 5xx and timeouts (the server is overloaded).

    "Latency holds" means the smoothed latency stays within `tolerance` x the fastest seen (or
    `floor_s` above it, for sub-second servers whose latency is mostly noise)."""

    def __init__(self, start: int, maximum: int, tolerance: float = 1.5, floor_s: float = 0.05):
        self.maximum = max(1, int(maximum))
        self.limit = float(max(1, min(int(start), self.maximum)))
        self.tolerance, self.floor_s = tolerance, floor_s
        self.in_flight = 0
        self.baseline: float | None = None
        self.smoothed: float | None = None
        self.peak = int(self.limit)
        self.backoffs = 0
        self._cond = threading.Condition()

    def acquire(self) -> None:
        with self._cond:
            while self.in_flight >= int(self.limit):
                self._cond.wait()
            self.in_flight += 1

    def release(self, latency_s: float | None = None, overloaded: bool = False) -> None:
        with self._cond:
            self.in_flight -= 1
            if overloaded:
                self.limit = max(1.0, self.limit / 2)
                self.backoffs += 1
            elif latency_s is not None:
                self.baseline = latency_s if self.baseline is None else min(self.baseline, latency_s)
                self.smoothed = latency_s if self.smoothed is None else 0.8 * self.smoothed + 0.2 * latency_s
                if self.smoothed <= max(self.baseline * self.tolerance, self.baseline + self.floor_s):
                    self.limit = min(float(self.maximum), self.limit + 1.0 / self.limit)
                else:
                    self.limit = max(1.0, self.limit - 1.0 / self.limit)
            self.peak = max(self.peak, int(self.limit))
            self._cond.notify_all()

    def stats(self) -> dict[str, Any]:
        return {"concurrency_final": int(self.limit), "concurrency_peak": self.peak,
                "concurrency_max": self.maximum, "backoffs": self.backoffs}


class Results(list):
    """`complete_many`'s results in input order, with `stats` on how the load went."""

    stats: dict[str, Any]


def _overloaded(exc: Exception) -> bool:
    if isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError)):
        return True
    return isinstance(exc, openai.APIStatusError) and (exc.status_code == 429 or exc.status_code >= 500)


def complete_many(client: openai.OpenAI, requests: list[dict[str, Any]], concurrency: int = 8,
                  max_retries: int = 5, *, backoff_base_s: float = 0.25, backoff_max_s: float = 20.0,
                  seed: int | None = None, concurrency_start: int | None = None,
                  timeout_s: float | None = None, timeout_per_1k_tokens_s: float = 0.0,
                  on_done=None) -> Results:
    """Run chat completions concurrently; `requests[i]` are keyword arguments of
    `client.chat.completions.create` (model, messages, temperature, ...). Results keep input order.

    At most `concurrency` requests are in flight, starting from `concurrency_start` (default: all of
    them) and adapting as `AdaptiveLimit` says. With `timeout_s`, a request's timeout is
    `timeout_s + timeout_per_1k_tokens_s` per 1,000 prompt tokens. `on_done(1)` is called as each request
    ends (for progress bars)."""
    c = client.with_options(max_retries=0)  # retries are ours: backoff with jitter, per-row accounting
    rng = random.Random(seed)
    rng_lock = threading.Lock()
    gate = AdaptiveLimit(concurrency if concurrency_start is None else concurrency_start, concurrency)

    def jitter(cap: float) -> float:
        with rng_lock:
            return rng.uniform(0, cap)

    def one(i: int, req: dict[str, Any]) -> Result:
        res = Result(index=i)
        t_start = time.perf_counter()
        # The SDK's own HTTP path (auth, errors, response parsing) without its per-field
        # parameter transform, which costs ~0.25 s of CPU for a prompt with hundreds of
        # few-shot messages; the requests here are plain JSON-ready dicts already.
        body = {k: v for k, v in req.items() if k not in _SDK_OPTIONS}
        options = {opt: req[k] for k, opt in _SDK_OPTIONS.items() if req.get(k) is not None}
        if "extra_json" in options:
            body.update(options.pop("extra_json"))
        if timeout_s is not None and "timeout" not in options:
            options["timeout"] = scaled_timeout(req, timeout_s, timeout_per_1k_tokens_s)
        for attempt in range(max_retries + 1):
            res.attempts = attempt + 1
            gate.acquire()
            t0 = time.perf_counter()
            try:
                resp = c.post("/chat/completions", body=body, cast_to=ChatCompletion, options=options)
            except Exception as exc:  # noqa: BLE001 - every failure becomes a row, never a crash
                gate.release(overloaded=_overloaded(exc))
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
            gate.release(latency_s=res.latency_s)
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
        if on_done is not None:
            with rng_lock:
                on_done(1)
        return res

    out = Results()
    if requests:
        with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(requests)))) as pool:
            out.extend(pool.map(lambda ir: one(*ir), enumerate(requests)))
    start = max(1, min(concurrency if concurrency_start is None else concurrency_start, concurrency))
    out.stats = {**gate.stats(), "concurrency_start": start, "requests": len(requests), "retries": sum(max(0, r.attempts - 1) for r in out),
                 "failed": sum(not r.ok for r in out)}
    return out
