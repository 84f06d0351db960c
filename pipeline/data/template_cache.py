"""Stored dedup templates (`dedup.normalize_template`) of texts already seen, so a refresh normalises only
the texts it has not seen.

One folder per use (the masking stage keeps its raw-text templates in the raw zone, next to the mask cache;
the splits stage keeps masked-text templates under `index/`), then one sub-folder per hash of the
`pipeline/data/dedup.py` source, so a change to the normalisation starts an empty cache. Entries are
(128-bit BLAKE2b hash of the text, template) in `part-NNNNN.parquet` files, each written to a temporary
file and renamed. A part that cannot be read is ignored: its texts are normalised again."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence


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
    from pipeline.hash_parts import append_part, read_parts

    root = Path(cache_dir) / _code_key()
    hashes = [hashlib.blake2b(str(t).encode(), digest_size=16).hexdigest() for t in texts]
    known = {h: v[0] for h, v in read_parts(root, ["template"]).items()}
    new: dict[str, str] = {}
    for h, t in zip(hashes, texts):
        if h not in known and h not in new:
            new[h] = normalize_template(t)
    known.update(new)
    append_part(root, ["template"], {h: (t,) for h, t in new.items()})
    return [known[h] for h in hashes]
