"""The not-a-name vocabulary, learnt from the user's own data: words common across many tickets of the
landing data, and the words of the taxonomy's label names and descriptions.

Such a word is never a person on its own (a lower-case "alarm" that the NER model reads as a name in a
Capitalised copy), and a mask made only of label words would remove the very signal the model is
trained on. This replaces a fixed list built from one data set (Banking77): on another domain
("set an alarm", "check my calendar") that list knew none of the words.

Recurring words (in ``RECURRING_MIN_TICKETS`` texts or more) are never the unknown word a name from a
lower-case text may rest on (``MaskingSpec.lower_case_rare_names``): "wemo", "yeap", "playlist" recur;
"einstein" or a customer's surname rarely do.
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Any, Iterable

RECURRING_MIN_TICKETS = 3
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")


def words(text: str) -> list[str]:
    """Lower-case words of a text (letters only; "can't" stays one word)."""
    return [w.lower() for w in _WORD.findall(text)]


def content_words(ws) -> list[str]:
    """The words that carry meaning: three letters or more, not an English stop word."""
    from spacy.lang.en.stop_words import STOP_WORDS

    return [w for w in ws if len(w) > 2 and w not in STOP_WORDS]


def word_counts(texts: Iterable[str]) -> tuple[Counter[str], int]:
    """(number of texts each word occurs in, number of texts)."""
    df: Counter[str] = Counter()
    n = 0
    for t in texts:
        n += 1
        df.update(set(words(t or "")))
    return df, n


def common_words(texts: Iterable[str], min_share: float, min_tickets: int,
                 counts: tuple[Counter[str], int] | None = None) -> frozenset[str]:
    """Words that occur in at least ``max(min_tickets, min_share * n)`` of the ``n`` texts (``counts``:
    the ``word_counts`` of the texts, when already known)."""
    df, n = counts if counts is not None else word_counts(texts)
    need = max(min_tickets, min_share * n)
    return frozenset(w for w, c in df.items() if c >= need)


def label_words(taxonomy: Any) -> frozenset[str]:
    """Words of the label names ("card_arrival" -> card, arrival) and of their descriptions."""
    if taxonomy is None:
        return frozenset()
    from pipeline.model.prompts import label_items

    out: set[str] = set()
    for name, desc in label_items(taxonomy):
        out.update(words(re.sub(r"[_\-./]", " ", str(name))))
        out.update(words(str(desc or "")))
    return frozenset(content_words(out))
