"""Stored dedup templates (`dedup.normalize_template`) of texts already seen, so a refresh normalises only
the texts it has not seen.

One folder per use (the masking stage keeps its raw-text templates in the raw zone, next to the mask cache;
the splits stage keeps masked-text templates under `index/`), then one sub-folder per hash of the
`pipeline/data/dedup.py` source, so a change to the normalisation starts an empty cache. Entries are
(128-bit BLAKE2b hash of the text, template) in `part-NNNNN.parquet` files, each written to a temporary
file and renamed. A part that cannot be read is ignored: its texts are normalised again."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Sequence

import pandas as pd

_KEY: str | None = None


def _code_key() -> str:
    global _KEY
    if _KEY is None:
        from pipeline.data import dedup

        _KEY = hashlib.sha256(Path(dedup.__file__).read_bytes()).hexdigest()[:16]
    return _KEY


def templates(texts: Sequence[str], cache_dir: Path | str | None) -> list[str]:
    """`normalize_template` of each text, from the cache where stored; new entries are stored."""
    from pipeline.data.dedup import normalize_template

    if cache_dir is None:
        return [normalize_template(t) for t in texts]
    root = Path(cache_dir) / _code_key()
    hashes = [hashlib.blake2b(str(t).encode(), digest_size=16).hexdigest() for t in texts]
    known: dict[str, str] = {}
    parts = sorted(root.glob("part-*.parquet")) if root.is_dir() else []
    for p in parts:
        try:
            df = pd.read_parquet(p, columns=["h", "template"])
        except Exception:  # noqa: BLE001 - a damaged part costs a recomputation, never a wrong template
            continue
        known.update(zip(df["h"], df["template"]))
    new: dict[str, str] = {}
    for h, t in zip(hashes, texts):
        if h not in known and h not in new:
            new[h] = normalize_template(t)
    if new:
        known.update(new)
        try:
            root.mkdir(parents=True, exist_ok=True)
            n = 1 + max([int(p.stem.split("-")[1]) for p in parts], default=-1)
            tmp = root / f".part-{n:05d}.parquet.tmp"
            pd.DataFrame({"h": list(new), "template": list(new.values())}).to_parquet(tmp, index=False)
            os.replace(tmp, root / f"part-{n:05d}.parquet")
        except OSError:  # a full disk costs the next run the normalisation, never this run's answer
            pass
    return [known[h] for h in hashes]
