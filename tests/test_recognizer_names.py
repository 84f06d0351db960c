"""Table tests of the name and place recognizers (no spaCy model loaded)."""
from __future__ import annotations

import pytest

from pipeline.pii.recognizers.names.cue import CueNameRecognizer
from pipeline.pii.recognizers.addresses.lower_street import LowerStreetRecognizer
from pipeline.pii.recognizers.common import mostly_lower
from pipeline.pii.recognizers.names.lexicon import is_english_word
from pipeline.pii.recognizers.names.lower_cue import LowerCueNameRecognizer
from pipeline.pii.recognizers.names.lower_given_name import LowerGivenNameRecognizer
from pipeline.pii.recognizers.places.generic import GenericPlaceRecognizer
from pipeline.pii.recognizers.places.location_cue import LocationCueRecognizer
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
    ("Has john sent me any new emails", [("PERSON", "john")]),  # a capital on the first word only
    ("see if john is free on Monday", [("PERSON", "john")]),
    ("switch lights to red tone", []),  # Norwegian given name, English word
    ("define love without invoking the term love", []),
    ("did you get what just said correctly", []),
    ("tell me the area code for sarah k", [("PERSON", "sarah k")]),
    ("what is mary s.'s phone number", [("PERSON", "mary s.")]),
    ("call susan a cab", [("PERSON", "susan")]),
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


@pytest.mark.parametrize("text,expected", [
    ("call raju phone number", [("PERSON", "raju")]),
    ("set a meeting with hongbin", [("PERSON", "hongbin")]),
    ("did my friend rohit posted something on facebook", [("PERSON", "rohit")]),
    ("add dr rosenstock as an email contact", [("PERSON", "rosenstock")]),
    ("tell me the area code for jen k", []),  # "for" is a weak cue and "jen" no known given name
    ("please find a contact number of jayesh and tell me", [("PERSON", "jayesh")]),
    ("when is madonna's birthday", [("PERSON", "madonna")]),
    ("tell me when i get new emails from principal lowry", [("PERSON", "lowry")]),
    ("call mom", []),  # an English word
    ("have you responded my phone calls", []),  # a plural of an English word
    ("email support about the refund", []),
    ("Call Raju", []),  # mixed case is NER's
])
def test_lower_cue_names(text, expected):
    assert found(LowerCueNameRecognizer, text) == expected


@pytest.mark.parametrize("text,expected", [
    ("take me downtown", [("LOCATION", "downtown")]),
    ("book a cab to the airport", [("LOCATION", "airport")]),
    ("get me to the train station", [("LOCATION", "train station")]),
    ("go to agha station", [("LOCATION", "agha station")]),
    ("what is happening in town tonight", [("LOCATION", "town")]),
    ("what time is it in this city", [("LOCATION", "this city")]),
    ("play random radio station", []),
    ("tune into the nearest english fm station", []),
    ("play the kansas city hip hop station", []),
    ("find a gas station", []),
    ("town hall meeting", []),
    ("an ATM in the city centre declined my card", []),
])
def test_generic_places(text, expected):
    assert found(GenericPlaceRecognizer, text) == expected


@pytest.mark.parametrize("text,expected", [
    ("does mary smith live on main street", [("LOCATION", "main street")]),
    ("book for me an uber taxi to carmen drive", [("LOCATION", "carmen drive")]),
    ("is the toll road open", []),
    ("cross the road", []),
    ("Book a taxi to Carmen Drive", []),  # mixed case: the address rules
])
def test_lower_street(text, expected):
    assert found(LowerStreetRecognizer, text) == expected


@pytest.mark.parametrize("text,expected", [
    ("is it going to rain in tucson", [("LOCATION", "tucson")]),
    ("hey i want to get trains to manchester on Wednesday", [("LOCATION", "manchester")]),
    ("how long from dallas to san antonio by train", [("LOCATION", "dallas"), ("LOCATION", "san antonio")]),
    ("get me a ride on the commuter train from nj to ny", [("LOCATION", "nj"), ("LOCATION", "ny")]),
    ("take a bath", []),  # an English word that is also a city
    ("play something by charlotte", []),  # an English given name
    ("tell us more", []),
])
def test_gazetteer_lower_case_geonames_cities(text, expected):
    assert found(GazetteerLocationRecognizer, text) == expected


@pytest.mark.parametrize("text,expected", [
    ("set an alarm", True), ("Has john sent me any emails", True), ("see you on Monday", True),
    ("I'm in Paris", False), ("BLOCK MY CARD", False), ("12345", False),
])
def test_mostly_lower(text, expected):
    assert mostly_lower(text) is expected


@pytest.mark.parametrize("word,expected", [
    ("calls", True), ("alerts", True), ("followers", True), ("cooking", True), ("tone", True),
    ("raju", False), ("hongbin", False), ("rosenstock", False),
])
def test_is_english_word(word, expected):
    assert is_english_word(word) is expected


@pytest.mark.parametrize("text,expected", [
    ("I LIVE NEAR THE CARD NUMBER IS", []),
    ("I TRAVELLED TO SPAIN. THE CARD NUMBER IS BLOCKED", [("LOCATION", "SPAIN")]),
    ("originally from St. Petersburg", [("LOCATION", "St. Petersburg")]),
    ("ORIGINALLY FROM NEW YORK CITY AND", [("LOCATION", "NEW YORK CITY")]),
])
def test_location_cue_stops_at_sentence_ends_and_capitalised_stop_words(text, expected):
    r = LocationCueRecognizer(GazetteerLocationRecognizer())
    assert sorted({(x.entity_type, text[x.start:x.end]) for x in r.analyze(text, None)}) == expected


@pytest.mark.parametrize("text,expected", [
    ("listening song of arijit sharma on my account", [("PERSON", "arijit sharma")]),
    ("play the latest singh podcast", []),  # a surname alone is left to the cues
])
def test_lower_unknown_word_before_a_surname(text, expected):
    assert found(LowerGivenNameRecognizer, text) == expected


@pytest.mark.parametrize("text,expected", [
    ("tell me the area code for jennifer k", [("PERSON", "jennifer k")]),  # "for": known given names only
    ("how many phone numbers do i have for brenden", []),
    ("search for coldplay", []),
    ("what is my schedule for june fourteenth", []),
])
def test_lower_cue_for_needs_a_known_given_name(text, expected):
    assert found(LowerCueNameRecognizer, text) == expected


@pytest.mark.parametrize("text,expected", [
    ("Why is Rebecca so impulsive?", [("PERSON", "Rebecca")]),
    ("I would like to remove my kid Florence from the will.", [("PERSON", "Florence")]),
    ("I met Anna Karenina there. Will she come?", [("PERSON", "Anna Karenina")]),
    ("Rebecca called about the card", []),  # a sentence start: any word is Capitalised there
    ("My card arrived on Monday in May", []),
    ("I paid with Visa at the ATM", []),
])
def test_capitalised_given_name(text, expected):
    from pipeline.pii.recognizers.names.capitalised_given import CapitalisedGivenNameRecognizer

    assert found(CapitalisedGivenNameRecognizer, text) == expected


@pytest.mark.parametrize("text,expected", [
    ("why wasn't my contactless accepted at the metro", []),  # a determiner: a common noun
    ("what is the seattle city council doing", [("LOCATION", "seattle")]),
])
def test_gazetteer_lower_case_city_after_a_determiner(text, expected):
    assert found(GazetteerLocationRecognizer, text) == expected
