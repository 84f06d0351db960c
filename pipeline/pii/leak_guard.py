"""Independent second pass over masked text: reports structured PII that survived masking.

Independent of the masker (``pipeline.pii.masker`` / ``pipeline.pii.recognizers`` / ``pipeline.pii.checksums``)
in code *and* in method, on purpose: it shares no function with them, keeps its own check-digit code, and
finds candidates differently. The masker reads identifiers with per-type patterns and the IBAN registry;
the guard reads every text as a stream of alphanumeric characters and tests *every window* of each length
an identifier can have against its checksum:

- IBAN: from every place where two letters and two digits start a word, every window of 15 to 34
  characters (read over single spaces and dashes), mod 97;
- cards and Kazakh IIN/BIN: every run of whole digit groups (joined by up to three spaces, tabs, dashes,
  dots or brackets) with
  12-19 digits, Luhn, and with 12 digits, the IIN/BIN control digit and date;
- phones: every run of whole digit groups of 8-15 digits written after a "+", or a Kazakh number
  (7 or 8, then 7xx), plus regexes for the other groupings;
- e-mail addresses after undoing the spoken and bracketed forms ("at", "[at]", "dot", "(dot)");
- IPv4 and full or compressed IPv6; US SSN (3-2-4 with dashes).

``scan_residual(texts)`` returns, per text, the sorted list of PII *types* still present. It never returns,
logs or raises with the values themselves. Placeholders (``<TYPE_n>``, ``<TYPE_n|token>``) are removed
before scanning. It runs on masked tickets (a finding quarantines the ticket with reason ``residual_pii``),
on every fine-tuning file just before upload, and on pull exports.
"""
from __future__ import annotations

import re
from datetime import date
from typing import Sequence

RESIDUAL_REASON = "residual_pii"

_PLACEHOLDER = re.compile(r"<[A-Z][A-Z_]*_\d+(?:\|[0-9a-f]+)?>")
# spoken and bracketed forms of "@" and "." turned back into the symbols
_SPOKEN_AT = re.compile(r"\s*[\[(<{]\s*(?:at|@)\s*[\])>}]\s*|\s+at\s+|\s+@\s*|@\s+", re.IGNORECASE)
_SPOKEN_DOT = re.compile(r"\s*[\[(<{]\s*(?:dot|\.)\s*[\])>}]\s*|\s+dot\s+", re.IGNORECASE)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}")
_IPV4 = re.compile(r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?!\d|\.\d)")
_HEX_RUN = re.compile(r"(?<![0-9A-Za-z])[0-9A-Fa-f:]*:[0-9A-Fa-f:]*:[0-9A-Fa-f:]*(?![0-9A-Za-z])")
_HEX_GROUP = re.compile(r"[0-9A-Fa-f]{1,4}")
_SSN = re.compile(r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])")
_PHONES = [
    re.compile(r"(?<![\w])\(?\d{3}\)?[ \t.-]?\d{3}[ \t.-]\d{4}(?![\w])"),  # 3-3-4
    re.compile(r"(?<![\w.-])\d{2,5}(?:[ \t.-]\d{2,5}){2,4}(?![\w]|[.-]\d)"),  # other groupings, 9+ digits, one line
    re.compile(r"(?<![\w])0\d{9,10}(?![\w])"),  # national contiguous
]
_DATE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{4}")
_IBAN_HEAD = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}[0-9]{2}")  # where a window may start
_ASCII_ALNUM = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")


# -- check digits, written for the guard alone ---------------------------------------------------------
def _luhn(d: str) -> bool:
    s = 0
    for i, c in enumerate(d[::-1]):
        n = int(c) * (2 if i % 2 else 1)
        s += n - 9 if n > 9 else n
    return s % 10 == 0


def _mod97(v: str) -> bool:
    v = v.upper()
    num = "".join(str(ord(c) - 55) if c.isalpha() else c for c in v[4:] + v[:4])
    return int(num) % 97 == 1


def _ipv6(run: str) -> bool:
    """A run of hex digits and colons holds an IPv6 address: 8 groups, or fewer around one "::" (a colon
    glued to either end is punctuation)."""
    for v in {run, run[1:] if run.startswith(":") and not run.startswith("::") else run,
              run[:-1] if run.endswith(":") and not run.endswith("::") else run,
              run.strip(":")}:
        parts = v.split("::")
        if len(parts) > 2:
            continue
        groups = [g for p in parts for g in (p.split(":") if p else [])]
        if not all(_HEX_GROUP.fullmatch(g) for g in groups):
            continue
        if (len(parts) == 1 and len(groups) == 8) or (len(parts) == 2 and len(groups) <= 7 and groups):
            return True
    return False


def _kz_check(d: str) -> bool:
    n = [int(c) for c in d]
    r = sum((i + 1) * n[i] for i in range(11)) % 11
    if r == 10:
        r = sum(((i + 2) % 11 + 1) * n[i] for i in range(11)) % 11  # weights 3..11, 1, 2
        if r == 10:
            return False
    return r == n[11]


def _kz_kind(d: str) -> str | None:
    if len(d) != 12 or not _kz_check(d):
        return None
    if d[4] in "456" and 1 <= int(d[2:4]) <= 12:
        return "KZ_BIN"
    if d[6] in "0123456":
        base = {"1": 1800, "2": 1800, "3": 1900, "4": 1900, "5": 2000, "6": 2000, "0": 1900}[d[6]]
        try:
            date(base + int(d[:2]), int(d[2:4]), int(d[4:6]))
            return "KZ_IIN"
        except ValueError:
            return None
    return None


# -- windows ------------------------------------------------------------------------------------------
def _iban_windows(text: str):
    """Every 15..34-character alphanumeric window (over single spaces/dashes) starting with AA00 at a word start."""
    n = len(text)
    for start in _IBAN_HEAD.finditer(text):
        p = start.start()
        buf = []
        i = p
        while i < n and len(buf) < 34:
            c = text[i]
            if c in _ASCII_ALNUM:
                buf.append(c)
                if len(buf) >= 15:
                    yield "".join(buf)
            elif not (c in " -" and buf and i + 1 < n and text[i + 1] in _ASCII_ALNUM):
                break
            i += 1


def _digit_groups(text: str) -> list[list[tuple[int, str]]]:
    """Runs of digit groups joined by one to three of space, tab, dash, dot and brackets ("8 (701) 123-45-67"):
    [[(start, digits), ...], ...]. A line break ends a run."""
    runs: list[list[tuple[int, str]]] = []
    i, n = 0, len(text)
    cur: list[tuple[int, str]] = []
    last_end = -10
    while i < n:
        if text[i].isdigit() and text[i].isascii():
            j = i
            while j < n and text[j].isdigit() and text[j].isascii():
                j += 1
            gap = text[last_end:i] if cur else ""
            if cur and not (1 <= len(gap) <= 3 and all(c in " \t-.()" for c in gap)):
                runs.append(cur)
                cur = []
            cur.append((i, text[i:j]))
            last_end = i = j
        else:
            i += 1
    if cur:
        runs.append(cur)
    return runs


def _number_windows(text: str, lo: int, hi: int):
    """(start, digits) of every run of whole consecutive groups with lo..hi digits."""
    for run in _digit_groups(text):
        for a in range(len(run)):
            d = ""
            for b in range(a, len(run)):
                d += run[b][1]
                if len(d) > hi:
                    break
                if len(d) >= lo:
                    yield run[a][0], d


def _scan(text: str) -> set[str]:
    text = _PLACEHOLDER.sub(" ", text)
    found: set[str] = set()
    canon = _SPOKEN_DOT.sub(".", _SPOKEN_AT.sub("@", text))
    if "@" in canon and _EMAIL.search(canon):
        found.add("EMAIL_ADDRESS")
    if not any(c.isdigit() for c in text):
        return found
    if _IPV4.search(text) or (":" in text and any(_ipv6(m.group()) for m in _HEX_RUN.finditer(text))):
        found.add("IP_ADDRESS")
    if _SSN.search(text):
        found.add("US_SSN")
    if any(_mod97(w) for w in _iban_windows(text)):
        found.add("IBAN_CODE")
    for start, d in _number_windows(text, 8, 19):
        kind = _kz_kind(d) if len(d) == 12 else None
        if kind:
            found.add(kind)
        elif len(d) >= 12 and _luhn(d) and len(set(d)) > 1:
            found.add("CREDIT_CARD")
        if len(d) <= 15 and ("+" in text[max(0, start - 3):start] or
                             (len(d) == 11 and d[0] in "78" and d[1] == "7")):
            found.add("PHONE_NUMBER")
        elif d.startswith("00") and 10 <= len(d) <= 17:
            found.add("PHONE_NUMBER")
    if "PHONE_NUMBER" not in found:
        for pat in _PHONES:
            for m in pat.finditer(text):
                v = m.group()
                d = re.sub(r"\D", "", v)
                if not 9 <= len(d) <= 15 or _DATE.search(v) or _SSN.fullmatch(v.strip()):
                    continue
                if len(d) >= 12 and (_luhn(d) or _kz_kind(d)):
                    continue  # a card or an IIN, reported above
                found.add("PHONE_NUMBER")
                break
    return found


def scan_residual(texts: Sequence[str]) -> list[list[str]]:
    """Per text, the sorted structured PII types still present (never the values)."""
    return [sorted(_scan(t or "")) for t in texts]


def residual_rows(texts: Sequence[str]) -> list[tuple[int, list[str]]]:
    """(row index, types) of the texts that still hold structured PII."""
    return [(i, kinds) for i, kinds in enumerate(scan_residual(texts)) if kinds]


# -- caching wrapper: a refresh scans only the masked texts no earlier run scanned ----------------------
_GUARD_KEY = None


def guard_key() -> str:
    """A hash of this module's source: any change to the guard starts an empty cache."""
    global _GUARD_KEY
    if _GUARD_KEY is None:
        import hashlib
        from pathlib import Path

        _GUARD_KEY = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
    return _GUARD_KEY


def scan_residual_cached(texts: Sequence[str], cache_dir, scan=scan_residual) -> tuple[list[list[str]], dict]:
    """`scan_residual` over `texts`, reusing the findings stored for masked texts already scanned.

    The cache (`cache_dir/<guard key>/part-NNNNN.parquet`: a 128-bit BLAKE2b hash of the masked text and
    the types found, never a value) lives in the raw zone with the mask cache. `scan` (the engine's guard,
    the same method) runs only on texts whose hash is not stored; their findings are appended as a new part,
    written to a temporary file and renamed. A part that cannot be read is ignored (its texts are scanned
    again). Returns the per-text types and {texts_scanned, texts_from_cache}."""
    import hashlib
    from pathlib import Path

    from pipeline.hash_parts import append_part, read_parts

    root = Path(cache_dir) / guard_key()
    hashes = [hashlib.blake2b((t or "").encode(), digest_size=16).hexdigest() for t in texts]
    known = {h: v[0] for h, v in read_parts(root, ["types"]).items()}
    todo = sorted({h: i for i, h in enumerate(hashes) if h not in known}.values())
    if todo:
        found = scan([texts[i] for i in todo])
        new = {hashes[i]: ",".join(kinds) for i, kinds in zip(todo, found)}
        known.update(new)
        append_part(root, ["types"], {h: (v,) for h, v in new.items()})
    out = [known[h].split(",") if known[h] else [] for h in hashes]
    return out, {"texts_scanned": len(todo), "texts_from_cache": len(texts) - len(todo)}
