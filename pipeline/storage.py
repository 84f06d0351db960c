"""Immutable, content-addressed Parquet storage for every artifact the pipeline writes.

Layout under the warehouse root:

    raw/<artifact>/<version>/<part>.parquet        raw zone: the only place raw ticket text lives
    datasets/<artifact>/<version>/<part>.parquet   everything downstream of masking

A version id is a hash of the tables' content (row order included), so the same input and config
give the same version, byte for byte. A version folder is written to a temporary sibling and renamed
into place in one step: a run that dies halfway leaves no half-written version, and writing a version
that already exists is a no-op. A temporary folder carries its writer's PID, so the clean-up of a
later run removes only those whose writer is gone.

A full disk (ENOSPC, or a quota: EDQUOT) while writing raises `DiskFullError`, a one-line message
naming the folder and the fix; the temporary folder is removed first, so nothing is left half-written
and the next run, once space is freed, writes the version as a clean run would.
"""
from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.errors import UserError

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


class DiskFullError(UserError, OSError):
    """The disk filled up while a version was being written; nothing of it was kept."""


_FULL = (errno.ENOSPC, errno.EDQUOT)


def disk_full_message(where: Path | str, what: str) -> str:
    return (f"disk full while writing {what} under {where}: nothing was half-written; free space on that "
            f"disk (or move the warehouse) and run again")


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
    tmp = folder.parent / f".tmp-{version}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
        for name, df in tables.items():
            _write_table(df, tmp / f"{name}.parquet")
        _sync_dir(tmp)
        try:
            os.rename(tmp, folder)
        except OSError:
            if not folder.exists():  # a concurrent writer won the race with the same content otherwise
                raise
        _sync_dir(folder.parent)
    except OSError as exc:
        if exc.errno in _FULL or "No space left on device" in str(exc):
            shutil.rmtree(tmp, ignore_errors=True)
            raise DiskFullError(disk_full_message(folder.parent, f"{artifact} version {version}")) from exc
        raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return version, folder


def _sync_dir(path: Path) -> None:
    """fsync a folder and its files, so a power cut after the rename cannot leave a folder whose
    Parquet files are empty."""
    for p in list(path.iterdir()) + [path]:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_version(root: Path, zone: str, artifact: str, version: str, part: str) -> pd.DataFrame:
    path = Path(root) / zone / artifact / version / f"{part}.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{artifact} version {version} has no part {part!r} at {path}")
    return pq.read_table(path).to_pandas()


_TMP = re.compile(r"^\.tmp-[0-9a-f]+-(\d+)-[0-9a-f]+$")


def pid_alive(pid: int) -> bool:
    """Is a process with this PID running (one owned by another user counts as running)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_tmp(root: Path) -> int:
    """Remove temporary folders left by a writer that was killed mid-write (a live writer's are kept)."""
    n = 0
    for zone in (RAW_ZONE, CLEAN_ZONE):
        for tmp in (Path(root) / zone).glob("*/.tmp-*"):
            m = _TMP.match(tmp.name)
            if m and int(m.group(1)) != os.getpid() and pid_alive(int(m.group(1))):
                continue
            shutil.rmtree(tmp, ignore_errors=True)
            n += 1
    return n
