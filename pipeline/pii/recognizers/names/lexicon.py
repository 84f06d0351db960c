"""Given names and surnames from Faker's person providers (MIT, installed data, no download), lower-cased.

Used where case gives no hint: a lower-case word that is a known given name is a name candidate, and a
"name" the NER model finds in the Capitalised copy of a lower-case text must hold one known name word.

In lower-case English text a name of another locale that is also an English word ("tone", "said",
"love", "glass", "cook") is read as the word: ``lower_text_names`` leaves out the lower-case entries of
Webster's Second dictionary (the ``english-words`` package, MIT; proper nouns are capitalised there), except
the given names of English-speaking locales ("john", "taylor").
"""
from __future__ import annotations

import functools
import importlib

# Latin-script locales whose names reach Kazakh, European and English-speaking support desks, and Russian
_LOCALES = ["en_US", "en_GB", "en_IE", "en_IN", "en_NZ", "de_DE", "fr_FR", "es_ES", "es_MX", "it_IT", "pl_PL",
            "nl_NL", "pt_BR", "pt_PT", "sv_SE", "da_DK", "no_NO", "fi_FI", "cs_CZ", "hu_HU", "ro_RO", "tr_TR",
            "ru_RU", "uk_UA"]


_ENGLISH_LOCALES = ["en_US", "en_GB", "en_IE", "en_IN", "en_NZ"]


def _provider(locale: str):
    return importlib.import_module(f"faker.providers.person.{locale}").Provider


def _names(attr_names: tuple[str, ...], locales=tuple(_LOCALES)) -> frozenset[str]:
    out: set[str] = set()
    for loc in locales:
        try:
            p = _provider(loc)
        except ImportError:
            continue
        for attr in attr_names:
            for n in getattr(p, attr, ()) or ():
                for part in str(n).replace("-", " ").split():
                    if len(part) >= 3 and part.isalpha():
                        out.add(part.lower())
    return frozenset(out)


@functools.lru_cache(maxsize=1)
def given_names() -> frozenset[str]:
    return _names(("first_names", "first_names_male", "first_names_female"))


@functools.lru_cache(maxsize=1)
def surnames() -> frozenset[str]:
    return _names(("last_names",))


@functools.lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """Lower-case words of English (the lower-case entries of Webster's Second, letters only)."""
    from english_words import get_english_words_set

    return frozenset(w for w in get_english_words_set(["web2"], lower=False, alpha=True) if w.islower())


@functools.lru_cache(maxsize=1)
def english_given_names() -> frozenset[str]:
    """Given names of the English-speaking locales."""
    return _names(("first_names", "first_names_male", "first_names_female"), tuple(_ENGLISH_LOCALES))


@functools.lru_cache(maxsize=1)
def lower_text_names() -> tuple[frozenset[str], frozenset[str]]:
    """(given names, given names and surnames) that read as a name in lower-case English text: the
    lexicon less English words, except the given names of English-speaking locales."""
    words = english_words() - english_given_names()
    return given_names() - words, (given_names() | surnames()) - words


def is_english_word(w: str) -> bool:
    """``w`` (lower case) or its stem without a plural, past or -ing ending is an English word: Webster's
    Second lists base forms only ("calls", "alerts", "followers", "louder"), and American spellings
    ("colour")."""
    words = english_words()
    if w in words:
        return True
    stems = []
    if w.endswith("ies"):
        stems.append(w[:-3] + "y")
    if w.endswith("es"):
        stems.append(w[:-2])
    if w.endswith("s"):
        stems.append(w[:-1])
    if w.endswith("ed"):
        stems += [w[:-2], w[:-1]]
    if w.endswith("ing"):
        stems += [w[:-3], w[:-3] + "e"]
    if w.endswith(("er", "est")):  # softer, louder, brighter, nicest
        base = w[:-2] if w.endswith("er") else w[:-3]
        stems += [base, base + "e"] + ([base[:-1]] if len(base) > 2 and base[-1] == base[-2] else [])
    if "our" in w:  # British spellings: colour, favourite
        stems.append(w.replace("our", "or"))
    return any(len(x) > 2 and x in words for x in stems)
