"""Place names after a location cue ("originally from", "lives in"), UPPER CASE places, address-label lines."""
from __future__ import annotations

import regex
from presidio_analyzer import EntityRecognizer, RecognizerResult

from pipeline.pii.recognizers.common import NOT_NAMES as _NOT_NAMES, STOP as _STOP

_PLACE_WORD = r"(?:[A-ZÀ-ÖØ-ÞĀ-ſΑ-ΩА-Я][\w'’.-]+|[A-ZÀ-ÖØ-ÞĀ-ſΑ-ΩА-Я∆]{2,}[\w'’∆.-]*)"
_PLACE_PARTICLE = r"(?:de|del|de la|da|do|dos|das|du|des|la|le|di|nad|pod|am|an|im|upon|on|sur|en|sul|v|u|o'|O')"
_PLACE = rf"{_PLACE_WORD}(?:[ \t]+(?:{_PLACE_PARTICLE}[ \t]+)?{_PLACE_WORD}){{0,3}}(?:[ \t]+\([A-Z][\w ]+\))?"
_LOC_CUES = (r"moved\s+(?:here\s+|there\s+)?from|originally\s+from|(?:comes?|came)\s+from|grew\s+up\s+in|"
             r"(?:lives?|living|lived|resides?|residing|located|based|born|raised|stationed|settled|headquartered)\s+in|"
             r"arrived\s+(?:at|in)|returned\s+to|home\s+(?:city|town)(?:\s+of)?|(?:city|town|village)\s+of|"
             r"where\s*:|travel(?:l)?(?:ing|ed)?\s+to|relocat\w*\s+to|flew\s+(?:in)?to|trip\s+to|"
             r"year\s+in|world\s+to|serving(?:\s+(?:southern|northern|eastern|western|central))?|"
             r"hometown|the\s+streets\s+of|near")
_LOWER_LOC_CUES = (r"moved\s+(?:here\s+)?from|originally\s+from|grew\s+up\s+in|(?:lives?|living|lived|based|born)\s+in|"
                   r"returned\s+to|where\s*:")
_NOT_PLACES = {"The", "A", "An", "My", "Our", "Your", "His", "Her", "Their", "This", "That", "It", "I", "We",
               "You", "He", "She", "They", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday",
               "Sunday", "January", "February", "March", "April", "May", "June", "July", "August", "September",
               "October", "November", "December", "Apple", "Google", "Visa", "Mastercard", "ATM", "PIN", "USD",
               "EUR", "GBP", "KZT", "SEPA", "SWIFT", "Euro", "Euros", "Europe", "Asia", "Africa", "America",
               "Hi", "Hello", "Thanks", "Please", "Here", "There", "Home", "Work", "Office", "Number"}


class LocationCueRecognizer(EntityRecognizer):
    """A place name after a location cue ("originally from", "lives in", "arrived at", "Where:"), an
    UPPER CASE word after in/at/from/to, and the lines of an address label ending in a country line."""

    def __init__(self, gazetteer: GazetteerLocationRecognizer):
        super().__init__(supported_entities=["LOCATION"], name="LocationCueRecognizer")
        self.gaz = gazetteer

    def load(self) -> None:
        self.cue = regex.compile(rf"(?i:\b(?:{_LOC_CUES}))[ \t]+(?:the[ \t]+)?(?P<n>{_PLACE})")
        self.lower = regex.compile(rf"(?i:\b(?:{_LOWER_LOC_CUES}))[ \t]+(?P<n>[a-zà-ÿ][\w'’-]+(?:[ \t]+(?:de|del|la|da|do)[ \t]+[a-zà-ÿ][\w'’-]+|[ \t]+[a-zà-ÿ][\w'’-]+(?=[ \t]+(?:country|city|town)\b))?)")
        self.caps = regex.compile(r"\b(?:in|at|from|to|near)[ \t]+(?P<n>[A-ZÀ-ÖØ-ÞĀ-ſ]{4,}(?:[ \t]+[A-ZÀ-ÖØ-ÞĀ-ſ]{2,}){0,2})(?![\w])")
        self.line = regex.compile(r"(?m)^[ \t>?]*(?P<n>[^\W\d_][^\n,:;!?@]{1,40}?)[ \t]*,?[ \t]*$")

    def analyze(self, text, entities, nlp_artifacts=None):
        out = []
        for pat, sc in ((self.cue, 0.6), (self.lower, 0.6), (self.caps, 0.55)):
            for m in pat.finditer(text):
                s, e = m.span("n")
                words = text[s:e].split()
                # a place never runs on over a sentence end or a stop word in capitals ("TRAVELLED TO
                # SPAIN. THE CARD NUMBER IS")
                for k, w in enumerate(words):
                    if k + 1 < len(words) and w.endswith((".", "!", "?")) and words[k + 1].lower() in _STOP:
                        words = words[:k + 1]
                        break
                    if k and w.isupper() and w.lower() in _STOP:
                        words = words[:k]
                        break
                while words and (words[0].strip(".,") in _NOT_PLACES | _NOT_NAMES or
                                 words[0].strip(".,").title() in _NOT_PLACES | _NOT_NAMES):
                    s = text.index(words[0], s) + len(words[0])
                    words.pop(0)
                while words and (words[-1].strip(".,") in _NOT_PLACES or words[-1].lower() in _STOP):
                    words.pop()
                if not words or (pat is self.caps and (words[0] in _NOT_PLACES or words[0] in _NOT_NAMES)):
                    continue
                if pat is self.lower and words[0].lower() in _STOP:
                    continue
                s = text.index(words[0], s)
                e = text.index(words[-1], s) + len(words[-1])
                if text[e - 1] == "." and not regex.search(r"\b[A-Z]\.$", text[s:e]):
                    e -= 1
                out.append(RecognizerResult("LOCATION", s, e, sc))
        # address labels: a line that is a country, and the short capitalised line right above it
        if "\n" in text:
            lines = [(m.start("n"), m.end("n")) for m in self.line.finditer(text)]
            countries = {(r.start, r.end) for r in self.gaz.analyze(text, None)}
            for i, (s, e) in enumerate(lines):
                v = text[s:e]
                hit = any(cs == s and ce >= e - 1 for cs, ce in countries) or \
                    any(cs == s and regex.fullmatch(r"[ \t]*\d{4,6}", text[ce:e]) for cs, ce in countries)
                if not hit:
                    continue
                if i and text[lines[i - 1][1]:s].count("\n") == 1:
                    ps, pe = lines[i - 1]
                    pv = text[ps:pe]
                    if len(pv.split()) <= 5 and pv[0].isupper() and not regex.search(r"\d{3,}|@", pv):
                        out.append(RecognizerResult("LOCATION", ps, pe, 0.6))
        return out

