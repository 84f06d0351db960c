"""Immutable, content-addressed Parquet storage for every artifact the pipeline writes.

Layout under the warehouse root:

    raw/<artifact>/<version>/<part>.parquet        raw zone: the only place raw ticket text lives
    datasets/<artifact>/<version>/<part>.parquet   everything downstream of masking

A version id is a hash of the tables' content (row order included), so the same input and config
give the same version, byte for byte. A version folder is written to a temporary sibling and renamed
into place in one step: a run that dies halfway leaves no half-written version, and writing a version
that already exists is a no-op.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

RAW_ZONE = "raw"
CLEAN_ZONE = "datasets"


def content_hash(tables: dict[str, pd.DataFrame], extra: str = "") -> str:
    """A stable hash of named tables: schema, column order, row order and values."""
    h = hashlib.sha256(extra.encode())
    for name in sorted(tables):
        df = tables[name]
        h.update(name.encode())
        h.update("\x1f".join(f"{c}:{df[c].dtype}" for c in df.columns).encode())
        if len(df):
            # pandas' hash is seeded with a fixed key: stable across processes and machines
            h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]


def _write_table(df: pd.DataFrame, path: Path) -> None:
    table = pa.Table.from_pandas(df, preserve_index=False)
    # Strip pandas metadata that can vary (it embeds library versions) but keep the schema.
    table = table.replace_schema_metadata(None)
    pq.write_table(table, path, compression="zstd", use_dictionary=True, write_statistics=True)


def write_version(root: Path, zone: str, artifact: str, tables: dict[str, pd.DataFrame],
                  version: str | None = None) -> tuple[str, Path]:
    """Write tables as one immutable version; return (version, folder)."""
    version = version or content_hash(tables)
    folder = Path(root) / zone / artifact / version
    if folder.exists():
        return version, folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".tmp-{version}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        for name, df in tables.items():
            _write_table(df, tmp / f"{name}.parquet")
        try:
            os.rename(tmp, folder)
        except OSError:
            if not folder.exists():  # a concurrent writer won the race with the same content otherwise
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return version, folder


def read_version(root: Path, zone: str, artifact: str, version: str, part: str) -> pd.DataFrame:
    path = Path(root) / zone / artifact / version / f"{part}.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{artifact} version {version} has no part {part!r} at {path}")
    return pq.read_table(path).to_pandas()


def clean_stale_tmp(root: Path) -> int:
    """Remove temporary folders left by a run that was killed mid-write."""
    n = 0
    for zone in (RAW_ZONE, CLEAN_ZONE):
        for tmp in (Path(root) / zone).glob("*/.tmp-*"):
            shutil.rmtree(tmp, ignore_errors=True)
            n += 1
    return n
