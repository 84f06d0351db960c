"""Lower-case street names in lower-case texts ("does mary smith live on main street", "a taxi to carmen
drive", "any pub in mg road"): one or two words before a street word, the first not a stop word."""
from __future__ import annotations

import regex
from presidio_analyzer import EntityRecognizer, RecognizerResult

from pipeline.pii.recognizers.common import STOP, mostly_lower

_STREET = regex.compile(r"(?<![\w'’-])(?P<a>[a-z][a-z'’]+)(?:[ \t]+(?P<b>[a-z][a-z'’]+))?[ \t]+"
                        r"(?:street|road|drive|avenue|lane|boulevard|highway)\b")
_NOT_STREET = frozenset({"toll", "dirt", "main", "side", "back", "high", "one", "long", "open", "test",
                         "ring", "slip", "access", "country", "gravel"}) - {"main", "high"}


class LowerStreetRecognizer(EntityRecognizer):
    """A street name written in lower case (module docstring)."""

    def __init__(self):
        super().__init__(supported_entities=["LOCATION"], name="LowerStreetRecognizer")

    def load(self) -> None:
        pass

    def analyze(self, text, entities, nlp_artifacts=None):
        if not mostly_lower(text):
            return []
        out = []
        for m in _STREET.finditer(text, overlapped=True):
            a, b = m.group("a"), m.group("b")
            if a in STOP or a in _NOT_STREET or (b is not None and b in STOP):
                continue
            out.append(RecognizerResult("LOCATION", m.start(), m.end(), 0.6))
        return out
