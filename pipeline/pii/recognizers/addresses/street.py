"""Street lines, units, post boxes and military addresses: the anchors of a postal address."""
from __future__ import annotations

from presidio_analyzer import Pattern, PatternRecognizer

from pipeline.pii.recognizers.common import CASE_SENSITIVE

_STREET_WORDS = (r"Street|St|Road|Rd|Avenue|Ave|Av|Way|Lane|Ln|Drive|Dr|Boulevard|Blvd|Court|Ct|Place|Pl|"
                 r"Square|Sq|Terrace|Highway|Hwy|Parkway|Pkwy|Crescent|Close|Row|Walk|Hill|Gardens|Green|"
                 r"Park|Forges|Mews|Trail|Circle|Cir|Plaza|Alley|Ridge|Grove|Valley|View")
_STREET_SUFFIX = (r"katu|kuja|tie|polku|vej|gade|gatan|gata|vägen|väg|veien|vegen|straße|strasse|str\.?|weg|"
                  r"laan|straat|plein|gasse|utca|ulica|út|iela|gatve|tee|allee|allé|platz|ring|damm|gränd")
_STREET_PREFIX = (r"Rue|Rua|Via|Viale|Calle|Avenida|Avda\.?|Av\.|Ul\.|ul\.|ulitsa|Ulitsa|pr\.|prospekt|"
                  r"Prospekt|mkr\.?|Mkr\.?|mikrorayon|Piazza|Plac|Carrer|Camino|Paseo|Trg|trg|Jana|"
                  r"ул\.|улица|пр\.|пр-т|проспект|мкр\.?|микрорайон|пер\.|переулок|бульвар|шоссе|көшесі|даңғылы")
_UC = r"[A-ZÀ-ÖØ-ÞĀ-ſ][\w'’.-]*"
_ADDRESS_PATTERNS = [
    # 1317 Kimberly Way / 72 Acheron Road Apt. 237 / 99449 18 McPherson Road
    Pattern("number street", rf"\b\d{{1,5}}[A-Za-z]?(?:\s+\d{{1,5}})?\s+(?:{_UC}\s+){{0,3}}(?:{_STREET_WORDS})\b\.?", 0.6),
    # Koskikatu 25, Hammarvägen 15, Brucker Bundesstrasse 31
    Pattern("suffix street", rf"\b(?:{_UC}\s+){{0,2}}(?:[A-ZÀ-ÖØ-ÞĀ-ſ][\w'’-]*(?:{_STREET_SUFFIX})\b\.?(?:\s+\d{{1,5}}[A-Za-z]?)?"
                             rf"|[\w'’-]*(?:{_STREET_SUFFIX})\b\.?\s+\d{{1,5}}[A-Za-z]?\b)", 0.55),
    # Rue de Piétrain 371, ul. Abaya 10, пр. Достык 5
    Pattern("prefix street", rf"(?:\b|(?<=\s)|^)(?:{_STREET_PREFIX})\s+(?:(?:de|da|do|del|la|di|van|der)\s+)?(?:[\w'’.-]+\s+){{0,3}}?\d{{1,5}}[A-Za-z]?\b", 0.6),
    # house number after a street name: "Erzsébet tér 19.", "Vana-Viru 25" is too vague alone -> context
    Pattern("unit", r"(?i)\b(?:apt\.?|apartment|suite|ste\.?|unit|flat|room|box|psc|kv\.?|кв\.?|д\.|дом|офис)\s*#?\d{1,6}[A-Za-z]?\b", 0.6),
    Pattern("military", r"\b(?:APO|FPO|DPO|apo|fpo|dpo)\s+(?:AA|AE|AP|aa|ae|ap)\s+\d{5}\b", 0.8),
    Pattern("ship", r"\bUSN[SV]\s+[A-Z][a-z]+\b", 0.7),
    Pattern("postbox", r"(?i)\b(?:postbox|p\.?\s?o\.?\s?box|а/я)\s*\d{1,6}\b", 0.7),
]


class AddressRecognizer(PatternRecognizer):
    """Street lines, units, post boxes and military addresses (LOCATION): the anchors of an address."""

    def __init__(self):
        super().__init__(supported_entity="LOCATION", name="AddressRecognizer", patterns=_ADDRESS_PATTERNS,
                         global_regex_flags=CASE_SENSITIVE)

