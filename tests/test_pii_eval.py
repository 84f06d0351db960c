"""Tests of the PII evaluation harness: matching rule, template split, figures on a fixed subset."""
from __future__ import annotations

import json
import os

import pytest

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

from pipeline.pii.evaluate import (DATA_TO_OURS, default_data_path, evaluate, is_tune_template,  # noqa: E402
                               load_records, score, template_split)


def _rec(text, spans):
    return {"full_text": text, "template_id": 0,
            "spans": [{"entity_type": t, "entity_value": text[s:e], "start_position": s, "end_position": e}
                      for t, s, e in spans]}


def test_token_rule_partial_overlap_and_type_confusion():
    rec = _rec("My name is Anna Ivanova from Almaty", [("PERSON", 11, 23), ("GPE", 29, 35)])
    # PERSON covers only "Anna"; Almaty tagged PERSON (type confusion)
    res = score([rec], [[("PERSON", 11, 15), ("PERSON", 29, 35)]])
    assert res["per_type"]["PERSON"]["support"] == 2
    assert res["per_type"]["PERSON"]["recall"] == 0.5  # Anna hit, Ivanova missed
    assert res["per_type"]["PERSON"]["precision"] == 0.5  # Almaty is an FP for PERSON
    assert res["per_type"]["LOCATION"]["recall"] == 0.0
    assert res["overall"]["masked_recall"] == round(2 / 3, 4)


def test_out_of_scope_types_are_not_counted():
    rec = _rec("Mr. Smith is 45", [("TITLE", 0, 3), ("PERSON", 4, 9), ("AGE", 13, 15)])
    res = score([rec], [[("PERSON", 4, 9)]])
    assert res["overall"] == {**res["overall"], "precision": 1.0, "recall": 1.0}
    assert res["per_entity"]["TITLE"]["ours"] == "out of scope"
    assert set(DATA_TO_OURS) >= {"PERSON", "STREET_ADDRESS", "GPE", "ORGANIZATION", "CREDIT_CARD", "DATE_TIME",
                                 "TITLE", "PHONE_NUMBER", "AGE", "NRP", "EMAIL_ADDRESS", "ZIP_CODE",
                                 "DOMAIN_NAME", "IBAN_CODE", "US_SSN", "IP_ADDRESS", "US_DRIVER_LICENSE"}


def test_template_split_is_deterministic_and_disjoint():
    recs = load_records()
    tune, held = template_split(recs)
    assert tune and held and not tune & held
    assert len(tune | held) == 209
    assert 0.6 < len(tune) / 209 < 0.8
    assert all(is_tune_template(t) for t in tune)


def test_figures_on_fixed_subset():
    recs = load_records()
    subset = sorted({r["template_id"] for r in recs})[:40]
    res = evaluate(default_data_path(), templates=set(subset))
    o = res["overall"]
    # measured when the harness was written; guards against silent regressions
    assert o["recall"] >= 0.75 and o["precision"] >= 0.75, o
    for t in ("EMAIL_ADDRESS", "CREDIT_CARD", "IBAN_CODE"):
        if t in res["per_entity"]:
            assert res["per_entity"][t]["recall"] >= 0.99
    json.dumps(res)  # serialisable


@pytest.mark.slow
def test_cli_json(capsys):
    from pipeline.pii.evaluate import pii_eval_command

    rc = pii_eval_command(None, as_json=True)
    out = json.loads(capsys.readouterr().out)
    # the shape: span-level overall and per_entity at the top, token-level beside them
    assert set(out) >= {"overall", "per_entity", "token_level", "splits", "targets", "targets_met"}
    assert set(out["overall"]) >= {"precision", "recall", "f2"} and out["records"] == 1500
    assert set(out["splits"]) == {"tune", "held_out"}
    assert rc == (0 if out["targets_met"] else 1)
    assert out["per_entity"]["STREET_ADDRESS"]["ours"] == "LOCATION"
    for name, res in (("all", out), ("held_out", out["splits"]["held_out"])):  # measured state
        o, t = res["overall"], res["token_level"]["overall"]
        assert o["structured_recall"] >= 0.99, (name, o)
        assert o["precision"] >= 0.82 and o["recall"] >= 0.83, (name, o)
        assert t["precision"] >= 0.88 and t["recall"] >= 0.89, (name, t)
    assert out["overall"]["recall"] >= 0.92 and out["overall"]["precision"] >= 0.84


def test_span_rule_scores_what_is_hidden():
    from pipeline.pii.evaluate import score_spans

    text = "Send it to 12 Abay Avenue, Almaty 050000 for Anna Ivanova please"
    s_street, s_city = text.index("12 Abay"), text.index("Almaty")
    rec = _rec(text, [("STREET_ADDRESS", s_street, s_street + 13), ("GPE", s_city, s_city + 6),
                      ("ZIP_CODE", s_city + 7, s_city + 13), ("PERSON", text.index("Anna"), text.index(" please"))])
    # one LOCATION mask over street, city and ZIP: each gold span is found and the mask is correct;
    # "Anna" alone covers half of the name: not found, and the mask is still correct (it hides a name)
    res = score_spans([rec], [[("LOCATION", s_street, s_city + 13), ("PERSON", text.index("Anna"), text.index("Anna") + 4)]])
    assert res["per_entity"]["STREET_ADDRESS"]["recall"] == 1.0 and res["per_entity"]["ZIP_CODE"]["recall"] == 1.0
    assert res["per_entity"]["PERSON"]["recall"] == 0.0
    assert res["overall"]["precision"] == 1.0 and res["overall"]["recall"] == 0.75
    # a mask over a word that is no PII of its type is a false positive
    res = score_spans([rec], [[("PERSON", s_city, s_city + 6)]])
    assert res["overall"]["precision"] == 0.0 and res["per_type"]["PERSON"]["predicted"] == 1


def test_unreadable_file_is_a_clear_error(tmp_path, capsys):
    from pipeline.pii.evaluate import pii_eval_command

    bad = tmp_path / "bad.json"
    bad.write_text('[{"text": "no full_text here"}]')
    assert pii_eval_command(str(bad), as_json=True) == 2
    assert "record 0" in capsys.readouterr().err
    bad.write_text("not json")
    assert pii_eval_command(str(bad), as_json=False) == 2
    assert "cannot use" in capsys.readouterr().err
    bad.write_text('[{"full_text": "Anna", "spans": [{"entity_type": "PERSON", "start_position": 0, "end_position": 9}]}]')
    assert pii_eval_command(str(bad), as_json=True) == 2  # a span beyond the text


def test_own_file_without_templates_or_structured_values(tmp_path, capsys):
    from pipeline.pii.evaluate import pii_eval_command

    text = "Please call Anna Ivanova tomorrow"
    s = text.index("Anna")
    own = tmp_path / "own.json"
    own.write_text(json.dumps([{"full_text": text, "spans": [
        {"entity_type": "PERSON", "entity_value": "Anna Ivanova", "start_position": s, "end_position": s + 12}]}]))
    rc = pii_eval_command(str(own), as_json=True)
    out = json.loads(capsys.readouterr().out)
    assert out["splits"] == {} and out["overall"]["structured_recall"] is None  # nothing structured to judge
    assert out["overall"]["recall"] == 1.0 and rc == 0


def test_nested_gold_spans_count_for_each_type():
    from pipeline.pii.evaluate import score_spans

    text = "I wrote to Bank of America yesterday"
    s, e = text.index("Bank"), text.index(" yesterday")
    rec = _rec(text, [("ORGANIZATION", s, e), ("GPE", text.index("America"), e)])
    # an organisation mask over the whole name is correct although "America" is also a place
    res = score_spans([rec], [[("ORGANIZATION", s, e)]])
    assert res["per_type"]["ORGANIZATION"]["precision"] == 1.0
    assert res["per_entity"]["ORGANIZATION"]["recall"] == 1.0 and res["per_entity"]["GPE"]["recall"] == 0.0
    res = score_spans([rec], [[("LOCATION", 0, 1)]])  # a mask over "I": wrong
    assert res["overall"]["precision"] == 0.0


@pytest.mark.slow
def test_hwu64_figures_through_pii_eval_records():
    """Another domain (HWU64, lower-case assistant utterances): figures reported in docs/pii.md, on the
    whole file and on the held-out half of the utterances (rules were developed on the tune half)."""
    from pipeline.pii.evaluate import evaluate_splits, is_tune_text, load_records

    recs = load_records("hwu64")
    assert all(r["split"] == ("tune" if is_tune_text(r["full_text"]) else "held_out") for r in recs)
    assert 0.45 < sum(r["split"] == "tune" for r in recs) / len(recs) < 0.55
    res = evaluate_splits(records=recs)
    per, q = res["per_entity"], res["masking_quality"]
    assert per["PERSON"]["recall"] >= 0.80  # measured 0.817 (target 0.85: not met; 0.768 before)
    assert per["GPE"]["recall"] >= 0.69  # measured 0.700 (target 0.70) (0.502 before)
    assert per["EMAIL_ADDRESS"]["recall"] >= 0.99  # measured 1.000
    assert q["false_mask"]["share"] <= 0.026  # measured 0.0227 (target 0.02: not met; 0.041 before)
    assert q["label_word_masks"]["share"] <= 0.01  # measured 0.000
    held = res["splits"]["held_out"]
    assert held["per_entity"]["PERSON"]["recall"] >= 0.76  # measured 0.770
    assert held["per_entity"]["GPE"]["recall"] >= 0.67  # measured 0.691
    assert held["per_entity"]["EMAIL_ADDRESS"]["recall"] >= 0.99  # measured 1.000 (12 spans)
    assert held["masking_quality"]["false_mask"]["share"] <= 0.028  # measured 0.0250


@pytest.mark.slow
def test_cyrillic_ticket_set_person_recall():
    """Generated Russian-language tickets whose templates no rule was written against."""
    from pipeline.pii.cyrillic_testset import generate
    from pipeline.pii.evaluate import evaluate_splits

    res = evaluate_splits(records=generate(400, seed=11))
    assert res["per_entity"]["PERSON"]["recall"] >= 0.90  # measured 0.963
    assert res["per_entity"]["PERSON"]["precision"] >= 0.90  # measured 1.000
    assert res["per_entity"]["GPE"]["recall"] >= 0.90  # measured 0.963


def test_hwu64_targets_are_judged_per_entity_and_on_clean_utterances():
    from pipeline.pii.evaluate import hwu64_targets_met

    res = {"per_entity": {"PERSON": {"recall": 0.9}, "GPE": {"recall": 0.7}, "EMAIL_ADDRESS": {"recall": 1.0}},
           "masking_quality": {"false_mask": {"share": 0.02}}}
    assert hwu64_targets_met(res)
    res["masking_quality"]["false_mask"]["share"] = 0.021
    assert not hwu64_targets_met(res)
    res["masking_quality"]["false_mask"]["share"] = 0.01
    res["per_entity"]["PERSON"]["recall"] = 0.84
    assert not hwu64_targets_met(res)


def test_hwu64_records_carry_their_half_by_a_hash_of_the_utterance():
    from pipeline.pii.evaluate import from_hwu64, is_tune_text

    raw = [{"text": f"call person number {i}", "intent": "email_query", "entities": []} for i in range(200)]
    recs = from_hwu64(raw) + from_hwu64([{"text": "CALL PERSON NUMBER 7 ", "intent": "x", "entities": []}])
    assert {r["split"] for r in recs} == {"tune", "held_out"}
    assert 70 < sum(r["split"] == "tune" for r in recs[:200]) < 130
    assert recs[-1]["split"] == recs[7]["split"]  # a copy in another case lands in the same half
    assert all(r["split"] == ("tune" if is_tune_text(r["full_text"]) else "held_out") for r in recs)
