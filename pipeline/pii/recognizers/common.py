"""Shared pieces of the recognizers: regex flags, the context-window check, and the word lists that
several recognizers consult (words that are never a name, currency words after a place, US state codes)."""
from __future__ import annotations

import functools

import regex
from presidio_analyzer import PatternRecognizer
from spacy.lang.en.stop_words import STOP_WORDS as STOP

CASE_SENSITIVE = regex.DOTALL | regex.MULTILINE  # Presidio's default adds IGNORECASE; names need case


# context: a window check in the raw text (hand-written: Presidio's context enhancer needs lemmas, i.e.
# the tagger + lemmatizer, which would cost more than the whole NER pass we run)
# --------------------------------------------------------------------------------------------------
def has_context(text: str, start: int, end: int, words: tuple[str, ...], before: int = 48, after: int = 24) -> bool:
    window = text[max(0, start - before):start].lower() + " " + text[end:end + after].lower()
    return any(w in window for w in words)


class ContextPatternRecognizer(PatternRecognizer):
    """PatternRecognizer whose weak matches are raised by a context word near the match."""

    def __init__(self, *args, context_boost: float = 0.35, **kwargs):
        super().__init__(*args, **kwargs)
        self.context_boost = context_boost
        self._ctx = tuple(w.lower() for w in (self.context or []))

    def analyze(self, text, entities, nlp_artifacts=None, regex_flags=None):
        results = super().analyze(text, entities, nlp_artifacts, regex_flags)
        if self._ctx:
            for r in results:
                if r.score < 1.0 and has_context(text, r.start, r.end, self._ctx):
                    r.score = min(1.0, r.score + self.context_boost)
        return results


# capitalised words that never start or end a name on their own
NOT_NAMES = {
    "I", "The", "A", "An", "My", "Sir", "Madam", "Team", "Support", "Bank", "Customer", "There", "Thanks", "Thank",
    "Please", "Hello", "Hi", "Dear", "Card", "Visa", "Mastercard", "Google", "Apple", "Pay", "ATM", "PIN", "OK",
    "Is", "Are", "Can", "Could", "Will", "Would", "What", "Why", "How", "When", "Where", "Who", "Yes", "No",
    "Phone", "Mobile", "Email", "E-mail", "Date", "Name", "Address", "Website", "Office", "Desk", "Fax",
    "Personal", "Info", "Today", "Yesterday", "Tomorrow", "Monday", "Tuesday", "Wednesday", "Thursday",
    "Friday", "Saturday", "Sunday", "January", "February", "March", "April", "May", "June", "July", "August",
    "September", "October", "November", "December", "Euro", "Euros", "Dollar", "Dollars", "USD", "EUR", "GBP",
    "KZT", "Tenge", "Account", "Transfer", "Payment", "Bot", "User", "Agent", "Mr", "Mrs", "Ms", "Dr", "Miss",
    "I'm", "I’m", "Directed", "Note", "Subject", "Re", "Fwd", "From", "To", "Cc", "Zip", "Postcode", "City",
    "Country", "Street", "Hotel", "Restaurant", "Company", "Orchestra", "Title", "Job", "Summary",
    "Top-up", "Top", "Contactless", "Refund", "Exchange", "Currency", "Transaction", "Transactions",
}


# a country or nationality used for a currency, a card or a product ("UK pounds", "Russian rubles", "a US
# card", "European currencies") is not about a person: it describes the request, so it stays
CURRENCY_AFTER = regex.compile(
    r"[ \t]*(?:(?:currency|currencies|pounds?|sterling|rub(?:les?|els?)|roubles?|dollars?|euros?|yen|yuan|"
    r"francs?|pesos?|lira|liras|kron(?:a|or|er|e)|zloty|forints?|rupees?|tenge|won|rand|dinars?|dirhams?|"
    r"riyals?|baht|cards?|bank(?:s|\s+accounts?)?|accounts?|address(?:es)?|phone\s+numbers?|numbers?|"
    r"sim|mastercard|visa|cheques?|checks?|money|cash|coins?|notes?|bills?|fees?|rates?)\b)", regex.IGNORECASE)


US_STATE_CODES = ("AL|AK|AZ|AR|CA|CO|CT|DE|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ|NM|"
                   "NY|NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|DC|PR|AB|BC|MB|NB|NL|NS|ON|PE|QC|SK")


_CAPITALISED_OK = frozenset("""i i'm i've i'd i'll monday tuesday wednesday thursday friday saturday sunday january
february march april june july august september october november december""".split())


def mostly_lower(text: str) -> bool:
    """A text written in lower case but for its first word, "I" and day or month names ("Has john sent
    me any new emails", "see if john is free on Monday"): case gives no hint about names there."""
    if text.islower():
        return True
    return _mostly_lower(text)


@functools.lru_cache(maxsize=4096)  # several recognizers ask about the same text in a row
def _mostly_lower(text: str) -> bool:
    if not any(c.isalpha() for c in text):
        return False
    for i, m in enumerate(regex.finditer(r"[^\W\d_][\w'’]*", text)):
        w = m.group()
        if w.islower() or (i == 0 and w[1:].islower()) or w.lower() in _CAPITALISED_OK:
            continue
        return False
    return True
