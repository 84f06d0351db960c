"""Phone numbers in Kazakh and international writings."""
from __future__ import annotations

import re

import regex
from presidio_analyzer import Pattern, PatternRecognizer

from pipeline.pii.recognizers.common import US_STATE_CODES as _US_STATE_CODES, has_context

KZ_PHONE = (r"(?<![\w+])(?:\+\s?7|8|7)[\s-]?\(?7\d{2}\)?[\s-]?\d{3}[\s-]?\d{2}[\s-]?\d{2}(?![\w])"
            r"|(?<![\w+])(?:\+\s?7|8)[\s-]?\(?7\d{3}\)?[\s-]?\d{2}[\s-]?\d{2}[\s-]?\d{2}(?![\w])")

# Generic international writings: +cc, (0), (area), 2-6 groups of digits separated by space, dot or dash,
# an optional extension. The validator keeps 7-15 digits and drops dates and decimal amounts.
GENERIC_PHONE = (r"(?<![\w+.\-/])(?:\+\d{1,3}[ \t.-]?|00\d{1,3}[ \t.-]?)?(?:\(0\)[ \t]?)?(?:\(\d{1,4}\)[ \t]?)?"
                 r"\d{1,5}(?:(?:[ \t]?[.-][ \t]?|[ \t])\d{1,8}){1,5}(?:[ \t]?(?:x|ext\.?)[ \t]?\d{1,5})?(?![\w]|[.-]\d)"
                 r"|(?<![\w+.\-/])(?:\+\d{1,3}[ \t]?)?(?:\(\d{1,4}\)[ \t]?)\d{2,5}(?:[ \t.-]\d{2,8})*(?:[ \t]?(?:x|ext\.?)[ \t]?\d{1,5})?(?![\w])"
                 r"|(?<![\w.\-/])\+?\d{9,15}(?:\s?x\s?\d{1,5})?(?![\w])")
# International numbers after "+" or "00": the country code, then digit groups in any grouping, brackets
# included. Greedy on purpose: groups beyond 15 digits are taken off again in ``analyze`` (a year or an
# amount after the number must not make the whole candidate fail).
INTL_PHONE = r"(?<![\w+])(?:\+[ \t]?|00)\d{1,4}(?:(?:[ \t]?[.-][ \t]?|[ \t])?\(?\d{1,12}\)?){1,7}"
_INTL_GROUP = re.compile(r"\(?\d+\)?")
_DATE_LIKE = re.compile(r"^(?:\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4})(?:\s+\d{1,2})?$")
_STREET_AFTER = regex.compile(r"[ \t]+(?:[^\W\d_][\w'’.-]*[ \t]+){0,3}?(?i:street|st\.?|road|rd\.?|avenue|ave\.?|"
                              r"lane|drive|way|boulevard|blvd|court|place|suite|apt\.?|rue|via|ul\.)(?![\w])")
_CAPWORD_AFTER = regex.compile(r"[ \t]+[A-ZÀ-ÖØ-Þ][a-zß-ÿ]")
PHONE_CONTEXT = ("phone", "call", "mobile", "tel", "fax", "office", "desk", "number", "messages", "sms",
                 "text me", "answering", "registered", "contact", "reach", "whatsapp", "тел", "моб", "номер",
                 "звон", "cell", "landline")


class PhonePatternRecognizer(PatternRecognizer):
    """Phone numbers in Kazakh and international writings (hand-written patterns: the phonenumbers-based
    Presidio PhoneRecognizer needs a region list, misses most of these forms and is several times slower).

    Score: 0.9 for Kazakh numbers, 0.6 for 9+ digits, 0.3 for 7-8 digits (raised above threshold by a
    phone context word nearby).
    """

    def __init__(self):
        super().__init__(
            supported_entity="PHONE_NUMBER", name="PhonePatternRecognizer",
            patterns=[Pattern("kz phone", KZ_PHONE, 0.9), Pattern("phone", GENERIC_PHONE, 0.3),
                      Pattern("international phone", INTL_PHONE, 0.91)],
            global_regex_flags=regex.IGNORECASE,
        )

    def analyze(self, text, entities, nlp_artifacts=None, regex_flags=None):
        out = []
        for r in super().analyze(text, entities, nlp_artifacts, regex_flags):
            value = text[r.start:r.end]
            if r.score == 0.91:  # "+cc ..." / "00cc ...": keep the longest run of whole groups that fits E.164
                limit = 17 if value.startswith("00") else 15
                groups = list(_INTL_GROUP.finditer(value))
                while len(groups) > 1 and sum(len(re.sub(r"\D", "", g.group())) for g in groups) > limit:
                    groups.pop()
                r.end = r.start + groups[-1].end()
                value = text[r.start:r.end]
                if value.endswith(")") and "(" not in value[value.rfind(" ") + 1:]:
                    r.end -= 1
                    value = value[:-1]
                if not 8 <= len(re.sub(r"\D", "", value)) <= limit:
                    continue
                r.score = 0.9
                out.append(r)
                continue
            digits = re.sub(r"\D", "", re.split(r"(?i)\s?(?:x|ext)", value)[0])
            if not 7 <= len(digits) <= 15 or _DATE_LIKE.match(value) or re.fullmatch(r"\d+\.\d{1,2}", value):
                continue
            if r.score < 0.9 and regex.fullmatch(r"\d{5}-\d{4}", value) and \
                    regex.search(rf"\b(?:{_US_STATE_CODES})\.?,?[ \t]+$", text[max(0, r.start - 6):r.start]):
                continue  # "TX 78701-1234": a ZIP+4 code, not a phone
            if r.score < 0.9:
                ctx = has_context(text, r.start, r.end, PHONE_CONTEXT, before=60)
                groups = re.findall(r"\d+", value)
                # "17151 2450 Crown St": a postcode and a house number before a street, not a phone
                if len(groups) == 2 and not value.startswith(("+", "(")) and (
                        _STREET_AFTER.match(text, r.end) or (not ctx and _CAPWORD_AFTER.match(text, r.end))):
                    continue
                r.score = 0.6 if len(digits) >= 9 else 0.3
                if ctx:
                    r.score += 0.35
            out.append(r)
        return out


