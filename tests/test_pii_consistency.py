"""Consistent masking across near-identical tickets (pipeline/pii/consistency.py), on Banking77-built cases."""
from __future__ import annotations

import random
import re

import pandas as pd
import pytest

from pipeline.config import DedupSpec, load_config
from pipeline.data.sample.generator import BANKING77_DIR
from pipeline.pii.consistency import PLACEHOLDER, harmonise, measure, near_groups, spans_from_masked


def _banking77(n: int, offset: int = 0) -> list[str]:
    return pd.read_csv(BANKING77_DIR / "train.csv")["text"].tolist()[offset:offset + n]


B77 = _banking77(400)
CARD = B77[0]  # "I am still waiting on my card?"


@pytest.mark.parametrize("raw, masked, spans", [
    ("I am in Almaty now", "I am in <LOCATION_1> now", [("LOCATION", 8, 14)]),
    ("Dana Ray and Dana Ray", "<PERSON_1> and <PERSON_1>", [("PERSON", 0, 8), ("PERSON", 13, 21)]),
    ("call +7 701 123 4567", "call <PHONE_NUMBER_1|0a1b2c3d>", [("PHONE_NUMBER", 5, 20)]),
    ("nothing here", "nothing here", []),
    ("changed text", "other text", None),  # not the raw text with spans replaced
    ("Almaty", "<LOCATION_1> extra", None),
])
def test_spans_are_read_back_from_raw_and_masked_text(raw, masked, spans):
    assert spans_from_masked(raw, masked) == spans


# (raw, masked as the masker might return them, expected after harmonising): Banking77 requests with a
# planted city or name, in copies that differ in case, punctuation or a filler
CASES = [
    # a city masked in one copy and left in clear in its lower-case copy
    ([f"{CARD} I am in Almaty now.", f"{CARD.lower()} i am in almaty now"],
     [f"{CARD} I am in <LOCATION_1> now.", f"{CARD.lower()} i am in almaty now"],
     [f"{CARD} I am in <LOCATION_1> now.", f"{CARD.lower()} i am in <LOCATION_1> now"]),
    # a name masked in the copy with a filler, the placeholder numbered after the text's own
    ([f"{B77[1]} Thanks, Aigerim Bekova", f"{B77[1]} thanks, Aigerim Bekova!! Dana"],
     [f"{B77[1]} Thanks, <PERSON_1>", f"{B77[1]} thanks, Aigerim Bekova!! <PERSON_1>"],
     [f"{B77[1]} Thanks, <PERSON_1>", f"{B77[1]} thanks, <PERSON_2>!! <PERSON_1>"]),
    # the same value twice in the clear copy gets one number; the masked copy is left alone
    ([f"Oliver here. {B77[2]} Oliver", f"Oliver here: {B77[2]} oliver"],
     [f"<PERSON_1> here. {B77[2]} <PERSON_1>", f"Oliver here: {B77[2]} oliver"],
     [f"<PERSON_1> here. {B77[2]} <PERSON_1>", f"<PERSON_1> here: {B77[2]} <PERSON_1>"]),
    # a word inside a longer word is not the masked word ("Lyon" in "Lyonnais")
    ([f"{B77[3]} from Lyon", f"{B77[3]} from Lyonnais"],
     [f"{B77[3]} from <LOCATION_1>", f"{B77[3]} from Lyonnais"],
     [f"{B77[3]} from <LOCATION_1>", f"{B77[3]} from Lyonnais"]),
    # tickets that are not near-identical are never touched, even when they hold the word
    ([f"{B77[4]} I live in Turin", "Why was I charged a fee in turin?"],
     [f"{B77[4]} I live in <LOCATION_1>", "Why was I charged a fee in turin?"],
     [f"{B77[4]} I live in <LOCATION_1>", "Why was I charged a fee in turin?"]),
    # masks are never taken away: each copy keeps its own and gets the other's
    ([f"Marat: {B77[5]} in Astana", f"marat: {B77[5]} in Astana"],
     [f"<PERSON_1>: {B77[5]} in Astana", f"marat: {B77[5]} in <LOCATION_1>"],
     [f"<PERSON_1>: {B77[5]} in <LOCATION_1>", f"<PERSON_1>: {B77[5]} in <LOCATION_1>"]),
]


@pytest.mark.parametrize("raw, masked, expected", CASES)
def test_harmonise_masks_the_same_words_in_near_identical_tickets(raw, masked, expected):
    h = harmonise(raw, masked)
    assert h.texts == expected
    assert h.after["inconsistent"] == 0
    changed = [a != b for a, b in zip(masked, expected)]
    assert h.before["inconsistent"] == (1 if any(changed) else 0)
    assert [bool(a) for a in h.added] == changed


def test_salted_placeholders_carry_the_token_of_the_value():
    raw = [f"{CARD} I am in Almaty", f"{CARD} i am in almaty"]
    masked = [f"{CARD} I am in <LOCATION_1|1a2b3c4d>", f"{CARD} i am in almaty"]
    h = harmonise(raw, masked, token=lambda t, v: "%08x" % (len(t) + len(v.lower())))
    assert h.texts[1] == f"{CARD} i am in <LOCATION_1|{'%08x' % (len('LOCATION') + 6)}>"


def test_a_phrase_travels_along_a_chain_of_near_identical_tickets():
    # a ~ b ~ c but a and c are further apart: the city masked in a reaches c through b
    base = B77[10]
    raw = [f"{base} I am in Shymkent right now, please advise", f"{base} i am in shymkent right now, please",
           f"{base} i am in shymkent right now"]
    masked = [raw[0].replace("Shymkent", "<LOCATION_1>"), raw[1], raw[2]]
    ng = near_groups(raw, DedupSpec(typo_edits=0))
    h = harmonise(raw, masked, groups=ng)
    assert all("shymkent" not in t.lower() for t in h.texts)
    assert h.after["share"] == 0.0 and h.before["inconsistent"] >= 2


def test_pairs_are_counted_by_ticket_and_identical_copies_count():
    raw = [f"{CARD} in Almaty"] * 3 + [f"{CARD} in almaty"] + [B77[20], B77[21]]
    masked = [f"{CARD} in <LOCATION_1>"] * 3 + [f"{CARD} in almaty"] + [B77[20], B77[21]]
    ng = near_groups(raw)
    item_masked = [masked[raw.index(t)] for t in ng.items]
    res = measure(ng, item_masked)
    # 4 tickets of one template: 6 pairs, the 3 copies against the clear one differ
    assert res["pairs"] == 6 and res["inconsistent"] == 3 and res["share"] == 0.5


def test_on_banking77_scale_harmonising_is_blocked_not_all_pairs():
    # 4,000 Banking77 requests with planted cities in mixed case: every clear copy of a masked city in a
    # near-identical ticket is masked afterwards, and the masks of the input are all still there
    texts = _banking77(2000, 1000)
    rng = random.Random(5)
    cities = ["Almaty", "Astana", "Karaganda", "Berlin", "Lyon"]
    raw, masked = [], []
    for t in texts:
        c = rng.choice(cities)
        a, b = f"{t} I am in {c}.", f"{t.lower()} i am in {c.lower()}"
        raw += [a, b]
        masked += [a.replace(c, "<LOCATION_1>"), b if rng.random() < 0.5 else b.replace(c.lower(), "<LOCATION_1>")]
    h = harmonise(raw, masked)
    assert h.before["share"] > 0.2 and h.after["inconsistent"] == 0
    assert h.before["pairs"] < 20 * len(raw)  # blocked by template and LSH bands: no all-pairs blow-up
    for before, after in zip(masked, h.texts):  # never un-masks
        assert len(PLACEHOLDER.findall(after)) >= len(PLACEHOLDER.findall(before))
    assert not any(re.search(r"(?i)\bi am in (almaty|astana|karaganda|berlin|lyon)\b", t) for t in h.texts)


@pytest.mark.slow
def test_real_masker_on_banking77_copies_is_consistent_after_harmonising():
    """The project's masker on Banking77 requests with a planted city and name, in copies that differ in
    case, a filler or where the name stands: near-identical copies are masked differently before (the
    masker decides per text), and the same way after."""
    from pipeline.pii.masker import Masker

    cfg = load_config(None)
    rng = random.Random(3)
    names = ["Aigerim Bekova", "John Smith", "Dana", "Oliver", "Marat", "Sofia Lima", "Madina"]
    cities = ["Almaty", "Astana", "Shymkent", "Karaganda", "Berlin", "Lyon", "Turin"]
    raw = []
    for t in B77[:120]:
        c, n = rng.choice(cities), rng.choice(names)
        base = f"{t} I am in {c} now. {n}"
        raw += [base, base.lower(), base.replace(f" {c} ", f" {c.lower()} "), base + " thanks", f"{n} here. {t}"]
    masker = Masker(cfg.masking, taxonomy=cfg.taxonomy, vocabulary=B77)
    results = masker.mask_texts(raw)
    h = harmonise(raw, [r.text for r in results], cfg.dedup)
    assert h.before["share"] > 0.2  # measured 0.60 on 200 requests
    assert h.after["inconsistent"] == 0 and h.before["unaligned"] == 0
    assert sum(map(bool, h.added)) > 50
    for r, out in zip(results, h.texts):  # never un-masks
        assert len(PLACEHOLDER.findall(out)) >= len(PLACEHOLDER.findall(r.text))


@pytest.mark.slow
def test_masked_tickets_reports_consistency_before_and_after(data_run):
    """The data half on the full bundled sample, through Dagster: the masking stage harmonises and says so."""
    from tests.conftest import artifact_meta

    _, meta = artifact_meta(data_run["cfg"], "masked_tickets")
    c = meta["inconsistent_near_duplicates"]
    assert c["pairs"] > 5000 and c["unaligned"] == 0  # measured 9,098 pairs
    assert c["inconsistent_after"] == 0 and c["share_after"] == 0.0
    assert (c["masks_added"] > 0) == (c["inconsistent_before"] > 0)  # measured 1 pair, 1 LOCATION added
