"""Whole postal addresses: an anchor grown over the city, state, country and postcode that follow it."""
from __future__ import annotations

import regex
from presidio_analyzer import EntityRecognizer, RecognizerResult

from pipeline.pii.recognizers.addresses.street import AddressRecognizer


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

