"""Person names after a cue phrase ("my name is", "Mr.", "Hi,", "меня зовут") and in name-shaped layouts."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

import regex
from presidio_analyzer import EntityRecognizer, RecognizerResult

from pipeline.pii.recognizers.common import CURRENCY_AFTER, NOT_NAMES as _NOT_NAMES, STOP as _STOP

_CAP = r"[A-ZÀ-ÖØ-ÞĀ-ſА-ЯЁӘҒҚҢӨҰҮҺІ](?=[\w'’-]*[a-zß-ÿа-яёәғқңөұүһі])[\w'’-]*"  # has a lower-case letter
_NAME = rf"{_CAP}(?:[ \t]+[A-Z](?:\.|(?![\w'’-])))?(?:[ \t]+{_CAP}){{0,2}}"  # one line; an initial is one letter
# cue phrases that introduce a person; the strong ones also take a lower-case name
_STRONG_CUES = (r"my name is|my name's|name\s*:|full name is|меня зовут|имя\s*:|фио\s*:|follow\s+up\s+with|"
                r"(?:people|everyone|they|friends)\s+calls?\s+me|(?:last|first|full)\s+name\?(?:\s*user:)?|"
                r"name\s+on\s+the\s+account\?(?:\s*user:)?|(?:last|first)\s+name\s+is")
_WEAK_CUES = (r"i am|i'm|this is|call me|calls me|dear|hi|hello|hey|thanks|thank you|regards|sincerely|"
              r"mr\.?|mrs\.?|ms\.?|miss|mx\.?|dr\.?|sir|madam|mister|with|by|and|named|called|add|"
              r"him|her|kid|son|daughter|wife|husband|partner|friend|mother|father|brother|sister|colleague|"
              r"manager|guardian|beneficiary|under|met|ask|tell|contact|name|господин|госпожа|"
              r"said|says|shouted\s+at|told|asked|starring|directed\s+by|tribute\s+to|song\s+by|"
              r"ex-\w+|verses\s+from|change\s+it\s+to|founders?:|address\s*:|leave\s+me|signed,?|"
              r"talk(?:ed|ing)?\s+to|spoke\s+(?:to|with)|email\s+from|message\s+from|on\s+behalf\s+of")
# a lower-case name after a strong cue: one to three words, an initial allowed ("benjamin a seiler")
_LOWER_NAME = r"[a-zа-яёß-ÿ][\w'-]+(?:\s+[a-z]\.?)?(?:\s+[a-zа-яёß-ÿ][\w'-]+){0,2}"
# what may follow a lower-case name after a strong cue
_AFTER_LOWER_NAME = (r"and|but|in|on|at|about|regarding|re|tomorrow|today|tonight|next|soon|later|after|before|"
                     r"when|if|from|for|by|asap|please|thanks")
# nouns a person's name modifies: "a <name> concert", "the <name> version"
_WORK_WORDS = (r"concerts?|fans?|version|shows?|gigs?|tours?|albums?|songs?|recordings?|covers?|biography|"
               r"interviews?|performances?|documentary|lectures?|fan\s+club")
_GREETINGS = r"hi|hello|hey|dear|thanks|thank\s+you|cheers|regards|bye|goodbye|welcome|sorry|congratulations|congrats"
# a capitalised phrase followed by one of these is an organisation or a work, not a person
_ORG_WORDS = {"Inc", "Ltd", "LLC", "PLC", "Plc", "Corp", "Co", "Company", "Group", "Bank", "Solutions", "Systems",
              "Technologies", "Investments", "Markets", "Partners", "Associates", "Agency", "Orchestra", "Band",
              "University", "College", "School", "Hospital", "Foundation", "Institute", "Services", "Capital",
              "Holdings", "Street", "Road", "Avenue", "Mall", "Rapids", "Lines", "Airlines", "GmbH", "AG", "SA",
              "JSC", "LLP", "Trust", "Insurance", "Media", "Labs", "Studio", "Studios", "Records", "Press"}


@dataclass(frozen=True)
class _Cue:
    pattern: "regex.Pattern"
    score: float


class CueNameRecognizer(EntityRecognizer):
    """A person's name right after a cue ("my name is", "Name:", "Mr.", "Hi", "Dear", "меня зовут").

    A PatternRecognizer returns the whole match, cue included; this one returns only the captured name,
    hence an EntityRecognizer with a capture group.
    """

    def __init__(self):
        super().__init__(supported_entities=["PERSON"], name="CueNameRecognizer")

    def load(self) -> None:
        self.cues = [
            _Cue(regex.compile(rf"(?i:\b(?:{_STRONG_CUES}))\s+(?P<n>{_NAME}|{_LOWER_NAME}(?=\s*(?:[,.!?;:\n]|$|['’]s\b|(?:{_AFTER_LOWER_NAME})\b)))"), 0.85),
            _Cue(regex.compile(rf"(?i:\b(?:{_WEAK_CUES}))[:\s]+(?P<n>{_NAME})"), 0.45),
            # greetings and thanks with a comma: "Hi, Anna", "thanks, Marek"
            _Cue(regex.compile(rf"(?i:\b(?:{_GREETINGS}))[ \t]*,[ \t]*(?P<n>{_NAME})"), 0.5),
            # a name addressed at the end of a sentence: "Don't go to town, Brandon!"
            _Cue(regex.compile(rf"[,—–][ \t]+(?P<n>{_CAP}(?:[ \t]+{_CAP})?)[ \t]*(?=[!?]|\.(?:\s|$)|$)"), 0.45),
            # "<name> here", "<name> said", "said A to B", "ask <name>"
            _Cue(regex.compile(rf"(?m)(?:^|(?<=[.!?]\s))[ \t>]*(?P<n>{_CAP}(?:[ \t]+{_CAP})?)[ \t]+here\b"), 0.5),
            _Cue(regex.compile(rf"(?P<n>{_NAME})[ \t]+(?:said|says|asked|replied|wrote|texted|whispered|shouted|told\s+(?:me|us|him|her|them))\b"), 0.45),
            _Cue(regex.compile(rf"(?i:\b(?:said|says|asked|whispered|shouted|replied))[ \t]+{_CAP}[ \t]+to[ \t]+(?P<n>{_CAP})"), 0.5),
            # a speaker at the start of a line, quote right after the colon: 'Sara:"I'm ...'
            _Cue(regex.compile(rf"(?m)^[ \t>?]*(?P<n>{_CAP}|[a-z][a-z'-]{{2,}})[ \t]*:[ \t]*[\"“]"), 0.5),
            # First I. Last / First I Last: the initial makes it a person
            _Cue(regex.compile(rf"(?P<n>\b{_CAP}\s+[A-ZÀ-ÖØ-Þ]\.?\s+{_CAP})"), 0.7),
            # a lower-case line "first i last" above other lines (signature blocks); not "a" or "i" as the initial
            _Cue(regex.compile(r"(?m)^[ \t>?]*(?P<n>[a-zß-ÿ][\w'-]+[ \t]+[b-hj-z]\.?[ \t]+[a-zß-ÿ][\w'-]+)[ \t]*(?=\n)"), 0.6),
            # a speaker or a subject at the start of a line: "Leverett: ...", "Sofie lives on ..."
            _Cue(regex.compile(rf"(?m)^[\s>?]*(?P<n>{_CAP}(?:[ \t]+{_CAP})?)(?=:\s|\s+(?:is|was|had|has|lives|lived|said|says|shouted|told|will|would|went)\b)"), 0.5),
            # the same with name particles, or a person and where they come from: "Anouk van der Berg will ...",
            # "Ilse Moreau from Acme Labs is ..."
            _Cue(regex.compile(rf"(?m)^[\s>?]*(?P<n>{_CAP}(?:[ \t]+(?:van|von|de|der|den|ten|ter|da|di|du|del|la|le|dos|das)){{1,2}}[ \t]+{_CAP})(?=\s+(?:is|was|had|has|will|would|from)\b)"), 0.5),
            _Cue(regex.compile(rf"(?m)^[\s>?]*(?P<n>{_CAP}[ \t]+{_CAP})(?=[ \t]+from[ \t]+{_CAP}(?:[ \t]+{_CAP}){{0,3}}[ \t]+(?:is|was|will|has|had)\b)"), 0.5),
            # the other names of a list after a cue: "founders: Kónya, Becker and Vasquez"
            _Cue(regex.compile(rf"(?i:\b(?:founders?|co-founders|partners|members|authors|directors|owners)):?[ \t]+(?:{_CAP}[ \t]*,[ \t]*){{0,4}}(?:{_CAP}[ \t]+and[ \t]+)?(?P<n>{_CAP})(?=[ \t]*[,.]|[ \t]+and\b)"), 0.5),
            _Cue(regex.compile(rf"(?i:\b(?:founders?|co-founders|partners|members|authors|directors|owners)):?[ \t]+(?P<n>{_CAP})[ \t]*,"), 0.5),
            _Cue(regex.compile(rf"(?i:\b(?:founders?|co-founders|partners|members|authors|directors|owners)):?[ \t]+{_CAP}[ \t]*,[ \t]*(?P<n>{_CAP})[ \t]+and"), 0.5),
            # a possessive two-word name: "Maite Lemmens's killers"
            _Cue(regex.compile(rf"(?P<n>\b{_CAP}[ \t]+{_CAP})(?=['’]s\b)"), 0.5),
            # a name used as a modifier of a work or an event: "a Homero Portillo concert", "the X Y version",
            # "a huge X Y fan" (two or three capitalised words, so "the Android version" is not one)
            _Cue(regex.compile(rf"(?i:\b(?:a|an|the|huge|big|great|true|die-hard))[ \t]+(?P<n>{_CAP}[ \t]+(?:[A-Z]\.?[ \t]+)?{_CAP}(?:[ \t]+{_CAP})?)[ \t]+(?i:{_WORK_WORDS})\b"), 0.6),
            # a line that is only a name (signature blocks, address labels)
            _Cue(regex.compile(rf"(?m)^[\s>?]*(?P<n>{_CAP}(?:[ \t]+[A-Z]\.?)?[ \t]+{_CAP}(?:[ \t]+{_CAP})?)[ \t]*$"), 0.5),
        ]

    def analyze(self, text, entities, nlp_artifacts=None):
        out: List[RecognizerResult] = []
        for cue in self.cues:
            for m in cue.pattern.finditer(text):
                s, e = m.span("n")
                words = text[s:e].split()
                while words and words[-1].strip(".,") in _NOT_NAMES:
                    words.pop()
                while words and (words[0].strip(".,") in _NOT_NAMES or words[0].lower() in _STOP):
                    s += text[s:e].index(words[0]) + len(words[0])
                    words.pop(0)
                if not words:
                    continue
                after = text[e:e + 40].split()
                if any(w.strip(".,;:") in _ORG_WORDS for w in words[1:] + after[:1]):
                    continue
                if CURRENCY_AFTER.match(text, e):  # "and Russian rubles": a currency, not a person
                    continue
                s = text.index(words[0], s)
                e = text.index(words[-1], s) + len(words[-1])
                if text[e - 2:e] in ("'s", "’s"):
                    e -= 2
                out.append(RecognizerResult("PERSON", s, e, cue.score))
        return out


