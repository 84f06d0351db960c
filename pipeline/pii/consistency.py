"""Consistent masking across near-identical tickets: the same words are masked the same way in every copy.

The masker decides per text. Two near-identical tickets ("I moved to Almaty, new card please" and "i moved
to almaty new card please!") can get different decisions (a place found in one and left in clear in the
other), and then they are no longer copies: masking turns them into near-duplicates that can straddle
splits, and one of them keeps the value in clear. This module, run inside the masking stage while the raw
text is still at hand:

- finds the near-identical tickets with the dedup machinery (`pipeline.data.dedup.NearDupIndex`: MinHash
  LSH over the raw texts' template shingles, verified pairs at `DedupSpec.threshold`, plus pairs one edit
  apart). Raw texts with the same template are one group; LSH blocks the groups by band keys, so the cost
  grows with the tickets and their verified pairs, never with all pairs;
- reads each ticket's masked phrases back from its raw and masked text (`spans_from_masked`), so it
  works on what any engine returned;
- `harmonise`: a phrase (the surface text of a masked span, case-insensitive) masked in one ticket and
  standing in clear, as whole words, in a near-identical ticket is masked there too, with the type it got
  where it was masked, repeated along chains of near-identical tickets until nothing changes. Masks are
  only ever added, never taken away;
- `inconsistency`: the share of near-identical ticket pairs where a phrase masked in one stands in clear in
  the other, before and after harmonising (reported in the `masked_tickets` metadata and by `pii-eval`).

New placeholders follow the masker's form: `<TYPE_n>` numbered after the text's own placeholders of that
type (the same value keeps its number), with the salted token `|hhhhhhhh` when a token function is given
(`Masker.token`). Nothing here logs or returns text: the results are masked texts and counts.
"""
from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np

PLACEHOLDER = re.compile(r"<([A-Z][A-Z_]*?)_(\d+)(?:\|([0-9a-f]{8}))?>")
_WS = re.compile(r"\s+")
_LETTER_OR_DIGIT = re.compile(r"[^\W_]")
MIN_PHRASE_CHARS = 2  # a masked span shorter than this (after trimming) is never carried to another ticket

Span = tuple[str, int, int]  # (entity type, start, end) in the raw text


def phrase_key(value: str) -> str:
    """How a masked value is compared between tickets: case-folded, whitespace collapsed, trimmed."""
    return _WS.sub(" ", value.casefold()).strip()


def spans_from_masked(raw: str, masked: str) -> list[Span] | None:
    """The (type, start, end) spans of `raw` that became placeholders in `masked`, or None when the masked
    text is not the raw text with some spans replaced (it cannot be aligned)."""
    parts = PLACEHOLDER.split(masked)
    # re.split with 3 groups: literal, type, number, token, literal, ...
    literals, types = parts[0::4], parts[1::4]
    if not types:
        return [] if raw == masked else None
    # leftmost match of each literal after a non-empty value: what the lazy pattern below finds first,
    # without compiling a pattern per text; the pattern settles the rare case this cannot
    first, last = literals[0], literals[-1]
    if raw.startswith(first) and raw.endswith(last):
        pos, out, ok = len(first), [], True
        for t, lit in zip(types[:-1], literals[1:-1]):
            j = raw.find(lit, pos + 1)
            if j < 0:
                ok = False
                break
            out.append((t, pos, j))
            pos = j + len(lit)
        end = len(raw) - len(last)
        if ok and end > pos:
            return out + [(types[-1], pos, end)]
    pattern = "(.+?)".join(re.escape(lit) for lit in literals)
    m = re.fullmatch(pattern, raw, flags=re.DOTALL)
    if m is None:
        return None
    return [(t, m.start(i + 1), m.end(i + 1)) for i, t in enumerate(types)]


@lru_cache(maxsize=20_000)
def _phrase_re(key: str) -> re.Pattern:
    words = [re.escape(w) for w in key.split(" ")]
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", re.IGNORECASE)


def clear_occurrences(raw: str, spans: Sequence[Span], key: str) -> list[tuple[int, int]]:
    """Where phrase `key` stands in `raw` as whole words, wholly outside the masked spans."""
    out = []
    for m in _phrase_re(key).finditer(raw):
        s, e = m.span()
        if not any(ss < e and se > s for _, ss, se in spans):
            out.append((s, e))
    return out


def _carried(raw: str, spans: Sequence[Span]) -> dict[str, str]:
    """Phrase key -> type of the masked spans of one ticket that can be carried to others."""
    out: dict[str, str] = {}
    for t, s, e in spans:
        key = phrase_key(raw[s:e])
        if len(key) >= MIN_PHRASE_CHARS and _LETTER_OR_DIGIT.search(key):
            out.setdefault(key, t)
    return out


# -- near-identical tickets -------------------------------------------------------------------------
@dataclass
class NearGroups:
    """Distinct raw texts grouped by template (`group_of`), and verified near-identical pairs of groups."""

    items: list[str]  # distinct raw texts
    weight: np.ndarray  # tickets per distinct raw text
    item_of: np.ndarray  # per input ticket: its item
    group_of: np.ndarray  # per item: its template group
    n_groups: int
    pairs: list[tuple[int, int]] = field(default_factory=list)  # (group a, group b), a < b

    def members(self) -> list[list[int]]:
        out: list[list[int]] = [[] for _ in range(self.n_groups)]
        for i, g in enumerate(self.group_of.tolist()):
            out[g].append(i)
        return out


def near_groups(raw: Sequence[str], dedup_spec=None, template_cache=None) -> NearGroups:
    """Template groups of the raw texts and the verified near-identical pairs between groups.

    `template_cache`: a folder in the raw zone where the templates of texts already seen are kept
    (`pipeline.data.template_cache`)."""
    from pipeline.config import DedupSpec
    from pipeline.data.dedup import NearDupIndex
    from pipeline.data.template_cache import templates

    spec = dedup_spec or DedupSpec()
    texts = ["" if t is None else str(t) for t in raw]
    items = list(dict.fromkeys(texts))
    index_of = {t: i for i, t in enumerate(items)}
    item_of = np.fromiter((index_of[t] for t in texts), dtype=np.int64, count=len(texts))
    weight = np.bincount(item_of, minlength=len(items)) if len(items) else np.zeros(0, np.int64)
    templ = templates(items, template_cache)
    nodes = sorted(set(templ))
    node_of = {t: i for i, t in enumerate(nodes)}
    group_of = np.fromiter((node_of[t] for t in templ), dtype=np.int64, count=len(templ))
    pairs: list[tuple[int, int]] = []
    if len(nodes) > 1:
        index = NearDupIndex(spec)
        index.add_templates([str(i) for i in range(len(nodes))], nodes)
        pairs = sorted({(min(a, b), max(a, b)) for a, b, _ in index.self_pairs() if a != b})
    return NearGroups(items, weight, item_of, group_of, len(nodes), pairs)


# -- measuring ----------------------------------------------------------------------------------------
def _profiles(ng: NearGroups, raw_items: Sequence[str], spans: Sequence[list[Span] | None],
              universe: dict[int, set[str]]) -> list[tuple[frozenset, frozenset]]:
    """Per item: (phrases masked in it, phrases of its group's universe standing in clear in it)."""
    out = []
    for i, text in enumerate(raw_items):
        sp = spans[i] or []
        masked = frozenset(_carried(text, sp))
        clear = frozenset(k for k in universe.get(int(ng.group_of[i]), ()) if clear_occurrences(text, sp, k))
        out.append((masked, clear))
    return out


def _count_pairs(prof_a: Counter, prof_b: Counter | None) -> tuple[int, int]:
    """(pairs, inconsistent pairs) between tickets of two profile counters (within one when b is None)."""
    pairs = bad = 0
    if prof_b is None:
        keys = list(prof_a)
        for x in range(len(keys)):
            na = prof_a[keys[x]]
            pairs += na * (na - 1) // 2
            bad += (na * (na - 1) // 2) * _differs(keys[x], keys[x])
            for y in range(x + 1, len(keys)):
                n = na * prof_a[keys[y]]
                pairs += n
                bad += n * _differs(keys[x], keys[y])
        return pairs, bad
    for ka, na in prof_a.items():
        for kb, nb in prof_b.items():
            pairs += na * nb
            bad += na * nb * _differs(ka, kb)
    return pairs, bad


def _differs(a: tuple[frozenset, frozenset], b: tuple[frozenset, frozenset]) -> bool:
    return bool(a[0] & b[1]) or bool(b[0] & a[1])


def _universe(ng: NearGroups, spans_carried: list[dict[str, str]]) -> dict[int, set[str]]:
    """Per group: the phrases masked in it or in a near-identical group."""
    own: dict[int, set[str]] = defaultdict(set)
    for i, c in enumerate(spans_carried):
        own[int(ng.group_of[i])].update(c)
    out = {g: set(v) for g, v in own.items()}
    for a, b in ng.pairs:
        out.setdefault(a, set()).update(own.get(b, ()))
        out.setdefault(b, set()).update(own.get(a, ()))
    return out


def measure(ng: NearGroups, masked_items: Sequence[str], spans: Sequence[list[Span] | None] | None = None) -> dict:
    """``{"pairs", "inconsistent", "share", "unaligned"}`` over near-identical ticket pairs (tickets with
    the same template, and tickets of verified near-identical groups); a pair is inconsistent when a phrase
    masked in one ticket stands in clear in the other. Identical raw texts count as pairs too."""
    if spans is None:
        spans = [spans_from_masked(r, m) for r, m in zip(ng.items, masked_items)]
    carried = [_carried(r, s or []) for r, s in zip(ng.items, spans)]
    universe = _universe(ng, carried)
    prof = _profiles(ng, ng.items, spans, universe)
    by_group: list[Counter] = [Counter() for _ in range(ng.n_groups)]
    for i, p in enumerate(prof):
        by_group[int(ng.group_of[i])][p] += int(ng.weight[i])
    pairs = bad = 0
    for c in by_group:
        n, b = _count_pairs(c, None)
        pairs, bad = pairs + n, bad + b
    for a, b in ng.pairs:
        n, x = _count_pairs(by_group[a], by_group[b])
        pairs, bad = pairs + n, bad + x
    return {"pairs": int(pairs), "inconsistent": int(bad), "share": round(bad / pairs, 4) if pairs else 0.0,
            "unaligned": int(sum(s is None for s in spans))}


# -- harmonising --------------------------------------------------------------------------------------
def _render(raw: str, spans: list[Span], masked: str, added: list[Span],
            token: Callable[[str, str], str] | None) -> str:
    """`masked` with the `added` spans (clear in it) replaced by placeholders in the masker's form."""
    from pipeline.pii.masker import normalise

    numbers: dict[tuple[str, str], int] = {}
    top: Counter = Counter()
    old = PLACEHOLDER.findall(masked)
    for (t, s, e), (_, n, _tok) in zip(spans, old):
        numbers.setdefault((t, normalise(t, raw[s:e])), int(n))
        top[t] = max(top[t], int(n))
    pieces, pos = [], 0
    events = sorted([(s, e, t, False) for t, s, e in spans] + [(s, e, t, True) for t, s, e in added])
    old_iter = iter(PLACEHOLDER.finditer(masked))
    for s, e, t, new in events:
        pieces.append(raw[pos:s])
        if new:
            value = raw[s:e]
            key = (t, normalise(t, value))
            if key not in numbers:
                top[t] += 1
                numbers[key] = top[t]
            ph = f"{t}_{numbers[key]}"
            if token is not None:
                ph += "|" + token(t, value)
            pieces.append(f"<{ph}>")
        else:
            pieces.append(next(old_iter).group(0))
        pos = e
    pieces.append(raw[pos:])
    return "".join(pieces)


@dataclass
class Harmonised:
    texts: list[str]  # masked texts, one per input ticket
    added: list[Counter]  # per input ticket: masks added, by type
    before: dict
    after: dict

    @property
    def tickets_changed(self) -> int:
        return sum(1 for c in self.added if c)

    def summary(self) -> dict:
        """JSON-safe figures for the step metadata (counts only)."""
        by_type: Counter = Counter()
        for c in self.added:
            by_type.update(c)
        return {"pairs": self.before["pairs"], "inconsistent_before": self.before["inconsistent"],
                "share_before": self.before["share"], "inconsistent_after": self.after["inconsistent"],
                "share_after": self.after["share"], "tickets_changed": self.tickets_changed,
                "masks_added": int(sum(by_type.values())), "masks_added_by_type": dict(sorted(by_type.items())),
                "unaligned": self.before["unaligned"]}


def harmonise(raw: Sequence[str], masked: Sequence[str], dedup_spec=None,
              token: Callable[[str, str], str] | None = None, groups: NearGroups | None = None,
              template_cache=None) -> Harmonised:
    """Mask in every near-identical ticket the phrases masked in another (never un-mask); see the module doc.

    `token(type, value)`: the salted token of a new placeholder (`Masker.token`), None when unsalted."""
    if len(raw) != len(masked):
        raise ValueError("raw and masked must have the same length")
    ng = groups or near_groups(raw, dedup_spec, template_cache)
    # the masker is deterministic, so identical raw texts have one masked text; take the first seen
    item_masked: list[str | None] = [None] * len(ng.items)
    for k, i in enumerate(ng.item_of.tolist()):
        if item_masked[i] is None:
            item_masked[i] = "" if masked[k] is None else str(masked[k])
    spans = [spans_from_masked(r, m) for r, m in zip(ng.items, item_masked)]
    before = measure(ng, item_masked, spans)
    carried = [_carried(r, s) if s is not None else {} for r, s in zip(ng.items, spans)]
    members = ng.members()
    # phrase -> type masked anywhere in a group; spread along near-identical groups until nothing changes
    gmask: list[dict[str, str]] = [{} for _ in range(ng.n_groups)]
    for i, c in enumerate(carried):
        g = gmask[int(ng.group_of[i])]
        for k, t in c.items():
            g.setdefault(k, t)
    # phrases present in a group at all (masked or clear), so a phrase travels only through tickets that hold it
    neighbours: dict[int, list[int]] = defaultdict(list)
    for a, b in ng.pairs:
        neighbours[a].append(b)
        neighbours[b].append(a)
    present_cache: dict[tuple[int, str], bool] = {}

    def present(g: int, key: str) -> bool:
        hit = present_cache.get((g, key))
        if hit is None:
            rx = _phrase_re(key)
            hit = any(rx.search(ng.items[i]) for i in members[g] if spans[i] is not None)
            present_cache[(g, key)] = hit
        return hit

    todo = [g for g in range(ng.n_groups) if gmask[g] and g in neighbours]
    while todo:
        g = todo.pop()
        for h in neighbours[g]:
            grew = False
            for k, t in gmask[g].items():
                if k not in gmask[h] and present(h, k):
                    gmask[h][k] = t
                    grew = True
            if grew:
                todo.append(h)
    new_items = list(item_masked)
    new_spans = list(spans)
    added_items: list[Counter] = [Counter() for _ in ng.items]
    for i, text in enumerate(ng.items):
        sp = spans[i]
        if sp is None:  # cannot be aligned: left as the masker returned it (counted as unaligned)
            continue
        want = gmask[int(ng.group_of[i])]
        add: list[Span] = []
        for k, t in sorted(want.items(), key=lambda kv: -len(kv[0])):  # longer phrases first
            for s, e in clear_occurrences(text, sp + add, k):
                add.append((t, s, e))
        if add:
            new_items[i] = _render(text, sp, item_masked[i], add, token)
            new_spans[i] = sorted(sp + add, key=lambda x: x[1])
            added_items[i] = Counter(t for t, _, _ in add)
    after = measure(ng, new_items, new_spans)
    return Harmonised([new_items[i] for i in ng.item_of.tolist()],
                      [added_items[i] for i in ng.item_of.tolist()], before, after)
