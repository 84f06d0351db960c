"""E-mail addresses written out or obfuscated: "name at gmail dot com", "name@gmail dot com",
"name [at] mail.kz", "name(at)mail(dot)kz", "name@mailcom", "jana dot litt at gmail dot com" (a dot spoken
inside the name too). Presidio's EmailRecognizer covers the plain form."""
from __future__ import annotations

import regex
from presidio_analyzer import EntityRecognizer, RecognizerResult

# common top-level domains for the spoken " at " form (where any word could follow a literal dot)
_TLDS = (r"com|net|org|edu|gov|info|biz|io|me|co|kz|ru|ua|by|uz|kg|de|uk|fr|it|es|pl|nl|tr|us|ca|au|"
         r"ch|at|se|no|fi|dk|cz|eu|in|cn|jp|br|mx|ar|ae")
_LOCAL = r"[A-Za-z0-9][\w.+\-]*"
_LABEL = r"[A-Za-z0-9][A-Za-z0-9\-]*"
_BRACKET_AT = r"[ \t]*[\[({<][ \t]*(?:at|@)[ \t]*[\])}>][ \t]*"
_BRACKET_DOT = r"[ \t]*[\[({<][ \t]*(?:dot|\.)[ \t]*[\])}>][ \t]*"
_SPOKEN_DOT = r"[ \t]+dot[ \t]+"
_AT = rf"(?:[ \t]*@[ \t]*|{_BRACKET_AT}|[ \t]+at[ \t]+)"
_DOT = rf"(?:\.|{_BRACKET_DOT}|{_SPOKEN_DOT})"
# "jana dot litt": up to two spoken or bracketed dots inside the local part
_LOCAL_SPOKEN = rf"{_LOCAL}(?:(?:{_BRACKET_DOT}|{_SPOKEN_DOT}){_LOCAL}){{0,2}}"
# one address: the local part, an "at", domain labels joined by a "dot"; the last label is a TLD. A
# literal "." with the spoken " at " needs a known TLD ("I am at work.Thanks" is not an address).
_PATTERN = regex.compile(
    rf"(?<![\w.+\-@])(?P<v>{_LOCAL_SPOKEN}(?:{_AT})(?:{_LABEL}(?:{_DOT})){{1,4}}(?:[A-Za-z]{{2,24}}))(?![\w@])",
    regex.IGNORECASE)
# "johndoe@yahoocom": an "@" between a local part and a host with the dot left out
_NO_DOT = regex.compile(r"(?<![\w.+\-@])[A-Za-z0-9][\w.+\-]*@[A-Za-z0-9][A-Za-z0-9\-]+(?![\w@.\-])")
_HAS_AT = regex.compile(rf"@|{_BRACKET_AT}", regex.IGNORECASE)
_KNOWN_TLD = regex.compile(rf"(?:{_TLDS})$", regex.IGNORECASE)


class SpokenEmailRecognizer(EntityRecognizer):
    """E-mail addresses with the "@" or the dots written as words or in brackets. With a spoken " at "
    the address must end in a common top-level domain ("look at this dot thing" is not one)."""

    def __init__(self):
        super().__init__(supported_entities=["EMAIL_ADDRESS"], name="SpokenEmailRecognizer")

    def load(self) -> None:
        pass

    def analyze(self, text, entities, nlp_artifacts=None):
        out = []
        for m in _PATTERN.finditer(text, overlapped=True):
            v = m.group("v")
            if not _HAS_AT.search(v) and not _KNOWN_TLD.search(v):
                continue
            out.append(RecognizerResult("EMAIL_ADDRESS", m.start("v"), m.end("v"), 0.9))
        for m in _NO_DOT.finditer(text):
            out.append(RecognizerResult("EMAIL_ADDRESS", m.start(), m.end(), 0.8))
        return out
