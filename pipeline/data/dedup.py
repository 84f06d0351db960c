"""Exact and near-duplicate detection for masked tickets.

Exact duplicates share a normalised text (case, Unicode form, whitespace and end punctuation
ignored). Near duplicates and templated tickets share most character n-grams of a *template* text
(placeholders reduced to their type; amounts, references, upper-case merchant names and numbers
collapsed; greeting and politeness fillers dropped) and are found with MinHash LSH (signatures by rensa by
default, datasketch as an alternative backend), then verified exactly so the LSH never contributes
a false positive. Everything per item is a compact numpy array (`pipeline.data.signatures`): 64-bit
shingle hashes, uint32 signatures reduced to band keys, one-edit keys; candidates come from sorting
keys, so memory grows by about a kilobyte per template, not by Python sets of strings. A pair is near if its Jaccard is >= the threshold, or (short texts) the two
templates are one typing slip apart, or (optional, `DedupSpec.containment`) the shorter text is
contained in the longer. Verified pairs are joined by union-find with a size cap so that
chained similarity (a~b~c~...) cannot swallow a whole class. Cluster ids are derived from content,
so a cluster keeps its id when unrelated tickets are added.

The clusters feed the label checks (conflicting labels inside a cluster) and the template-aware
split (whole clusters are assigned to one split; `cross_pairs` is the blocking leak check).
"""
from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from typing import Sequence

import numpy as np
import pandas as pd

from pipeline.config import DedupSpec
from pipeline.data import signatures as sig

__all__ = [
    "normalize_text",
    "normalize_template",
    "shingles",
    "lsh_params",
    "NearDupIndex",
    "find_clusters",
    "cluster_label_conflicts",
    "cross_pairs",
]

# --------------------------------------------------------------------------------------------
# normalisation
# --------------------------------------------------------------------------------------------
_WS = re.compile(r"\s+")
# Masking placeholders: <PERSON_1>, <PHONE_NUMBER_2>, <KZ_IIN_1>, salted <PERSON_1a2b3c4d>, bare <IBAN_CODE>.
# The type is upper case; the token is digits or lower-case hex, so <CREDIT_CARD_1> gives CREDIT_CARD.
_PLACEHOLDER = re.compile(r"<([A-Z][A-Z0-9]*(?:_[A-Z][A-Z0-9]*)*?)(?:_(?:[0-9]+|[0-9a-f]{4,}))?>")
# Mixed letter+digit tokens of 6+ characters (order numbers, references, masked ids) -> <id>.
_ALNUM_ID = re.compile(r"\b(?=[A-Za-z0-9]*[0-9])(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{6,}\b")
# IBAN-shaped references printed in groups ("KZ39 070K ZT11 1650 6928", "GB80 MIDL 5639 5840 7839 06").
_SPACED_ID = re.compile(r"\b[A-Z]{2}[0-9]{2}(?: [A-Z0-9]{2,6}){2,}\b")
# Amounts with their currency ("41200.00 KZT", "$1,234.56", "5 €") -> <amount>: system notifications
# print the same message in several currencies. Three capitals after a number are a currency code.
_CUR = r"[$€£¥₽₸]"
_AMOUNT = re.compile(rf"{_CUR}\s?\d+(?:[.,]\d+)*|\b\d+(?:[.,]\d+)*\s?(?:{_CUR}|[A-Z]{{3}}\b)")
# Upper-case names: merchant descriptors on card statements ("MAGNUM ALMATY", "APPLE.COM/BILL",
# "CHOCOFOOD") -> <name>. A run of 2+ all-caps words, or one all-caps token of 6+ characters; short
# single acronyms (ATM, PIN, USD, SWIFT) carry the request and stay. Not applied to shouted texts.
_CAPS_TOKEN = r"[A-Z][A-Z0-9&'./-]*[A-Z0-9]"
_CAPS_NAME = re.compile(rf"(?<![\w<]){_CAPS_TOKEN}(?: {_CAPS_TOKEN})+(?![\w>])|(?<![\w<])[A-Z][A-Z0-9&'./-]{{4,}}[A-Z0-9](?![\w>])")
# Amounts, dates, times, card fragments: a digit run with internal separators -> one 0.
_NUMBER = re.compile(r"\d+(?:[.,:/\-]\d+)*")
# Greetings, closings and politeness fillers carry no request; rewordings add or drop them at will
# ("Where do I go for a refund? ASAP"), and in a short ticket they are a third of the shingles.
# A short hand-written list on purpose: a corpus-frequency stop list (IDF) would also strip the
# frequent words that carry the intent in a support corpus ("card", "transfer", "top up"), and a
# general stop-word list drops negations ("not", "can't") that flip the request.
_GREETING = re.compile(
    r"^(?:(?:hi|hello|hey|dear|greetings|good (?:morning|afternoon|evening|day)|excuse me)(?: there| team| all)?"
    r"\b[\s,.!:;-]*)+"
)
_FILLER = re.compile(
    r"\b(?:(?:please|pls|plz) help|help (?:please|pls|plz)|please|pls|plz|asap|"
    r"thank(?:s| you| u)(?: (?:so much|very much|a lot|in advance))?|thx|ty|(?:kind |best )?regards|cheers)\b"
)
# Chat shorthand that rewordings swap in and out ("do u offer", "ur app").
_SHORTHAND = {"u": "you", "ur": "your", "r": "are"}
_SHORTHAND_RE = re.compile(r"\b(?:u|ur|r)\b")
# After fillers are cut: no space before a stop or comma, and a run of them becomes its first ("??", "? !").
_PUNCT_RUN = re.compile(r"\s*([,.!?;:])(?:\s*[,.!?;:])*")


def _strip_end_punct(s: str) -> str:
    # str.strip cannot take "all Unicode punctuation"; walk the ends by category instead.
    i, j = 0, len(s)
    while i < j and (unicodedata.category(s[i]).startswith("P") or s[i].isspace()):
        i += 1
    while j > i and (unicodedata.category(s[j - 1]).startswith("P") or s[j - 1].isspace()):
        j -= 1
    return s[i:j]


def normalize_text(text: str) -> str:
    """Key for exact duplicates: NFKC, casefold, whitespace collapsed, punctuation stripped at the ends."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return ""
    s = unicodedata.normalize("NFKC", str(text)).casefold()
    s = _WS.sub(" ", s).strip()
    return _strip_end_punct(s)


def _shouted(s: str) -> bool:
    upper = sum(map(str.isupper, s))
    return upper > 8 and upper > sum(map(str.islower, s))


def normalize_template(text: str) -> str:
    """Key for templates and near duplicates.

    Placeholders to their type, amounts with a currency to <amount>, references to <id>, upper-case
    merchant names to <name>, then `normalize_text`, other numbers to 0, greeting/politeness fillers
    dropped and punctuation runs collapsed. Idempotent.
    """
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return ""
    s = _PLACEHOLDER.sub(lambda m: f"<{m.group(1).lower()}>", unicodedata.normalize("NFKC", str(text)))
    s = _WS.sub(" ", s)
    s = _AMOUNT.sub("<amount>", s)
    s = _SPACED_ID.sub("<id>", s)
    s = _ALNUM_ID.sub("<id>", s)
    if not _shouted(s):
        s = _CAPS_NAME.sub("<name>", s)
    s = normalize_text(s)
    s = _NUMBER.sub("0", s)
    s = _GREETING.sub("", s)
    s = _FILLER.sub(" ", s)
    s = _SHORTHAND_RE.sub(lambda m: _SHORTHAND[m.group(0)], s)
    s = _PUNCT_RUN.sub(r"\1", s)
    s = _WS.sub(" ", s).strip()
    return _strip_end_punct(s)


def _char_ngrams(s: str, n: int) -> set[str]:
    if len(s) <= n:
        return {s}
    return {s[i : i + n] for i in range(len(s) - n + 1)}


def shingles(text: str, n: int) -> set[str]:
    """Character n-grams of `normalize_template(text)` (a text shorter than n is one shingle)."""
    return _char_ngrams(normalize_template(text), n)


def _jaccard(a: set, b: set) -> float:
    if not a and not b:
        return 1.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


def lsh_params(num_perm: int, threshold: float, bands: int | None = None, min_recall: float = 0.999) -> tuple[int, int]:
    """(bands, rows) for MinHash LSH.

    A pair with Jaccard J becomes a candidate with probability 1 - (1 - J^r)^b. Candidates are
    verified exactly afterwards, so missed pairs cost quality while extra candidates only cost time:
    take the largest r (fewest candidates) that still catches a pair at the threshold with
    probability >= min_recall. The index then uses b*r <= num_perm permutations.
    """
    if bands is not None:
        return bands, max(1, num_perm // bands)
    best = (num_perm, 1)
    for r in range(1, num_perm + 1):
        b = num_perm // r
        if b < 1:
            break
        if 1.0 - (1.0 - threshold**r) ** b >= min_recall:
            best = (b, r)
    return best


def _one_edit(a: str, b: str) -> bool:
    """True if a and b differ by one typing slip inside a word of 4+ characters.

    A slip is one insertion, deletion, substitution or swap of neighbouring characters. In a 2-3
    letter word one edit is usually another word with another meaning ("uk"/"us", "pin"/"pen").
    """
    if len(a) < len(b):
        a, b = b, a
    if len(a) - len(b) > 1 or a == b:
        return False
    i = 0
    while i < len(b) and a[i] == b[i]:
        i += 1
    if len(a) != len(b):
        ok = a[i + 1 :] == b[i:]
    else:
        ok = a[i + 1 :] == b[i + 1 :] or (
            i + 1 < len(a) and a[i] == b[i + 1] and a[i + 1] == b[i] and a[i + 2 :] == b[i + 2 :])
    if not ok:
        return False
    wa, wb = a.split(), b.split()
    if len(wa) != len(wb):  # a space added or dropped: "top up" / "topup"
        return True
    diff = [(x, y) for x, y in zip(wa, wb) if x != y]
    return len(diff) == 1 and min(len(diff[0][0]), len(diff[0][1])) >= 4


# --------------------------------------------------------------------------------------------
# MinHash LSH index
# --------------------------------------------------------------------------------------------
class NearDupIndex:
    """MinHash LSH over template shingles plus a one-edit index over short templates; every
    candidate is verified exactly (Jaccard of the shingle sets, `_one_edit`).

    Compact: per item one sorted run of 64-bit shingle hashes, one row of LSH band keys and its
    one-edit keys, all numpy arrays (`pipeline.data.signatures`); candidates are found by sorting
    keys, not through per-item Python objects. Keys are the caller's strings; items are numbered
    in insertion order.
    """

    def __init__(self, spec: DedupSpec, threshold: float | None = None):
        self.spec = spec
        self.threshold = spec.threshold if threshold is None else float(threshold)
        self.containment = spec.containment
        # LSH must also surface the containment pairs, whose Jaccard can be as low as
        # containment_min_jaccard; every candidate is verified exactly, so a lower LSH threshold only
        # costs candidates, never precision.
        self.candidate_threshold = self.threshold
        if self.containment is not None:
            self.candidate_threshold = min(self.threshold, spec.containment_min_jaccard)
        self.bands, self.rows = lsh_params(spec.num_perm, self.candidate_threshold, spec.lsh_bands)
        self.num_perm = self.bands * self.rows
        self.backend = spec.backend
        if self.backend not in ("rensa", "datasketch"):  # pragma: no cover - pydantic restricts the value
            raise ValueError(f"unknown MinHash backend {self.backend!r}")
        self.keys: list[str] = []
        self.templates: list[str] = []
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self._cache: tuple | None = None

    def __len__(self) -> int:
        return len(self.keys)

    # -- building --------------------------------------------------------------------------
    def add(self, keys: Sequence[str], texts: Sequence[str]) -> None:
        if len(keys) != len(texts):
            raise ValueError("keys and texts must have the same length")
        self.add_templates([str(k) for k in keys], [normalize_template(t) for t in texts])

    def typo_eligible(self, templates: Sequence[str]) -> np.ndarray:
        lens = np.fromiter((len(t) for t in templates), dtype=np.int64, count=len(templates))
        if self.spec.typo_edits == 0:
            return np.zeros(len(templates), dtype=bool)
        return (lens >= self.spec.typo_min_chars) & (lens <= self.spec.typo_max_chars)

    def encode(self, templates: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(shingle hashes, offsets, band keys, one-edit keys, their rows) of template texts."""
        flat, off = sig.shingle_hashes(templates, self.spec.ngram)
        bk = sig.band_keys(sig.signatures(flat, off, self.num_perm, self.spec.seed, self.backend), self.bands, self.rows)
        tk, tr = sig.deletion_keys(templates, self.typo_eligible(templates))
        return flat, off, bk, tk, tr

    def add_templates(self, keys: list[str], templates: list[str], encoded: tuple | None = None) -> None:
        """Index template texts (already normalised) under the given keys."""
        self._parts.append(encoded if encoded is not None else self.encode(templates))
        self.keys.extend(keys)
        self.templates.extend(templates)
        self._cache = None

    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if self._cache is None:
            flats, offs, bks, tks, trs, start, base = [], [np.zeros(1, np.int64)], [], [], [], 0, 0
            for flat, off, bk, tk, tr in self._parts:
                flats.append(flat)
                offs.append(off[1:] + base)
                bks.append(bk)
                tks.append(tk)
                trs.append(tr + start)
                start += len(off) - 1
                base += int(off[-1])
            cat = lambda xs, dt: np.concatenate(xs) if xs else np.zeros(0, dt)  # noqa: E731
            self._cache = (cat(flats, np.uint64), np.concatenate(offs),
                           np.concatenate(bks) if bks else np.zeros((0, self.bands), np.uint64),
                           cat(tks, np.uint64), cat(trs, np.int64))
            self._parts = [(self._cache[0], self._cache[1], self._cache[2], self._cache[3], self._cache[4])]
        return self._cache

    # -- verification ----------------------------------------------------------------------
    def is_near(self, a: set[str], b: set[str]) -> tuple[bool, float]:
        """(near duplicate?, Jaccard) of two shingle sets, exactly.

        Near: Jaccard >= threshold, or the shorter set lies in the longer one (containment >=
        spec.containment) with at least spec.containment_min_shingles shingles and Jaccard >=
        spec.containment_min_jaccard.
        """
        ok, j = self.near(np.array([len(a & b)]), np.array([len(a)]), np.array([len(b)]))
        return bool(ok[0]), float(j[0])

    def near(self, inter: np.ndarray, la: np.ndarray, lb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vectorised `is_near` on intersection and set sizes."""
        union = la + lb - inter
        j = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
        ok = j >= self.threshold
        if self.containment is not None:
            short = np.minimum(la, lb)
            ok |= ((short >= self.spec.containment_min_shingles) & (j >= self.spec.containment_min_jaccard)
                   & (inter >= self.containment * short))
        return ok, j

    def verify(self, lsh_pairs: np.ndarray, typo_pairs: np.ndarray, templ_a: Sequence[str], templ_b: Sequence[str],
               enc_a: tuple, enc_b: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Verified pairs (a, b, jaccard) from LSH candidates and one-edit candidates (a in A, b in B)."""
        pairs = np.unique(np.concatenate([lsh_pairs, typo_pairs]), axis=0) if len(lsh_pairs) + len(typo_pairs) \
            else np.zeros((0, 2), np.int64)
        if len(pairs) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
        a, b = pairs[:, 0], pairs[:, 1]
        inter, la, lb = sig.intersections(enc_a[0], enc_a[1], a, enc_b[0], enc_b[1], b)
        ok, j = self.near(inter, la, lb)
        code = a * (int(b.max()) + 1) + b
        in_lsh = np.isin(code, lsh_pairs[:, 0] * (int(b.max()) + 1) + lsh_pairs[:, 1]) if len(lsh_pairs) else \
            np.zeros(len(a), bool)
        hit = ok & in_lsh
        if len(typo_pairs):
            is_typo = np.isin(code, typo_pairs[:, 0] * (int(b.max()) + 1) + typo_pairs[:, 1])
            for k in np.flatnonzero(is_typo & ~hit):
                hit[k] = _one_edit(templ_a[a[k]], templ_b[b[k]])
        return a[hit], b[hit], j[hit]

    # -- querying --------------------------------------------------------------------------
    def _candidates(self, bk_new: np.ndarray, tk_new: np.ndarray, tr_new: np.ndarray,
                    bk_old: np.ndarray, tk_old: np.ndarray, tr_old: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """LSH and one-edit candidate pairs (new item, old item) between a new and an old item set."""
        n_old = bk_old.shape[0]
        out = []
        for b in range(self.bands):
            keys = np.concatenate([bk_old[:, b], bk_new[:, b]])
            items = np.arange(len(keys), dtype=np.int64)
            is_new = items >= n_old
            out.append(sig.pairs_sharing_key(keys, items, is_new))
        lsh = np.unique(np.concatenate(out), axis=0) if out else np.zeros((0, 2), np.int64)
        typo = sig.pairs_sharing_key(np.concatenate([tk_old, tk_new]), np.concatenate([tr_old, tr_new + n_old]),
                                     np.r_[np.zeros(len(tk_old), bool), np.ones(len(tk_new), bool)])

        def split(p: np.ndarray) -> np.ndarray:  # (old, new) -> (new local, old); new x new dropped
            p = p[(p[:, 0] < n_old) & (p[:, 1] >= n_old)]
            return np.stack([p[:, 1] - n_old, p[:, 0]], axis=1)

        return split(lsh), split(typo)

    def query_scored(self, texts: Sequence[str]) -> list[list[tuple[str, float]]]:
        """Per text: (key, exact Jaccard) of indexed near duplicates (see `is_near`, and one edit apart)."""
        templ = [normalize_template(t) for t in texts]
        if not templ:
            return []
        enc = self.encode(templ)
        flat, off, bk, tk, tr = self._arrays()
        lsh, typo = self._candidates(enc[2], enc[3], enc[4], bk, tk, tr)
        qa, ib, j = self.verify(lsh, typo, templ, self.templates, enc, (flat, off))
        out: list[list[tuple[str, float]]] = [[] for _ in templ]
        for q, c, jj in sorted(zip(qa.tolist(), ib.tolist(), j.tolist())):
            out[q].append((self.keys[c], jj))
        return out

    def query(self, texts: Sequence[str]) -> list[list[str]]:
        """Per text: keys of indexed near duplicates (exact Jaccard >= threshold, or containment)."""
        return [[k for k, _ in row] for row in self.query_scored(texts)]

    def self_pairs(self, progress=None) -> list[tuple[int, int, float]]:
        """Verified pairs (i < j, jaccard) among the indexed items, by internal position."""
        flat, off, bk, tk, tr = self._arrays()
        n = len(self.templates)
        lsh = []
        for b in range(self.bands):  # progress in templates: the bands, then the verification, reach n
            lsh.append(sig.pairs_sharing_key(bk[:, b], np.arange(bk.shape[0], dtype=np.int64)))
            if progress is not None:
                progress(n * (b + 1) // (self.bands + 1), n)
        lsh = np.unique(np.concatenate(lsh), axis=0) if lsh else np.zeros((0, 2), np.int64)
        typo = sig.pairs_sharing_key(tk, tr)
        enc = (flat, off)
        a, b, j = self.verify(lsh, typo, self.templates, self.templates, enc, enc)
        if progress is not None:
            progress(n, n)
        return list(zip(a.tolist(), b.tolist(), j.tolist()))

# --------------------------------------------------------------------------------------------
# clustering
# --------------------------------------------------------------------------------------------
def _sha(s: str) -> str:
    return hashlib.sha1(s.encode("utf-8")).hexdigest()[:16]


class _CappedUnionFind:
    # A size-capped union-find is a few lines; no library in the stack offers the cap.
    def __init__(self, n: int, cap: int):
        self.parent = list(range(n))
        self.size = [1] * n
        self.cap = cap
        self.refused = 0

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: int, b: int) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        if self.size[ra] + self.size[rb] > self.cap:
            self.refused += 1
            return False
        if ra > rb:  # smaller index becomes root: deterministic
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]
        return True


def cluster_templates(nodes: list[str], pairs: Sequence[tuple[int, int, float]], cap: int,
                      uf: "_CappedUnionFind | None" = None) -> tuple[np.ndarray, "_CappedUnionFind"]:
    """Root per node after merging verified pairs strongest first under the size cap."""
    pairs = sorted(pairs, key=lambda p: (-p[2], p[0], p[1]))  # strongest links first, ties by position
    uf = uf or _CappedUnionFind(len(nodes), cap)
    for a, b, _ in pairs:
        uf.union(a, b)
    return np.array([uf.find(i) for i in range(len(nodes))], dtype=np.int64), uf


def find_clusters(df: pd.DataFrame, spec: DedupSpec, progress=None) -> tuple[pd.DataFrame, dict]:
    """Exact groups and capped near-duplicate/template clusters, one row per ticket.

    Returns (frame, stats). The frame has ticket_id, exact_group, template_key, cluster_id,
    cluster_size (rows), cluster_templates (distinct template texts), is_representative, dup_kind:
    'unique' (alone in its cluster), 'exact' (the cluster is one exact group), 'near' (the cluster
    joins several exact groups: rewordings or templated tickets).

    The size cap counts distinct template texts, not rows: identical templates are never separated
    (that would be a guaranteed leak), so a template used by 40 tickets is one cluster of 40 rows.
    Verified pairs are merged strongest first; a merge whose union would exceed
    `spec.max_cluster_size` templates is refused and counted in stats['capped_merges'].
    """
    if not df["ticket_id"].is_unique:
        raise ValueError("ticket_id must be unique")
    templ = [normalize_template(t) for t in df["text"]]
    nodes = sorted(set(templ))  # sorted: internal numbering does not depend on row order
    index = NearDupIndex(spec)
    index.add_templates([str(i) for i in range(len(nodes))], nodes)
    pairs = index.self_pairs(progress=progress)
    root, uf = cluster_templates(nodes, pairs, spec.max_cluster_size)
    # nodes are sorted, so the root (smallest index) is the smallest template text of its cluster
    node_cluster = pd.DataFrame({"template": nodes, "cluster_id": ["c_" + _sha(nodes[r]) for r in root]})
    node_cluster["cluster_templates"] = node_cluster.groupby("cluster_id")["template"].transform("size")
    extra = {"n_verified_pairs": int(len(pairs)), "capped_merges": int(uf.refused),
             "lsh": {"backend": spec.backend, "bands": index.bands, "rows": index.rows, "num_perm": index.num_perm}}
    return clusters_frame(df, templ, node_cluster, extra)


def ticket_keys(texts: Sequence[str]) -> pd.DataFrame:
    """template, exact_group and template_key of each text (the per-ticket part of dedup)."""
    templ = [normalize_template(t) for t in texts]
    return pd.DataFrame({"template": templ, "exact_group": ["e_" + _sha(normalize_text(t)) for t in texts],
                         "template_key": ["t_" + _sha(t) for t in templ]})


def clusters_frame(df: pd.DataFrame, templ: Sequence[str], node_cluster: pd.DataFrame, extra: dict,
                   keys: pd.DataFrame | None = None) -> tuple[pd.DataFrame, dict]:
    """One row per ticket from its template's cluster (template, cluster_id, cluster_templates), and the stats.

    `keys` (row-aligned exact_group and template_key) skips recomputing them when a caller has them."""
    ticket_id = df["ticket_id"].astype(str).to_numpy()
    nc = node_cluster.set_index("template")
    pos = nc.index.get_indexer(templ)
    if (pos < 0).any():
        raise ValueError("a ticket's template is missing from the cluster table")
    if keys is None:
        keys = pd.DataFrame({"exact_group": ["e_" + _sha(normalize_text(t)) for t in df["text"]],
                             "template_key": ["t_" + _sha(t) for t in templ]})
    out = pd.DataFrame(
        {
            "ticket_id": ticket_id,
            "exact_group": keys["exact_group"].to_numpy(),
            "template_key": keys["template_key"].to_numpy(),
            "cluster_id": nc["cluster_id"].to_numpy()[pos],
            "cluster_templates": nc["cluster_templates"].to_numpy()[pos].astype(int),
        }
    )
    out["cluster_size"] = out.groupby("cluster_id")["ticket_id"].transform("size").astype(int)
    groups_in_cluster = out.groupby("cluster_id")["exact_group"].transform("nunique")
    out["dup_kind"] = np.where(out["cluster_size"] == 1, "unique", np.where(groups_in_cluster == 1, "exact", "near"))

    # representative: earliest created_at, then smallest ticket_id
    order = pd.DataFrame({"i": np.arange(len(out)), "cluster_id": out["cluster_id"], "ticket_id": ticket_id})
    order["created_at"] = df["created_at"].to_numpy() if "created_at" in df else pd.NaT
    order = order.sort_values(["cluster_id", "created_at", "ticket_id"], na_position="last", kind="mergesort")
    rep = np.zeros(len(out), dtype=bool)
    rep[order.drop_duplicates("cluster_id")["i"].to_numpy()] = True
    out["is_representative"] = rep
    out = out[["ticket_id", "exact_group", "template_key", "cluster_id", "cluster_size", "cluster_templates",
               "is_representative", "dup_kind"]]

    exact_sizes = out.groupby("exact_group").size()
    cl = out.groupby("cluster_id").agg(rows=("ticket_id", "size"), groups=("exact_group", "nunique"),
                                       templates=("cluster_templates", "first"))
    near = cl[cl["groups"] > 1]
    sizes = cl["rows"]
    bins = [1, 2, 3, 5, 10, 25, 100, math.inf]
    hist = {}
    for lo, hi in zip(bins[:-1], bins[1:]):
        n = int(((sizes >= lo) & (sizes < hi)).sum())
        hist[f"{lo}" if hi == lo + 1 else (f"{lo}-{int(hi) - 1}" if hi != math.inf else f"{lo}+")] = n
    stats = {
        "n_tickets": int(len(out)),
        "n_exact_groups": int(len(exact_sizes)),
        "n_exact_groups_with_dups": int((exact_sizes > 1).sum()),
        "n_exact_dup_rows": int((exact_sizes - 1).sum()),
        "n_templates": int(len(pd.unique(np.asarray(templ, dtype=object)))),
        "n_clusters": int(len(cl)),
        "n_near_clusters": int(len(near)),
        "n_near_dup_rows": int((near["groups"] - 1).sum()),  # redundant rows beyond exact copies
        "largest_cluster": int(sizes.max()) if len(sizes) else 0,
        "largest_cluster_templates": int(cl["templates"].max()) if len(cl) else 0,
        "n_verified_pairs": extra["n_verified_pairs"],
        "capped_merges": extra["capped_merges"],
        "cluster_size_histogram": hist,
        "lsh": extra["lsh"],
        **{k: v for k, v in extra.items() if k not in ("n_verified_pairs", "capped_merges", "lsh")},
    }
    return out, stats

def cluster_label_conflicts(df: pd.DataFrame, label_col: str = "label") -> pd.DataFrame:
    """Exact groups, then clusters, whose members carry different labels.

    `df` needs ticket_id, exact_group, cluster_id, the label column and (optionally) operator_id.
    Rows with no label are ignored. A cluster is reported only if its disagreement is not already
    fully explained by one exact group (level 'exact' first, then 'cluster').
    Columns: level, group_id, cluster_id, labels, counts, ticket_ids, operators, n_operators.
    """
    if label_col not in df.columns and "label_raw" in df.columns:
        label_col = "label_raw"
    d = df[df[label_col].notna()].copy()
    if "operator_id" not in d.columns:
        d["operator_id"] = None
    rows = []
    for level, key in (("exact", "exact_group"), ("cluster", "cluster_id")):
        nlab = d.groupby(key)[label_col].nunique()
        for gid in sorted(nlab[nlab > 1].index):
            g = d[d[key] == gid].sort_values("ticket_id")
            if level == "cluster":
                # already reported as one exact group with the same members
                if g["exact_group"].nunique() == 1:
                    continue
            counts = g[label_col].value_counts()
            counts = counts.sort_index().sort_values(ascending=False, kind="mergesort")
            ops = sorted({str(o) for o in g["operator_id"].dropna()})
            rows.append(
                {
                    "level": level,
                    "group_id": gid,
                    "cluster_id": g["cluster_id"].iloc[0],
                    "labels": list(counts.index),
                    "counts": [int(c) for c in counts.to_numpy()],
                    "ticket_ids": list(g["ticket_id"].astype(str)),
                    "operators": ops,
                    "n_operators": len(ops),
                }
            )
    cols = ["level", "group_id", "cluster_id", "labels", "counts", "ticket_ids", "operators", "n_operators"]
    return pd.DataFrame(rows, columns=cols)


def cross_pairs(a: pd.DataFrame, b: pd.DataFrame, spec: DedupSpec, threshold: float | None = None) -> pd.DataFrame:
    """Near-duplicate pairs between two ticket sets: ticket_id_a, ticket_id_b, jaccard (exact, template).

    `a` is indexed, `b` queries it. Used by the blocking check that no near-duplicate straddles splits.
    """
    index = NearDupIndex(spec, threshold=threshold)
    index.add(a["ticket_id"].astype(str).tolist(), a["text"].tolist())
    hits = index.query_scored(b["text"].tolist())
    recs = [(ka, kb, j) for kb, row in zip(b["ticket_id"].astype(str), hits) for ka, j in row]
    out = pd.DataFrame(recs, columns=["ticket_id_a", "ticket_id_b", "jaccard"])
    return out.sort_values(["ticket_id_b", "ticket_id_a"], kind="mergesort").reset_index(drop=True)
