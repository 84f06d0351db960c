"""Payment card numbers: 12-19 digits in any grouping, accepted only if the Luhn check passes."""
from __future__ import annotations

from typing import Optional

from presidio_analyzer import EntityRecognizer, RecognizerResult

from pipeline.pii.checksums import CARD_MAX, CARD_MIN, card_ok
from pipeline.pii.recognizers.generic.digit_groups import group_windows


class CardRecognizer(EntityRecognizer):
    """Payment cards: every run of whole digit groups with 12-19 digits whose Luhn check passes (wider
    than Presidio's CreditCardRecognizer, which misses issuer prefixes 0/2 and 12-digit Maestro, and
    which takes one greedy match per position)."""

    CONTEXT = ["card", "карт", "visa", "mastercard", "credit", "debit"]

    def __init__(self):
        super().__init__(supported_entities=["CREDIT_CARD"], name="CardLuhnRecognizer")

    def load(self) -> None:
        pass

    def validate_result(self, pattern_text: str) -> Optional[bool]:
        digits = "".join(c for c in pattern_text if c.isdigit())
        return card_ok(digits)

    def analyze(self, text, entities, nlp_artifacts=None):
        # a number written after "+" is a phone ("+447700677662" can pass Luhn): the phone recognizer has it
        return [RecognizerResult("CREDIT_CARD", s, e, 1.0)
                for s, e, digits in group_windows(text, CARD_MIN, CARD_MAX)
                if card_ok(digits) and not text[max(0, s - 2):s].strip().endswith("+")]
