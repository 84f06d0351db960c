"""The PII recognizers of the masking stage, one class per file, grouped by what they find.

Layout (the folder tree is the list of what is covered):
- ``generic/``: card numbers (Luhn), IBANs (mod 97), IP addresses, phones, e-mails written out or obfuscated, the digit
  groups shared by the checksum recognizers, a chunk-scoped wrapper for Presidio's URL pattern;
- ``kz/``: Kazakh IIN/BIN;
- ``names/``: names after cue phrases, names with post-Soviet surname endings (Latin and Cyrillic),
  lower-case names with such endings, lower-case given names from a lexicon, lower-case names after cue phrases;
- ``ru/``: Russian names and places from natasha's offline NER (slovnet);
- ``addresses/``: street lines, whole postal addresses, street corners, postcodes, lower-case street names;
- ``places/``: a gazetteer of countries, states and cities, places after location cues, generic places
  (downtown, airports, stations; optional).

Every recognizer is a Presidio ``EntityRecognizer`` so the set can also be plugged into an
``AnalyzerEngine``. Check digits live in ``pipeline.pii.checksums`` (one implementation; the leak guard has
its own on purpose). ``build_recognizers()`` returns the list the masker runs, each tagged with the
characters a text must contain for the recognizer to have any chance (a text with no digit cannot hold
a phone number).
"""
from __future__ import annotations

import os

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")  # Presidio's email check must stay offline

from dataclasses import dataclass

from presidio_analyzer import EntityRecognizer
from presidio_analyzer.predefined_recognizers import EmailRecognizer, UrlRecognizer, UsSsnRecognizer

from pipeline.pii.checksums import iban_ok, kz_bin_ok, kz_control_ok, kz_iin_ok, luhn_ok
from pipeline.pii.recognizers.addresses.block import AddressBlockRecognizer, extend_address
from pipeline.pii.recognizers.addresses.corner import CornerRecognizer
from pipeline.pii.recognizers.addresses.postcode import PostcodeRecognizer
from pipeline.pii.recognizers.addresses.lower_street import LowerStreetRecognizer
from pipeline.pii.recognizers.addresses.street import AddressRecognizer
from pipeline.pii.recognizers.common import CURRENCY_AFTER, NOT_NAMES, has_context
from pipeline.pii.recognizers.generic.card import CardRecognizer
from pipeline.pii.recognizers.generic.chunk_scoped import ChunkScopedRecognizer
from pipeline.pii.recognizers.generic.email import SpokenEmailRecognizer
from pipeline.pii.recognizers.generic.iban import IbanMod97Recognizer
from pipeline.pii.recognizers.generic.ip import IpAddressRecognizer
from pipeline.pii.recognizers.generic.phone import PhonePatternRecognizer
from pipeline.pii.recognizers.kz.iin_bin import KzIinBinRecognizer
from pipeline.pii.recognizers.names.capitalised_given import CapitalisedGivenNameRecognizer
from pipeline.pii.recognizers.names.cue import CueNameRecognizer
from pipeline.pii.recognizers.names.lower_cue import LowerCueNameRecognizer
from pipeline.pii.recognizers.names.lower_given_name import LowerGivenNameRecognizer
from pipeline.pii.recognizers.names.lower_surname import LowerSurnameRecognizer
from pipeline.pii.recognizers.names.slavic_turkic import SlavicTurkicNameRecognizer
from pipeline.pii.recognizers.places.gazetteer import GazetteerLocationRecognizer
from pipeline.pii.recognizers.places.generic import GenericPlaceRecognizer
from pipeline.pii.recognizers.places.location_cue import LocationCueRecognizer
from pipeline.pii.recognizers.ru.natasha_ner import NatashaNerRecognizer

_NOT_NAMES = NOT_NAMES  # the name the masker imports

__all__ = ["AddressBlockRecognizer", "AddressRecognizer", "CapitalisedGivenNameRecognizer", "CardRecognizer", "ChunkScopedRecognizer", "CornerRecognizer",
           "CueNameRecognizer", "CURRENCY_AFTER", "GatedRecognizer", "GazetteerLocationRecognizer", "GenericPlaceRecognizer",
           "IbanMod97Recognizer", "IpAddressRecognizer", "KzIinBinRecognizer", "LocationCueRecognizer", "LowerCueNameRecognizer", "LowerStreetRecognizer", "LowerGivenNameRecognizer", "NatashaNerRecognizer", "LowerSurnameRecognizer",
           "NOT_NAMES", "PhonePatternRecognizer", "PostcodeRecognizer", "SlavicTurkicNameRecognizer",
           "SpokenEmailRecognizer", "build_recognizers", "extend_address", "has_context", "iban_ok", "kz_bin_ok",
           "kz_control_ok", "kz_iin_ok", "luhn_ok"]


@dataclass
class GatedRecognizer:
    recognizer: EntityRecognizer
    entities: list[str]
    needs: str  # "digit", "upper" (an upper-case letter), "dotword" (a dot before a letter), "ip", "lower"
    # (``mostly_lower``), a substring, or ""


def build_recognizers(generic_places: bool = False) -> list[GatedRecognizer]:
    """Recognizers run by the masker on every text, with the cheap necessary condition for each;
    ``generic_places`` adds downtown, airports, malls and stations (``MaskingSpec.mask_generic_places``)."""
    # Presidio's EntityRecognizer.__init__ calls load(): constructing a recognizer is enough
    cue = CueNameRecognizer()
    slav = SlavicTurkicNameRecognizer()
    addr = AddressBlockRecognizer()
    gaz = GazetteerLocationRecognizer()
    loc = LocationCueRecognizer(gaz)
    post = PostcodeRecognizer()
    lower_sur = LowerSurnameRecognizer()
    lower_given = LowerGivenNameRecognizer()
    return [
        GatedRecognizer(EmailRecognizer(), ["EMAIL_ADDRESS"], "@"),
        GatedRecognizer(SpokenEmailRecognizer(), ["EMAIL_ADDRESS"], "email"),
        GatedRecognizer(ChunkScopedRecognizer(UrlRecognizer()), ["URL"], "dotword"),
        GatedRecognizer(IpAddressRecognizer(), ["IP_ADDRESS"], "ip"),
        GatedRecognizer(UsSsnRecognizer(), ["US_SSN"], "digit"),
        GatedRecognizer(KzIinBinRecognizer("KZ_IIN"), ["KZ_IIN"], "digit"),
        GatedRecognizer(KzIinBinRecognizer("KZ_BIN"), ["KZ_BIN"], "digit"),
        GatedRecognizer(CardRecognizer(), ["CREDIT_CARD"], "digit"),
        GatedRecognizer(IbanMod97Recognizer(), ["IBAN_CODE"], "digit"),
        GatedRecognizer(PhonePatternRecognizer(), ["PHONE_NUMBER"], "digit"),
        GatedRecognizer(addr, ["LOCATION"], "digit"),
        GatedRecognizer(post, ["LOCATION"], "digit"),
        GatedRecognizer(cue, ["PERSON"], ""),
        GatedRecognizer(gaz, ["LOCATION"], ""),
        GatedRecognizer(loc, ["LOCATION"], ""),
        GatedRecognizer(CornerRecognizer(), ["LOCATION"], "orner"),
        GatedRecognizer(LowerStreetRecognizer(), ["LOCATION"], "lower"),
        GatedRecognizer(slav, ["PERSON"], "upper"),
        GatedRecognizer(CapitalisedGivenNameRecognizer(), ["PERSON"], "upper"),
        GatedRecognizer(lower_sur, ["PERSON"], ""),
        GatedRecognizer(lower_given, ["PERSON"], "lower"),
        GatedRecognizer(LowerCueNameRecognizer(), ["PERSON"], "lower"),
        GatedRecognizer(NatashaNerRecognizer(), ["PERSON", "LOCATION"], "cyrillic"),
    ] + ([GatedRecognizer(GenericPlaceRecognizer(), ["LOCATION"], "")] if generic_places else [])
