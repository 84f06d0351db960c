"""The embedded provider under attack and under kill -9: a bearer key per warehouse, no pickle, and a
fine-tuning job that survives the provider's death without being submitted twice.

The provider is a stand-in for a paid endpoint; these tests are about its safety and its recovery,
not about its figures."""
import json
import os
import pickle
import signal
import stat
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import openai
import pandas as pd
import pytest

from pipeline.config import DATA_DIR, EndpointSpec
from pipeline.model import endpoint
from pipeline.model import prompts as pr
from pipeline.provider import models as pm
from pipeline.provider.persist import load_classifier, save_classifier

TRAIN = pd.read_csv(DATA_DIR / "banking77" / "train.csv")
LABELS = sorted(TRAIN["category"].unique())[:6]
SUBSET = TRAIN[TRAIN["category"].isin(LABELS)].groupby("category").head(20)


def _jsonl(df) -> bytes:
    return "".join(json.dumps({"messages": pr.build_messages(LABELS, t, "short") + [pr.assistant_message(l)]}) + "\n"
                   for t, l in zip(df["text"], df["category"])).encode()


def _get(url: str, key: str | None):
    req = urllib.request.Request(url, headers={"authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture(scope="module")
def provider(embedded_provider):
    return embedded_provider


def test_training_data_needs_the_key(provider):
    client = openai.OpenAI(base_url=provider.url, api_key=provider.api_key, max_retries=0)
    f = client.files.create(file=("train.jsonl", _jsonl(SUBSET)), purpose="fine-tune")
    url = f"{provider.url}/files/{f.id}/content"
    assert _get(url, provider.api_key) == (200, _jsonl(SUBSET))
    for key in (None, "wrong", "tunegate-local", provider.api_key[:-1]):
        status, body = _get(url, key)
        assert status == 401, key
        assert b"train" not in body.lower().replace(b"api_key", b"")  # no training data in the refusal
        assert json.loads(body)["error"]["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=provider.url, api_key="any", max_retries=0).models.list()
    assert _get(provider.root + "/health", None)[0] == 200  # how a client finds the server, nothing more


def test_the_key_is_per_warehouse_private_and_passed_automatically(provider, tmp_path):
    key_file = provider.state_dir / "api_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(provider.state_dir.stat().st_mode) == 0o700
    from pipeline.provider.auth import api_key

    assert api_key(tmp_path / "other") != provider.api_key and len(provider.api_key) > 30
    # the client the pipeline builds carries it, whether the provider was found or named by its URL
    for spec in (EndpointSpec(), EndpointSpec(base_url=provider.url)):
        client = endpoint.make_client(spec, provider.state_dir)
        assert client.api_key == provider.api_key
        assert any(m.id == "tg-small" for m in client.models.list())


def test_models_are_stored_without_pickle(tmp_path):
    model = pm.FineTunedClassifier("tg-large", seed=3)
    model.fit(list(zip(SUBSET["text"], SUBSET["category"])), None, 2)
    path = tmp_path / "m.npz"
    save_classifier(model, path)
    with np.load(path, allow_pickle=False) as data:  # every entry is a plain array
        assert all(data[k].dtype != object for k in data.files)
    again = load_classifier(path)
    test = TRAIN[TRAIN["category"].isin(LABELS)].groupby("category").tail(10)["text"]
    assert all(np.array_equal(model.scores(t), again.scores(t)) for t in test)

    class Payload:  # what a planted model file could do if it were unpickled
        def __reduce__(self):
            return (Path.touch, (tmp_path / "pwned",))

    evil = tmp_path / "evil.npz"
    evil.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(Exception):
        load_classifier(evil)
    np.savez(tmp_path / "evil2.npz", meta=np.array([Payload()], dtype=object))
    with pytest.raises(ValueError):
        load_classifier(tmp_path / "evil2.npz")
    assert not (tmp_path / "pwned").exists()


@pytest.mark.slow
def test_a_provider_killed_mid_training_finishes_the_job_once(tmp_path):
    state = tmp_path / "state"
    env = {"TUNEGATE_PROVIDER_MIN_EPOCH_S": "1.0"}
    p = endpoint.LocalProvider.start(state, env=env)
    try:
        client = endpoint.make_client(EndpointSpec(max_retries=0), state)
        f = client.files.create(file=("train.jsonl", _jsonl(SUBSET)), purpose="fine-tune")
        job = client.fine_tuning.jobs.create(model="tg-small", training_file=f.id, seed=7,
                                             hyperparameters={"n_epochs": 6})
        deadline = time.monotonic() + 60
        while client.fine_tuning.jobs.retrieve(job.id).status != "running":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        os.kill(p.pid, signal.SIGKILL)
        p._proc.wait()
        t_kill = time.monotonic()

        p = endpoint.LocalProvider.start(state, env=env)
        client = endpoint.make_client(EndpointSpec(max_retries=0), state)
        while (j := client.fine_tuning.jobs.retrieve(job.id)).status not in ("succeeded", "failed", "cancelled"):
            assert time.monotonic() - t_kill < 120
            time.sleep(0.3)
        assert j.status == "succeeded"
        assert [x.id for x in client.fine_tuning.jobs.list()] == [job.id]  # resumed, not resubmitted
        out = client.chat.completions.create(model=j.fine_tuned_model, messages=pr.build_messages(
            LABELS, SUBSET["text"].iloc[0], "short"))
        assert out.choices[0].message.content in LABELS
        assert list((state / "models").glob("*.npz")) and not list((state / "models").glob("*.pkl"))
    finally:
        p.stop(force=True)
