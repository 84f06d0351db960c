"""The endpoint client: endpoint resolution, the local provider's start/reuse/stop by PID, and
complete_many's retries against injected 429/503 faults on a real server."""
from __future__ import annotations

import os

import openai
import pytest

from pipeline.model import prompts as pr
from pipeline.config import EndpointSpec
from pipeline.model.endpoint import LocalProvider, _pid_alive, complete_many, make_client, resolve_endpoint

SYSTEM = ["card_arrival", "lost_or_stolen_card", "exchange_rate", "top_up_limits"]  # the prompt's labels


@pytest.fixture(scope="module")
def provider(embedded_provider):
    return embedded_provider


def _req(text: str, **extra) -> dict:
    return {"model": "tg-small", "temperature": 0, "messages": pr.build_messages(SYSTEM, text, "short"), **extra}


def test_provider_is_reused_for_its_state_dir(provider):
    again = LocalProvider.start(provider.state_dir)
    assert again.pid == provider.pid and again.url == provider.url and not again.owned
    again.stop()  # not owned: a no-op
    assert _pid_alive(provider.pid)


def test_resolve_endpoint_order(provider, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("MY_KEY", "sk-test")
    assert resolve_endpoint(EndpointSpec(base_url="http://gw.example/v1/", api_key_env="MY_KEY"),
                            provider.state_dir) == ("http://gw.example/v1", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://vllm.local:8000/v1")
    assert resolve_endpoint(EndpointSpec(api_key_env="MY_KEY"), provider.state_dir)[0] == "http://vllm.local:8000/v1"
    monkeypatch.delenv("OPENAI_BASE_URL")
    url, key = resolve_endpoint(EndpointSpec(), provider.state_dir)
    assert url == provider.url and key
    client = make_client(EndpointSpec(timeout_s=12, max_retries=1), provider.state_dir)
    assert client.max_retries == 1 and client.timeout == 12
    assert [m.id for m in client.models.list()][:2] == ["tg-small", "tg-large"]


def test_complete_many_keeps_order_and_reports_usage(provider):
    client = openai.OpenAI(base_url=provider.url, api_key=provider.api_key)
    texts = ["where is my new card", "someone stole my card", "what rate do you use for euros"] * 10
    res = complete_many(client, [_req(t) for t in texts], concurrency=4, max_retries=2)
    assert [r.index for r in res] == list(range(len(texts)))
    assert all(r.ok and r.attempts == 1 and r.latency_s > 0 and r.prompt_tokens > 0 for r in res)
    assert [r.content for r in res[:3]] == ["card_arrival", "lost_or_stolen_card", "exchange_rate"]
    assert res[0].usage["total_tokens"] == res[0].prompt_tokens + res[0].completion_tokens


def test_complete_many_retries_transient_faults_and_reports_the_rest(provider):
    client = openai.OpenAI(base_url=provider.url, api_key=provider.api_key)
    flaky = {"extra_headers": {"X-Tunegate-Faults": "429:0.3,503:0.1"}}
    broken = {"extra_headers": {"X-Tunegate-Faults": "503:1.0"}}
    reqs = [_req(f"where is my card {i}", **flaky) for i in range(40)]
    reqs[5] = _req("my card was stolen", **broken)
    reqs[17] = {"model": "no-such-model", "messages": pr.build_messages(SYSTEM, "hi", "short")}
    # Each attempt fails with p = 0.37; with 14 attempts a flaky request is lost with p ~ 1e-6.
    res = complete_many(client, reqs, concurrency=6, max_retries=13, backoff_base_s=0.005,
                       backoff_max_s=0.2, seed=1)
    assert len(res) == 40
    assert res[5].error and "503" in str(res[5].status_code) and res[5].attempts == 14
    assert res[17].error and res[17].status_code == 404 and res[17].attempts == 1  # not retried
    others = [r for i, r in enumerate(res) if i not in (5, 17)]
    assert [(r.index, r.error) for r in others if not r.ok] == []
    assert all(r.content == "card_arrival" for r in others)
    assert sum(r.attempts > 1 for r in others) >= 3  # faults happened and were retried away
    assert any("RateLimitError" in e for r in others for e in r.retried_errors)


def test_complete_many_connection_errors_become_rows():
    client = openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="x", timeout=2)
    res = complete_many(client, [_req("x"), _req("y")], concurrency=2, max_retries=1, backoff_base_s=0.01)
    assert all(r.error and "APIConnectionError" in r.error and r.attempts == 2 for r in res)


def test_concurrency_adapts_and_latency_leaves_out_waits_and_backoff(provider):
    """Concurrency starts low and rises while latency holds; 429s halve it; a retried row's latency is
    its successful attempt alone, not the queue, the failed attempts or the backoff."""
    client = openai.OpenAI(base_url=provider.url, api_key=provider.api_key)
    texts = ["where is my new card", "someone stole my card", "what rate do you use for euros"] * 20
    calm = complete_many(client, [_req(t) for t in texts], concurrency=6, concurrency_start=1, max_retries=2)
    assert calm.stats["concurrency_start"] == 1 and calm.stats["concurrency_peak"] > 1
    assert calm.stats["backoffs"] == 0 and calm.stats["retries"] == 0 and calm.stats["failed"] == 0
    flaky = {"extra_headers": {"X-Tunegate-Faults": "429:0.4"}}
    stormy = complete_many(client, [_req(t, **flaky) for t in texts], concurrency=6, concurrency_start=6,
                           max_retries=12, backoff_base_s=0.05, backoff_max_s=0.2, seed=3)
    assert stormy.stats["failed"] == 0 and stormy.stats["backoffs"] >= 10
    assert stormy.stats["retries"] == sum(r.attempts - 1 for r in stormy) >= 10
    retried = [r for r in stormy if r.attempts > 1]
    assert all(r.latency_s < r.elapsed_s for r in retried)
    # retry-after-ms is 20 ms: a row retried at least twice waited at least 40 ms outside its latency
    assert all(r.elapsed_s - r.latency_s >= 0.04 for r in retried if r.attempts > 2)


def test_timeouts_scale_with_the_prompt():
    from pipeline.model.endpoint import scaled_timeout

    short = _req("where is my card")
    long = {**short, "messages": short["messages"] + [{"role": "user", "content": "word " * 4000}]}
    assert scaled_timeout(short, 60, 15) == pytest.approx(
        60 + 15 * len("".join(m["content"] for m in short["messages"])) / 4000, rel=0.05)
    assert scaled_timeout(long, 60, 15) - scaled_timeout(short, 60, 15) == pytest.approx(15 * 20000 / 4000, rel=0.01)


@pytest.mark.parametrize("slots, settles_at", [(1, (1, 2)), (4, (4, 7)), (16, (8, 8))])
def test_adaptive_limit_settles_near_what_the_server_can_serve(slots, settles_at):
    """The controller alone, on latencies a server with `slots` parallel slots gives when `k` requests are
    in flight (1.1 s each; beyond the slots they queue: k / slots rounds). It tolerates 1.5x the fastest
    latency, so it may run a little past the slots. At concurrency 8 a one-slot
    server would answer in ~8 s; the limit settles where latency is still about one request's time."""
    from pipeline.model.endpoint import AdaptiveLimit

    lim = AdaptiveLimit(start=2, maximum=8)
    seen = []
    for _ in range(300):
        k = int(lim.limit)
        latency = 1.1 * max(1.0, k / slots)
        for _ in range(k):
            lim.acquire()
        for _ in range(k):
            lim.release(latency_s=latency)
        seen.append(int(lim.limit))
    low, high = settles_at
    assert low <= min(seen[-50:]) and max(seen[-50:]) <= high, seen[-50:]
    lim.acquire()
    lim.release(overloaded=True)  # a 429 halves it
    assert lim.backoffs == 1 and int(lim.limit) == max(1, int(seen[-1] / 2))
