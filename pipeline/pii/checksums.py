"""Check digits of the structured identifiers the masker recognises: the one implementation that the
recognizers and the sample generator share.

- Luhn (ISO/IEC 7812) for payment cards;
- ISO 13616 IBAN: ISO 7064 mod 97-10 over the rearranged string, and the registry length per country;
- the Kazakh IIN/BIN control digit (two weighted passes mod 11), with the IIN birth date / century digit
  and the BIN registration month / entity-kind digit.

The leak guard (``pipeline.pii.leak_guard``) keeps its own, independently written checks on purpose: a bug
here must not blind both the masker and the guard.
"""
from __future__ import annotations

import re
from datetime import date

# ISO 13616 registry: country code -> IBAN length (SWIFT IBAN Registry, release 99, plus the experimental
# and partner countries that publish IBANs).
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21,
    "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28,
    "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
    "RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25,
    "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
    # countries that use IBANs outside the registry
    "AO": 25, "BF": 28, "BJ": 28, "CF": 27, "CG": 27, "CI": 28, "CM": 27, "CV": 25, "DZ": 26, "GA": 27,
    "GQ": 27, "GW": 25, "IR": 26, "KM": 27, "MA": 28, "MG": 27, "ML": 28, "MZ": 25, "NE": 28, "SN": 28,
    "TD": 27, "TG": 28,
}
IBAN_MIN, IBAN_MAX = 15, 34
CARD_MIN, CARD_MAX = 12, 19

_IBAN_SHAPE = re.compile(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}")


def luhn_ok(digits: str) -> bool:
    """Luhn check of a string of digits (no separators)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def luhn_complete(partial: str) -> str:
    """``partial`` with the Luhn check digit appended."""
    for check in "0123456789":
        if luhn_ok(partial + check):
            return partial + check
    raise AssertionError("unreachable")


def card_ok(digits: str) -> bool:
    """A payment card number: 12-19 digits, Luhn, not one repeated digit."""
    return CARD_MIN <= len(digits) <= CARD_MAX and digits.isdigit() and luhn_ok(digits) and len(set(digits)) > 1


def _mod97(s: str) -> int:
    moved = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97


def iban_ok(value: str, registry_length: bool = False) -> bool:
    """ISO 7064 mod 97-10 check of an IBAN (spaces and dashes ignored, any case). With ``registry_length``
    the length must also be the registry length of its country."""
    s = re.sub(r"[\s-]", "", value).upper()
    if not _IBAN_SHAPE.fullmatch(s):
        return False
    if registry_length and IBAN_LENGTHS.get(s[:2]) != len(s):
        return False
    return _mod97(s) == 1


def iban_with_check(country: str, bban: str) -> str:
    """A valid IBAN for ``country`` and the basic bank account number ``bban``."""
    check = 98 - _mod97(f"{country}00{bban}".upper())
    return f"{country}{check:02d}{bban}"


def kz_control_digit(first11: str) -> int | None:
    """The control digit of a Kazakh IIN/BIN (weights 1..11, then 3..11,1,2), None when undefined."""
    d = [int(c) for c in first11]
    s = sum(d[i] * (i + 1) for i in range(11)) % 11
    if s == 10:
        w2 = [3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2]
        s = sum(d[i] * w2[i] for i in range(11)) % 11
        if s == 10:
            return None
    return s


def kz_control_ok(digits: str) -> bool:
    if len(digits) != 12 or not digits.isdigit():
        return False
    c = kz_control_digit(digits[:11])
    return c is not None and c == int(digits[11])


_CENTURY = {"1": 1800, "2": 1800, "3": 1900, "4": 1900, "5": 2000, "6": 2000, "0": 1900}


def kz_iin_ok(digits: str) -> bool:
    """IIN: YYMMDD birth date, 7th digit century/sex (1-6; 0 for some foreigners), control digit."""
    if not kz_control_ok(digits) or digits[6] not in _CENTURY:
        return False
    try:
        date(_CENTURY[digits[6]] + int(digits[:2]), int(digits[2:4]), int(digits[4:6]))
    except ValueError:
        return False
    return True


def kz_bin_ok(digits: str) -> bool:
    """BIN: YYMM of registration, 5th digit entity kind (4 resident, 5 non-resident, 6 sole trader), control."""
    return kz_control_ok(digits) and 1 <= int(digits[2:4]) <= 12 and digits[4] in "456"
