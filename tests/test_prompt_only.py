"""A prompt-only endpoint (chat completions, no files, no fine-tuning, no json_schema), for real on loopback.

The embedded provider started with `--prompt-only` (TUNEGATE_PROVIDER_PROMPT_ONLY=1) answers like such
a server: 404 on /v1/files and /v1/fine_tuning, 400 to a json_schema response format. Covers: the probe
and the one-line plan, unknown model names, a fine-tuning endpoint separate from the prompt endpoint,
the structured-output fallback decided on the first refusal, few-shot examples cut to a context, and
a failing candidate that neither discards the others nor is recomputed when the next run resumes.
"""
from __future__ import annotations

import pandas as pd
import pytest

import pipeline.model.endpoint as endpoint
from loopback import LOOPBACK_KEY, start_keyed_provider  # noqa: F401
from pipeline.config import DATA_DIR, EndpointSpec, load_config
from pipeline.model.endpoint import EndpointError, probe
from pipeline.model.evaluation import Candidate, Route, candidates_from_config, fit_few_shot, run_evaluation, select_few_shot
from pipeline.model.steps import plan_endpoints

B77 = DATA_DIR / "banking77"
LABELS = 8  # a small label set, as a team with a 5-10 label router would have


@pytest.fixture(scope="module")
def prompt_only(tmp_path_factory):
    prov = start_keyed_provider(tmp_path_factory.mktemp("prompt_only"),
                                        env={"TUNEGATE_PROVIDER_PROMPT_ONLY": "1"})
    yield prov
    prov.stop()
    assert not endpoint._pid_alive(prov.pid)


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    prov = start_keyed_provider(tmp_path_factory.mktemp("full"))
    yield prov
    prov.stop()


@pytest.fixture(scope="module")
def data():
    test = pd.read_csv(B77 / "test.csv").rename(columns={"category": "label"})
    train = pd.read_csv(B77 / "train.csv").rename(columns={"category": "label"})
    keep = sorted(test["label"].unique())[:LABELS]
    test = (test[test["label"].isin(keep)].groupby("label").head(5).reset_index(drop=True)
            .assign(ticket_id=lambda d: [f"T{i:03d}" for i in range(len(d))]))
    return test, train[train["label"].isin(keep)].reset_index(drop=True), keep


def _cfg(tmp_path, url: str, labels, **extra):
    tax = {"labels": {lab: {"description": lab.replace("_", " ")} for lab in labels}}
    ev = {"models": [{"name": "tg-small", "finetune": True}], "bootstrap": 100, "repeats": 1, "few_shot_k": 2,
          "seed": 3, **extra.pop("evaluation", {})}
    return load_config(None, warehouse=str(tmp_path / "wh"), taxonomy=tax, evaluation=ev,
                       endpoint={"base_url": url, "max_retries": 2, "concurrency": 4, **extra.pop("endpoint", {})},
                       **extra)


@pytest.mark.slow  # starts servers
def test_probe_sees_no_fine_tuning_api(prompt_only, full):
    client = endpoint.make_client(load_config(None, endpoint={"base_url": prompt_only.url}).endpoint, "/nonexistent")
    p = probe(client, prompt_only.url, fine_tuning=True)
    assert p.fine_tuning is False and "404" in p.fine_tuning_detail
    assert {"tg-small", "tg-large"} <= set(p.models)
    client = endpoint.make_client(load_config(None, endpoint={"base_url": full.url}).endpoint, "/nonexistent")
    assert probe(client, full.url, fine_tuning=True).fine_tuning is True


@pytest.mark.slow  # starts servers
def test_plan_says_in_one_line_that_prompts_are_evaluated_alone(prompt_only, data, tmp_path):
    _, _, labels = data
    lines: list[str] = []
    plan = plan_endpoints(_cfg(tmp_path, prompt_only.url, labels), log=lines.append)
    assert plan["finetune"] is False
    assert lines == [plan["skipped"]]
    assert lines[0].startswith(f"no fine-tuning API at {prompt_only.url}: evaluating prompt candidates only; "
                               "set finetune.endpoint to fine-tune elsewhere")


@pytest.mark.slow  # starts servers
def test_finetune_endpoint_separate_from_the_prompt_endpoint(prompt_only, full, data, tmp_path):
    _, _, labels = data
    lines: list[str] = []
    cfg = _cfg(tmp_path, prompt_only.url, labels, finetune={"endpoint": {"base_url": full.url}})
    plan = plan_endpoints(cfg, log=lines.append)
    assert plan["finetune"] is True and plan["endpoint"] == full.url and lines == []
    assert cfg.finetune_endpoint.max_retries == 2  # what the override leaves out comes from `endpoint`
    assert cfg.model_endpoint("tg-small").base_url == prompt_only.url
    # endpoints do not enter the hashes that key jobs and evaluations
    assert cfg.finetune_hash() == _cfg(tmp_path, prompt_only.url, labels).finetune_hash()


@pytest.mark.slow  # starts servers
def test_unknown_model_name_names_the_models_on_offer(prompt_only, data, tmp_path):
    _, _, labels = data
    cfg = _cfg(tmp_path, prompt_only.url, labels, evaluation={"models": [{"name": "tg-smal"}]})
    with pytest.raises(EndpointError, match=r"tg-smal not served at .*offers: tg-small, tg-large"):
        plan_endpoints(cfg, log=lambda m: None)


@pytest.mark.slow  # starts servers
def test_structured_auto_falls_back_on_the_first_refusal(prompt_only, data, tmp_path):
    test, train, labels = data
    cfg = _cfg(tmp_path, prompt_only.url, labels, evaluation={"structured": "auto"})
    client = endpoint.make_client(cfg.endpoint, tmp_path)
    cands = candidates_from_config(cfg, {})
    res = run_evaluation(client, test, train, cfg, cands, "po-v1")
    assert res.settings["structured"] == "auto"
    for name, m in res.metrics.items():
        assert m["structured_mode"] == "json_object", name
        assert m["complete"] and m["failed_rows"] == 0 and m["retries"] == 0
    # decided once per model: one refused json_schema request, then json_object for every candidate
    probes = [m["structured_probe"] for m in res.metrics.values()]
    assert probes[0] == [{"mode": "json_schema", "accepted": False,
                          "answer": "400: response_format json_schema is not supported"},
                         {"mode": "json_object", "accepted": True}]
    assert all(p == probes[0] for p in probes)
    assert res.metrics["tg-small/zero_shot"]["format_validity"] > 0.5
    # "on" insists on the schema: the refusal fails the candidate instead of retrying every row
    on = run_evaluation(client, test, train, _cfg(tmp_path, prompt_only.url, labels,
                                                  evaluation={"structured": "on"}), cands[:1], "po-v1")
    m = on.metrics["tg-small/zero_shot"]
    assert not m["complete"] and m["failed_rows"] == len(test) and m["load"]["rows_requested"] == 0
    assert on.best is None and on.settings["incomplete"]["tg-small/zero_shot"]["failed_rows"] == len(test)


def test_few_shot_examples_fit_the_context(data, tmp_path):
    test, train, labels = data
    cfg = _cfg(tmp_path, "http://unused/v1", labels)
    examples = select_few_shot(train, labels, 5, 400, 3)
    assert len(examples) == 5 * LABELS
    everything = fit_few_shot(examples, cfg.taxonomy, "short", None, 40)
    assert everything == examples
    fitted = fit_few_shot(examples, cfg.taxonomy, "short", 1024, 40)
    assert 0 < len(fitted) < len(examples)
    assert [e for e in examples if e in fitted] == fitted  # order kept
    # labels stay covered: one per label before any label gets a second
    assert len({lab for _, lab in fitted}) == LABELS
    tiny = fit_few_shot(examples, cfg.taxonomy, "short", 300, 40)
    assert len(tiny) < LABELS


@pytest.mark.slow  # starts servers
def test_a_failing_candidate_keeps_the_others_and_resumes_only_missing_rows(prompt_only, full, data, tmp_path):
    """A flaky endpoint loses rows of one candidate; the next run asks for those rows only."""
    test, train, labels = data
    flaky = start_keyed_provider(tmp_path / "flaky", env={"TUNEGATE_PROVIDER_FAULTS": "503:0.35",
                                                                  "TUNEGATE_PROVIDER_FAULT_SEED": "7"})
    try:
        cfg = _cfg(tmp_path, prompt_only.url, labels, endpoint={"max_retries": 0})
        good = Route(endpoint.make_client(cfg.endpoint, tmp_path), cfg.endpoint, prompt_only.url)
        bad = Route(endpoint.make_client(cfg.endpoint_for(EndpointSpec(base_url=flaky.url)), tmp_path),
                    cfg.endpoint, flaky.url)
        cands = candidates_from_config(cfg, {})[:2]  # zero_shot on the good endpoint, long_prompt on the flaky one
        routes = {cands[0].name: good, cands[1].name: bad}
        first = run_evaluation(None, test, train, cfg, cands, "po-v2", routes=routes, partial_dir=tmp_path / "partial")
    finally:
        flaky.stop()
    lost = first.metrics[cands[1].name]["failed_rows"]
    assert 0 < lost < len(test)
    assert first.ranking == [cands[0].name] and first.best == cands[0].name  # the others still make it
    assert first.settings["incomplete"] == {cands[1].name: {"failed_rows": lost, "retries": 0,
                                                            "errors_sample": first.metrics[cands[1].name]["errors_sample"]}}
    routes[cands[1].name] = good  # the endpoint is healthy again
    second = run_evaluation(None, test, train, cfg, cands, "po-v2", routes=routes, partial_dir=tmp_path / "partial")
    m0, m1 = second.metrics[cands[0].name], second.metrics[cands[1].name]
    assert m0["load"]["rows_requested"] == 0 and m0["rows_resumed"] == len(test)  # nothing recomputed
    assert m1["load"]["rows_requested"] == lost and m1["rows_resumed"] == len(test) - lost
    assert m1["complete"] and set(second.ranking) == {c.name for c in cands}
    # the resumed answers are the ones first received
    p1 = first.predictions.query("candidate == @cands[0].name")["predicted"].tolist()
    assert second.predictions.query("candidate == @cands[0].name")["predicted"].tolist() == p1


@pytest.mark.slow
def test_model_half_on_a_prompt_only_endpoint_evaluates_and_reports(data_run, prompt_only, tmp_path, monkeypatch):
    """What `tunegate init` writes, pointed at a prompt-only server: no failure, a one-line plan, a report
    that says fine-tuning was skipped, prompt candidates only."""
    import shutil

    import yaml

    from assets.runner import run_job

    wh = tmp_path / "wh"  # a copy of the data run's warehouse and Dagster instance: the session's stay as they are
    shutil.copytree(data_run["warehouse"], wh, ignore=shutil.ignore_patterns("provider"), symlinks=True)
    monkeypatch.setenv("DAGSTER_HOME", str(wh / ".dagster"))
    path = tmp_path / "tunegate.yaml"
    path.write_text(yaml.safe_dump({"warehouse": str(wh), "endpoint": {"base_url": prompt_only.url},
                                    "evaluation": {"sample_size": 154, "bootstrap": 200, "repeats": 1,
                                                   "structured": "auto"}}))
    cfg = load_config(path)
    result = run_job(cfg, str(path), job="model_half", raise_on_error=False)
    failures = [(e.step_key, str(e.event_specific_data.error.message)[:300])
                for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert result.success, failures
    logs = [e.message for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"]
    del logs
    report = __import__("json").loads((wh / "reports" / "latest" / "report.json").read_text())
    skipped = report["settings"]["finetune_skipped"]
    assert skipped.startswith(f"no fine-tuning API at {prompt_only.url}: evaluating prompt candidates only")
    assert {c["approach"] for c in report["candidates"]} == {"zero_shot", "long_prompt", "few_shot"}
    assert report["settings"]["structured_modes"]["tg-small/zero_shot"] == "json_object"
    assert report["settings"]["incomplete"] == {}
    assert report["recommendation"]["candidate"] in report["ranking"]
