"""Tests of the PII masking stage and the leak guard on real data (synth PII set, Banking77 texts)."""
from __future__ import annotations

import csv
import json
import os
import random
import re
from pathlib import Path

import pytest

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

from pipeline.pii.leak_guard import scan_residual  # noqa: E402
from pipeline.pii.masker import Masker, mask_file  # noqa: E402
from pipeline.pii.recognizers import kz_bin_ok, kz_iin_ok, luhn_ok  # noqa: E402
from pipeline.config import DATA_DIR

BANKING = DATA_DIR / "banking77" / "train.csv"
SYNTH = Path(__file__).resolve().parents[1] / "pipeline" / "bundled" / "pii" / "synth_dataset_v2.json"

IIN = "900101300017"  # valid control digit, born 1990-01-01
BIN = "990440000018"
KZ_PHONES = ["+7 701 234 56 78", "+7 (701) 234-56-78", "8 701 234 56 78", "8 (701) 234-56-78", "+77012345678",
             "87012345678", "+7 701 2345678", "8-701-234-56-78", "+7 7272 12 34 56"]
CARDS = ["4400430212345679", "4400 4302 1234 5679", "4400-4302-1234-5679", "371449635398431"]
IBANS = ["KZ86125KZT5004100100", "KZ86 125K ZT50 0410 0100", "GB82WEST12345698765432"]
EMAILS = ["dauren.serikbayev@mail.kz", "a.nurlanova+bank@gmail.com"]
IPS = ["192.168.10.24", "2001:0db8:85a3:0000:0000:8a2e:0370:7334"]
SSNS = ["536-22-8726"]


@pytest.fixture(scope="module")
def masker():
    return Masker(salt=None)


@pytest.fixture(scope="module")
def banking():
    with open(BANKING, newline="", encoding="utf-8") as fh:
        return [row["text"] for row in csv.DictReader(fh)][:2000]


def test_checksums():
    assert kz_iin_ok(IIN) and not kz_iin_ok(IIN[:-1] + "8")
    assert kz_bin_ok(BIN) and not kz_iin_ok(BIN)
    assert luhn_ok("4400430212345679") and not luhn_ok("4400430212345675")


@pytest.mark.parametrize("kind,values,placeholder", [
    ("phone", KZ_PHONES, "<PHONE_NUMBER_1>"), ("card", CARDS, "<CREDIT_CARD_1>"), ("iban", IBANS, "<IBAN_CODE_1>"),
    ("email", EMAILS, "<EMAIL_ADDRESS_1>"), ("ip", IPS, "<IP_ADDRESS_1>"), ("ssn", SSNS, "<US_SSN_1>"),
    ("iin", [IIN], "<KZ_IIN_1>"), ("bin", [BIN], "<KZ_BIN_1>"),
])
def test_structured_types_in_all_writings(masker, banking, kind, values, placeholder):
    rng = random.Random(kind)
    texts = [f"{rng.choice(banking).rstrip()} my {kind}: {v}" for v in values]
    for v, res in zip(values, masker.mask_texts(texts)):
        assert v not in res.text, f"{kind} writing #{values.index(v)} not masked"
        assert placeholder in res.text
    assert all(not r for r in scan_residual([r.text for r in masker.mask_texts(texts)]))


def test_cyrillic_text_structured(masker):
    t = f"Здравствуйте, мой ИИН {IIN}, телефон 8 (701) 234-56-78, карта 4400 4302 1234 5679, счёт {IBANS[0]}."
    out = masker.mask_text(t).text
    for v in (IIN, "8 (701) 234-56-78", "4400 4302 1234 5679", IBANS[0]):
        assert v not in out
    assert not scan_residual([out])[0]


def test_kazakh_and_russian_names(masker):
    texts = ["Hello, my name is Dauren Serikbayev and my card is blocked",
             "Please transfer the money to Aigerim Nurlanovna Abenova",
             "my name is yerlan kassymov",
             "I spoke with Mr. Zhaksylykov yesterday about the loan",
             "Beneficiary Nursultan Temirbekuly did not receive it"]
    for t, r in zip(texts, masker.mask_texts(texts)):
        assert "<PERSON_1>" in r.text, r.text
    assert "Serikbayev" not in masker.mask_text(texts[0]).text


def test_placeholders_consistent_within_text(masker):
    r = masker.mask_text("Call Dauren Serikbayev on +7 701 234 56 78. Dauren Serikbayev said 87012345678 is his.")
    assert r.text.count("<PERSON_1>") == 2 and "<PERSON_2>" not in r.text
    assert r.text.count("<PHONE_NUMBER_1>") == 2  # two writings of one number
    assert r.counts["PHONE_NUMBER"] == 2


@pytest.mark.slow
def test_salted_tokens_stable_and_salt_dependent():
    t = ["My name is Dauren Serikbayev, card 4400430212345679", "card 4400 4302 1234 5679 again"]
    a, b, c = Masker(salt="s1"), Masker(salt="s1"), Masker(salt="s2")
    ra, rb, rc = (m.mask_texts(t) for m in (a, b, c))
    assert [r.text for r in ra] == [r.text for r in rb]
    assert [r.text for r in ra] != [r.text for r in rc]
    tok = ra[0].text.split("<CREDIT_CARD_1|")[1][:8]
    assert f"<CREDIT_CARD_1|{tok}>" in ra[1].text  # same card, same token, across tickets
    assert "s1" not in repr(a)


def test_salt_from_environment(monkeypatch):
    monkeypatch.setenv("TUNEGATE_PII_SALT", "env-salt")
    assert "|" in Masker().mask_text("card 4400430212345679").text


@pytest.mark.slow
def test_no_raw_value_in_synth_output(masker):
    recs = json.loads(SYNTH.read_text(encoding="utf-8"))[:300]
    res = masker.mask_texts([r["full_text"] for r in recs])
    structured = {"EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "US_SSN"}
    for rec, r in zip(recs, res):
        for s in rec["spans"]:
            if s["entity_type"] in structured:
                assert s["entity_value"] not in r.text
    assert not any(scan_residual([r.text for r in res]))


def test_leak_guard_finds_planted_and_stays_quiet_on_banking77(banking):
    planted = [f"{t} {v}" for t, v in zip(banking, KZ_PHONES + CARDS + IBANS + EMAILS + IPS + SSNS + [IIN, BIN])]
    found = scan_residual(planted)
    assert all(found), [i for i, f in enumerate(found) if not f]
    assert found[-2] == ["KZ_IIN"] and found[-1] == ["KZ_BIN"]
    clean = scan_residual(banking)
    fp_rate = sum(map(bool, clean)) / len(banking)
    print(f"leak guard false-positive rate on {len(banking)} Banking77 texts: {fp_rate:.4f}")
    assert fp_rate <= 0.002
    assert not any("4400" in t for f in found for t in f)  # types only, never values


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_mask_file_formats(tmp_path, masker, suffix):
    import pandas as pd

    df = pd.DataFrame({"ticket_id": [1, 2, 3], "text": ["my card 4400430212345679 is lost",
                                                         "call me at +7 701 234 56 78", "no pii here"]})
    src, dst = tmp_path / f"in{suffix}", tmp_path / f"out{suffix}"
    if suffix == ".csv":
        df.to_csv(src, index=False)
    elif suffix == ".jsonl":
        df.to_json(src, orient="records", lines=True)
    else:
        df.to_parquet(src, index=False)
    res = mask_file(src, dst, "text", masker=masker, chunk_rows=2, progress=False)
    assert res["rows"] == 3 and res["counts"] == {"CREDIT_CARD": 1, "PHONE_NUMBER": 1}
    out = dst.read_bytes().decode("utf-8", "ignore") if suffix != ".parquet" else \
        " ".join(pd.read_parquet(dst)["text"])
    assert "4400430212345679" not in out and "<CREDIT_CARD_1>" in out


def test_mask_command_converts_and_writes_guard_rejects_to_a_side_file(tmp_path, masker):
    """CSV in, Parquet out; a row the independent guard still flags (a mod-97-valid account number with
    no registry country, glued to a word) goes to <out>.rejected.csv with its reason, the rest is written."""
    import pandas as pd

    from assets.cli import main
    from pipeline.pii.checksums import iban_with_check

    glued = iban_with_check("QQ", "AB12CD34EF56GH") + "abc"
    df = pd.DataFrame({"ticket_id": ["t1", "t2", "t3"], "text": ["my card 4400430212345679 is lost",
                                                                   f"account {glued} closed", "no pii here"]})
    src, dst = tmp_path / "in.csv", tmp_path / "out.parquet"
    df.to_csv(src, index=False)
    assert main(["mask", "--in", str(src), "--out", str(dst), "--text-col", "text", "--id-col", "ticket_id"]) == 0
    out = pd.read_parquet(dst)
    assert out["ticket_id"].tolist() == ["t1", "t3"] and "<CREDIT_CARD_1>" in out["text"][0]
    rej = pd.read_csv(tmp_path / "out.parquet.rejected.csv")
    assert rej.to_dict("records") == [{"row": 2, "ticket_id": "t2", "reason": "residual_pii", "types": "IBAN_CODE"}]


@pytest.mark.parametrize("text,value", [
    ("They're not answering at 99 668472", "99 668472"),
    ("Phone: 0378 3549890", "0378 3549890"),
    ("my registered 0961-7596216. Could you check", "0961-7596216"),
    ("call (579) 888-3050 x123 after five", "(579) 888-3050 x123"),
    ("office 930.167.3943", "930.167.3943"),
])
def test_phone_shapes(masker, text, value):
    out = masker.mask_text(text).text
    assert value not in out and "<PHONE_NUMBER_1>" in out, out


def test_postcode_and_house_number_are_not_a_phone(masker):
    spans = masker.analyze(["The restaurant is at 17151 2450 Crown St"])[0]
    assert [t for t, _, _ in spans] == ["LOCATION"]


def test_places_from_gazetteer_and_cues(masker):
    texts = ["we moved here from tunisia", "I grew up in NAANTALI.", "She lives in Almaty with her son",
             "Agatha Smith\n\nEBEN\nAustria"]
    for t, r in zip(texts, masker.mask_texts(texts)):
        assert "<LOCATION_1>" in r.text, r.text
    assert "EBEN" not in masker.mask_text(texts[-1]).text


def test_currency_and_card_region_words_stay(masker):
    texts = ["I changed Russian rubles into UK pounds", "Can this app exchange American and English currency?",
             "Do you convert to Euro?", "Is my US card accepted?", "Explain pending transactions."]
    for t, r in zip(texts, masker.mask_texts(texts)):
        assert r.text == t, r.text


@pytest.mark.slow
def test_false_masking_rate_on_banking77(masker, banking):
    masked = sum(bool(s) for s in masker.analyze(banking))
    print(f"Banking77 texts with something masked: {masked} of {len(banking)}")
    assert masked / len(banking) <= 0.01


@pytest.mark.parametrize("text,value", [
    ("follow up with dana k reyes in a couple of weeks", "dana k reyes"),
    ("Thanks, Marisol", "Marisol"),
    ("Please don't leave yet, Bartholomew!", "Bartholomew"),
    ("Evander here, my card was declined", "Evander"),
    ("That was close! said Imogen to Casimir", "Casimir"),
    ('Ottoline:"Is it done?"', "Ottoline"),
])
def test_person_cue_shapes(masker, text, value):
    out = masker.mask_text(text).text
    assert value not in out and "<PERSON_1>" in out, out


def test_lower_case_text_goes_through_ner_as_a_capitalised_copy(masker):
    assert masker.title_copy("follow up with maria lopez") == "Follow up with Maria Lopez"
    assert masker.title_copy("Already Capitalised") is None
    assert masker.title_copy("found card, how to put it back in app") is not None
    assert masker.analyze(["found card, how to put it back in app"])[0] == []


@pytest.mark.parametrize("text,value", [
    ("ZIP: 48750", "48750"), ("my postcode is SW1A 1AA", "SW1A 1AA"), ("postal code 050040", "050040"),
    ("Austin, TX 78701-1234", "78701-1234"), ("moving to Ottawa ON K1A 0B1", "K1A 0B1"),
    ("we opened an office in Costamezzana 43015 last year", "Costamezzana 43015"),
])
def test_standalone_postcodes(masker, text, value):
    spans = masker.analyze([text])[0]
    s = text.index(value)
    assert any(t == "LOCATION" and ps <= s and pe >= s + len(value) for t, ps, pe in spans), spans


def test_postcode_shapes_need_an_address_word(masker):
    for t in ("I paid 48750 tenge in January 2020", "transfer 1500 to my savings", "order 12345 is late"):
        assert masker.analyze([t])[0] == [], t


def test_ner_windows_cover_candidates_only(masker):
    text = ("i need some help because the transfer that i made yesterday evening from my savings account has "
            "not arrived yet and the person waiting for it is Dauren")
    wins = masker.ner_windows(text)
    assert wins and wins[-1][1] == len(text) and wins[0][0] > 0
    assert masker.ner_windows("how do i top up my card?") == []


@pytest.mark.parametrize("text,value", [
    ("We went to a Oswaldo Quintanilla concert last night", "Oswaldo Quintanilla"),
    ("I liked the Evander Holt version more", "Evander Holt"),
    ("She is a huge Imogen Varga fan", "Imogen Varga"),
])
def test_names_used_as_modifiers(masker, text, value):
    s = text.index(value)
    assert ("PERSON", s, s + len(value)) in masker.analyze([text])[0]
    assert masker.analyze(["can I use the Google Pay version?", "I want the Apple Pay version"]) == [[], []]


def test_a_name_found_once_is_masked_where_it_repeats(masker):
    text = "Letters from Imogen Varga's archive. Nobody writes like early Varga."
    s = text.rindex("Varga")
    assert ("PERSON", s, s + 5) in masker.analyze([text])[0]


def test_street_corner_and_city_line_inside_an_address(masker):
    from pipeline.pii.masker import _address_context, _glue_locations

    text = "Please send the card to Marit and Rua das Flores 120"
    assert masker.analyze([text])[0] == [("LOCATION", text.index("Marit"), len(text))]
    label = "Jolanta Wierzbicka\n12 Harbour Road\nSanta Pelagia\nChile 40012"
    spans = [["PERSON", 0, 18, .85], ["LOCATION", 19, 34, .9], ["PERSON", 35, 48, .85], ["LOCATION", 49, 60, .9]]
    out = _glue_locations(label, _address_context(label, spans))
    assert [m[:3] for m in out] == [["PERSON", 0, 18], ["LOCATION", 19, 60]]


@pytest.mark.parametrize("text,value", [
    ("The parade went down Wilhelmina Grove Street yesterday", "Wilhelmina Grove"),
    ("He lives on the north side of Jose Martinez 2211.", "Jose Martinez 2211"),
])
def test_streets_named_after_people(masker, text, value):
    s = text.index(value)
    assert any(t == "LOCATION" and ps <= s and pe >= s + len(value) for t, ps, pe in masker.analyze([text])[0])


def test_lower_case_signature_line_with_an_initial(masker):
    text = "teodora v lindqvist\nclaims handler\n(555) 201-7788"
    assert ("PERSON", 0, 19) in masker.analyze([text])[0]
    assert masker.analyze(["my card is lost\nplease help"])[0] == []


def test_name_never_spans_a_line_break(masker):
    text = "Rosalind Achterberg\n\nHAVERFORD\nUnited Kingdom"
    assert all(not (t == "PERSON" and "\n" in text[s:e]) for t, s, e in masker.analyze([text])[0])


def test_street_line_above_a_unit_line_joins_the_address(masker):
    from pipeline.pii.masker import _address_context

    text = "Odile Marchetti\n415 chemin des Saules 12\nApt. 3\nLYON\nFrance 69001"
    spans = [["PERSON", 0, 15, .85], ["PERSON", 20, 39, .85], ["LOCATION", text.index("Apt"), len(text), .9]]
    out = _address_context(text, spans)
    assert [m[:3] for m in out] == [["PERSON", 0, 15], ["LOCATION", 16, len(text)]]
    phone = "Odile Marchetti\n(555) 201-7788\nSuite 4, 10 Main Street"
    spans = [["PERSON", 0, 15, .85], ["PHONE_NUMBER", 16, 30, .9], ["LOCATION", 31, len(phone), .9]]
    assert [m[:3] for m in _address_context(phone, spans)][-1] == ["LOCATION", 31, len(phone)]


def test_capitalised_words_without_a_cue_are_not_names(masker):
    # a lone Capitalised word inside a sentence is not enough: on the tune templates such a rule found
    # 6 names and masked 110 titles, bands, genres and organisations
    for t in ("my card was Charged twice", "can I pay in Russian rubles", "is it free in Europe or not"):
        assert all(k != "PERSON" for k, _, _ in masker.analyze([t])[0]), t
    text = "Hi Leontyne, your card is on its way"  # a cue makes it a name
    s = text.index("Leontyne")
    assert ("PERSON", s, s + 8) in masker.analyze([text])[0]


@pytest.mark.parametrize("text,name", [
    ("HELLO, YELENA ASKAROVNA HERE. CALLING FROM +7 701 123 4567.", "YELENA ASKAROVNA"),
    ("HI, MY NAME IS DINARA KARIMOVA. I NEED HELP WITH MY CARD", "DINARA KARIMOVA"),
    ("PLEASE CALL ME BACK, AIGERIM NURLANOVNA", "AIGERIM NURLANOVNA"),
])
def test_names_in_all_capitals_are_masked(masker, text, name):
    out = masker.mask_text(text).text
    assert all(w not in out for w in name.split()), out


def _case_copy(text: str, upper: bool) -> str:
    return "".join(c2 if len(c2 := (c.upper() if upper else c.lower())) == 1 else c for c in text)


@pytest.mark.slow
def test_lower_and_upper_case_tickets_are_not_over_masked(masker):
    # Banking77 *test* requests (the support-word list is built from the training file), re-cased: a
    # Capitalised copy read by NER must not turn request words ("broken", "gotten") into names
    with open(BANKING.parent / "test.csv", newline="", encoding="utf-8") as fh:
        texts = [row["text"] for row in csv.DictReader(fh)][:2000]
    for upper in (False, True):
        recased = [_case_copy(t, upper) for t in texts]
        masked = sum(bool(r) for r in masker.analyze(recased))
        assert masked <= 0.02 * len(texts), (upper, masked)  # measured: 25 lower-case, 30 upper-case


@pytest.mark.slow
def test_all_capitals_synth_records_keep_most_names(masker):
    from pipeline.pii.evaluate import load_records, score_spans

    recs = [dict(r, full_text=_case_copy(r["full_text"], True)) for r in load_records()]
    res = score_spans(recs, masker.analyze([r["full_text"] for r in recs]))
    # measured 0.645 (0.142 before capitals were read through a lower-case copy); mixed case: 0.909
    assert res["per_entity"]["PERSON"]["recall"] >= 0.6, res["per_entity"]["PERSON"]
    assert res["overall"]["structured_recall"] == 1.0


def test_an_ellipsis_is_not_a_url(masker):
    # from the bundled sample: "I would like a virtual card...how do I get one?"
    assert masker.analyze(["I would like a virtual card...how do I get one?", "wait..what happened"]) == [[], []]
    assert [k for k, _, _ in masker.analyze(["see kaspi.kz/help or www.halykbank.kz"])[0]] == ["URL", "URL"]


@pytest.mark.parametrize("text,kept", [
    ("please deliver my card to 12 abay avenue, almaty 050000", "please deliver my card to "),
    ("my address is 45 baker street, london nw1 6xj", "my address is "),
    ("MY NEW ADDRESS: 7 RUE DE LA PAIX, 75002 PARIS, FRANCE", "MY NEW ADDRESS: "),
])
def test_addresses_in_lower_case_and_capitals_are_masked(masker, text, kept):
    out = masker.mask_text(text).text
    rest = re.sub(r"<[A-Z_]+_\d+(?:\|[0-9a-f]+)?>", "", out)
    assert out.startswith(kept) and not any(c.isdigit() for c in rest), out
    assert "almaty" not in out and "london" not in out and "PARIS" not in out


def test_url_pattern_on_chunks_finds_what_it_finds_on_whole_texts(banking):
    from presidio_analyzer.predefined_recognizers import UrlRecognizer

    from pipeline.pii.evaluate import load_records
    from pipeline.pii.recognizers import ChunkScopedRecognizer

    texts = [r["full_text"] for r in load_records()] + banking[:500] + [
        "see kaspi.kz/help.", "go to https://halykbank.kz/cards?x=1, now", "(www.example.com)", "a.b@c.com"]
    whole, chunked = UrlRecognizer(), ChunkScopedRecognizer(UrlRecognizer())
    spans = lambda rec, t: sorted((r.start, r.end, round(r.score, 3)) for r in rec.analyze(t, ["URL"], None))
    found = [spans(whole, t) for t in texts]
    assert sum(map(bool, found)) > 50  # the texts do hold URLs
    assert [spans(chunked, t) for t in texts] == found
