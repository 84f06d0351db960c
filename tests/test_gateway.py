"""A real gateway in between: the LiteLLM proxy on loopback, routing to the embedded provider.

The proxy is started by the test (`litellm --config proxy.yaml`) with a master key, and stopped by its
own PID. Fine-tuning runs on the embedded provider directly (the proxy has no fine-tuning configured:
it answers 500 there), the prompt candidates go through the proxy, and the fine-tuned model is
evaluated where it is served. A model routed to an upstream that is down fails as one candidate
without discarding the others. Run with `-s` to see the figures printed at the end.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

import pipeline.model.endpoint as endpoint
from loopback import LOOPBACK_KEY, start_keyed_provider  # noqa: F401
from pipeline.catalog import Catalog
from pipeline.config import DATA_DIR, EndpointSpec, load_config
from pipeline.model.endpoint import EndpointError, probe
from pipeline.model.evaluation import Route, candidates_from_config, run_evaluation
from pipeline.model.finetune import follow, submit_or_reuse
from pipeline.model.finetune_files import build_finetune_files

pytestmark = pytest.mark.slow  # the proxy takes 30-60 s to start on two busy cores

B77 = DATA_DIR / "banking77"
MASTER_KEY = "sk-tunegate-gateway-test-7f3a9c"
LABELS = 10


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    prov = start_keyed_provider(tmp_path_factory.mktemp("upstream"))
    yield prov
    prov.stop()


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    exe = Path(sys.executable).with_name("litellm")
    if not exe.exists():
        pytest.fail("the LiteLLM proxy is not installed: uv sync --extra test (the `gateway` extra)")
    folder = tmp_path_factory.mktemp("gateway")
    dead = f"http://127.0.0.1:{_free_port()}/v1"  # nothing listens there
    route = lambda name, base: {"model_name": name, "litellm_params": {  # noqa: E731
        "model": f"openai/{name}", "api_base": base, "api_key": LOOPBACK_KEY}}
    cfg = {"model_list": [route("tg-small", upstream.url), route("tg-large", upstream.url),
                          {**route("tg-small", dead), "model_name": "tg-offline"}],
           "litellm_settings": {"num_retries": 0, "request_timeout": 30},
           "general_settings": {"master_key": MASTER_KEY}}
    (folder / "proxy.yaml").write_text(json.dumps(cfg))
    port = _free_port()
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
    log = open(folder / "proxy.log", "wb")
    proc = subprocess.Popen([str(exe), "--config", str(folder / "proxy.yaml"), "--host", "127.0.0.1",
                             "--port", str(port), "--num_workers", "1"], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=env, start_new_session=True, cwd=folder)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            if proc.poll() is not None:
                pytest.fail("the LiteLLM proxy exited:\n" + (folder / "proxy.log").read_text(errors="replace")[-3000:])
            try:
                with urllib.request.urlopen(url + "/health/liveliness", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("the LiteLLM proxy did not start within 240 s")
                time.sleep(1)
        yield url + "/v1"
    finally:
        os.kill(proc.pid, signal.SIGTERM)  # by its own PID
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        log.close()


@pytest.fixture(scope="module")
def data():
    test = pd.read_csv(B77 / "test.csv").rename(columns={"category": "label"})
    train = pd.read_csv(B77 / "train.csv").rename(columns={"category": "label"})
    keep = sorted(test["label"].unique())[:LABELS]
    test = (test[test["label"].isin(keep)].groupby("label").head(3).reset_index(drop=True)
            .assign(ticket_id=lambda d: [f"G{i:03d}" for i in range(len(d))]))
    train = train[train["label"].isin(keep)].reset_index(drop=True).assign(
        ticket_id=lambda d: [f"R{i:05d}" for i in range(len(d))])
    return test, train, keep


def _cfg(tmp_path, gateway_url: str, upstream_url: str, labels):
    return load_config(
        None, warehouse=str(tmp_path / "wh"),
        taxonomy={"labels": {lab: {"description": lab.replace("_", " ")} for lab in labels}},
        endpoint={"base_url": gateway_url, "api_key_env": "TG_GATEWAY_KEY", "max_retries": 2, "concurrency": 4,
                  "timeout_s": 30},
        finetune={"base_model": "tg-small", "endpoint": {"base_url": upstream_url, "api_key_env": "TG_UPSTREAM_KEY"}},
        evaluation={"models": [{"name": "tg-small", "price_input_per_1m": 0.15, "price_output_per_1m": 0.6},
                               {"name": "tg-large", "finetune": False, "price_input_per_1m": 2.5,
                                "price_output_per_1m": 10.0}],
                    "bootstrap": 200, "repeats": 1, "few_shot_k": 2, "seed": 5, "structured": "auto"})


def test_probe_through_the_gateway(gateway, monkeypatch):
    monkeypatch.setenv("TG_GATEWAY_KEY", MASTER_KEY)
    spec = EndpointSpec(base_url=gateway, api_key_env="TG_GATEWAY_KEY")
    p = probe(endpoint.make_client(spec, "/nonexistent"), gateway, fine_tuning=True, api_key_env="TG_GATEWAY_KEY")
    assert p.models == ["tg-small", "tg-large", "tg-offline"]
    assert p.fine_tuning is False and "500" in p.fine_tuning_detail  # no fine-tuning configured on the proxy
    # a wrong or missing key is named as such, not taken for a missing API (LiteLLM with no database
    # answers 400 "No connected db." to a key it does not know)
    monkeypatch.setenv("TG_GATEWAY_KEY", "sk-wrong")
    with pytest.raises(EndpointError, match=r"refused GET /models \(400: .*\); set TG_GATEWAY_KEY to a key"):
        probe(endpoint.make_client(spec, "/nonexistent"), gateway, fine_tuning=True, api_key_env="TG_GATEWAY_KEY")
    monkeypatch.delenv("TG_GATEWAY_KEY")
    with pytest.raises(EndpointError, match=r"refused GET /models \(400: .*\); TG_GATEWAY_KEY is not set"):
        probe(endpoint.make_client(spec, "/nonexistent"), gateway, fine_tuning=True, api_key_env="TG_GATEWAY_KEY")


def test_prompts_through_the_gateway_and_fine_tuned_model_where_it_is_served(gateway, upstream, data, tmp_path,
                                                                              monkeypatch):
    monkeypatch.setenv("TG_GATEWAY_KEY", MASTER_KEY)
    monkeypatch.setenv("TG_UPSTREAM_KEY", LOOPBACK_KEY)
    test, train, labels = data
    cfg = _cfg(tmp_path, gateway, upstream.url, labels)
    # fine-tune on the upstream endpoint (the gateway has no fine-tuning API)
    ft_client = endpoint.make_client(cfg.finetune_endpoint, tmp_path)
    val = train.groupby("label").head(2)
    files = build_finetune_files({"train": train.drop(val.index).groupby("label").head(30), "val": val},
                                 cfg.taxonomy, tmp_path / "ft")
    catalog = Catalog(tmp_path / "catalog.duckdb")
    row = submit_or_reuse(ft_client, catalog, files, "gw-v1", cfg.finetune_hash(), cfg.finetune, "tg-small",
                          upstream.url, seed=1)
    row = follow(ft_client, catalog, row["job_id"], 0.2, timeout_s=300)
    ft_model = row["fine_tuned_model"]

    gw_client = endpoint.make_client(cfg.endpoint, tmp_path)
    cands = candidates_from_config(cfg, {"tg-small": ft_model})
    routes = {c.name: Route(gw_client, cfg.endpoint, gateway) for c in cands}
    routes["tg-small/fine_tuned"] = Route(ft_client, cfg.finetune_endpoint, upstream.url)
    offline = next(c for c in cands if c.name == "tg-large/zero_shot")
    # one more candidate: a model the gateway routes to an upstream that is down
    from dataclasses import replace
    broken = replace(offline, name="tg-offline/zero_shot", model="tg-offline", base_model="tg-offline")
    routes[broken.name] = Route(gw_client, cfg.endpoint, gateway)
    t0 = time.perf_counter()
    res = run_evaluation(None, test, train, cfg, cands + [broken], "gw-v1", routes=routes,
                         partial_dir=tmp_path / "partial")
    wall = time.perf_counter() - t0
    m = res.metrics
    for c in cands:
        assert m[c.name]["complete"], (c.name, m[c.name]["errors_sample"])
        assert m[c.name]["endpoint"] == (upstream.url if c.approach == "fine_tuned" else gateway)
        assert m[c.name]["structured_mode"] == "json_schema"  # the proxy passes the schema through
    assert not m[broken.name]["complete"] and m[broken.name]["failed_rows"] == len(test)
    assert broken.name not in res.ranking and set(res.ranking) == {c.name for c in cands}
    # the fine-tuned model, trained on the other endpoint, beats the zero-shot prompt through the gateway
    assert m["tg-small/fine_tuned"]["accuracy"] > m["tg-small/zero_shot"]["accuracy"]
    figures = {n: {k: (round(v, 4) if isinstance(v, float) else v) for k, v in x.items()
                   if k in ("accuracy", "format_validity", "latency_p50_s", "latency_p95_s", "failed_rows", "retries",
                            "structured_mode", "few_shot_examples", "endpoint")}
               | {"concurrency": {k: x["load"].get(k) for k in ("concurrency_start", "concurrency_peak",
                                                                 "concurrency_final", "backoffs")}}
               for n, x in m.items()}
    print(f"\ngateway run: {len(test)} rows x {len(cands) + 1} candidates in {wall:.1f} s")
    print(json.dumps(figures, indent=1))
