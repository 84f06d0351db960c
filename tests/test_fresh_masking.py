"""Masked against unmasked accuracy on the fresh sample (pipeline/model/fresh.py `masking_ablation`).

A fine-tuned tg-small (trained on the embedded provider, for real) and the prompt candidates score the
bundled fresh sample (Banking77's official test split with planted personal data) masked by the project's
masker and unmasked; a masking rule that hides the row's own label words shows up as a cost on its type."""
from __future__ import annotations

import json
import re
import time

import pandas as pd
import pytest

from pipeline.config import DATA_DIR, load_config
from pipeline.model.evaluation import Candidate, Route

B77 = DATA_DIR / "banking77"
LABELS = ["apple_pay_or_google_pay", "atm_support", "exchange_rate", "top_up_failed", "visa_or_mastercard",
          "cash_withdrawal_charge", "card_arrival", "lost_or_stolen_card", "pending_transfer", "refund_not_showing_up",
          "wrong_exchange_rate_for_cash_withdrawal", "verify_my_identity"]


def _route(endpoint: str) -> Route:
    return Route(None, None, endpoint)


@pytest.mark.parametrize("setting, endpoint, run, why", [
    (None, "embedded:/w/provider", True, "embedded local provider"),
    (None, "https://llm.example.internal/v1", False, "evaluation.masking_ablation: true"),
    (True, "https://llm.example.internal/v1", True, "configured endpoint"),
    (False, "embedded:/w/provider", False, "is off"),
])
def test_unmasked_text_goes_to_an_endpoint_only_when_allowed(setting, endpoint, run, why):
    from pipeline.model.fresh import ablation_allowed

    cands = [Candidate("tg-small/fine_tuned", "ft:tg-small:x", "fine_tuned", "tg-small", 0.3, 1.2),
             Candidate("tg-small/few_shot", "tg-small", "few_shot", "tg-small", 0.15, 0.6)]
    routes = {c.name: _route(endpoint) for c in cands}
    ok, reason = ablation_allowed(setting, cands, routes)
    assert ok is run and why in reason
    # one candidate elsewhere is enough to keep auto off
    routes["tg-small/few_shot"] = _route("https://llm.example.internal/v1")
    assert ablation_allowed(None, cands, routes)[0] is False


def test_ablation_is_not_run_when_rows_cannot_be_paired():
    """The two arms are paired by ticket id: a fresh file that repeats an id gets no ablation (and says why)."""
    from pipeline.model.fresh import masking_ablation

    rows = pd.read_csv(B77 / "test.csv").rename(columns={"category": "label"}).head(6)
    rows = rows.assign(ticket_id=["A", "B", "C", "C", "D", "E"])
    cand = Candidate("tg-small/few_shot", "tg-small", "few_shot", "tg-small", 0.15, 0.6)

    class Frozen:
        ranking = [cand.name]
        metrics = {cand.name: {"approach": "few_shot"}}

    ab = masking_ablation(None, rows, rows, None, None, load_config(None), [cand], Frozen(),
                          routes={cand.name: _route("embedded:/w/provider")})
    assert ab["run"] is False and "not unique" in ab["reason"] and ab["candidates"] == {}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The embedded provider with a tg-small fine-tuned on 12 Banking77 labels, the frozen evaluation of
    the candidates on Banking77 test rows, and the bundled fresh sample of those labels, masked."""
    import pipeline.model.endpoint as endpoint
    from pipeline.data.sample.generator import write_fresh_sample
    from pipeline.model.evaluation import candidates_from_config, run_evaluation
    from pipeline.model.finetune_files import build_finetune_files
    from pipeline.model.fresh import load_fresh_sample, mask_fresh
    from pipeline.model.provenance import describe

    tmp = tmp_path_factory.mktemp("ablation")
    cfg = load_config(None, evaluation={"models": [{"name": "tg-small", "price_input_per_1m": 0.15,
                                                    "price_output_per_1m": 0.60}],
                                        "bootstrap": 300, "repeats": 1, "few_shot_k": 2, "seed": 3},
                      endpoint={"concurrency": 4, "max_retries": 3})
    train = (pd.read_csv(B77 / "train.csv").rename(columns={"category": "label"}))
    train = train[train["label"].isin(LABELS)].groupby("label").head(60).reset_index(drop=True)
    train = train.assign(ticket_id=[f"T{i:05d}" for i in range(len(train))])
    test = pd.read_csv(B77 / "test.csv").rename(columns={"category": "label"})
    frozen_rows = (test[test["label"].isin(LABELS)].groupby("label").head(6).reset_index(drop=True)
                   .assign(ticket_id=lambda d: [f"F{i:04d}" for i in range(len(d))]))
    provider_dir = tmp / "provider"
    provider = endpoint.LocalProvider.start(provider_dir)
    try:
        client = endpoint.make_client(cfg.endpoint, provider_dir)
        files = build_finetune_files({"train": train, "val": train.head(24)}, cfg.taxonomy, tmp / "ft",
                                     style=cfg.finetune.prompt_style)
        with open(files["train"]["path"], "rb") as fh:
            tf = client.files.create(file=("train.jsonl", fh.read()), purpose="fine-tune")
        job = client.fine_tuning.jobs.create(model="tg-small", training_file=tf.id, seed=7,
                                             hyperparameters={"n_epochs": 4})
        deadline = time.monotonic() + 120
        while job.status not in ("succeeded", "failed", "cancelled") and time.monotonic() < deadline:
            time.sleep(0.2)
            job = client.fine_tuning.jobs.retrieve(job.id)
        assert job.status == "succeeded", job.error
        cands = candidates_from_config(cfg, {"tg-small": job.fine_tuned_model})
        routes = {c.name: Route(client, cfg.endpoint, "embedded:" + str(provider_dir)) for c in cands}
        provenance = describe(client, "embedded:" + str(provider_dir), cands)
        frozen = run_evaluation(None, frozen_rows, train, cfg, cands, "frozen-v1", routes=routes,
                                provenance=provenance, extra_runs=False)
        write_fresh_sample(tmp / "fresh_sample.csv")
        rows, facts = load_fresh_sample(tmp / "fresh_sample.csv", cfg.taxonomy)
        rows = rows[rows["label"].isin(LABELS)].reset_index(drop=True)
        facts = {**facts, "rows_used": len(rows)}
        masked = mask_fresh(rows, cfg.masking)
        yield {"cfg": cfg, "client": client, "cands": cands, "routes": routes, "provenance": provenance,
               "frozen": frozen, "rows": rows, "masked": masked, "facts": facts, "train": train}
    finally:
        provider.stop()


@pytest.mark.slow
def test_fresh_rows_are_scored_masked_and_unmasked_with_a_paired_test(world):
    from pipeline.model.fresh import fresh_sample_check

    w = world
    out = fresh_sample_check(None, w["masked"], w["facts"], w["train"], w["cfg"], w["cands"], w["frozen"],
                             w["provenance"], routes=w["routes"], unmasked=w["rows"])
    ab = out["masking_ablation"]
    best_prompt = next(n for n in w["frozen"].ranking if not n.endswith("/fine_tuned"))
    assert ab["run"] and "embedded local provider" in ab["reason"]
    assert set(ab["candidates"]) == {"tg-small/fine_tuned", best_prompt}
    with_masks = int((w["masked"]["pii_types"] != "").sum())
    assert ab["rows"] == len(w["rows"]) and ab["rows_with_masks"] == with_masks > 20
    for name, c in ab["candidates"].items():
        # the masked arm is the fresh-sample check itself
        assert c["masked_accuracy"] == pytest.approx(out["candidates"][name]["fresh_accuracy"])
        # rows with nothing masked are the same text both ways (and the stand-ins are deterministic), so the
        # whole difference comes from the rows with a mask
        on = c["rows_with_masks"]
        assert c["masking_cost"] * c["n"] == pytest.approx(on["masking_cost"] * on["n"], abs=1e-9)
        assert c["masking_cost_ci"][0] <= c["masking_cost"] <= c["masking_cost_ci"][1]
        assert on["right_only_unmasked"] - on["right_only_masked"] == round(on["masking_cost"] * on["n"])
        assert 0 <= c["mcnemar_p"] <= 1
    for t, e in ab["by_type"].items():
        assert e["rows"] == int(w["masked"]["pii_types"].str.split(",").apply(lambda v: t in v).sum()) > 0
    assert "stand-in" in ab["note"] and set(ab["stand_in_candidates"]) == set(ab["candidates"])
    # only counts and figures leave: no fresh text, masked or not, is in the result
    blob = json.dumps(out)
    assert not any(t in blob for t in w["rows"]["text"].head(200))


@pytest.mark.slow
def test_a_rule_that_masks_label_words_shows_as_a_cost_on_its_type(world):
    """A masking rule that takes the row's own label words for a name (what the issue saw on an assistant
    export: "calendar", "ingredients" masked as PERSON) costs accuracy, and the per-type table shows it."""
    from pipeline.model.fresh import masking_ablation

    w = world
    masked = w["masked"].copy()
    bad = []
    for i, (text, label) in enumerate(zip(masked["text"], masked["label"])):
        words = [x for x in label.split("_") if len(x) > 3 and x not in ("card", "cash")]
        new = re.sub(r"(?i)\b(" + "|".join(map(re.escape, words)) + r")\b", "<PERSON_9>", text) if words else text
        if new != text:
            masked.loc[i, "text"] = new
            types = set(filter(None, masked.loc[i, "pii_types"].split(","))) | {"PERSON"}
            masked.loc[i, "pii_types"] = ",".join(sorted(types))
            bad.append(i)
    assert len(bad) > 100
    cfg, routes = w["cfg"], w["routes"]
    from pipeline.model.evaluation import run_evaluation

    fresh_result = run_evaluation(None, masked, w["train"], cfg, w["cands"], "fresh-sample", routes=routes,
                                  provenance=w["provenance"], extra_runs=False)
    ab = masking_ablation(None, masked, w["rows"], fresh_result, w["train"], cfg, w["cands"], w["frozen"],
                          w["provenance"], routes=routes)
    person = ab["by_type"]["PERSON"]["candidates"]["tg-small/fine_tuned"]
    assert person["masking_cost"] > 0.1 and person["masking_cost_ci"][0] > 0 and person["mcnemar_p"] < 0.01
    assert person["beyond_noise"]
    # the cost is visible overall too, and smaller than on the rows the rule touched
    ft = ab["candidates"]["tg-small/fine_tuned"]
    assert 0 < ft["masking_cost"] < person["masking_cost"]


@pytest.mark.slow
def test_masking_ablation_off_sends_nothing(world):
    from pipeline.model.fresh import masking_ablation

    w = world
    cfg = w["cfg"].model_copy(update={"evaluation": w["cfg"].evaluation.model_copy(update={"masking_ablation": False})})
    ab = masking_ablation(None, w["masked"], w["rows"], w["frozen"], w["train"], cfg, w["cands"], w["frozen"],
                          w["provenance"], routes=w["routes"])
    assert ab == {"run": False, "reason": "evaluation.masking_ablation is off", "candidates": {}, "by_type": {}}
