"""Append-only Parquet parts keyed by a text hash: the store behind the caches a refresh reads
(masking results, leak-guard findings, normalised templates; docs/refresh.md).

A folder holds `part-NNNNN.parquet` files with a column `h` (the hash) and the cached values. Parts are
written to a hidden temporary file and renamed, so a killed run leaves whole parts only; a part that
cannot be read is skipped (its entries are computed again); a part that cannot be written (a full disk)
costs the next run the computation, never this run's answer.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd


def _parts(root: Path) -> list[Path]:
    return sorted(root.glob("part-*.parquet")) if root.is_dir() else []


def read_parts(root: Path | str, columns: list[str]) -> dict[str, tuple]:
    """hash -> tuple of `columns` over every readable part under `root`."""
    known: dict[str, tuple] = {}
    for p in _parts(Path(root)):
        try:
            df = pd.read_parquet(p, columns=["h", *columns])
        except Exception:  # noqa: BLE001 - a damaged part costs a recomputation, never a wrong value
            continue
        known.update(zip(df["h"], zip(*(df[c] for c in columns))))
    return known


def append_part(root: Path | str, columns: list[str], rows: dict[str, tuple]) -> bool:
    """Write `rows` (hash -> tuple of `columns`) as the next part; False when it could not be written."""
    if not rows:
        return True
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        n = 1 + max((int(p.stem.split("-")[1]) for p in _parts(root) if p.stem.split("-")[1].isdigit()),
                    default=-1)
        values = list(rows.values())
        df = pd.DataFrame({"h": list(rows), **{c: [v[i] for v in values] for i, c in enumerate(columns)}})
        tmp = root / f".part-{n:05d}.parquet.tmp-{os.getpid()}"
        df.to_parquet(tmp, index=False)
        os.replace(tmp, root / f"part-{n:05d}.parquet")
        return True
    except OSError:
        return False
