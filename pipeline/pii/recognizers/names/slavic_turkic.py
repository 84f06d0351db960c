"""Names with a Russian, Kazakh or other post-Soviet surname or patronymic ending, Latin or Cyrillic."""
from __future__ import annotations

import regex
from presidio_analyzer import EntityRecognizer, RecognizerResult

from pipeline.pii.recognizers.common import NOT_NAMES as _NOT_NAMES, STOP as _STOP

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

