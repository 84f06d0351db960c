"""Tests of the holdout evaluation: statistics and metrics on real Banking77 labels with a controlled
share of corrupted predictions (so accuracy, intervals and McNemar have known answers), candidate and
few-shot selection, and one run through the embedded provider."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from pipeline.model import stats
from pipeline.config import DATA_DIR, load_config
from pipeline.model.evaluation import (Candidate, candidates_from_config, few_shot_usage, score_candidates,
                                       select_few_shot, stratified_sample)

B77 = DATA_DIR / "banking77"


@pytest.fixture(scope="module")
def test_labels() -> list[str]:
    return pd.read_csv(B77 / "test.csv")["category"].tolist()


@pytest.fixture(scope="module")
def config():
    return load_config(None, evaluation={"bootstrap": 400, "seed": 7})


def corrupt(labels: list[str], rows: np.ndarray, seed: int = 0) -> list[str]:
    """Replace the label of the given rows with another, different label."""
    vocab = sorted(set(labels))
    rng = np.random.default_rng(seed)
    out = list(labels)
    for i in rows:
        choices = [v for v in vocab if v != labels[i]]
        out[i] = choices[rng.integers(len(choices))]
    return out


def scored_frame(pred: list, errors: dict[int, str] | None = None, prompt_tokens: int = 400) -> pd.DataFrame:
    errors = errors or {}
    n = len(pred)
    return pd.DataFrame({
        "predicted": [None if i in errors else p for i, p in enumerate(pred)],
        "parsed": [None if i in errors else p for i, p in enumerate(pred)],
        "valid": [i not in errors and p is not None for i, p in enumerate(pred)],
        "error": [errors.get(i) for i in range(n)],
        "latency_s": np.linspace(0.01, 0.2, n),
        "prompt_tokens": [None if i in errors else prompt_tokens for i in range(n)],
        "completion_tokens": [None if i in errors else 5 for i in range(n)],
    })


# ------------------------------------------------------------------------------------ stats
def test_bootstrap_ci_accuracy_matches_binomial_width(test_labels):
    n = len(test_labels)
    wrong = np.random.default_rng(1).choice(n, size=int(0.2 * n), replace=False)
    pred = corrupt(test_labels, wrong)
    ci = stats.bootstrap_ci(test_labels, pred, "accuracy", 1000, seed=3)
    assert ci["value"] == pytest.approx(1 - len(wrong) / n)
    assert ci["low"] < ci["value"] < ci["high"]
    normal_half_width = 1.96 * math.sqrt(0.8 * 0.2 / n)
    assert (ci["high"] - ci["low"]) / 2 == pytest.approx(normal_half_width, rel=0.15)
    assert stats.bootstrap_ci(test_labels, pred, "accuracy", 1000, seed=3) == ci  # seeded


def test_macro_f1_matches_sklearn_including_missing_answers(test_labels):
    n = len(test_labels)
    pred = corrupt(test_labels, np.arange(0, n, 4))
    assert stats.macro_f1(test_labels, pred) == pytest.approx(f1_score(test_labels, pred, average="macro"))
    with_none = [None if i % 9 == 0 else p for i, p in enumerate(pred)]
    labs = sorted(set(test_labels))
    expected = f1_score(test_labels, [p or "<none>" for p in with_none], labels=labs, average="macro")
    assert stats.macro_f1(test_labels, with_none) == pytest.approx(expected)
    ci = stats.bootstrap_ci(test_labels, with_none, "macro_f1", 300, seed=1, labels=labs)
    assert ci["value"] == pytest.approx(expected) and ci["low"] < expected < ci["high"]


def test_mcnemar_exact_on_hand_counts():
    a = np.array([1] * 10 + [0] * 2 + [1] * 50 + [0] * 20, dtype=bool)
    b = np.array([0] * 10 + [1] * 2 + [1] * 50 + [0] * 20, dtype=bool)
    r = stats.mcnemar(a, b)
    assert (r["a_only"], r["b_only"], r["n_discordant"]) == (10, 2, 12)
    assert r["p_value"] == pytest.approx(2 * (1 + 12 + 66) / 4096)  # 2 * P(X <= 2), X ~ Bin(12, 1/2)
    assert stats.mcnemar(a, a)["p_value"] == 1.0


def test_paired_bootstrap_difference():
    a = np.array([1] * 90 + [0] * 10, dtype=bool)
    b = np.array([1] * 80 + [0] * 20, dtype=bool)
    r = stats.paired_bootstrap_diff(a, b, 1000, seed=0)
    assert r["diff"] == pytest.approx(0.10)
    assert 0 < r["low"] < 0.10 < r["high"] and r["p_value"] < 0.01
    same = stats.paired_bootstrap_diff(a, a, 200, seed=0)
    assert same["diff"] == 0 and same["p_value"] == 1.0


# ------------------------------------------------------------------------------------ metrics
def test_metrics_on_corrupted_banking77(test_labels, config):
    n = len(test_labels)
    rng = np.random.default_rng(5)
    wrong_a = rng.choice(n, size=int(0.20 * n), replace=False)  # 80% accurate
    wrong_b = wrong_a[: int(0.10 * n)]  # 90% accurate, its errors a subset of A's
    pred_a = corrupt(test_labels, wrong_a)
    pred_b = corrupt(test_labels, wrong_b)
    # one systematic confusion on B, and some invalid answers and failed requests on A
    arrival = [i for i, l in enumerate(test_labels) if l == "card_arrival" and i not in set(wrong_b)][:7]
    for i in arrival:
        pred_b[i] = "card_delivery_estimate"
    right_a = np.setdiff1d(np.arange(n), wrong_a)
    invalid = right_a[:31]
    errors = {int(i): "HTTP 503 after 5 retries" for i in right_a[31:40]}
    for i in invalid:
        pred_a[i] = None
    cands = [Candidate("tg-small/zero_shot", "tg-small", "zero_shot", "tg-small", 0.15, 0.60),
             Candidate("tg-small/fine_tuned", "ft:tg-small:x", "fine_tuned", "tg-small", 0.30, 1.20)]
    res = score_candidates(config, cands, [f"t{i}" for i in range(n)], test_labels,
                           {cands[0].name: scored_frame(pred_a, errors), cands[1].name: scored_frame(pred_b)},
                           dataset_version="v1")
    a, b = res.metrics[cands[0].name], res.metrics[cands[1].name]
    expected_a = (n - len(wrong_a) - 31 - 9) / n
    assert a["accuracy"] == pytest.approx(expected_a)
    assert a["format_validity"] == pytest.approx((n - 40) / n)  # invalid and failed both invalid
    assert a["n_invalid"] == 31 and a["n_errors"] == 9
    assert a["accuracy_ci"][0] < a["accuracy"] < a["accuracy_ci"][1]
    assert b["accuracy"] == pytest.approx((n - len(wrong_b) - 7) / n)
    assert b["top_confusions"][0] == {"true": "card_arrival", "predicted": "card_delivery_estimate", "count": 7}
    expected_f1 = f1_score(test_labels, [p or "<x>" for p in res.predictions.query(
        "candidate == @cands[0].name")["predicted"]], labels=sorted(set(test_labels)), average="macro")
    assert a["macro_f1"] == pytest.approx(expected_f1)
    # price per 1,000 answers: 400 prompt and 5 completion tokens at the configured prices
    assert a["price_per_1000"] == pytest.approx(1000 * (400 * 0.15 + 5 * 0.60) / 1e6)
    assert b["price_per_1000"] == pytest.approx(1000 * (400 * 0.30 + 5 * 1.20) / 1e6)
    # A has requests that failed after retries: reported, but incomplete and not ranked
    assert res.best == cands[1].name and res.runner_up is None and res.ranking == [cands[1].name]
    assert not a["complete"] and res.settings["incomplete"][cands[0].name]["failed_rows"] == 9
    # paired test: B beats A significantly
    comp = res.comparison(cands[1].name, cands[0].name)
    assert comp["significant"] and comp["mcnemar_p"] < 1e-10 and comp["diff"] > 0.1
    assert res.comparison(cands[0].name, cands[1].name)["diff"] == pytest.approx(-comp["diff"])
    # predictions: every row for every candidate, failures kept, no ticket text
    assert len(res.predictions) == 2 * n and "text" not in res.predictions.columns
    assert res.predictions["error"].notna().sum() == 9
    d = res.to_dict()
    json.dumps(d)
    assert "predictions" not in d and d["metrics"][cands[0].name]["n_errors"] == 9


def test_not_significant_when_difference_is_tiny(test_labels, config):
    labels = test_labels[:400]
    pred_a = corrupt(labels, np.arange(0, 400, 5))       # 80 wrong
    pred_b = corrupt(labels, np.arange(0, 400, 5)[:76])  # 76 wrong
    cands = [Candidate("a", "m", "zero_shot", "m", 0, 0), Candidate("b", "m2", "long_prompt", "m2", 0, 0)]
    res = score_candidates(config, cands, list(map(str, range(400))), labels,
                           {"a": scored_frame(pred_a), "b": scored_frame(pred_b)})
    assert res.best == "b" and not res.best_vs_runner_up["significant"]
    assert res.best_vs_runner_up["mcnemar_p"] == pytest.approx(0.125)  # 4 discordant, all one way


# ------------------------------------------------------------------------------------ selection
def test_candidates_from_config_uses_fine_tuned_prices():
    cfg = load_config(None)
    cands = candidates_from_config(cfg, {"tg-small": "ft:tg-small:tunegate:abc"})
    names = [c.name for c in cands]
    assert names == ["tg-small/zero_shot", "tg-small/long_prompt", "tg-small/few_shot", "tg-small/fine_tuned",
                     "tg-large/zero_shot", "tg-large/long_prompt", "tg-large/few_shot"]
    ft = cands[3]
    assert ft.model == "ft:tg-small:tunegate:abc" and (ft.price_in_per_1m, ft.price_out_per_1m) == (0.30, 1.20)
    assert cands[1].prompt_style == "long" and cands[0].prompt_style == "short"
    assert ft.prompt_style == cfg.finetune.prompt_style == "short"  # served the prompt it was trained with


def test_few_shot_examples_come_from_train_seeded_and_capped():
    train = pd.read_csv(B77 / "train.csv").rename(columns={"category": "label"})
    labels = sorted(train["label"].unique())
    ex = select_few_shot(train, labels, k=5, max_total=154, seed=13)
    assert len(ex) == 154  # 77 labels x min(5, 154 // 77 = 2)
    assert pd.Series([l for _, l in ex]).value_counts().eq(2).all()
    train_texts = set(train["text"])
    assert all(t in train_texts for t, _ in ex)
    assert ex == select_few_shot(train, labels, k=5, max_total=154, seed=13)
    assert ex != select_few_shot(train, labels, k=5, max_total=154, seed=14)
    assert len(select_few_shot(train, labels[:10], k=3, max_total=154, seed=1)) == 30
    # the cut is reported with its reason, never silent
    use = few_shot_usage(ex, labels, k=5, max_total=154)
    assert (use["configured_per_label"], use["used_per_label"], use["differs"]) == (5, 2, True)
    assert "few_shot_max=154" in use["reason"]
    full = few_shot_usage(select_few_shot(train, labels, k=5, max_total=400, seed=13), labels, k=5, max_total=400)
    assert (full["used_per_label"], full["differs"], full["reason"]) == (5, False, "")


def test_stratified_sample_keeps_shares():
    df = pd.read_csv(B77 / "test.csv").rename(columns={"category": "label"})
    s = stratified_sample(df, 770, seed=3)
    assert len(s) == 770 and s["label"].nunique() == 77
    assert s["label"].value_counts().between(9, 11).all()
    assert s.equals(stratified_sample(df, 770, seed=3))
    assert len(stratified_sample(df, None, seed=3)) == len(df)


def test_record_writes_one_catalog_row_per_candidate(test_labels, config, tmp_path):
    from pipeline.catalog import Catalog
    from pipeline.model.evaluation import record

    labels = test_labels[:200]
    cands = [Candidate("a", "m", "zero_shot", "m", 0.1, 0.2), Candidate("b", "m", "long_prompt", "m", 0.1, 0.2)]
    res = score_candidates(config, cands, list(map(str, range(200))), labels,
                           {"a": scored_frame(corrupt(labels, np.arange(20))), "b": scored_frame(labels)},
                           dataset_version="v9")
    cat = Catalog(tmp_path / "catalog.duckdb")
    ids = record(cat, res, config.hash(), "reports/r1")
    assert ids == record(cat, res, config.hash(), "reports/r1")  # stable ids: re-recording replaces
    rows = cat.query("SELECT candidate, metrics FROM evaluations ORDER BY candidate")
    assert list(rows["candidate"]) == ["a", "b"]
    assert json.loads(rows["metrics"][0])["accuracy"] == pytest.approx(0.9)


# ------------------------------------------------------------------------------------ integration
@pytest.mark.slow
def test_run_evaluation_through_the_embedded_provider(tmp_path):
    """zero_shot, long_prompt and few_shot for tg-small on 10 labels x 8 test rows, for real."""
    import pipeline.model.endpoint as endpoint
    from pipeline.model.evaluation import run_evaluation
    from pipeline.model.provenance import describe

    cfg = load_config(None, evaluation={"models": [{"name": "tg-small", "price_input_per_1m": 0.15,
                                                    "price_output_per_1m": 0.60}],
                                        "bootstrap": 200, "repeats": 2, "few_shot_k": 1, "seed": 3},
                      endpoint={"concurrency": 4, "max_retries": 3})
    full = pd.read_csv(B77 / "test.csv").rename(columns={"category": "label"})
    ten = sorted(full["label"].unique())[:10]
    test = (full[full["label"].isin(ten)].groupby("label").head(8).reset_index(drop=True)
            .assign(ticket_id=lambda d: [f"T{i:03d}" for i in range(len(d))]))
    train = pd.read_csv(B77 / "train.csv").rename(columns={"category": "label"})
    cands = candidates_from_config(cfg, {})
    assert [c.approach for c in cands] == ["zero_shot", "long_prompt", "few_shot"]
    provider = endpoint.LocalProvider.start(tmp_path / "provider")
    try:
        client = endpoint.make_client(cfg.endpoint, tmp_path / "provider")  # finds the server started above
        res = run_evaluation(client, test, train, cfg, cands, "it-v1")
        facts = describe(client, "embedded:" + str(tmp_path / "provider"), cands)
        honest = run_evaluation(client, test, train, cfg, cands, "it-v1", provenance=facts)
    finally:
        provider.stop()
    assert res.n_rows == 80 and len(res.predictions) == 3 * 80
    assert set(res.predictions["ticket_id"]) == set(test["ticket_id"])
    for name, m in res.metrics.items():
        assert m["n_errors"] == 0, m["errors_sample"]
        assert 1 / 77 < m["accuracy"] <= 1 and m["accuracy_ci"][0] <= m["accuracy"] <= m["accuracy_ci"][1]
        assert m["prompt_tokens_mean"] > 0 and m["price_per_1000"] > 0
        # a lexical stand-in has nothing to sample from: the repeat run at temperature 0.7 agrees fully
        assert m["stability"]["agreement"] == 1.0
    few = res.metrics["tg-small/few_shot"]
    # ... and weighs its examples alike in any order (77 labels x 1 example: few_shot_k=1)
    assert few["order_sensitivity"]["n_examples"] == 77 and few["order_sensitivity"]["accuracy_delta"] == 0.0
    assert res.settings["few_shot"]["used_per_label"] == 1 and not res.settings["few_shot"]["differs"]
    # described as stand-ins, those figures are not applicable rather than constants read back
    assert facts["stand_in_candidates"] == [c.name for c in cands] and "stand-in" in facts["note"]
    for name, m in honest.metrics.items():
        assert m["format_validity"] is None and m["stability"] is None and m["order_sensitivity"] is None
        assert set(m["not_applicable"]) == {"format_validity", "stability", "order_sensitivity"}
        assert m["accuracy"] == res.metrics[name]["accuracy"]
    # the long prompt (descriptions) and the few-shot prompt (examples) cost more per answer than zero-shot
    zs = res.metrics["tg-small/zero_shot"]
    assert min(few["price_per_1000"], res.metrics["tg-small/long_prompt"]["price_per_1000"]) > zs["price_per_1000"]
    json.dumps(res.to_dict())


def test_independent_bootstrap_diff_matches_the_normal_approximation():
    rng = np.random.default_rng(4)
    a, b = rng.random(3000) < 0.90, rng.random(4000) < 0.87
    d = stats.independent_bootstrap_diff(a, b, 2000, seed=1)
    se = math.sqrt(a.mean() * (1 - a.mean()) / a.size + b.mean() * (1 - b.mean()) / b.size)
    assert d["diff"] == pytest.approx(a.mean() - b.mean())
    assert d["low"] == pytest.approx(d["diff"] - 1.96 * se, abs=0.004)
    assert d["high"] == pytest.approx(d["diff"] + 1.96 * se, abs=0.004)


def test_out_of_time_compares_the_latest_month_with_the_earlier_ones():
    from pipeline.model.fresh import out_of_time

    test = pd.DataFrame({"ticket_id": [f"T{i}" for i in range(300)],
                         "created_at": pd.to_datetime(["2026-07-15"] * 100 + ["2026-08-15"] * 100 + ["2026-09-15"] * 100,
                                                      utc=True)})
    correct = [True] * 90 + [False] * 10 + [True] * 90 + [False] * 10 + [True] * 60 + [False] * 40
    preds = pd.DataFrame({"ticket_id": test["ticket_id"], "candidate": "m", "correct": correct})
    oot = out_of_time(preds, test, 1000, 0)
    c = oot["candidates"]["m"]
    assert oot["latest_month"] == "2026-09" and oot["earlier_months"] == ["2026-07", "2026-08"]
    assert (c["latest_accuracy"], c["earlier_accuracy"]) == (0.6, 0.9)
    assert c["latest_minus_earlier"] == pytest.approx(-0.3) and c["latest_minus_earlier_ci"][1] < -0.15
    assert c["by_month"]["2026-08"] == {"n": 100, "accuracy": 0.9}
    assert out_of_time(preds, test.assign(created_at=pd.Timestamp("2026-07-01", tz="UTC")))["available"] is False


def test_fresh_comparison_reports_the_gap_and_a_changed_winner(test_labels, config):
    from pipeline.model.fresh import compare

    n = len(test_labels)
    half = n // 2
    frozen_y, fresh_y = test_labels[:half], test_labels[half:]
    rng = np.random.default_rng(9)
    cands = [Candidate("tg-small/few_shot", "tg-small", "few_shot", "tg-small", 0.15, 0.60),
             Candidate("tg-small/fine_tuned", "ft:tg-small:x", "fine_tuned", "tg-small", 0.30, 1.20)]

    def result(y, wrong_share: dict[str, float], version: str):
        frames = {c: scored_frame(corrupt(y, rng.choice(len(y), int(s * len(y)), replace=False)))
                  for c, s in wrong_share.items()}
        return score_candidates(config, cands, [f"{version}{i}" for i in range(len(y))], y, frames,
                                dataset_version=version)

    # fine-tuned: 92% on the frozen test, 85% fresh; few-shot: 88% on both
    frozen = result(frozen_y, {cands[0].name: 0.12, cands[1].name: 0.08}, "f")
    fresh = result(fresh_y, {cands[0].name: 0.12, cands[1].name: 0.15}, "n")
    out = compare(frozen, fresh, {"file": "fresh.csv"}, 1000, 3)
    ft, fs = out["candidates"]["tg-small/fine_tuned"], out["candidates"]["tg-small/few_shot"]
    assert ft["gap"] == pytest.approx(0.07, abs=0.002) and ft["gap_beyond_noise"] and ft["gap_ci"][0] > 0.03
    assert abs(fs["gap"]) < 0.005 and not fs["gap_beyond_noise"]
    assert (out["best_on_frozen"], out["best_on_fresh"], out["same_best"]) == (
        "tg-small/fine_tuned", "tg-small/few_shot", False)
    assert "sampling noise only" in out["note"] and out["rows_scored"] == n - half
    twins = {f"n{i}" for i in range(0, n - half, 10)}
    split = compare(frozen, fresh, {"file": "fresh.csv"}, 300, 3, twins)["candidates"]["tg-small/fine_tuned"]
    p = fresh.predictions[fresh.predictions["candidate"] == "tg-small/fine_tuned"]
    assert split["fresh_accuracy_without_train_twins"] == pytest.approx(p[~p["ticket_id"].isin(twins)]["correct"].mean())


def test_train_twins_finds_banking77s_own_test_train_leak(config):
    """Banking77's official test split has near-twins in its training split (the published split leaks):
    the fresh-sample check counts them, since the frozen test set has none by construction."""
    from pipeline.model.fresh import train_twins

    train = pd.read_csv(B77 / "train.csv").assign(ticket_id=lambda d: "T" + d.index.astype(str))
    fresh = pd.read_csv(B77 / "test.csv").assign(ticket_id=lambda d: "F" + d.index.astype(str))
    twins = train_twins(fresh[["ticket_id"]], fresh, train, config)
    assert 50 < len(twins) < 300 and twins <= set(fresh["ticket_id"])
