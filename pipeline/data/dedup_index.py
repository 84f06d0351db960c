"""The persisted dedup index: template signatures, LSH band keys, one-edit keys and the cluster table in
Parquet, extended by each refresh with the templates it has not seen.

Layout under `<warehouse>/index/dedup/<spec key>/` (the key is a hash of the dedup settings, so a
change of threshold, n-gram or seed starts a new index):

    nodes-00000.parquet   node_id, template, n_shingles, signature (uint32[num_perm]), band_keys (uint64[bands])
    typo-00000.parquet    key, node_id: one-edit keys of the short templates
    tickets-00000.parquet ticket_id, text_hash, template, exact_group, template_key: per-ticket keys, so a
                          refresh normalises only new or changed texts
    clusters-00000.parquet node_id, root, cluster_id: the capped union-find after extension 00000
    manifest.json         parts, node count, the current clusters file, settings

Crash consistency: every file is written to a temporary name, fsynced and renamed; the manifest is
renamed into place last, and it names the clusters file of its own extension, so a run killed at
any point leaves the index as the last manifest describes it (parts and a clusters file written
after it are ignored, and overwritten by the next extension). Extensions of one index are serialised
by an exclusive file lock (`<spec key>.lock` next to the index folder), which the kernel drops when
the holder dies.

A template is a masked, normalised text (`dedup.normalize_template`): the index never holds raw
text. `extend` hashes and queries only new templates: their band keys are matched against the
stored ones (old x old pairs are never formed), the candidates are verified exactly (old templates'
shingles are recomputed for the candidates only), and the new pairs are merged, strongest first, into
the stored union-find under the same size cap. Cluster ids stay content-derived (hash of the smallest
template of the cluster), so they are the ids a full rebuild gives whenever the cap did not have to
choose between merges.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.config import DedupSpec
from pipeline.data import signatures as sig
from pipeline.data.dedup import NearDupIndex, _CappedUnionFind, _sha, cluster_templates

INDEX_ZONE = "index"


def spec_key(spec: DedupSpec) -> str:
    blob = json.dumps(spec.model_dump(mode="json"), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(table: pa.Table | str, path: Path) -> None:
    """Write (a table as Parquet, or text) to a temporary sibling, fsync and rename; a full disk leaves
    nothing behind and says so in one line."""
    from pipeline.storage import _FULL, DiskFullError, disk_full_message

    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    try:
        if isinstance(table, str):
            tmp.write_text(table)
        else:
            pq.write_table(table, tmp, compression="zstd")
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno in _FULL or "No space left on device" in str(exc) or "errno 28" in str(exc):
            raise DiskFullError(disk_full_message(path.parent, "the dedup index")) from exc
        raise


class DedupIndexStore:
    """One persisted index for one set of dedup settings."""

    def __init__(self, warehouse: Path, spec: DedupSpec):
        self.spec = spec
        self.dir = Path(warehouse) / INDEX_ZONE / "dedup" / spec_key(spec)
        self.index = NearDupIndex(spec)  # carries bands/rows and the verification rules

    @contextmanager
    def locked(self):
        """Hold the index's exclusive lock (blocking): one extension at a time, across processes."""
        self.dir.parent.mkdir(parents=True, exist_ok=True)
        with open(self.dir.parent / f"{self.dir.name}.lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield self
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- reading ---------------------------------------------------------------------------
    def manifest(self) -> dict:
        p = self.dir / "manifest.json"
        if not p.exists():
            return {"parts": [], "n_nodes": 0}
        return json.loads(p.read_text())

    def _read(self, prefix: str, columns: list[str]) -> pa.Table | None:
        parts = self.manifest()["parts"]
        tables = [pq.read_table(self.dir / f"{prefix}-{p:05d}.parquet", columns=columns) for p in parts]
        return pa.concat_tables(tables) if tables else None

    def templates(self) -> pd.Index:
        t = self._read("nodes", ["template"])
        return pd.Index([] if t is None else t.column("template").to_pylist(), dtype=object)

    def clusters(self) -> pd.DataFrame:
        man = self.manifest()
        # an index written before the clusters file was named by the manifest has one `clusters.parquet`
        p = self.dir / man.get("clusters", "clusters.parquet")
        if not man["parts"] or not p.exists():
            return pd.DataFrame({"node_id": np.zeros(0, np.int64), "root": np.zeros(0, np.int64), "cluster_id": []})
        return pq.read_table(p).to_pandas()

    def node_clusters(self) -> pd.DataFrame:
        """template, cluster_id, cluster_templates for every indexed template (the input of `clusters_frame`)."""
        cl = self.clusters()
        out = pd.DataFrame({"template": self.templates(), "cluster_id": cl["cluster_id"].to_numpy()})
        out["cluster_templates"] = out.groupby("cluster_id")["template"].transform("size").astype(int)
        return out

    def tickets(self) -> pd.DataFrame:
        """ticket_id, text_hash, template, exact_group, template_key of every ticket seen (latest text wins)."""
        parts = sorted(self.dir.glob("tickets-*.parquet")) if self.dir.exists() else []
        if not parts:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in
                                 ("ticket_id", "text_hash", "template", "exact_group", "template_key")})
        t = pa.concat_tables([pq.read_table(p) for p in parts]).to_pandas()
        return t.drop_duplicates("ticket_id", keep="last").reset_index(drop=True)

    def add_tickets(self, rows: pd.DataFrame) -> None:
        if rows.empty:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        n = len(list(self.dir.glob("tickets-*.parquet")))
        _write_atomic(pa.Table.from_pandas(rows.reset_index(drop=True), preserve_index=False),
                      self.dir / f"tickets-{n:05d}.parquet")

    def _commit(self, man: dict) -> None:
        _commit_manifest(self, man)

    def size_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.dir.glob("*") if f.is_file()) if self.dir.exists() else 0

    # -- extending -------------------------------------------------------------------------
    def extend(self, templates: Sequence[str]) -> dict:
        """Add the templates not yet indexed, cluster them with the history; return counts."""
        self.dir.mkdir(parents=True, exist_ok=True)
        known = self.templates()
        uniq = pd.unique(pd.Series(list(templates), dtype=object))
        new = sorted(t for t in uniq[known.get_indexer(uniq) < 0])
        n_old = len(known)
        stats = {"templates_indexed_before": n_old, "templates_new": len(new), "pairs_new": 0, "capped_merges": 0}
        if not new:
            return stats
        idx = self.index
        flat, off = sig.shingle_hashes(new, self.spec.ngram)
        sigs = sig.signatures(flat, off, idx.num_perm, self.spec.seed, idx.backend)
        bk = sig.band_keys(sigs, idx.bands, idx.rows)
        tk, tr = sig.deletion_keys(new, idx.typo_eligible(new))

        # candidates: new x old (stored keys) and new x new
        if n_old:
            old_bk = np.asarray(self._read("nodes", ["band_keys"]).column("band_keys").combine_chunks()
                                .flatten().to_numpy(zero_copy_only=False), dtype=np.uint64).reshape(n_old, idx.bands)
            typo_t = self._read("typo", ["key", "node_id"])
            old_tk = typo_t.column("key").to_numpy().astype(np.uint64)
            old_tr = typo_t.column("node_id").to_numpy().astype(np.int64)
            lsh_no, typo_no = idx._candidates(bk, tk, tr, old_bk, old_tk, old_tr)
            del old_bk, old_tk, old_tr
        else:
            lsh_no = typo_no = np.zeros((0, 2), np.int64)
        lsh_nn = [sig.pairs_sharing_key(bk[:, b], np.arange(len(new), dtype=np.int64)) for b in range(idx.bands)]
        lsh_nn = np.unique(np.concatenate(lsh_nn), axis=0)
        typo_nn = sig.pairs_sharing_key(tk, tr)
        enc_new = (flat, off)
        a1, b1, j1 = idx.verify(lsh_nn, typo_nn, new, new, enc_new, enc_new)
        pairs = list(zip((a1 + n_old).tolist(), (b1 + n_old).tolist(), j1.tolist()))
        if len(lsh_no) + len(typo_no):
            old_ids = np.unique(np.concatenate([lsh_no[:, 1], typo_no[:, 1]]))
            old_templ_all = known.to_numpy()
            old_templ = [old_templ_all[i] for i in old_ids]
            oflat, ooff = sig.shingle_hashes(old_templ, self.spec.ngram)
            local = lambda p: np.stack([p[:, 0], np.searchsorted(old_ids, p[:, 1])], axis=1)  # noqa: E731
            a2, b2, j2 = idx.verify(local(lsh_no), local(typo_no), new, old_templ, enc_new, (oflat, ooff))
            pairs += list(zip((a2 + n_old).tolist(), old_ids[b2].tolist(), j2.tolist()))
        pairs = [(min(a, b), max(a, b), j) for a, b, j in pairs]

        # merge into the stored union-find
        cl = self.clusters()
        n = n_old + len(new)
        uf = _CappedUnionFind(n, self.spec.max_cluster_size)
        if n_old:
            root_old = cl["root"].to_numpy()
            uf.parent[:n_old] = root_old.tolist()
            sizes = np.bincount(root_old, minlength=n_old)
            uf.size[:n_old] = np.maximum(sizes, 1).tolist()
        all_templates = np.concatenate([known.to_numpy(), np.array(new, dtype=object)])
        root, uf = cluster_templates(list(range(n)), pairs, self.spec.max_cluster_size, uf)
        # cluster ids: hash of the smallest template of the cluster; recomputed only for touched roots
        old_cid = cl["cluster_id"].to_numpy() if n_old else np.zeros(0, dtype=object)
        touched = np.zeros(n, dtype=bool)
        touched[n_old:] = True
        touched_roots = np.unique(root[touched])
        mask = np.isin(root, touched_roots)
        cid = np.empty(n, dtype=object)
        cid[:n_old] = old_cid
        smallest = pd.Series(all_templates[mask]).groupby(root[mask]).min()
        cid[mask] = ["c_" + _sha(smallest[r]) for r in root[mask]]

        part = len(self.manifest()["parts"])
        node_ids = np.arange(n_old, n, dtype=np.int64)
        nodes = pa.table({
            "node_id": node_ids,
            "template": pa.array(new, pa.string()),
            "n_shingles": np.diff(off).astype(np.int32),
            "signature": pa.FixedSizeListArray.from_arrays(pa.array(sigs.ravel()), idx.num_perm),
            "band_keys": pa.FixedSizeListArray.from_arrays(pa.array(bk.ravel()), idx.bands),
        })
        _write_atomic(nodes, self.dir / f"nodes-{part:05d}.parquet")
        _write_atomic(pa.table({"key": tk, "node_id": tr + n_old}), self.dir / f"typo-{part:05d}.parquet")
        clusters = f"clusters-{part:05d}.parquet"
        _write_atomic(pa.table({"node_id": np.arange(n, dtype=np.int64), "root": root,
                                "cluster_id": pa.array(cid.tolist(), pa.string())}), self.dir / clusters)
        previous = self.manifest()
        man = {"parts": previous["parts"] + [part], "n_nodes": n, "clusters": clusters,
               "spec": self.spec.model_dump(mode="json"), "bands": idx.bands, "rows": idx.rows}
        self._commit(man)
        old = self.dir / previous.get("clusters", "clusters.parquet")
        if old.name != clusters:  # the previous extension's cluster table is no longer named by anything
            old.unlink(missing_ok=True)
        stats.update(pairs_new=len(pairs), capped_merges=int(uf.refused))
        return stats


def _commit_manifest(store: "DedupIndexStore", man: dict) -> None:
    """The commit point of an extension: the manifest, renamed into place last."""
    _write_atomic(json.dumps(man, indent=1, sort_keys=True), store.dir / "manifest.json")


def find_clusters_indexed(df: pd.DataFrame, spec: DedupSpec, warehouse: Path) -> tuple[pd.DataFrame, dict]:
    """`dedup.find_clusters` through the persisted index: only templates not seen before are hashed and queried.

    If the index holds templates that no current ticket has (the history shrank or changed), it is
    not a history of this data: it is rebuilt from the current templates.
    """
    from pipeline.data.dedup import clusters_frame, ticket_keys

    if not df["ticket_id"].is_unique:
        raise ValueError("ticket_id must be unique")
    store = DedupIndexStore(warehouse, spec)
    with store.locked():
        return _find_clusters_locked(df, spec, store)


def _find_clusters_locked(df: pd.DataFrame, spec: DedupSpec, store: "DedupIndexStore") -> tuple[pd.DataFrame, dict]:
    from pipeline.data.dedup import clusters_frame, ticket_keys

    # under the lock, a temporary file is what a killed extension left: nothing names it
    for stale in store.dir.glob(".tmp-*") if store.dir.exists() else []:
        stale.unlink(missing_ok=True)
    # per-ticket keys: normalised only for tickets that are new or whose text changed (by a vectorised hash)
    ids = df["ticket_id"].astype(str).reset_index(drop=True)
    text_hash = pd.util.hash_pandas_object(df["text"].fillna("").astype(str), index=False).to_numpy()
    seen = store.tickets().set_index("ticket_id")
    pos = seen.index.get_indexer(ids)
    fresh = pos < 0
    fresh[~fresh] = seen["text_hash"].to_numpy()[pos[~fresh]] != text_hash[~fresh]
    keys = pd.DataFrame({"template": np.empty(len(df), dtype=object), "exact_group": np.empty(len(df), dtype=object),
                         "template_key": np.empty(len(df), dtype=object)})
    old = ~fresh
    for c in keys.columns:
        keys.loc[old, c] = seen[c].to_numpy()[pos[old]]
    if fresh.any():
        computed = ticket_keys(df["text"].to_numpy()[fresh].tolist())
        for c in keys.columns:
            keys.loc[fresh, c] = computed[c].to_numpy()
    templ = keys["template"].to_numpy()
    known = store.templates()
    current = pd.Index(pd.unique(templ))
    rebuilt = False
    if len(known) and (current.get_indexer(known) < 0).any():
        import shutil

        # the manifest goes first: a run killed during the removal leaves an empty index, not a torn one
        (store.dir / "manifest.json").unlink()
        _fsync(store.dir)
        shutil.rmtree(store.dir)
        rebuilt = True
    ext = store.extend(templ)
    store.add_tickets(pd.DataFrame({"ticket_id": ids, "text_hash": text_hash}).join(keys)[fresh | rebuilt])
    idx = store.index
    extra = {"n_verified_pairs": ext["pairs_new"], "capped_merges": ext["capped_merges"],
             "lsh": {"backend": spec.backend, "bands": idx.bands, "rows": idx.rows, "num_perm": idx.num_perm},
             "index": {**ext, "rebuilt": rebuilt, "tickets_normalised": int(fresh.sum())}}
    return clusters_frame(df, templ, store.node_clusters(), extra, keys=keys)
