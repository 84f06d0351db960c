"""Table tests of the name and place recognizers (no spaCy model loaded)."""
from __future__ import annotations

import pytest

from pipeline.pii.recognizers.names.cue import CueNameRecognizer
from pipeline.pii.recognizers.names.lower_given_name import LowerGivenNameRecognizer
from pipeline.pii.recognizers.names.slavic_turkic import SlavicTurkicNameRecognizer
from pipeline.pii.recognizers.places.gazetteer import LOWER_CITY_SCORE, GazetteerLocationRecognizer
from pipeline.pii.recognizers.ru.natasha_ner import NatashaNerRecognizer


def found(cls, text):
    r = cls()
    r.load()
    return sorted({(x.entity_type, text[x.start:x.end]) for x in r.analyze(text, None)})


@pytest.mark.parametrize("text,expected", [
    ("add joe smith to my contacts", [("PERSON", "joe smith")]),
    ("what did i tell susan in my last email", [("PERSON", "susan")]),
    ("what is sarah's number", [("PERSON", "sarah")]),
    ("set an alarm for june", []),  # months are never a name here
    ("Add Joe Smith", []),  # mixed case is NER's
])
def test_lower_given_name(text, expected):
    assert found(LowerGivenNameRecognizer, text) == expected


@pytest.mark.parametrize("text,expected", [
    ("My name is Dauren Serikbayev", [("PERSON", "Dauren Serikbayev")]),
    ("Hi, Anna, the card is blocked", [("PERSON", "Anna")]),
    ("меня зовут Иван Петров", [("PERSON", "Иван Петров")]),
])
def test_cue_names(text, expected):
    assert set(expected) <= set(found(CueNameRecognizer, text))


@pytest.mark.parametrize("text,expected", [
    ("Aigerim Nurlanovna called", [("PERSON", "Aigerim Nurlanovna")]),
    ("с уважением, Данияр Сериков", [("PERSON", "Данияр Сериков")]),
    ("Explain the fee", []),
])
def test_slavic_turkic(text, expected):
    assert found(SlavicTurkicNameRecognizer, text) == expected


def test_gazetteer_lower_case_cities_have_their_own_score():
    r = GazetteerLocationRecognizer()
    r.load()
    res = {(t.start, t.end, t.score) for t in r.analyze("what time is it in bangalore", None)}
    assert res == {(19, 28, LOWER_CITY_SCORE)}
    assert {(t.start, t.end) for t in r.analyze("I moved to Astana", None)} == {(11, 17)}


@pytest.mark.parametrize("text,expected", [
    ("передайте Айгерим что карта готова", [("PERSON", "Айгерим")]),
    ("живу в Караганде, перевод не дошёл", [("LOCATION", "Караганде")]),
    ("почему не пришли деньги на карту", []),
    ("no Cyrillic here, John", []),
])
def test_natasha_ner(text, expected):
    assert found(NatashaNerRecognizer, text) == expected
