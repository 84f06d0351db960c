"""The not-a-name vocabulary and the masking-quality figures, on real data (no spaCy model)."""
from __future__ import annotations

import json

from pipeline.config import load_config
from pipeline.pii.evaluate import hwu64_path, load_records
from pipeline.pii.quality import false_mask_share, inconsistency, label_word_share
from pipeline.pii.vocabulary import common_words, label_words


def test_common_words_come_from_the_users_data():
    recs = load_records("hwu64")
    texts = [r["full_text"] for r in recs]
    common = common_words(texts, 0.01, 5)
    assert {"alarm", "calendar", "please", "what"} <= common
    assert "rehan" not in common and "sacramento" not in common
    assert common_words(texts[:10], 0.01, 5) < common  # a threshold of tickets, not of words


def test_label_words_are_the_taxonomys_names_and_descriptions():
    words = label_words(load_config(None).taxonomy)
    assert {"card", "arrival", "transfer", "exchange"} <= words
    assert "the" not in words and all(len(w) > 2 for w in words)


def test_label_word_share_counts_name_masks_over_the_rows_own_label():
    texts = ["set an alarm for six", "check my calendar please", "call john"]
    spans = [[("PERSON", 7, 12)], [("PERSON", 9, 17)], [("PERSON", 5, 9)]]
    res = label_word_share(texts, spans, ["alarm_set", "calendar_query", "call_contact"])
    assert res == {"name_spans": 3, "with_label_word": 2, "share": round(2 / 3, 4)}


def test_inconsistency_compares_near_identical_tickets_only():
    raw = ["My card from Almaty is lost", "my card from almaty is lost", "my card from almaty is lost ",
           "other ticket 1", "other ticket 2", "Why was I charged a fee in almaty?"]
    masked = ["My card from <LOCATION_1> is lost", "my card from almaty is lost", "my card from <LOCATION_1> is lost ",
              "other ticket 1", "other ticket 2", "Why was I charged a fee in almaty?"]
    res = inconsistency(raw, masked)
    # the three "card" copies are one group (3 pairs, 2 differ); "other ticket 0" is one group of 2 equal;
    # the fee ticket is near none of them, so its clear "almaty" is no inconsistency
    assert {k: res[k] for k in ("pairs", "inconsistent", "share", "unaligned")} == \
        {"pairs": 4, "inconsistent": 2, "share": 0.5, "unaligned": 0}
    assert res["after_harmonisation"] == {"inconsistent": 0, "share": 0.0, "masks_added": 1}


def test_false_mask_share():
    assert false_mask_share([[("PERSON", 0, 3)], [], [("PERSON", 0, 3)]], [True, True, False]) == \
        {"clean_texts": 2, "with_placeholder": 1, "share": 0.5}


def test_hwu64_is_bundled_and_read_as_records():
    raw = json.loads(hwu64_path().read_text(encoding="utf-8"))
    recs = load_records(hwu64_path())
    assert len(recs) == len(raw) == 5380
    kinds = [s["entity_type"] for r in recs for s in r["spans"]]
    assert kinds.count("PERSON") == 241 and kinds.count("GPE") == 454 and kinds.count("EMAIL_ADDRESS") == 19
    assert recs[0]["label"] == "alarm_query"
