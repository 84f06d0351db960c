"""Figures on what masking costs the data, reported by ``pii-eval`` and the ``masked_tickets`` metadata.

- ``label_word_share``: the share of masked name spans (PERSON, LOCATION, NRP, ORGANIZATION) holding a word
  of the row's own label name or description: such a mask removes the signal the model is trained on
  (target <= 1%);
- ``inconsistency``: near-identical tickets (equal once lower-cased, with digits as 0 and whitespace
  collapsed) should be masked the same way; the share of such pairs whose masked texts differ (beyond the
  placeholder numbers) is reported. Inconsistent masking turns copies into near-duplicates that can
  straddle splits;
- ``false_mask_share``: the share of texts with no personal data that get a placeholder anyway.
"""
from __future__ import annotations

import re
from collections import defaultdict
from typing import Any, Sequence

from pipeline.pii.vocabulary import content_words, words

NAME_TYPES = ("PERSON", "LOCATION", "NRP", "ORGANIZATION")
_PLACEHOLDER = re.compile(r"<([A-Z_]+?)_\d+(?:\|[0-9a-f]{8})?>")


def _label_words(label: str, desc: str) -> set[str]:
    return set(content_words(words(re.sub(r"[_\-./]", " ", label)) + words(desc)))


def label_word_share(texts: Sequence[str], spans: Sequence[Sequence[tuple[str, int, int]]], labels: Sequence[Any],
                     taxonomy: Any = None) -> dict:
    """``{"name_spans", "with_label_word", "share"}`` over the name-type spans of the texts."""
    desc: dict[str, str] = {}
    if taxonomy is not None:
        from pipeline.model.prompts import label_items

        desc = {str(n): str(d or "") for n, d in label_items(taxonomy)}
    total = hit = 0
    for text, found, label in zip(texts, spans, labels):
        own = _label_words(str(label or ""), desc.get(str(label), ""))
        for t, s, e in found:
            if t in NAME_TYPES:
                total += 1
                hit += bool(own & set(words(text[s:e])))
    return {"name_spans": total, "with_label_word": hit, "share": round(hit / total, 4) if total else 0.0}


def _key(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"\d", "0", text.lower())).strip()


def inconsistency(raw: Sequence[str], masked: Sequence[str]) -> dict:
    """``{"pairs", "inconsistent", "share"}`` over pairs of near-identical raw texts."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, t in enumerate(raw):
        if t and t.strip():
            groups[_key(t)].append(i)
    pairs = bad = 0
    for idx in groups.values():
        if len(idx) < 2:
            continue
        forms = [_key(_PLACEHOLDER.sub(r"<\1>", masked[i])) for i in idx]
        for a in range(len(idx)):
            for b in range(a + 1, len(idx)):
                pairs += 1
                bad += forms[a] != forms[b]
    return {"pairs": pairs, "inconsistent": bad, "share": round(bad / pairs, 4) if pairs else 0.0}


def false_mask_share(spans: Sequence[Sequence[tuple[str, int, int]]], clean: Sequence[bool]) -> dict:
    """``{"clean_texts", "with_placeholder", "share"}``: placeholders in texts known to hold no personal data."""
    n = sum(clean)
    hit = sum(1 for found, c in zip(spans, clean) if c and found)
    return {"clean_texts": n, "with_placeholder": hit, "share": round(hit / n, 4) if n else 0.0}
