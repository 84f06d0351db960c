"""Digit groups: the runs of digits a number is written in ("4400 4300 1234 5678", "880101-300123").

Card numbers and Kazakh IINs are found by testing every run of whole consecutive groups with the right
number of digits against its checksum, so a card followed by a year or preceded by an amount is still
found: a longer candidate whose checksum fails never hides a shorter valid one inside it.
"""
from __future__ import annotations

import re
from typing import Iterator

# a sequence of digit groups joined by one space, tab, dash or dot (never a line break)
_SEQUENCE = re.compile(r"\d+(?:[ \t.\-]\d+)*")


def group_windows(text: str, min_digits: int, max_digits: int) -> Iterator[tuple[int, int, str]]:
    """(start, end, digits) for every run of whole consecutive digit groups holding between ``min_digits``
    and ``max_digits`` digits. A group is bounded by anything but a digit (letters included)."""
    for seq in _SEQUENCE.finditer(text):
        groups = [(m.start() + seq.start(), m.end() + seq.start(), m.group()) for m in re.finditer(r"\d+", seq.group())]
        for i in range(len(groups)):
            digits = ""
            for j in range(i, len(groups)):
                digits += groups[j][2]
                if len(digits) > max_digits:
                    break
                if len(digits) >= min_digits:
                    yield groups[i][0], groups[j][1], digits
