"""Table tests of the structured-identifier recognizers, one table per recognizer: (text, expected spans).

No spaCy model is loaded: each recognizer is built on its own, so these run in about a second.
"""
from __future__ import annotations

import pytest

from pipeline.pii.checksums import iban_ok, iban_with_check, kz_bin_ok, kz_iin_ok, luhn_ok
from pipeline.pii.recognizers.generic.card import CardRecognizer
from pipeline.pii.recognizers.generic.email import SpokenEmailRecognizer
from pipeline.pii.recognizers.generic.iban import IbanMod97Recognizer
from pipeline.pii.recognizers.generic.ip import IpAddressRecognizer
from pipeline.pii.recognizers.generic.phone import PhonePatternRecognizer
from pipeline.pii.recognizers.kz.iin_bin import KzIinBinRecognizer

KZ = iban_with_check("KZ", "601KZT8741529038")  # 20 characters
KZ_GROUPED = " ".join(iban_with_check("KZ", "859ERR0UHFJMU08W")[i:i + 4] for i in range(0, 20, 4))
GB = iban_with_check("GB", "NWBK60161331926819")
CARD = "4400430212345679"
IIN = "900101300811"


def spans(recognizer, text, entity=None):
    return sorted({(r.start, r.end) for r in recognizer.analyze(text, [entity] if entity else None)})


def at(text, value):
    s = text.index(value)
    return (s, s + len(value))


def test_checksums():
    assert luhn_ok(CARD) and not luhn_ok("4400430212345678")
    assert iban_ok(KZ, registry_length=True) and iban_ok("GB82 WEST 1234 5698 7654 32")
    assert not iban_ok("GB82 WEST 1234 5698 7654 33") and not iban_ok(KZ + "1", registry_length=True)
    assert kz_iin_ok(IIN) and not kz_iin_ok("900101300812") and not kz_bin_ok(IIN)


@pytest.mark.parametrize("text,value", [
    (f"sent to {KZ} Please call back", KZ),
    (f"{KZ_GROUPED} has been pending", KZ_GROUPED),
    (f"IBAN:{KZ.lower()}, thanks", KZ.lower()),
    (f"счёт {KZ}\tспасибо", KZ),
    (f"({GB})", GB),
    (f"{KZ}Please", KZ),  # glued to a word: the registry length of KZ still finds it
    (f"{KZ_GROUPED}\n{KZ}", KZ_GROUPED),
])
def test_iban(text, value):
    assert at(text, value) in spans(IbanMod97Recognizer(), text)


@pytest.mark.parametrize("text", ["KZ00 and more", "AB12 card was charged twice", "order GB12345 shipped"])
def test_iban_negatives(text):
    assert spans(IbanMod97Recognizer(), text) == []


@pytest.mark.parametrize("text,value", [
    (f"card {CARD} 2024", CARD),
    ("card 4400 4302 1234 5679 exp 12/27", "4400 4302 1234 5679"),
    ("500 4400-4302-1234-5679.", "4400-4302-1234-5679"),
    (f"№{CARD}!", CARD),
])
def test_card(text, value):
    assert at(text, value) in spans(CardRecognizer(), text)


@pytest.mark.parametrize("text", ["+447700677662 mobile", "order 4400430212345678", "0000 0000 0000 0000"])
def test_card_negatives(text):
    assert spans(CardRecognizer(), text) == []


@pytest.mark.parametrize("text,expected", [
    (f"my iin {IIN}.", [at(f"my iin {IIN}.", IIN)]),
    ("иин 900101 300811 спасибо", [(4, 17)]),
    ("iin 900101300812", []),
])
def test_kz_iin(text, expected):
    assert spans(KzIinBinRecognizer("KZ_IIN"), text) == expected


@pytest.mark.parametrize("text,value", [
    ("write sam at gmail dot com please", "sam at gmail dot com"),
    ("sam@gmail dot com", "sam@gmail dot com"),
    ("mail: name [at] mail.kz", "name [at] mail.kz"),
    ("name(at)mail(dot)kz", "name(at)mail(dot)kz"),
    ("please add johndoe@yahoocom to my list", "johndoe@yahoocom"),
])
def test_spoken_email(text, value):
    assert at(text, value) in spans(SpokenEmailRecognizer(), text)


@pytest.mark.parametrize("text", ["look at this dot thing", "I am at work.Thanks", "meet at home"])
def test_spoken_email_negatives(text):
    assert spans(SpokenEmailRecognizer(), text) == []


@pytest.mark.parametrize("text,value", [
    ("ip 10.0.0.1.", "10.0.0.1"),
    (":2816:11::95e:ffff:1d8:7d0:1:", "2816:11::95e:ffff:1d8:7d0:1"),
    ("from fe80::1... ok", "fe80::1"),
    ("(38.143.102.212'", "38.143.102.212"),
])
def test_ip(text, value):
    assert at(text, value) in spans(IpAddressRecognizer(), text)


@pytest.mark.parametrize("text", ["at 10:30:15 today", "version 1.2.3", "ratio 3:2"])
def test_ip_negatives(text):
    assert spans(IpAddressRecognizer(), text) == []


@pytest.mark.parametrize("text,value", [
    ("call +90 074940861? ok", "+90 074940861"),
    ("00996 50 4971 5504: thanks", "00996 50 4971 5504"),
    ("+44 038989483 5000 1234", "+44 038989483 5000"),  # cut back to E.164 length
    ("тел 8 (701) 123-45-67", "8 (701) 123-45-67"),
    ("+7 701 123 45 67\n2024", "+7 701 123 45 67"),
])
def test_phone(text, value):
    found = spans(PhonePatternRecognizer(), text, "PHONE_NUMBER")
    s, e = at(text, value)
    assert any(a <= s and b >= e for a, b in found), found
