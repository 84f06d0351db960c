"""Hypothesis strategies for the adversarial PII tests: valid structured identifiers in hostile contexts.

Identifiers are built from their definitions (registry lengths and mod 97 for IBANs, Luhn for cards, the
IIN/BIN control digit, Kazakh and international phone writings, plain, spoken and bracketed e-mails, IPv4
and IPv6) and dropped into contexts made of words of any length and case (Latin, Cyrillic, accented),
numbers, punctuation glued to the value, tabs, line breaks and other identifiers.
"""
from __future__ import annotations

import string

from hypothesis import strategies as st

from pipeline.pii.checksums import IBAN_LENGTHS, iban_with_check, kz_control_digit, luhn_complete

ALNUM_UP = string.ascii_uppercase + string.digits


@st.composite
def ibans(draw) -> str:
    country = draw(st.sampled_from(sorted(IBAN_LENGTHS)))
    n = IBAN_LENGTHS[country] - 4
    bban = draw(st.text(alphabet=draw(st.sampled_from([string.digits, ALNUM_UP])), min_size=n, max_size=n))
    v = iban_with_check(country, bban)
    form = draw(st.sampled_from(["compact", "grouped", "lower", "grouped-lower", "dashed"]))
    if "grouped" in form or form == "dashed":
        sep = "-" if form == "dashed" else " "
        v = sep.join(v[i:i + 4] for i in range(0, len(v), 4))
    return v.lower() if "lower" in form else v


@st.composite
def cards(draw) -> str:
    n = draw(st.integers(12, 19))
    body = draw(st.text(alphabet=string.digits, min_size=n - 1, max_size=n - 1).filter(lambda s: len(set(s)) > 1))
    num = luhn_complete(body)
    if len(set(num)) == 1:
        num = luhn_complete("4" + body[1:])
    form = draw(st.sampled_from(["compact", "space4", "dash4", "amex"]))
    if form in ("space4", "dash4"):
        sep = " " if form == "space4" else "-"
        return sep.join(num[i:i + 4] for i in range(0, len(num), 4))
    if form == "amex" and len(num) == 15:
        return f"{num[:4]} {num[4:10]} {num[10:]}"
    return num


@st.composite
def kz_ids(draw) -> str:
    kind = draw(st.sampled_from(["iin", "bin"]))
    while True:
        if kind == "iin":
            yy, mm, dd = draw(st.integers(0, 99)), draw(st.integers(1, 12)), draw(st.integers(1, 28))
            first11 = f"{yy:02d}{mm:02d}{dd:02d}{draw(st.sampled_from('3456'))}{draw(st.integers(0, 9999)):04d}"
        else:
            yy, mm = draw(st.integers(0, 99)), draw(st.integers(1, 12))
            first11 = f"{yy:02d}{mm:02d}{draw(st.sampled_from('456'))}{draw(st.integers(0, 999999)):06d}"
        c = kz_control_digit(first11)
        if c is not None:
            return first11 + str(c)
        kind = "iin"


@st.composite
def phones(draw) -> str:
    d = lambda k: "".join(draw(st.lists(st.sampled_from(string.digits), min_size=k, max_size=k)))  # noqa: E731
    if draw(st.booleans()):  # Kazakh
        op = draw(st.sampled_from(["700", "701", "702", "705", "707", "708", "747", "771", "775", "776", "777", "778"]))
        a, b, c = d(3), d(2), d(2)
        return draw(st.sampled_from([
            f"+7 {op} {a} {b} {c}", f"+7{op}{a}{b}{c}", f"8 {op} {a} {b}{c}", f"8 ({op}) {a}-{b}-{c}",
            f"8{op}{a}{b}{c}", f"+7-{op}-{a}-{b}-{c}", f"+7 ({op}) {a}-{b}-{c}", f"7 {op} {a} {b} {c}",
            f"8-{op}-{a}-{b}-{c}", f"+7 {op} {a}{b}{c}", f"8 7{op[1:]} {a} {b} {c}"]))
    cc = draw(st.sampled_from(["1", "44", "49", "33", "39", "90", "86", "971", "998", "996", "372", "380"]))
    return draw(st.sampled_from([
        f"+{cc} {d(3)} {d(3)} {d(4)}", f"+{cc} ({d(3)}) {d(3)}-{d(4)}", f"+{cc}{d(10)}", f"00{cc} {d(2)} {d(4)} {d(4)}",
        f"+{cc} {d(2)} {d(4)} {d(4)}", f"+{cc}-{d(3)}-{d(3)}-{d(3)}", f"+{cc} {d(9)}"]))


_LOCAL = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=2, max_size=10).filter(lambda s: s[0].isalpha())


@st.composite
def emails(draw) -> str:
    user = draw(_LOCAL)
    if draw(st.booleans()):
        user += draw(st.sampled_from([".", "_", "-"])) + draw(_LOCAL)
    host = draw(st.sampled_from(["gmail", "mail", "yandex", "inbox", "bk", "outlook", "halyk-bank", "kaspi"]))
    tld = draw(st.sampled_from(["com", "kz", "ru", "org", "net"]))
    at, dot = draw(st.sampled_from([("@", "."), (" at ", " dot "), ("@", " dot "), (" [at] ", "."),
                                    ("(at)", "(dot)"), (" AT ", " DOT "), (" [at] ", " [dot] "), (" @ ", "."),
                                    (" at ", ".")]))
    return f"{user}{at}{host}{dot}{tld}"


@st.composite
def ips(draw) -> str:
    if draw(st.booleans()):
        return ".".join(str(draw(st.integers(0, 255))) for _ in range(4))
    groups = [format(draw(st.integers(1, 0xFFFF)), "x") for _ in range(8)]
    if draw(st.booleans()):
        k = draw(st.integers(1, 6))
        return ":".join(groups[:k]) + "::" + ":".join(groups[k + 1:])
    return ":".join(groups)


IDENTIFIERS = {"IBAN_CODE": ibans(), "CREDIT_CARD": cards(), "KZ_ID": kz_ids(), "PHONE_NUMBER": phones(),
               "EMAIL_ADDRESS": emails(), "IP_ADDRESS": ips()}
identifier = st.sampled_from(sorted(IDENTIFIERS)).flatmap(lambda k: IDENTIFIERS[k].map(lambda v: (k, v)))

_LETTERS = string.ascii_letters + "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЭЮЯәғқңөұүһі" + "éüßñçøåł"
word = st.one_of(
    st.text(alphabet=_LETTERS, min_size=1, max_size=14),
    st.sampled_from(["Please", "call", "back", "has", "been", "pending", "IBAN", "card", "счёт", "номер", "тел",
                     "sent", "to", "from", "my", "at", "dot", "and", "KZT", "USD", "Transfer", "failed", "on",
                     "ok", "PLEASE", "Thanks", "Спасибо", "перевод", "na", "i", "x"]),
    st.integers(0, 100000).map(str),
)
space = st.sampled_from([" ", " ", " ", "\t", "\n", "  ", "\r\n", " \n "])
glue_before = st.sampled_from(["", "", "", "(", ":", "№", "#", "\"", "«", "'"])
glue_after = st.sampled_from(["", "", "", ".", ",", ")", ":", ";", "!", "?", "\"", "»", "...", "'"])


@st.composite
def planted_texts(draw) -> tuple[str, list[tuple[str, int, int]]]:
    """A text and the (kind, start, end) of each identifier planted in it (one to three)."""
    parts: list[str] = []
    spans: list[tuple[str, int, int]] = []
    pos = 0

    def put(s: str) -> None:
        nonlocal pos
        parts.append(s)
        pos += len(s)

    for w in draw(st.lists(word, max_size=4)):
        put(w)
        put(draw(space))
    for i in range(draw(st.integers(1, 3))):
        if i:
            put(draw(space))
            for w in draw(st.lists(word, max_size=2)):
                put(w)
                put(draw(space))
        put(draw(glue_before))
        kind, value = draw(identifier)
        spans.append((kind, pos, pos + len(value)))
        put(value)
        put(draw(glue_after))
    for w in draw(st.lists(word, max_size=4)):
        put(draw(space))
        put(w)
    return "".join(parts), spans
