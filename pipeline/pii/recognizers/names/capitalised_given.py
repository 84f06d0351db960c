"""A Capitalised known given name inside a sentence ("Why is Rebecca so impulsive?", "my kid Florence"),
with a Capitalised word right after it joined as the surname.

Known: Faker's given names of many locales (``names.lexicon``), less stop words, months, days and the
words that never start a name (``common.NOT_NAMES``). Not at the start of a sentence or a line, where any
word is Capitalised. Score 0.5: a known place (the gazetteer, 0.9) wins, and the masker drops a word that
is common in the user's data or a label word.
"""
from __future__ import annotations

import regex
from presidio_analyzer import EntityRecognizer, RecognizerResult

from pipeline.pii.recognizers.common import NOT_NAMES, STOP
from pipeline.pii.recognizers.names.lexicon import given_names

_CALENDAR = frozenset("""january february march april may june july august september october november december
monday tuesday wednesday thursday friday saturday sunday""".split())
_WORD = regex.compile(r"(?<![\w'’@.-])(?P<w>\p{Lu}\p{Ll}{2,})(?:[ \t]+(?P<s>\p{Lu}\p{Ll}+(?:-\p{Lu}\p{Ll}+)?))?(?![\w@])")
_SENTENCE_START = regex.compile(r"(?:^|[.!?:;\n\"“(]|[.!?][\"”)])[ \t]*$")


class CapitalisedGivenNameRecognizer(EntityRecognizer):
    """A Capitalised known given name that does not start a sentence (module docstring)."""

    def __init__(self):
        super().__init__(supported_entities=["PERSON"], name="CapitalisedGivenNameRecognizer")

    def load(self) -> None:
        self.first = given_names() - STOP - _CALENDAR - {w.lower() for w in NOT_NAMES}

    def analyze(self, text, entities, nlp_artifacts=None):
        out = []
        for m in _WORD.finditer(text):
            if m.group("w").lower() not in self.first or _SENTENCE_START.search(text[max(0, m.start() - 8):m.start()]):
                continue
            sur = m.group("s")
            end = m.end("s") if sur and sur not in NOT_NAMES and sur.lower() not in STOP else m.end("w")
            out.append(RecognizerResult("PERSON", m.start(), end, 0.5))
        return out
