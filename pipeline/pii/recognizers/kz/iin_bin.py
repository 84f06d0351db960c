"""Kazakh IIN (person) and BIN (company): 12 digits with a valid control digit, in any grouping."""
from __future__ import annotations

from typing import Callable

from presidio_analyzer import EntityRecognizer, RecognizerResult

from pipeline.pii.checksums import kz_bin_ok, kz_iin_ok
from pipeline.pii.recognizers.generic.digit_groups import group_windows


class KzIinBinRecognizer(EntityRecognizer):
    """12-digit Kazakh IIN (birth date, century digit, control digit) or BIN (registration month, entity
    kind, control digit); every run of whole digit groups with 12 digits is tested."""

    CONTEXT = ["iin", "иин", "bin", "бин", "жсн", "бсн", "individual identification", "tax"]

    def __init__(self, entity: str):
        self.entity = entity
        self._check: Callable[[str], bool] = kz_iin_ok if entity == "KZ_IIN" else kz_bin_ok
        super().__init__(supported_entities=[entity], name=f"{entity}Recognizer")

    def load(self) -> None:
        pass

    def validate_result(self, pattern_text: str) -> bool:
        return self._check("".join(c for c in pattern_text if c.isdigit()))

    def analyze(self, text, entities, nlp_artifacts=None):
        return [RecognizerResult(self.entity, s, e, 1.0)
                for s, e, digits in group_windows(text, 12, 12) if self._check(digits)]
