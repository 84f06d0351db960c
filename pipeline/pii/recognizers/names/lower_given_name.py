"""Lower-case given names without a cue ("add joe smith to my contacts", "what did i tell susan")."""
from __future__ import annotations

import regex
from presidio_analyzer import EntityRecognizer, RecognizerResult

from pipeline.pii.recognizers.common import STOP, mostly_lower
from pipeline.pii.recognizers.names.lexicon import given_names, is_english_word, lower_text_names, surnames

_CALENDAR = frozenset("""january february march april may june july august september october november december
monday tuesday wednesday thursday friday saturday sunday spring summer autumn winter""".split())
_INITIAL = regex.compile(r"[ \t](?![ai]\b)[b-hj-z]\.?(?![\w])")
_WORD = regex.compile(r"(?<![\w'’@.])[a-zß-ÿа-яё][a-zß-ÿа-яё'’]+(?![\w@])")


class LowerGivenNameRecognizer(EntityRecognizer):
    """In a text with no capital letter (but for its first word, "I", days and months: ``mostly_lower``), a word that is a known given name (Faker's lists, many locales;
    not an English word unless an English given name: ``lower_text_names``) and not a stop word is a person, with a known surname or a given name right after it
    joined to it; an unknown word that is no English word right before a surname that is none either is a
    person too ("arijit singh"). Score 0.5: the masker drops it when the word is common in the user's own data or a
    label word (``pipeline.pii.vocabulary``), which is what keeps "will", "may" or "rose" unmasked."""

    def __init__(self):
        super().__init__(supported_entities=["PERSON"], name="LowerGivenNameRecognizer")

    def load(self) -> None:
        self.first = lower_text_names()[0] - STOP - _CALENDAR
        self.last = surnames() | given_names()  # right after a given name, "smith" is a surname
        # "arijit singh": an unknown word right before a surname that is no English word
        self.strong_last = frozenset(w for w in surnames() - given_names() if not is_english_word(w)) - STOP

    def analyze(self, text, entities, nlp_artifacts=None):
        if not mostly_lower(text):
            return []
        out = []
        toks = [(m.start(), m.end(), m.group().rstrip("'’")) for m in _WORD.finditer(text)]
        i = 0
        while i < len(toks):
            s, e, w = toks[i]
            base = w[:-2] if w.endswith(("'s", "’s")) else w
            if base in self.first:
                end = s + len(base)
                if i + 1 < len(toks) and toks[i + 1][2] in self.last and toks[i + 1][2] not in STOP and \
                        text[e:toks[i + 1][0]] == " ":
                    nxt = toks[i + 1]
                    end = nxt[0] + len(nxt[2][:-2] if nxt[2].endswith(("'s", "’s")) else nxt[2])
                    i += 1
                else:
                    ini = _INITIAL.match(text, end)  # "jen k", "mary s.'s number": an initial after the name
                    if ini:
                        end = ini.end()
                out.append(RecognizerResult("PERSON", s, end, 0.5))
            elif i + 1 < len(toks) and len(base) > 2 and toks[i + 1][2] in self.strong_last and \
                    text[e:toks[i + 1][0]] == " " and base not in STOP and not is_english_word(base):
                out.append(RecognizerResult("PERSON", s, toks[i + 1][1], 0.5))
                i += 1
            i += 1
        return out
