"""Generic places a user names ("downtown", "the airport", "the mall", "penn station", "train depot"):
not names, but where the person is or goes. Masked only with ``MaskingSpec.mask_generic_places``.

Only the words that HWU64's annotators mark as a place nearly every time they occur are listed (on its
tune half: downtown 6 of 6, airport 5 of 7, mall 4 of 6, a named or transport station 9 of 10, "in town" 3 of 4,
"this / our / the city" 6 of 8); "home" (4 of 17; 4 of 8 after go/ride/get), "the world" (4 of 7) and
"theatre" are not, and a radio, news or gas station is a station of another kind.
"""
from __future__ import annotations

import regex
from presidio_analyzer import EntityRecognizer, RecognizerResult

GENERIC_PLACE_SCORE = 0.5
_WORDS = ("downtown", "airport", "mall", "town", "city", "station", "depot", "terminal")
_NOT_STATION_NAME = (r"radio|the|a|an|this|that|my|your|our|their|his|her|any|some|which|what|nearest|closest|local|"
                     r"hop|music|rock|jazz|pop|country|news|sports?|talk|fm|am|npr|bbc|tv|television|gas|petrol|radio|"
                     r"fuel|police|fire|space|weather|power|charging|docking|favorite|favourite|next|last|first")
_PATTERN = regex.compile(
    r"(?i)\b(?:downtown|airport|mall(?:[ \t]+of[ \t]+[a-z]+)?|(?<=\bin[ \t])town"
    r"|(?:this|our|my|another|neighbou?ring|the)[ \t]+city(?![ \t]+(?:of|hall|council|traffic|news|centre|center|limits?)\b)"
    r"|(?:train|railway|rail|bus|subway|metro|tube|coach)[ \t]+(?:station|depot|terminal)"
    rf"|(?<![\w'’-])(?!(?:{_NOT_STATION_NAME})\b)[a-z][a-z'’]+[ \t]+station)\b")


class GenericPlaceRecognizer(EntityRecognizer):
    """Downtown, airports, malls and transport stations (module docstring)."""

    def __init__(self):
        super().__init__(supported_entities=["LOCATION"], name="GenericPlaceRecognizer")

    def load(self) -> None:
        pass

    def analyze(self, text, entities, nlp_artifacts=None):
        low = text.lower()
        if not any(w in low for w in _WORDS):  # most texts name none of them: skip the pattern
            return []
        return [RecognizerResult("LOCATION", m.start(), m.end(), GENERIC_PLACE_SCORE) for m in _PATTERN.finditer(text)]
