"""Lower-case names with an unmistakable surname or patronymic ending."""
from __future__ import annotations

import regex
from presidio_analyzer import EntityRecognizer, RecognizerResult

from pipeline.pii.recognizers.common import STOP as _STOP


class LowerSurnameRecognizer(EntityRecognizer):
    """Lower-case names with an unmistakable Russian/Kazakh/Georgian surname or patronymic ending
    ("olga krylova", "eric g. samoylova"), with the first name and initial before it."""

    # "-ov"/"-ev" (Iskakov, Ivanov, Grigoriev) too: after a stem of at least 3 letters hardly any English
    # word ends so; the few that do are listed in _NOT
    _ENDINGS = (r"ova|eva|yova|enko|ovich|evich|ovna|evna|skaya|shvili|bekov|bekova|bayev|bayeva|baev|baeva|kyzy|"
                r"ov|ev")
    _NOT = {"supernova", "casanova", "geneva", "jehova", "bossanova", "villanova", "improv", "molotov",
            "kishinev", "chekhov", "gorbachev", "khrushchev", "prokofiev", "rachmaninov", "chernobyl"}

    def __init__(self):
        super().__init__(supported_entities=["PERSON"], name="LowerSurnameRecognizer")

    def load(self) -> None:
        self.pattern = regex.compile(
            rf"(?:(?P<first>\b[a-zß-ÿ][a-zß-ÿ'-]{{1,}})[ \t]+(?:[a-z]\.?[ \t]+)?)?(?P<last>\b[a-zß-ÿ]{{3,}}(?:{self._ENDINGS}))\b")

    def analyze(self, text, entities, nlp_artifacts=None):
        out = []
        for m in self.pattern.finditer(text):
            if m.group("last") in self._NOT:
                continue
            s = m.start("last")
            if m.group("first") and m.group("first") not in _STOP:
                s = m.start("first")
            out.append(RecognizerResult("PERSON", s, m.end("last"), 0.6))
        return out

