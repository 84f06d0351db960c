"""Russian names and places from natasha's NER (slovnet ``news`` model and navec embeddings, shipped inside
the natasha wheel, MIT; no download at run time)."""
from __future__ import annotations

import functools
import re

from presidio_analyzer import EntityRecognizer, RecognizerResult

_CYRILLIC = re.compile(r"[А-Яа-яЁёӘәҒғҚқҢңӨөҰұҮүҺһІі]")
_LABELS = {"PER": "PERSON", "LOC": "LOCATION"}


def has_cyrillic(text: str) -> bool:
    return _CYRILLIC.search(text) is not None


@functools.lru_cache(maxsize=1)
def _models():
    """(segmenter, NER tagger), loaded once per process and shared by every recognizer (read-only use)."""
    from natasha import NewsEmbedding, NewsNERTagger, Segmenter

    return Segmenter(), NewsNERTagger(NewsEmbedding())


class NatashaNerRecognizer(EntityRecognizer):
    """PER and LOC spans of natasha's Russian NER on texts with Cyrillic letters: names and places are found
    without a cue word or a surname ending ("передайте Айгерим", "живу в Караганде"). Organisations are
    left out, as for English (merchants and banks carry the intent). The model loads on first use."""

    def __init__(self):
        super().__init__(supported_entities=["PERSON", "LOCATION"], name="NatashaNerRecognizer")
        self._ner = None

    def load(self) -> None:
        pass

    def _load(self):
        self._segmenter, self._ner = _models()

    def analyze(self, text, entities, nlp_artifacts=None):
        if not has_cyrillic(text):
            return []
        if self._ner is None:
            self._load()
        from natasha import Doc

        doc = Doc(text)
        doc.segment(self._segmenter)
        doc.tag_ner(self._ner)
        out = []
        for span in doc.spans:
            label = _LABELS.get(span.type)
            if label is None:
                continue
            s, e = span.start, span.stop
            if not _CYRILLIC.search(text[s:e]) and not text[s:e][:1].isupper():
                continue
            out.append(RecognizerResult(label, s, e, 0.85))
        return out
