"""Street corners: "the corner of A and B"."""
from __future__ import annotations

from presidio_analyzer import Pattern, PatternRecognizer

from pipeline.pii.recognizers.common import CASE_SENSITIVE


class CornerRecognizer(PatternRecognizer):
    """"the corner of <street> and <street>": the whole phrase is the address."""

    def __init__(self):
        super().__init__(supported_entity="LOCATION", name="CornerRecognizer", patterns=[Pattern(
            "corner", r"(?i:the\s+)?(?i:corner)\s+of\s+[^\n,;!?]{3,60}?\s+and\s+(?:[A-ZÀ-ÖØ-ÞĀ-ſ0-9][\w'’.-]*"
                      r"(?:[ \t]+[A-ZÀ-ÖØ-ÞĀ-ſ0-9][\w'’-]*){0,3})", 0.95)], global_regex_flags=CASE_SENSITIVE)

