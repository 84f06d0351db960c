"""Immutable, content-addressed Parquet storage for every artifact the pipeline writes.

Layout under the warehouse root:

    raw/<artifact>/<version>/<part>.parquet        raw zone: the only place raw ticket text lives
    datasets/<artifact>/<version>/<part>.parquet   everything downstream of masking

A version id is a hash of the tables' content (row order included), so the same input and config
give the same version, byte for byte.

A version is a manifest of files, not a copy. Each part of a data-half artifact (`CHUNKED`) is a
folder `<part>.parquet/` of row chunks, `NNNNN-<chunk hash>.parquet`, listed in the version's
`manifest.json`. Chunk boundaries are content-defined: a chunk ends after a row whose key
(`ticket_id`, else the whole row) hashes to 0 modulo `CHUNK_ROWS`, so the chunking of a table
depends on its rows only, never on its history. A chunk that an earlier version of the same artifact
already holds is hard-linked, not written: a nightly refresh that appends 1% of tickets writes the
chunks its new rows fall into, and the file system's link count is the reference count (removing a
version frees only the chunks no other version links). Any Parquet reader reads a part folder
(`pd.read_parquet(folder)`, DuckDB `read_parquet('<part>.parquet/*.parquet')`); `read_version` reads
both this layout and the single-file parts of versions written before it, so existing warehouses keep
working, and `gc` takes their full copies back. A version folder is written to a temporary sibling and renamed
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
import json
import os
import re
import shutil
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.errors import UserError

RAW_ZONE = "raw"
CLEAN_ZONE = "datasets"
# artifacts whose versions are manifests of shared chunks; others (model-half outputs) stay one file per part
CHUNKED = frozenset({"raw_tickets", "masked_tickets", "deduplicated_tickets", "labelled_tickets", "dataset_splits"})
CHUNK_ROWS = 2048  # average rows per chunk
MANIFEST = "manifest.json"


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
    """Write one part: a Parquet file, or, for the artifacts in `CHUNKED`, a folder of chunks that
    links the chunks the artifact's newest versions already hold (`path` is `<artifact>/<tmp>/<part>.parquet`)."""
    table = _arrow(df)
    artifact_dir = path.parent.parent
    if artifact_dir.name in CHUNKED:
        _write_chunks(table, path, _known_chunks(artifact_dir))
        return
    pq.write_table(table, path, compression="zstd", use_dictionary=True, write_statistics=True)


def write_version(root: Path, zone: str, artifact: str, tables: dict[str, pd.DataFrame],
                  version: str | None = None) -> tuple[str, Path]:
    """Write tables as one immutable version; return (version, folder).

    An artifact in `CHUNKED` writes each part as content-defined chunks, hard-linking the chunks the
    newest earlier versions of the artifact already hold, and a `manifest.json` listing them."""
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
        if artifact in CHUNKED:
            _write_manifest(tmp, version, artifact, list(tables))
        _sync_dir(tmp)
        try:
            os.rename(tmp, folder)
        except OSError:
            if not folder.exists():  # a concurrent writer won the race with the same content otherwise
                raise
        _sync_dir(folder.parent, recursive=False)
    except OSError as exc:
        if exc.errno in _FULL or "No space left on device" in str(exc):
            shutil.rmtree(tmp, ignore_errors=True)
            raise DiskFullError(disk_full_message(folder.parent, f"{artifact} version {version}")) from exc
        raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return version, folder


def _arrow(df: pd.DataFrame) -> pa.Table:
    # Strip pandas metadata that can vary (it embeds library versions) but keep the schema.
    return pa.Table.from_pandas(df, preserve_index=False).replace_schema_metadata(None)


def chunk_bounds(df: pd.DataFrame, rows: int = CHUNK_ROWS) -> list[tuple[int, int]]:
    """Content-defined chunk boundaries: a chunk ends after a row whose key hashes to 0 modulo `rows`.

    The key is `ticket_id` when the table has it (so a changed row changes only its own chunk), else
    the whole row. An empty table is one empty chunk."""
    n = len(df)
    if n == 0:
        return [(0, 0)]
    key = df["ticket_id"] if "ticket_id" in df.columns else df
    h = pd.util.hash_pandas_object(key, index=False).to_numpy()
    ends = np.flatnonzero(h % np.uint64(rows) == 0) + 1
    ends = np.unique(np.append(ends, n))
    starts = np.concatenate([[0], ends[:-1]])
    return list(zip(starts.tolist(), ends.tolist()))


def _known_chunks(artifact_dir: Path, newest: int = 4) -> dict[str, Path]:
    """chunk hash -> a file holding it, from the newest few versions of this artifact."""
    versions = [p for p in artifact_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
                and (p / MANIFEST).exists()] if artifact_dir.exists() else []
    versions.sort(key=lambda p: (p / MANIFEST).stat().st_mtime_ns, reverse=True)
    known: dict[str, Path] = {}
    for v in versions[:newest]:
        for f in v.glob("*.parquet/*.parquet"):
            known.setdefault(f.stem.split("-", 1)[-1], f)
    return known


def _write_manifest(folder: Path, version: str, artifact: str, parts: list[str]) -> None:
    """The version's list of files: per part, its chunks in row order with their row counts."""
    manifest: dict = {"version": version, "artifact": artifact, "parts": {}}
    for name in parts:
        chunks = [{"file": f.name, "rows": pq.read_metadata(f).num_rows} for f in part_files(folder / f"{name}.parquet")]
        manifest["parts"][name] = {"rows": sum(c["rows"] for c in chunks), "chunks": chunks,
                                   "chunks_linked": sum(1 for f in part_files(folder / f"{name}.parquet")
                                                        if f.stat().st_nlink > 1)}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))


def _write_chunks(table: pa.Table, part_dir: Path, known: dict[str, Path]) -> None:
    """One part as a folder of content-defined chunks, linking the chunks `known` already holds."""
    canon = table.to_pandas()  # the values as a reader gets them back, so the chunk hashes match a reread
    schema = str(table.schema).encode()
    part_dir.mkdir()
    try:
        row_hash = pd.util.hash_pandas_object(canon, index=False).to_numpy() if len(canon) else np.zeros(0, np.uint64)
        bounds = chunk_bounds(canon)
    except TypeError:  # a column pandas cannot hash (nested values): one chunk, named by its bytes
        tmp = part_dir / ".whole.parquet"
        pq.write_table(table, tmp, compression="zstd", use_dictionary=True, write_statistics=True)
        target = part_dir / f"00000-{hashlib.sha256(tmp.read_bytes()).hexdigest()[:24]}.parquet"
        os.rename(tmp, target)
        os.chmod(target, 0o444)
        return
    for i, (a, b) in enumerate(bounds):
        digest = hashlib.sha256(schema + row_hash[a:b].tobytes() + f"{b - a}".encode()).hexdigest()[:24]
        target = part_dir / f"{i:05d}-{digest}.parquet"
        src = known.get(digest)
        if src is None or not _link(src, target):
            pq.write_table(table.slice(a, b - a), target, compression="zstd", use_dictionary=True,
                           write_statistics=True)
            os.chmod(target, 0o444)  # immutable: other versions may link the same file
            known[digest] = target


def _link(src: Path, dst: Path) -> bool:
    try:
        os.link(src, dst)
        return True
    except OSError as exc:  # a file system without hard links, or the chunk was just removed: write it
        if exc.errno in _FULL:
            raise
        return False


def _sync_dir(path: Path, recursive: bool = True) -> None:
    """fsync a folder and its files (and its part folders), so a power cut after the rename cannot
    leave a folder whose Parquet files are empty."""
    entries = list(path.iterdir()) if recursive else []
    for p in entries:
        if p.is_dir():
            _sync_dir(p)
    for p in entries + [path]:
        if p.is_dir() and p != path:
            continue
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_version(root: Path, zone: str, artifact: str, version: str, part: str) -> pd.DataFrame:
    path = Path(root) / zone / artifact / version / f"{part}.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{artifact} version {version} has no part {part!r} at {path}")
    return read_part(path)


def part_files(path: Path) -> list[Path]:
    """The Parquet files of one part, in row order: the file itself, or the chunks of a part folder."""
    path = Path(path)
    return sorted(path.glob("*.parquet")) if path.is_dir() else [path]


def read_part(path: Path) -> pd.DataFrame:
    """One part of a version (a single file, or a folder of chunks read in order)."""
    files = part_files(path)
    if len(files) == 1:
        return pq.read_table(files[0]).to_pandas()
    return pa.concat_tables([pq.read_table(f) for f in files]).to_pandas()


def disk_bytes(path: Path) -> int:
    """Bytes on disk under a folder, each hard-linked file counted once."""
    seen, total = set(), 0
    for f in Path(path).rglob("*"):
        if f.is_file():
            st = f.stat()
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


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
