"""IBANs of any country, any case, grouped or not, checked by ISO 7064 mod 97-10."""
from __future__ import annotations

import re
from typing import Optional

from presidio_analyzer import EntityRecognizer, RecognizerResult

from pipeline.pii.checksums import IBAN_LENGTHS, IBAN_MAX, IBAN_MIN, iban_ok

# a country code and check digits, not glued to a Latin letter or digit before them
_START = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}")
_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")


class IbanMod97Recognizer(EntityRecognizer):
    """From every country-code start, the characters are read on over single spaces or dashes; the
    registry length of the country is tried first, then every length from 15 to 34 that ends where a
    word ends. So "KZ78601KZT8741529038 Please" and "KZ95 859E RR0U HFJM U08W has" are found: the
    candidate that runs on into the next word is one of the lengths tried, not the only one."""

    CONTEXT = ["iban", "иик", "account", "счет", "счёт"]

    def __init__(self):
        super().__init__(supported_entities=["IBAN_CODE"], name="IbanMod97Recognizer")

    def load(self) -> None:
        pass

    def validate_result(self, pattern_text: str) -> Optional[bool]:
        return iban_ok(pattern_text)

    @staticmethod
    def candidates(text: str, start: int):
        """(end, compact value, ends at a word end) for each length 15..34 read from ``start``."""
        chars: list[str] = []
        i, n = start, len(text)
        while i < n and len(chars) < IBAN_MAX:
            c = text[i]
            if c in _ALNUM:
                chars.append(c)
                i += 1
                if len(chars) >= IBAN_MIN:
                    yield i, "".join(chars), i >= n or text[i] not in _ALNUM
            elif c in " -" and i + 1 < n and text[i + 1] in _ALNUM and chars:
                i += 1
            else:
                break

    def analyze(self, text, entities, nlp_artifacts=None):
        out = []
        for m in _START.finditer(text):
            want = IBAN_LENGTHS.get(m.group()[:2].upper())
            best = None
            for end, value, word_end in self.candidates(text, m.start()):
                if (len(value) == want or word_end) and iban_ok(value):
                    best = end
                    if len(value) == want:
                        break
            if best is not None:
                out.append(RecognizerResult("IBAN_CODE", m.start(), best, 1.0))
        return out
