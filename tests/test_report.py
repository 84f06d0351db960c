"""Tests of the decision report: ROI arithmetic on hand-checked numbers, the recommendation rules
(significance, minimum gain, payback), and the files written."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipeline.config import DATA_DIR, load_config
from pipeline.model.evaluation import Candidate, score_candidates
from pipeline.model.report import NEVER, build_report, candidate_economics, decide, payback_months, recommend

B77 = DATA_DIR / "banking77"


# ------------------------------------------------------------------------------------ arithmetic
def test_candidate_economics_hand_checked():
    cfg = load_config(None, taxonomy={"labels": {"a": {"critical": True, "error_cost": 10.0}, "b": {}}},
                      business={"monthly_volume": 10000, "seconds_per_correction": 36, "hourly_cost": 50,
                                "default_error_cost": 1.0, "currency": "EUR"})
    metrics = {"accuracy": 0.9125, "approach": "zero_shot", "price_per_answer": 0.0002,
               "per_class": {"a": {"recall": 0.8}, "b": {"recall": 0.95}}}
    e = candidate_economics(metrics, {"a": 100, "b": 300}, cfg)
    assert e["error_share"] == pytest.approx(0.0875)
    assert e["corrections_per_month"] == pytest.approx(875)
    assert e["correction_hours"] == pytest.approx(8.75)          # 875 x 36 s
    assert e["correction_cost"] == pytest.approx(437.5)          # 8.75 h x 50
    # a: 20% errors x 25% of volume x 10,000 x 10 = 5,000; b: 5% x 75% x 10,000 x 1 = 375
    assert e["critical_error_cost"] == pytest.approx(5000)
    assert e["error_cost"] == pytest.approx(5375)
    assert e["inference_cost"] == pytest.approx(2.0)
    assert e["total_monthly_cost"] == pytest.approx(5814.5)
    assert e["training_cost"] is None
    ft = candidate_economics({**metrics, "approach": "fine_tuned"}, {"a": 100, "b": 300}, cfg, 120.0)
    assert ft["training_cost"] == 120.0
    # production traffic is half a, half b (the test set had 25/75): errors and their cost re-weighted
    prod = cfg.model_copy(update={"business": cfg.business.model_copy(update={"volume_shares": {"a": 2, "b": 2}})})
    p = candidate_economics(metrics, {"a": 100, "b": 300}, prod)
    assert p["error_share"] == pytest.approx(0.5 * 0.2 + 0.5 * 0.05)          # 0.125
    assert p["corrections_per_month"] == pytest.approx(1250)
    assert p["error_cost"] == pytest.approx(0.2 * 0.5 * 10000 * 10 + 0.05 * 0.5 * 10000 * 1)


def test_volume_shares_must_name_taxonomy_labels():
    from pipeline.config import ConfigError

    with pytest.raises((ConfigError, ValueError), match="not in the taxonomy"):
        load_config(None, business={"volume_shares": {"no_such_label": 1.0}})
    with pytest.raises((ConfigError, ValueError), match="non-negative"):
        load_config(None, business={"volume_shares": {"card_arrival": -1.0}})


def test_payback_months():
    assert payback_months(1000, 250) == pytest.approx(4.0)
    assert payback_months(1000, 0) == NEVER and payback_months(1000, -5) == NEVER
    assert payback_months(0, 10) == 0.0


# ------------------------------------------------------------------------------------ decisions
@pytest.fixture(scope="module")
def labels() -> list[str]:
    df = pd.read_csv(B77 / "test.csv")
    return df.groupby("category", sort=False).head(10)["category"].tolist()  # 770 rows, 10 per label


def _pred(labels: list[str], wrong: np.ndarray) -> list[str]:
    vocab = sorted(set(labels))
    out = list(labels)
    for i in wrong:
        out[i] = vocab[(vocab.index(labels[i]) + 1) % len(vocab)]
    return out


def _frame(pred: list[str], prompt_tokens: int) -> pd.DataFrame:
    n = len(pred)
    return pd.DataFrame({"predicted": pred, "parsed": pred, "valid": [True] * n, "error": [None] * n,
                         "latency_s": [0.05] * n, "prompt_tokens": [prompt_tokens] * n,
                         "completion_tokens": [6] * n})


def _result(labels, error_rates: dict[str, float], config):
    n = len(labels)
    order = np.random.default_rng(0).permutation(n)  # nested error sets: better candidates err on a subset
    cands = {"tg-small/zero_shot": Candidate("tg-small/zero_shot", "tg-small", "zero_shot", "tg-small", 0.15, 0.6),
             "tg-small/few_shot": Candidate("tg-small/few_shot", "tg-small", "few_shot", "tg-small", 0.15, 0.6),
             "tg-small/fine_tuned": Candidate("tg-small/fine_tuned", "ft:tg-small:t:1", "fine_tuned", "tg-small", 0.3, 1.2),
             "tg-large/long_prompt": Candidate("tg-large/long_prompt", "tg-large", "long_prompt", "tg-large", 2.5, 10.0)}
    tokens = {"tg-small/zero_shot": 450, "tg-small/few_shot": 2500, "tg-small/fine_tuned": 1500,
              "tg-large/long_prompt": 1500}
    chosen = [cands[k] for k in error_rates]
    scored = {k: _frame(_pred(labels, order[: int(round(r * n))]), tokens[k]) for k, r in error_rates.items()}
    return score_candidates(config, chosen, [f"t{i}" for i in range(n)], labels, scored,
                            dataset_version="v1", settings={"test_rows_total": 3080})


@pytest.fixture(scope="module")
def config():
    return load_config(None, evaluation={"bootstrap": 300})


def test_not_significant_keeps_prompting(labels, config):
    res = _result(labels, {"tg-small/few_shot": 0.30, "tg-small/fine_tuned": 0.295}, config)
    _, rec = decide(res, config, 50.0, None)
    assert rec["action"] == "keep_prompting" and rec["candidate"] == "tg-small/few_shot"
    assert any("not statistically significant" in r for r in rec["reasons"])


def test_significant_and_pays_back_fine_tunes(labels, config):
    res = _result(labels, {"tg-small/zero_shot": 0.50, "tg-small/few_shot": 0.45,
                           "tg-small/fine_tuned": 0.10}, config)
    econ, rec = decide(res, config, 80.0, {"model": "tg-small", "route": "default"})
    assert rec["action"] == "fine_tune" and rec["candidate"] == "tg-small/fine_tuned"
    assert rec["incumbent"] == "tg-small/few_shot"
    ft, fs = econ["tg-small/fine_tuned"], econ["tg-small/few_shot"]
    saving = fs["total_monthly_cost"] - ft["total_monthly_cost"]
    assert ft["monthly_saving_vs_best_prompt"] == pytest.approx(saving)
    assert ft["payback_months"] == pytest.approx(80.0 / saving)
    # 346 vs 77 wrong of 770 rows, on 60,000 tickets a month at 90 s per correction and 30 per hour
    fewer = (346 - 77) / 770 * 60000
    assert fs["corrections_per_month"] - ft["corrections_per_month"] == pytest.approx(fewer)
    assert fs["correction_cost"] - ft["correction_cost"] == pytest.approx(fewer * 90 / 3600 * 30)
    assert any("significant" in r and "McNemar" in r for r in rec["reasons"])


def test_gain_below_minimum_or_no_payback_keeps_prompting(labels):
    strict = load_config(None, evaluation={"bootstrap": 300}, business={"min_accuracy_gain": 0.5})
    res = _result(labels, {"tg-small/few_shot": 0.45, "tg-small/fine_tuned": 0.10}, strict)
    rec = recommend(res, strict, {n: {"total_monthly_cost": 100.0 - 50 * (n.endswith("tuned")),
                                      "training_cost": 10.0} for n in res.ranking}, None)
    assert rec["action"] == "keep_prompting"
    assert any("below the required" in w for v in rec["verdicts"] for w in v["why_not"])
    cfg = load_config(None, evaluation={"bootstrap": 300})
    _, rec = decide(res, cfg, 1e9, None)
    assert rec["action"] == "keep_prompting"
    assert any("pay back" in w for v in rec["verdicts"] for w in v["why_not"])
    # the payback window comes from config: 10 of training saved at 50 a month pays back in 0.2 months
    econ = {n: {"total_monthly_cost": 100.0 - 50 * (n.endswith("tuned")), "training_cost": 10.0} for n in res.ranking}
    assert recommend(res, cfg, econ, None)["action"] == "fine_tune"
    tight = load_config(None, evaluation={"bootstrap": 300}, business={"max_payback_months": 0.1})
    rec = recommend(res, tight, econ, None)
    assert rec["action"] == "keep_prompting" and rec["max_payback_months"] == 0.1
    assert any("within 0.1 months" in w for v in rec["verdicts"] for w in v["why_not"])


def test_significantly_better_base_model_is_a_switch(labels, config):
    res = _result(labels, {"tg-small/zero_shot": 0.50, "tg-large/long_prompt": 0.20}, config)
    _, rec = decide(res, config, None, {"model": "tg-small"})
    assert rec["action"] == "switch_base_model" and rec["base_model"] == "tg-large"


def test_files_written_and_valid(labels, config, tmp_path):
    res = _result(labels, {"tg-small/zero_shot": 0.50, "tg-small/few_shot": 0.45,
                           "tg-small/fine_tuned": 0.10, "tg-large/long_prompt": 0.30}, config)
    rep = build_report(res, config, 80.0, None, tmp_path)
    loaded = json.loads((tmp_path / "report.json").read_text())
    assert loaded == rep
    assert set(rep) >= {"candidates", "recommendation", "best_vs_runner_up", "plots", "ranking", "business",
                        "decision_money", "assumptions", "identification"}
    for rel in rep["plots"].values():
        assert (tmp_path / rel).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (tmp_path / "report.html").read_text()
    # every chart inline, the critical-labels chart too (the bundled taxonomy marks some labels critical)
    assert html.count("data:image/png;base64,") == len(rep["plots"]) == 6 and "<table>" in html
    assert "critical_labels" in rep["plots"]
    md = (tmp_path / "report.md").read_text()
    assert md.index("## Recommendation:") < md.index("## Candidates") < md.index("## Assumptions")
    assert "tg-small fine-tuned (recommended)" in md and "payback" in md


# ------------------------------------------------------------------------------------ the new report
CRITICAL = {"lost_or_stolen_card": 40.0, "compromised_card": 25.0, "card_swallowed": 10.0}


@pytest.fixture(scope="module")
def critical_config(labels):
    tax = {lab: ({"critical": True, "error_cost": CRITICAL[lab]} if lab in CRITICAL else {})
           for lab in dict.fromkeys(labels)}
    return load_config(None, evaluation={"bootstrap": 300}, taxonomy={"labels": tax})


@pytest.fixture(scope="module")
def full_report(labels, critical_config, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    res = _result(labels, {"tg-small/zero_shot": 0.50, "tg-small/few_shot": 0.45,
                           "tg-small/fine_tuned": 0.10, "tg-large/long_prompt": 0.30}, critical_config)
    rep = build_report(res, critical_config, 80.0, {"model": "tg-small"}, out, run_id="run-0042",
                       endpoint="embedded:/srv/wh/provider", generated_at="2026-11-29 12:00 UTC",
                       notes=["Fine-tuning of tg-large was skipped: finetune is false for it."])
    return rep, out


def test_money_comes_with_a_range_over_the_cost_assumptions(full_report):
    rep, _ = full_report
    money = rep["decision_money"]
    by = {c["name"]: c for c in rep["candidates"]}
    assert money["kind"] == "saving" and (money["from"], money["to"]) == ("tg-small/few_shot", "tg-small/fine_tuned")
    base = by["tg-small/few_shot"]["economics"]["total_monthly_cost"] - by["tg-small/fine_tuned"]["economics"]["total_monthly_cost"]
    assert money["monthly"] == pytest.approx(base)
    sens = {r["assumption"]: r for r in money["sensitivity"]["one_at_a_time"]}
    assert set(sens) == {"seconds_per_correction", "hourly_cost", "error_cost", "monthly_volume"}
    # every cost is proportional to the volume, so the saving is too
    assert sens["monthly_volume"]["at_50"] == pytest.approx(0.5 * base)
    assert sens["monthly_volume"]["at_150"] == pytest.approx(1.5 * base)
    # the hourly cost moves only the correction part of the saving
    corr = by["tg-small/few_shot"]["economics"]["correction_cost"] - by["tg-small/fine_tuned"]["economics"]["correction_cost"]
    assert sens["hourly_cost"]["at_150"] - base == pytest.approx(0.5 * corr)
    err = by["tg-small/few_shot"]["economics"]["error_cost"] - by["tg-small/fine_tuned"]["economics"]["error_cost"]
    assert sens["error_cost"]["at_50"] - base == pytest.approx(-0.5 * err)
    s = money["sensitivity"]
    assert s["corners"] == 16 and s["low"] < base < s["high"]
    assert 0 <= money["holds_in"] <= 16 and money["holds_in"] == 16  # a 35-point gain survives every corner
    html = (full_report[1] / "report.html").read_text()
    # money to three significant figures, never to the cent
    from pipeline.model.report.formats import money as fmt

    assert fmt(base, "USD") in html and f"{base:,.2f}" not in html


def test_critical_labels_per_candidate_hand_checked(full_report, critical_config, labels):
    rep, _ = full_report
    ft = next(c for c in rep["candidates"] if c["name"] == "tg-small/fine_tuned")
    rows = {r["label"]: r for r in ft["critical_labels"]}
    assert set(rows) == set(CRITICAL)
    per_correction = 90 / 3600 * 30
    for lab, cost in CRITICAL.items():
        r = rows[lab]
        errors = (1 - r["recall"]) * (10 / 770) * 60000  # 10 test rows of 770 per label
        assert r["errors_per_month"] == pytest.approx(errors)
        assert r["cost_per_month"] == pytest.approx(errors * (cost + per_correction))
    assert sum(r["cost_per_month"] for r in ft["critical_labels"]) <= ft["economics"]["total_monthly_cost"]
    html = (full_report[1] / "report.html").read_text()
    assert 'alt="Monthly cost of errors on critical labels per candidate"' in html
    assert html.count("<details") >= len(rep["candidates"])  # one critical-labels table per candidate


def test_report_order_identification_and_notes(full_report):
    rep, out = full_report
    html = (out / "report.html").read_text()
    order = ['id="recommendation"', 'id="sensitivity"', 'id="critical"', 'id="accuracy"', 'id="cost-accuracy"',
             'id="per-class"', 'id="candidates"', 'id="assumptions"', 'id="identification"']
    pos = [html.index(o) for o in order]
    assert pos == sorted(pos)
    ident = html[html.index('id="identification"'):]
    for text in ("ft:tg-small:t:1", "tunegate promote ft:tg-small:t:1", "run-0042", "2026-11-29 12:00 UTC",
                 "embedded:/srv/wh/provider", "stand-in", rep["dataset_version"]):
        assert text in ident, text
    assert "Fine-tuning of tg-large was skipped" in html and "embedded stand-in provider" in html
    assert 'name="viewport"' in html and "overflow-x:auto" in html
    # the assumptions table names every swung assumption and its config key
    keys = {a["key"] for a in rep["assumptions"]}
    assert {"business.monthly_volume", "business.seconds_per_correction", "business.hourly_cost",
            "taxonomy.labels.lost_or_stolen_card.error_cost"} <= keys
    assert "(critical)" not in html.split('id="critical"')[0]  # no repeated "(critical)" figures


@pytest.mark.slow
def test_per_class_readable_with_many_labels_and_optional_details(labels, critical_config, tmp_path):
    res = _result(labels, {"tg-small/few_shot": 0.45, "tg-small/fine_tuned": 0.10}, critical_config)
    res.metrics["tg-small/fine_tuned"]["details"] = {"structured output": "json_schema"}
    res.metrics["tg-small/few_shot"]["few_shot_used"] = 154
    rep = build_report(res, critical_config, None, None, tmp_path)
    assert len(rep["per_class"]["shown"]) == 30 and len(set(rep["per_class"]["shown"])) == 30
    html = (tmp_path / "report.html").read_text()
    full_table = html[html.index("F1 of all 77 labels"):]
    assert all(f"<td>{lab}</td>" in full_table for lab in set(labels))
    assert "structured output" in html and "json_schema" in html and "few-shot examples used" in html
    assert rep["identification"]["run_id"] is None and "not recorded" in html


@pytest.mark.slow
def test_report_reads_on_desktop_and_phone_in_chromium(tmp_path):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "check_report_layout", Path(__file__).resolve().parent.parent / "benchmarks" / "check_report_layout.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if not mod.chromium_available():
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    html = mod.build_sample_report(tmp_path)
    res = mod.check_html(html)
    assert res["phone"]["viewport"] == 390 and res["desktop"]["viewport"] == 1280
    for width, r in res.items():
        assert r["ok"], (width, r)
        assert r["images"] >= 5 and r["images_broken"] == 0
    # the same check catches a page that scrolls sideways
    wide = tmp_path / "wide.html"
    wide.write_text(html.read_text().replace("<body>", "<body><div style='width:900px'>x</div>", 1))
    assert not mod.check_html(wide, {"phone": 390})["phone"]["ok"]


@pytest.mark.slow
def test_one_candidate_and_missing_optional_figures_still_render(labels, tmp_path):
    cfg = load_config(None, evaluation={"bootstrap": 300},
                      taxonomy={"labels": {lab: {} for lab in dict.fromkeys(labels)}})
    res = _result(labels, {"tg-small/few_shot": 0.30}, cfg)
    for key in ("n_retried", "latency_p50_s", "latency_p95_s", "stability", "order_sensitivity"):
        res.metrics["tg-small/few_shot"].pop(key, None)
    rep = build_report(res, cfg, None, None, tmp_path)
    assert rep["recommendation"]["action"] == "keep_prompting" and rep["decision_money"] == {"kind": "none"}
    html = (tmp_path / "report.html").read_text()
    assert "Keep prompting with tg-small/few_shot." in html and "No label is marked critical" in html
    assert 'id="sensitivity"' not in html and "critical_labels" not in rep["plots"]


# ------------------------------------------------------------------------------------ masking ablation
def test_masking_ablation_shows_masked_and_unmasked_accuracy_per_type(labels, config, tmp_path):
    """A masking rule that hides what the fine-tuned model needs on the PERSON rows: the report shows the
    cost on that type (and not on the e-mail rows), with its interval, in report.json, .md and .html."""
    from pipeline.model.fresh import ablation_figures

    res = _result(labels, {"tg-small/few_shot": 0.45, "tg-small/fine_tuned": 0.10}, config)
    masked = res.predictions
    ft = masked[masked["candidate"] == "tg-small/fine_tuned"]
    wrong = ft.loc[~ft["correct"], "ticket_id"].tolist()  # 77 rows
    right = ft.loc[ft["correct"], "ticket_id"].tolist()
    person = set(wrong) | set(right[:23])
    email = set(right[23:123])
    types = pd.Series({t: ",".join(x for x, ids in (("EMAIL_ADDRESS", email), ("PERSON", person)) if t in ids)
                       for t in masked["ticket_id"].unique()})
    unmasked = masked.copy()
    unmasked.loc[(unmasked["candidate"] == "tg-small/fine_tuned") & unmasked["ticket_id"].isin(person), "correct"] = True
    ab = {"run": True, "reason": "the candidates run on the embedded local provider", "note": "stand-in note",
          **ablation_figures(masked, unmasked, ["tg-small/fine_tuned", "tg-small/few_shot"], types, 300, 1)}
    p = ab["by_type"]["PERSON"]["candidates"]["tg-small/fine_tuned"]
    assert (p["n"], p["masked_accuracy"], p["unmasked_accuracy"]) == (100, 0.23, 1.0)
    assert p["masking_cost"] == pytest.approx(0.77) and p["masking_cost_ci"][0] > 0.6 and p["mcnemar_p"] < 1e-6
    e = ab["by_type"]["EMAIL_ADDRESS"]["candidates"]["tg-small/fine_tuned"]
    assert e["masking_cost"] == 0 and e["mcnemar_p"] == 1.0
    assert ab["rows_with_masks"] == 200 and ab["candidates"]["tg-small/few_shot"]["masking_cost"] == 0
    res.settings["fresh_sample"] = {"candidates": {}, "masking_ablation": ab}
    rep = build_report(res, config, 80.0, None, tmp_path)
    rows = {(r["type"], r["candidate"]): r for r in rep["masking_ablation"]["by_type"]}
    assert rows[("PERSON", "tg-small/fine_tuned")]["cost"].startswith("+77.0 pts [")
    assert rows[("PERSON", "tg-small/fine_tuned")]["masked"] == "23.0%"
    md = (tmp_path / "report.md").read_text()
    assert "## Does masking cost accuracy?" in md and "| PERSON | 100 | tg-small/fine_tuned | 23.0% | 100.0% | +77.0 pts" in md
    assert "stand-in note" in md
    html = (tmp_path / "report.html").read_text()
    assert 'id="masking"' in html and "+77.0 pts" in html

    # not run (an external endpoint, auto): the report says why instead of showing figures
    from pipeline.model.report import _masking_tables

    off = _masking_tables({"masking_ablation": {"run": False, "reason": "not run: set evaluation.masking_ablation",
                                                "candidates": {}, "by_type": {}}})
    assert off["run"] is False and off["rows"] == [] and "masking_ablation" in off["reason"]
