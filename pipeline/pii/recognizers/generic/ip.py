"""IP addresses (IPv4, full and compressed IPv6), validated by the standard library's ``ipaddress``."""
from __future__ import annotations

import ipaddress
import re

from presidio_analyzer import EntityRecognizer, RecognizerResult

# a run of the characters an address is written with; the candidates are cut out of it and validated
_RUN = re.compile(r"[0-9A-Fa-f:.]{3,}")
_V4 = re.compile(r"(?<!\d)(?:\d{1,3}\.){3}\d{1,3}(?!\d)")


def _valid(v: str) -> bool:
    try:
        ipaddress.ip_address(v)
    except ValueError:
        return False
    return True


class IpAddressRecognizer(EntityRecognizer):
    """Every run of hex digits, colons and dots is tried as an address with the punctuation glued to its
    ends taken off (":e4:ce::1:", "10.0.0.1."), so a colon or a dot next to the address does not hide it
    (Presidio's IpRecognizer needs word boundaries on both sides)."""

    def __init__(self):
        super().__init__(supported_entities=["IP_ADDRESS"], name="IpAddressRecognizer")

    def load(self) -> None:
        pass

    def analyze(self, text, entities, nlp_artifacts=None):
        out = []
        for m in _RUN.finditer(text):
            run, base = m.group(), m.start()
            if run.count(":") >= 2:
                lead = len(run) - len(run.lstrip(":."))
                trail = len(run) - len(run.rstrip(":."))
                hit = next(((a, len(run) - b) for a in range(lead + 1) for b in range(trail + 1)
                            if a < len(run) - b and _valid(run[a:len(run) - b])), None)
                if hit:
                    out.append(RecognizerResult("IP_ADDRESS", base + hit[0], base + hit[1], 0.95))
            for v4 in _V4.finditer(run):
                if _valid(v4.group()):
                    out.append(RecognizerResult("IP_ADDRESS", base + v4.start(), base + v4.end(), 0.95))
        return out
