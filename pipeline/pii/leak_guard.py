"""Independent second pass over masked text: reports structured PII that survived masking.

Deliberately shares no code with the masker (``pipeline.pii.masker`` / ``pipeline.pii.recognizers``): its own
regexes and its own checksum functions, so a bug in one is not repeated in the other. It is used as a
blocking check after masking (``mask_file`` stops on any finding).

``scan_residual(texts)`` returns, per text, the sorted list of PII *types* still present. It never
returns, logs or raises with the values themselves. Placeholders (``<TYPE_n>``, ``<TYPE_n|token>``) are
removed before scanning.

Covered: e-mail addresses; phone numbers (international with +, Kazakh +7/8/7 7xx in any grouping,
North-American 3-3-4, other groupings of 9+ digits); payment cards (12-19 digits, Luhn); IBANs (mod 97);
Kazakh IIN/BIN (control digit, date or BIN kind); IPv4 and full IPv6; US SSN (3-2-4 with dashes).
"""
from __future__ import annotations

import re
from datetime import date
from typing import Sequence

_PLACEHOLDER = re.compile(r"<[A-Z][A-Z_]*_\d+(?:\|[0-9a-f]+)?>")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}")
_IPV4 = re.compile(r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\d.]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}(?![\w:])"
                   r"|(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){1,6}(?::[0-9A-Fa-f]{1,4}){1,6}(?![\w:])")
_SSN = re.compile(r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])")
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?:[ ]?[A-Za-z0-9]){11,30}(?![A-Za-z0-9])")
_DIGIT_RUN = re.compile(r"(?<![\w])\d(?:[ -]?\d){11,18}(?![\w])")
_PHONES = [
    re.compile(r"(?<![\w+])\+\s?\d[\d\s().-]{6,20}\d(?![\w])"),  # any international writing
    re.compile(r"(?<![\w+])[78][\s-]?\(?7\d{2,3}\)?[\s-]?\d{2,3}[\s-]?\d{2}[\s-]?\d{2}(?![\w])"),  # KZ 8 7xx / 7 7xx
    re.compile(r"(?<![\w])\(?\d{3}\)?[\s.-]?\d{3}[\s.-]\d{4}(?![\w])"),  # 3-3-4
    re.compile(r"(?<![\w.-])\d{2,5}(?:[\s.-]\d{2,5}){2,4}(?![\w]|[.-]\d)"),  # other groupings, 9+ digits
    re.compile(r"(?<![\w])0\d{9,10}(?![\w])"),  # national contiguous
]
_DATE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{4}")


def _luhn(d: str) -> bool:
    s = 0
    for i, c in enumerate(d[::-1]):
        n = int(c) * (2 if i % 2 else 1)
        s += n - 9 if n > 9 else n
    return s % 10 == 0


def _mod97(v: str) -> bool:
    v = v.replace(" ", "").upper()
    num = "".join(str(ord(c) - 55) if c.isalpha() else c for c in v[4:] + v[:4])
    return int(num) % 97 == 1


def _kz_check(d: str) -> bool:
    n = [int(c) for c in d]
    r = sum((i + 1) * n[i] for i in range(11)) % 11
    if r == 10:
        r = sum(((i + 2) % 11 + 1) * n[i] for i in range(11)) % 11  # weights 3..11, 1, 2
        if r == 10:
            return False
    return r == n[11]


def _kz_kind(d: str) -> str | None:
    if len(d) != 12 or not _kz_check(d):
        return None
    if d[4] in "456" and 1 <= int(d[2:4]) <= 12:
        return "KZ_BIN"
    if d[6] in "0123456":
        base = {"1": 1800, "2": 1800, "3": 1900, "4": 1900, "5": 2000, "6": 2000, "0": 1900}[d[6]]
        try:
            date(base + int(d[:2]), int(d[2:4]), int(d[4:6]))
            return "KZ_IIN"
        except ValueError:
            return None
    return None


def _scan(text: str) -> set[str]:
    text = _PLACEHOLDER.sub(" ", text)
    found: set[str] = set()
    if "@" in text and _EMAIL.search(text):
        found.add("EMAIL_ADDRESS")
    if not any(c.isdigit() for c in text):
        return found
    if _IPV4.search(text) or (":" in text and _IPV6.search(text)):
        found.add("IP_ADDRESS")
    if _SSN.search(text):
        found.add("US_SSN")
    for m in _IBAN.finditer(text):
        if _mod97(m.group()):
            found.add("IBAN_CODE")
    for m in _DIGIT_RUN.finditer(text):
        d = re.sub(r"\D", "", m.group())
        kind = _kz_kind(d) if len(d) == 12 else None
        if kind:
            found.add(kind)
        elif 12 <= len(d) <= 19 and _luhn(d) and len(set(d)) > 1:
            found.add("CREDIT_CARD")
    for pat in _PHONES:
        for m in pat.finditer(text):
            v = m.group()
            d = re.sub(r"\D", "", v)
            if not 9 <= len(d) <= 15 or _DATE.search(v) or _SSN.fullmatch(v.strip()):
                continue
            if len(d) >= 12 and not v.lstrip().startswith("+") and (_luhn(d) or _kz_kind(d)):
                continue  # a card or an IIN, reported above
            found.add("PHONE_NUMBER")
            break
    return found


def scan_residual(texts: Sequence[str]) -> list[list[str]]:
    """Per text, the sorted structured PII types still present (never the values)."""
    return [sorted(_scan(t or "")) for t in texts]
