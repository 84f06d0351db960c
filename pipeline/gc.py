"""Garbage collection of old artifact versions (`tunegate gc`): a dry run unless asked to delete.

Every version is immutable and content-addressed, so nightly refreshes pile up folders. A version
may go when nothing still needs it. Kept, with everything upstream of it along `lineage_edges`:

- the newest `keep_last` versions of every artifact (the current state of the graph);
- the latest published dataset version;
- every dataset version a model route names (the routed model's fine-tuning job trained on it),
  so a rollback still has its data and "which tickets trained the model in production" stays answerable;
- every dataset version someone pulled (audit log) and every one a holdout evaluation ran on (the
  published test sets behind reported figures);
- every version of an artifact that a kept version descends from;
- every model-half artifact (fine-tuning files, evaluations, reports): only the data half is collected.

Removal is refused, version by version, when lineage still points to it: a child version that is
kept (or was not recorded for removal) descends from it. Removing a published dataset version also
removes it from the per-ticket lineage intervals (the dataset they describe is gone); its
`dataset_versions` row and the lineage graph stay, and each removal is written to the audit log. Stale persisted dedup
indexes (built for other dedup settings) are caches and go too.

Versions of the data half share their unchanged chunks through hard links (`pipeline/storage.py`), so
the bytes a removal frees are those of the chunks no surviving version links; that is what the plan
counts.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.catalog import Catalog
from pipeline.config import TunegateConfig


DATA_ARTIFACTS = ("raw_tickets", "masked_tickets", "deduplicated_tickets", "labelled_tickets", "dataset_splits")


@dataclass
class GcPlan:
    keep: pd.DataFrame  # artifact, version, path, reason
    remove: pd.DataFrame  # artifact, version, path, bytes
    refused: pd.DataFrame  # artifact, version, path, reason
    stale_indexes: list[Path] = field(default_factory=list)

    @property
    def bytes_freed(self) -> int:
        """What removing the versions frees: a chunk other versions still link is not counted."""
        return _freed(self.remove["path"]) + sum(_size(p) for p in self.stale_indexes)

    def summary(self) -> str:
        lines = [f"keep {len(self.keep)} versions; remove {len(self.remove)} versions "
                 f"({self.bytes_freed / 2**20:.1f} MB with {len(self.stale_indexes)} stale indexes and caches); "
                 f"refused {len(self.refused)}"]
        for r in self.remove.itertuples():
            lines.append(f"  remove {r.artifact}@{r.version}  {r.bytes / 2**20:8.2f} MB")
        for r in self.refused.itertuples():
            lines.append(f"  refuse {r.artifact}@{r.version}: {r.reason}")
        for p in self.stale_indexes:
            lines.append(f"  remove stale {p.parent.name} {p.name}")
        return "\n".join(lines)


def _mask(flags) -> np.ndarray:
    return np.fromiter(flags, dtype=bool)


def _size(p: Path) -> int:
    p = Path(p)
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.exists() else 0


def _inodes(paths) -> dict[tuple[int, int], list]:
    """(device, inode) -> [size, link count, links found under `paths`] for every file under them."""
    out: dict[tuple[int, int], list] = {}
    for p in paths:
        p = Path(p)
        for f in ([p] if p.is_file() else p.rglob("*")) if p.exists() else []:
            if f.is_file():
                st = f.stat()
                row = out.setdefault((st.st_dev, st.st_ino), [st.st_size, st.st_nlink, 0])
                row[2] += 1
    return out


def _freed(paths) -> int:
    """Bytes freed by removing these folders: files whose every hard link is inside them."""
    return sum(size for size, nlink, found in _inodes(paths).values() if found >= nlink)


def _roots(cat: Catalog, keep_last: int) -> pd.DataFrame:
    """(artifact, version, reason) of the versions kept for their own sake."""
    parts = [cat.query("""
        SELECT artifact, version, 'newest ' || ? || ' of its artifact' AS reason FROM (
            SELECT artifact, version, row_number() OVER (PARTITION BY artifact ORDER BY created_at DESC, version) AS k
            FROM artifact_versions) WHERE k <= ?""", [str(keep_last), keep_last])]
    parts.append(cat.query("""
        SELECT 'dataset_splits' AS artifact, version, 'latest published dataset' AS reason
        FROM dataset_versions ORDER BY last_published_at DESC LIMIT 1"""))
    parts.append(cat.query("""
        SELECT DISTINCT 'dataset_splits' AS artifact, j.dataset_version AS version,
               'trained a model a route names (' || r.model || ')' AS reason
        FROM model_routes r JOIN finetune_jobs j ON j.fine_tuned_model = r.model
        WHERE j.dataset_version IS NOT NULL"""))
    parts.append(cat.query("""
        SELECT DISTINCT 'dataset_splits' AS artifact, d.version, 'pulled by ' || a.actor AS reason
        FROM audit_log a JOIN dataset_versions d ON d.version = a.subject WHERE a.action = 'pull'"""))
    parts.append(cat.query("""
        SELECT DISTINCT 'dataset_splits' AS artifact, dataset_version AS version,
               'test set of a holdout evaluation' AS reason
        FROM evaluations WHERE dataset_version IS NOT NULL"""))
    return pd.concat(parts, ignore_index=True).drop_duplicates(["artifact", "version"])


def plan_gc(cfg: TunegateConfig, keep_last: int = 1) -> GcPlan:
    """What `tunegate gc` would remove and keep; nothing is changed."""
    if keep_last < 1:
        raise ValueError("keep_last must be at least 1: the newest version of each artifact always stays")
    cat = Catalog(cfg.catalog_path)
    versions = cat.query("SELECT artifact, version, path FROM artifact_versions")
    roots = _roots(cat, keep_last)
    con_roots = roots[["artifact", "version"]]
    # everything upstream of a root, in one recursive query
    with cat.connect(read_only=True) as con:
        con.register("roots", con_roots)
        keep = con.execute("""
            WITH RECURSIVE up(artifact, version) AS (
                SELECT artifact, version FROM roots
                UNION
                SELECT e.parent_artifact, e.parent_version FROM lineage_edges e
                JOIN up ON e.child_artifact = up.artifact AND e.child_version = up.version)
            SELECT DISTINCT artifact, version FROM up""").df()
        edges = con.execute("SELECT * FROM lineage_edges").df()
        con.unregister("roots")
    reason = roots.set_index(["artifact", "version"])["reason"]
    keep["reason"] = [reason.get((a, v), "upstream of a kept version") for a, v in zip(keep.artifact, keep.version)]
    kept = set(zip(keep.artifact, keep.version))
    # only the data half is collected: model-half artifacts (fine-tuning files, evaluations, reports) are small
    # and are what published figures cite
    cand = versions[_mask((a, v) not in kept and a in DATA_ARTIFACTS for a, v in zip(versions.artifact, versions.version))]
    cand = cand[_mask(p is not None and Path(p).exists() for p in cand["path"])]
    # refuse a version lineage still points to: a surviving child version, or a fine-tuning job that trained
    # on it (ticket -> dataset version -> job -> model); then everything upstream of a refused version
    removing = set(zip(cand.artifact, cand.version))
    present = {(a, v) for a, v, p in zip(versions.artifact, versions.version, versions.path) if p and Path(p).exists()}
    jobs = cat.query("SELECT job_id, dataset_version FROM finetune_jobs WHERE dataset_version IS NOT NULL")
    refused: dict[tuple[str, str], str] = {}
    for a, v in sorted(removing):
        kids = edges[(edges.parent_artifact == a) & (edges.parent_version == v)]
        alive = [f"{c}@{cv}" for c, cv in zip(kids.child_artifact, kids.child_version)
                 if (c, cv) in present and (c, cv) not in removing]
        trained = jobs.loc[jobs.dataset_version == v, "job_id"].tolist() if a == "dataset_splits" else []
        if alive:
            refused[(a, v)] = f"lineage points to it from {', '.join(alive[:3])}"
        elif trained:
            refused[(a, v)] = f"fine-tuning job {trained[0]} trained on it"
    frontier = list(refused)
    while frontier:
        a, v = frontier.pop()
        ups = edges[(edges.child_artifact == a) & (edges.child_version == v)]
        for pa, pv in zip(ups.parent_artifact, ups.parent_version):
            if (pa, pv) in removing and (pa, pv) not in refused:
                refused[(pa, pv)] = f"upstream of refused {a}@{v}"
                frontier.append((pa, pv))
    ref = pd.DataFrame([(a, v, r) for (a, v), r in sorted(refused.items())], columns=["artifact", "version", "reason"])
    cand = cand[_mask((a, v) not in refused for a, v in zip(cand.artifact, cand.version))]
    # bytes a version holds alone (its chunks no other version links): what removing it alone frees
    cand = cand.assign(bytes=[_freed([p]) for p in cand["path"]]).sort_values(["artifact", "version"])
    ref = ref.merge(versions, on=["artifact", "version"], how="left")
    from pipeline.data.dedup_index import INDEX_ZONE, spec_key

    idx_root = cfg.warehouse_path / INDEX_ZONE / "dedup"
    stale = sorted(p for p in idx_root.iterdir() if p.is_dir() and p.name != spec_key(cfg.dedup)) \
        if idx_root.exists() else []
    stale += _stale_caches(cfg)
    return GcPlan(keep.sort_values(["artifact", "version"]).reset_index(drop=True), cand.reset_index(drop=True),
                  ref, stale)


# State a stage keeps between runs, one sub-folder per settings key (docs/refresh.md). Only the folder of the
# current settings (the label checks, whose key is cheap to compute) or else the one written last is read
# again; the others are caches of settings no longer in use, and removing one only costs time.
CACHE_ROOTS = ("index/labels", "index/templates", "raw/mask_cache", "raw/leak_guard_cache", "raw/template_cache")


def _last_written(p: Path) -> float:
    return max((f.stat().st_mtime for f in p.rglob("*")), default=p.stat().st_mtime)


def _stale_caches(cfg: TunegateConfig) -> list[Path]:
    from pipeline.data.steps import label_state_dir

    current = {"index/labels": label_state_dir(cfg).name}
    out: list[Path] = []
    for rel in CACHE_ROOTS:
        root = cfg.warehouse_path / rel
        dirs = [p for p in root.iterdir() if p.is_dir()] if root.exists() else []
        if len(dirs) < 2 and rel not in current:
            continue
        keep = current.get(rel) or max(dirs, key=_last_written).name
        out += sorted(p for p in dirs if p.name != keep)
    return out


def run_gc(cfg: TunegateConfig, plan: GcPlan) -> int:
    """Delete what the plan lists (children before parents); returns bytes freed."""
    cat = Catalog(cfg.catalog_path)
    root = cfg.warehouse_path.resolve()
    freed = _freed([p for p in plan.remove["path"] if root in Path(p).resolve().parents])
    order = {a: -i for i, a in enumerate(DATA_ARTIFACTS)}  # children first
    rows = plan.remove.assign(o=plan.remove["artifact"].map(order)).sort_values(["o", "version"])
    for r in rows.itertuples():
        path = Path(r.path).resolve()
        if root not in path.parents:  # only ever delete inside this warehouse
            continue
        shutil.rmtree(path) if path.is_dir() else path.unlink()
        if r.artifact == "dataset_splits":
            cat.drop_ticket_lineage(r.version)
        cat.audit("gc", f"{r.artifact}@{r.version}", {"bytes": int(r.bytes)})
    for p in plan.stale_indexes:
        freed += _size(p)
        shutil.rmtree(p)
        cat.audit("gc", f"{p.parent.name}@{p.name}", {})
    return freed
