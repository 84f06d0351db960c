"""Lower-case names after assistant-style cue phrases ("call raju", "set a meeting with hongbin", "my friend
rohit", "dr rosenstock", "madonna's birthday"), in texts written in lower case (``mostly_lower``).

The word after the cue must not be an English word (Webster's Second, lower-case entries, with plural, past
and -ing endings: ``is_english_word``) or a stop word,
unless it is a known given name; after weak cues ("from", "about", "for", "tell", "ask", "meet", "invite") only
a known given name counts. A known name or an initial right after it joins it ("jen k"). Score 0.5:
the masker drops a word that is common in the user's own data or a label word
(``pipeline.pii.vocabulary``), which keeps "call mom", "email support" or "meeting with marketing" unmasked.
"""
from __future__ import annotations

import regex
from presidio_analyzer import EntityRecognizer, RecognizerResult

from pipeline.pii.recognizers.common import STOP, mostly_lower
from pipeline.pii.recognizers.names.lexicon import is_english_word, lower_text_names

_RELATION = (r"friend|boss|wife|husband|son|daughter|brother|sister|mom|mother|dad|father|colleague|coworker|"
             r"co-worker|cousin|uncle|aunt|grandma|grandpa|grandmother|grandfather|niece|nephew|partner|"
             r"girlfriend|boyfriend|neighbou?r|manager|teacher|doctor|dentist|lawyer|roommate|buddy")
_TITLE = r"dr|mr|mrs|ms|miss|prof|professor|principal|sir|madam|dear|coach|officer|captain|pastor|father|sister"
_CUE = regex.compile(
    rf"\b(?:(?:call|ring|text|sms|whatsapp|e-?mail|message|remind|ping|invite|tell|ask|meet)"
    rf"|(?:meeting|meet|appointment|call|lunch|dinner|chat)[ \t]+with|my[ \t]+(?:{_RELATION})|(?:{_TITLE})\.?"
    rf"|(?:number|phone|address|e-?mail|contact|birthday|details)[ \t]+(?:of|for)|from|about|for)[ \t]+"
    rf"(?P<n>[a-z][a-z'’-]{{2,}})(?:[ \t]+(?P<m>[a-z][a-z'’-]+|[a-z](?![\w])))?")
_OWNER = regex.compile(r"\b(?P<n>[a-z][a-z-]{2,})['’]s[ \t]+(?:birthday|number|phone|e-?mail|address|contact|"
                       r"wedding|anniversary|party)\b")
_CALENDAR = frozenset("""january february march april may june july august september october november december
monday tuesday wednesday thursday friday saturday sunday""".split())
_TITLES_ONLY = regex.compile(rf"(?:{_TITLE})\.?[ \t]+$")


class LowerCueNameRecognizer(EntityRecognizer):
    """A lower-case name after "call", "text", "email", "meeting with", "my friend", "dr", "number of",
    "from", "about", or before "'s birthday" (module docstring)."""

    def __init__(self):
        super().__init__(supported_entities=["PERSON"], name="LowerCueNameRecognizer")

    def load(self) -> None:
        given, self.names = lower_text_names()
        self.given = given - _CALENDAR
        self.stop = STOP | frozenset(_RELATION.replace("?", "").split("|")) | {"mum", "mommy", "daddy", "papa", "mama"}

    def _name_like(self, w: str) -> bool:
        w = w[:-2] if w.endswith(("'s", "’s")) else w
        return w not in _CALENDAR and (w in self.given or (w.isalpha() and w not in self.stop and
                                                            not is_english_word(w)))

    def analyze(self, text, entities, nlp_artifacts=None):
        if not mostly_lower(text):
            return []
        out = []
        for m in _CUE.finditer(text, overlapped=True):
            n = m.group("n")
            if not self._name_like(n):
                continue
            # after a weak cue (from, about, tell, ask, meet) only a known given name or a title's name
            cue = text[m.start():m.start("n")].strip().split()[0].lower()
            if cue in ("from", "about", "for", "tell", "ask", "meet", "invite") and n not in self.given and \
                    not _TITLES_ONLY.search(text, m.start(), m.start("n")):
                continue
            s, e = m.start("n"), m.end("n")
            if e > s + 1 and text[e - 2:e] in ("'s", "’s"):
                e -= 2
            nxt = m.group("m")
            if nxt and (len(nxt) == 1 or nxt.rstrip("'’s") in self.names):
                e = m.end("m")
                if text[e - 2:e] in ("'s", "’s"):
                    e -= 2
            out.append(RecognizerResult("PERSON", s, e, 0.5))
        for m in _OWNER.finditer(text):
            if self._name_like(m.group("n")):
                out.append(RecognizerResult("PERSON", m.start("n"), m.end("n"), 0.5))
        return out
