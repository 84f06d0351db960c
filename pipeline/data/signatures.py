"""Compact near-duplicate primitives on numpy arrays: shingle hashes, MinHash signatures, band keys,
one-edit keys, candidate pairs and exact set intersections.

Dedup used to hold one Python set of shingle strings per template and a dict of deletion hashes
(about 21 KB per ticket). Here a template's shingles are one sorted run of 64-bit hashes in a flat
array with row offsets (CSR layout), signatures are a uint32 matrix computed by rensa from those
hashes, and every grouping (LSH bands, one-edit keys) is a sort of a key array, not a dict. All hashes
are stable across processes (no Python `hash`), so signatures and keys can be persisted and extended.

Shingle hashes are 64-bit (two different shingles share one with probability ~2^-64); intersections
compare their top 40 bits inside one pair (a false match ~1e-8 per pair of long tickets), so the
Jaccard computed on them is the exact shingle Jaccard for every practical purpose.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

_U = np.uint64
_P = _U(0x100000001B3)  # FNV prime: odd, spreads code points over the word
_M1, _M2 = _U(0xBF58476D1CE4E5B9), _U(0x94D049BB133111EB)


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on a uint64 array (wrapping arithmetic)."""
    x = np.asarray(x, dtype=_U)
    with np.errstate(over="ignore"):
        x = x ^ (x >> _U(30))
        x = x * _M1
        x = x ^ (x >> _U(27))
        x = x * _M2
        return x ^ (x >> _U(31))


def _codepoints(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    lens = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    raw = "".join(texts).encode("utf-32-le", errors="surrogatepass")
    cps = np.frombuffer(raw, dtype=np.uint32).astype(_U)
    starts = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(lens, out=starts[1:])
    return np.concatenate([cps, np.zeros(1, _U)]), starts


def ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated aranges [s, s+l) for each (s, l)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(lengths)
    base = np.repeat(np.asarray(starts, dtype=np.int64) - (ends - lengths), lengths)
    return base + np.arange(total, dtype=np.int64)


def shingle_hashes(templates: Sequence[str], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Character n-gram hashes per template: (flat uint64, offsets int64 of len m+1).

    Each row is sorted and unique (a set). A template of n characters or fewer is one shingle, the
    empty template included, as `dedup._char_ngrams` does.
    """
    m = len(templates)
    if m == 0:
        return np.zeros(0, _U), np.zeros(1, np.int64)
    cps, starts = _codepoints(templates)
    lens = np.diff(starts)
    nwin = np.where(lens > n, lens - n + 1, 1)
    row = np.repeat(np.arange(m, dtype=np.int64), nwin)
    pos = ranges(starts[:-1], nwin)
    wlen = np.minimum(lens, n)[row]
    h = np.zeros(len(pos), _U)
    last = len(cps) - 1
    with np.errstate(over="ignore"):
        for k in range(n):
            ok = k < wlen
            h = np.where(ok, h * _P + cps[np.minimum(pos + k, last)], h)
    h = mix64(h ^ (wlen.astype(_U) << _U(56)))
    order = np.lexsort((h, row))
    h, row = h[order], row[order]
    keep = np.ones(len(h), dtype=bool)
    keep[1:] = (h[1:] != h[:-1]) | (row[1:] != row[:-1])
    h, row = h[keep], row[keep]
    offsets = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(np.bincount(row, minlength=m), out=offsets[1:])
    return h, offsets


def signatures(flat: np.ndarray, offsets: np.ndarray, num_perm: int, seed: int, backend: str = "rensa",
               batch: int = 20_000) -> np.ndarray:
    """MinHash signatures (m x num_perm, uint32) of the shingle-hash rows."""
    m = len(offsets) - 1
    out = np.zeros((m, num_perm), dtype=np.uint32)
    for lo in range(0, m, batch):
        hi = min(m, lo + batch)
        a, b = int(offsets[lo]), int(offsets[hi])
        if backend == "rensa":
            from rensa import RMinHash

            mat = RMinHash.digest_matrix_from_flat_token_hashes(
                np.ascontiguousarray(flat[a:b]), (offsets[lo : hi + 1] - a).astype(_U), num_perm, seed)
            out[lo:hi] = np.asarray(mat.to_rows(), dtype=np.uint32)
        else:  # datasketch: same permutation family as its MinHash, fed the 64-bit hashes folded to 32 bits
            from datasketch import MinHash

            for i in range(lo, hi):
                mh = MinHash(num_perm=num_perm, seed=seed, hashfunc=int)
                mh.update_batch((flat[offsets[i] : offsets[i + 1]] & _U(0xFFFFFFFF)).tolist())
                out[i] = mh.hashvalues.astype(np.uint32)
    return out


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """LSH band keys (m x bands, uint64): one hash per band of `rows` signature values."""
    m = sig.shape[0]
    keys = np.zeros((m, bands), dtype=_U)
    s = sig.astype(_U)
    with np.errstate(over="ignore"):
        for b in range(bands):
            h = np.full(m, _U(b + 1), dtype=_U)
            for r in range(rows):
                h = mix64(h * _P + s[:, b * rows + r])
            keys[:, b] = h
    return keys


def deletion_keys(templates: Sequence[str], eligible: np.ndarray, batch: int = 50_000) -> tuple[np.ndarray, np.ndarray]:
    """One-edit keys: (key uint64, row int64) for each eligible template and each one-character deletion of it.

    Two strings one edit apart (insert, delete, substitute, swap) share a key: the shorter string
    itself, or both with the edited character deleted. Computed with rolling hashes, no strings built.
    """
    idx = np.flatnonzero(eligible)
    keys_out, rows_out = [], []
    for lo in range(0, len(idx), batch):
        part = idx[lo : lo + batch]
        texts = [templates[i] for i in part]
        cps, starts = _codepoints(texts)
        lens = np.diff(starts)
        width = int(lens.max()) if len(lens) else 0
        # prefix hashes pre[i, k] = H(t[:k]); powers P^k
        pre = np.zeros((len(texts), width + 1), dtype=_U)
        powk = np.ones(width + 1, dtype=_U)
        with np.errstate(over="ignore"):
            for k in range(width):
                c = np.where(k < lens, cps[np.minimum(starts[:-1] + k, len(cps) - 1)], _U(0))
                pre[:, k + 1] = np.where(k < lens, pre[:, k] * _P + c, pre[:, k])
                powk[k + 1] = powk[k] * _P
            full = pre[np.arange(len(texts)), lens]
            keys = [mix64(full ^ (lens.astype(_U) << _U(56)))]
            rows = [part]
            for k in range(width):
                ok = k < lens
                tail = np.where(ok, lens - 1 - k, 0)
                pk = powk[tail]
                suffix = full - pre[:, min(k + 1, width)] * pk
                h = pre[:, k] * pk + suffix
                keys.append(mix64(h[ok] ^ ((lens[ok] - 1).astype(_U) << _U(56))))
                rows.append(part[ok])
        keys_out.append(np.concatenate(keys))
        rows_out.append(np.concatenate(rows))
    if not keys_out:
        return np.zeros(0, _U), np.zeros(0, np.int64)
    return np.concatenate(keys_out), np.concatenate(rows_out).astype(np.int64)


def pairs_sharing_key(keys: np.ndarray, item: np.ndarray, is_new: np.ndarray | None = None) -> np.ndarray:
    """Distinct pairs (k x 2, a < b) of items that share a key, with at least one new item in each.

    `item` gives the item id of each key entry (an item may have many keys); `is_new` marks the
    entries whose item is new (default: all). Old x old pairs are never generated, so a refresh
    costs what its new items share, not what the history holds.
    """
    if len(keys) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if is_new is None:
        is_new = np.ones(len(keys), dtype=bool)
    order = np.argsort(keys, kind="stable")
    k, it, new = keys[order], item[order], is_new[order]
    first = np.r_[True, k[1:] != k[:-1]]
    gstart = np.flatnonzero(first)
    gsize = np.diff(np.r_[gstart, len(k)])
    gid = np.cumsum(first) - 1
    sel = np.flatnonzero(new & (gsize[gid] > 1))
    if len(sel) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    cnt = gsize[gid[sel]]
    left = np.repeat(sel, cnt)
    right = ranges(gstart[gid[sel]], cnt)
    a, b = it[left].astype(np.int64), it[right].astype(np.int64)
    # a new x new pair is generated from both ends: keep it once (a < b); new x old once from the new end
    keep = (a != b) & ~(new[right] & (a > b))
    a, b = a[keep], b[keep]
    pairs = np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1)
    return np.unique(pairs, axis=0) if len(pairs) else pairs


def intersections(flat_a: np.ndarray, off_a: np.ndarray, ia: np.ndarray,
                  flat_b: np.ndarray, off_b: np.ndarray, ib: np.ndarray, chunk: int = 10_000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(|A & B|, |A|, |B|) for row pairs (ia[k] of a, ib[k] of b); rows are sorted unique hash runs."""
    n = len(ia)
    inter = np.zeros(n, dtype=np.int64)
    la = (off_a[ia + 1] - off_a[ia]).astype(np.int64)
    lb = (off_b[ib + 1] - off_b[ib]).astype(np.int64)
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        sa, sb = la[lo:hi], lb[lo:hi]
        vals = np.concatenate([flat_a[ranges(off_a[ia[lo:hi]], sa)], flat_b[ranges(off_b[ib[lo:hi]], sb)]])
        pid = np.concatenate([np.repeat(np.arange(hi - lo, dtype=np.uint64), sa),
                              np.repeat(np.arange(hi - lo, dtype=np.uint64), sb)])
        # one sort key: pair id in the top 24 bits, the shingle hash's top 40 bits below it (two different
        # shingles of one pair share 40 bits with probability ~|A||B| / 2^40, about 1e-8 for long tickets)
        key = np.sort((pid << _U(40)) | (vals >> _U(24)))
        dup = key[1:] == key[:-1]
        inter[lo:hi] = np.bincount((key[1:][dup] >> _U(40)).astype(np.int64), minlength=hi - lo)
    return inter, la, lb
