"""Postal codes next to an address word, a state code, a place, or in an unmistakable national shape."""
from __future__ import annotations

import regex
from presidio_analyzer import EntityRecognizer, RecognizerResult

from pipeline.pii.recognizers.common import NOT_NAMES as _NOT_NAMES, US_STATE_CODES as _US_STATE_CODES
from pipeline.pii.recognizers.places.location_cue import _NOT_PLACES, _PLACE

# postcode shapes: US ZIP / ZIP+4, KZ and other 4-6 digit codes, SE/CZ "394 13", BR "75534-030", PT
# "3610-114", PL "02-495", NL "7412 SL", UK "SW1A 1AA", CA "K1A 0B1"
_POSTCODE = (r"(?:[A-Za-z]{1,2}\d[A-Za-z\d]?[ \t]\d[A-Za-z]{2}|[A-Za-z]\d[A-Za-z][ \t-]?\d[A-Za-z]\d|"
             r"\d{5}-\d{4}|\d{5}-\d{3}|\d{4}-\d{3}|\d{2}-\d{3}|\d{3}[ \t]\d{2}|\d{4}[ \t]?[A-Z]{2}|\d{4,6})(?![\w-])")
_POSTCODE_LABEL = (r"zip(?:[ \t-]?code)?|post(?:al)?[ \t-]?code|postcode|pin[ \t-]?code|post[ \t]+index|"
                   r"почтовый[ \t]+индекс|индекс|cep|plz|code[ \t]+postal")


class PostcodeRecognizer(EntityRecognizer):
    """Postal codes on their own, only where the shape sits next to an address word: after a postcode
    label ("ZIP: 48750", "postcode SW1A 1AA"), after a US state or Canadian province code ("TX 78701"),
    after "in <Place>" ("in Costamezzana 43015"), and the unmistakable UK and Canadian shapes."""

    def __init__(self):
        super().__init__(supported_entities=["LOCATION"], name="PostcodeRecognizer")

    def load(self) -> None:
        self.label = regex.compile(rf"(?i:\b(?:{_POSTCODE_LABEL}))(?:[ \t]+is)?[ \t]*[:#№]?[ \t]*(?P<n>{_POSTCODE})")
        self.state = regex.compile(rf"\b(?:{_US_STATE_CODES})\.?,?[ \t]+(?P<n>\d{{5}}(?:-\d{{4}})?)(?![\w-])")
        self.place = regex.compile(rf"\b(?:in|from|to|at)[ \t]+(?P<n>{_PLACE}[ \t]+(?:\d{{4,6}}|\d{{3}}[ \t]\d{{2}}|\d{{5}}-\d{{3}}|\d{{4}}-\d{{3}}|\d{{2}}-\d{{3}})(?![\w.,-]\d|[\w-]))")
        self.shape = regex.compile(r"(?<![\w-])(?P<n>[A-Z]{1,2}\d[A-Z\d]?[ \t]\d[A-Z]{2}|[A-Z]\d[A-Z][ \t-]\d[A-Z]\d)(?![\w-])")

    def analyze(self, text, entities, nlp_artifacts=None):
        out = []
        for pat, sc in ((self.label, 0.7), (self.state, 0.6), (self.place, 0.55), (self.shape, 0.5)):
            for m in pat.finditer(text):
                s, e = m.span("n")
                if pat is self.place:
                    first = text[s:e].split()[0]
                    if first in _NOT_PLACES or first in _NOT_NAMES:
                        continue
                out.append(RecognizerResult("LOCATION", s, e, sc))
        return out

