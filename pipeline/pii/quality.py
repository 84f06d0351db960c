"""Figures on what masking costs the data, reported by ``pii-eval`` and the ``masked_tickets`` metadata.

- ``label_word_share``: the share of masked name spans (PERSON, LOCATION, NRP, ORGANIZATION) holding a word
  of the row's own label name or description: such a mask removes the signal the model is trained on
  (target <= 1%);
- ``inconsistency``: near-identical tickets (``pipeline.pii.consistency``: the same template, or
  near-duplicates by the dedup rules) should be masked the same way; the share of such pairs where a phrase
  masked in one stands in clear in the other is reported, before and after harmonising. Inconsistent
  masking turns copies into near-duplicates that can straddle splits;
- ``false_mask_share``: the share of texts with no personal data that get a placeholder anyway.
"""
from __future__ import annotations

import re
from typing import Any, Sequence

from pipeline.pii.vocabulary import content_words, words

NAME_TYPES = ("PERSON", "LOCATION", "NRP", "ORGANIZATION")


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


def inconsistency(raw: Sequence[str], masked: Sequence[str], dedup_spec: Any = None) -> dict:
    """``{"pairs", "inconsistent", "share", "unaligned", "after_harmonisation"}`` over near-identical ticket
    pairs (``pipeline.pii.consistency``: same template, or verified near-duplicates by the dedup rules): a
    pair is inconsistent when a phrase masked in one ticket stands in clear in the other.
    ``after_harmonisation`` is the same figure once ``consistency.harmonise`` has run (what the
    ``masked_tickets`` step stores)."""
    from pipeline.pii.consistency import harmonise

    h = harmonise(list(raw), list(masked), dedup_spec)
    s = h.summary()
    return {**h.before, "after_harmonisation": {"inconsistent": s["inconsistent_after"], "share": s["share_after"],
                                                "masks_added": s["masks_added"]}}


def false_mask_share(spans: Sequence[Sequence[tuple[str, int, int]]], clean: Sequence[bool]) -> dict:
    """``{"clean_texts", "with_placeholder", "share"}``: placeholders in texts known to hold no personal data."""
    n = sum(clean)
    hit = sum(1 for found, c in zip(spans, clean) if c and found)
    return {"clean_texts": n, "with_placeholder": hit, "share": round(hit / n, 4) if n else 0.0}
