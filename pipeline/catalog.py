"""The DuckDB catalog: the one module that writes `warehouse/catalog.duckdb`.

It holds what the team owns beyond any Dagster instance: artifact versions and the lineage graph
(parent -> child edges), dataset versions, the stable split assignment, per-ticket lineage (stored as
intervals of dataset versions, read through the `ticket_lineage` view),
fine-tuning jobs, evaluations, the model routes with their history, and an audit log (pulls, job
submissions, promotions).

DuckDB allows one writing process per file, so every call opens a short-lived connection, does its
work in one transaction and closes; a lock held by another process is retried with backoff, and a
wait of more than a few seconds is said on the console with the holder's PID and command and the time
waited. A full disk rolls the transaction back and raises `DiskFullError` (one line). The Dagster
assets that write here share one concurrency pool as well.
"""
from __future__ import annotations

import getpass
import json
import logging
import os
import random
import re
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import duckdb
import pandas as pd

from pipeline.errors import UserError
from pipeline.storage import DiskFullError, disk_full_message

log = logging.getLogger("tunegate.catalog")

SCHEMA = """
CREATE TABLE IF NOT EXISTS artifact_versions (
    artifact TEXT NOT NULL, version TEXT NOT NULL, path TEXT, rows BIGINT,
    run_id TEXT, code_version TEXT, config_hash TEXT, created_at TIMESTAMPTZ, meta JSON,
    PRIMARY KEY (artifact, version));
CREATE TABLE IF NOT EXISTS lineage_edges (
    parent_artifact TEXT NOT NULL, parent_version TEXT NOT NULL,
    child_artifact TEXT NOT NULL, child_version TEXT NOT NULL,
    PRIMARY KEY (parent_artifact, parent_version, child_artifact, child_version));
CREATE TABLE IF NOT EXISTS dataset_versions (
    version TEXT PRIMARY KEY, path TEXT NOT NULL, config_hash TEXT, parent_version TEXT,
    n_train BIGINT, n_val BIGINT, n_test BIGINT, n_held_out BIGINT,
    created_at TIMESTAMPTZ, run_id TEXT, meta JSON, last_published_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS split_assignments (
    ticket_id TEXT PRIMARY KEY, split TEXT NOT NULL, group_key TEXT NOT NULL,
    first_version TEXT NOT NULL, reason TEXT);
CREATE TABLE IF NOT EXISTS finetune_jobs (
    job_id TEXT PRIMARY KEY, endpoint TEXT, base_model TEXT, dataset_version TEXT,
    config_hash TEXT, files_hash TEXT, training_file TEXT, validation_file TEXT, status TEXT,
    fine_tuned_model TEXT, trained_tokens BIGINT, cost DOUBLE, error TEXT, events JSON,
    created_at TIMESTAMPTZ, finished_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS evaluations (
    eval_id TEXT PRIMARY KEY, dataset_version TEXT, candidate TEXT, model TEXT, approach TEXT,
    metrics JSON, created_at TIMESTAMPTZ, report_path TEXT);
CREATE TABLE IF NOT EXISTS model_routes (
    seq BIGINT PRIMARY KEY, route TEXT NOT NULL, model TEXT NOT NULL, eval_id TEXT,
    action TEXT NOT NULL, actor TEXT, reason TEXT, created_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS audit_log (
    created_at TIMESTAMPTZ, actor TEXT, action TEXT, subject TEXT, detail JSON);
ALTER TABLE dataset_versions ADD COLUMN IF NOT EXISTS seq BIGINT;
ALTER TABLE dataset_versions ADD COLUMN IF NOT EXISTS raw_version TEXT;
ALTER TABLE dataset_versions ADD COLUMN IF NOT EXISTS lineage_dropped BOOLEAN DEFAULT false;
CREATE TABLE IF NOT EXISTS ticket_lineage_intervals (
    ticket_id TEXT NOT NULL, from_seq BIGINT NOT NULL, to_seq BIGINT NOT NULL,
    source_file TEXT, cluster_id TEXT, representative_id TEXT, split TEXT);
"""

# Per-ticket lineage is stored as intervals of dataset versions (by their publication sequence number):
# a ticket whose source file, cluster, representative and split stay the same across nightly versions
# is one row, not one row per version. The `ticket_lineage` view gives the one-row-per-ticket-per-version
# shape that queries use (`SELECT ... FROM ticket_lineage WHERE dataset_version = ?`).
LINEAGE_VIEW = """
CREATE OR REPLACE VIEW ticket_lineage AS
SELECT i.ticket_id, d.version AS dataset_version, d.raw_version, i.source_file, i.cluster_id,
       i.representative_id, i.split
FROM ticket_lineage_intervals i JOIN dataset_versions d ON d.seq BETWEEN i.from_seq AND i.to_seq
WHERE NOT coalesce(d.lineage_dropped, false);
"""
LINEAGE_ATTRS = ["source_file", "cluster_id", "representative_id", "split"]

# A catalog written before the intervals held one `ticket_lineage` row per ticket per version: number
# its dataset versions in publication order and fold consecutive identical rows into intervals.
MIGRATE_LINEAGE = """
UPDATE dataset_versions d SET seq = s.k
FROM (SELECT version, row_number() OVER (ORDER BY created_at, version) AS k FROM dataset_versions) s
WHERE d.version = s.version;
UPDATE dataset_versions d SET raw_version = r.raw_version
FROM (SELECT dataset_version, any_value(raw_version) AS raw_version FROM ticket_lineage GROUP BY 1) r
WHERE d.version = r.dataset_version;
UPDATE dataset_versions SET lineage_dropped = version NOT IN (SELECT DISTINCT dataset_version FROM ticket_lineage);
INSERT INTO ticket_lineage_intervals
WITH live AS (SELECT version, seq, row_number() OVER (ORDER BY seq) AS k FROM dataset_versions
              WHERE NOT lineage_dropped),
     r AS (SELECT l.ticket_id, d.seq, d.k, l.source_file, l.cluster_id, l.representative_id, l.split
           FROM ticket_lineage l JOIN live d ON d.version = l.dataset_version),
     -- consecutive among the versions that still have lineage: a dropped version inside an interval is
     -- left out by the view
     g AS (SELECT *, k - row_number() OVER (PARTITION BY ticket_id, source_file, cluster_id, representative_id, split
                                            ORDER BY seq) AS island FROM r)
SELECT ticket_id, min(seq), max(seq), source_file, cluster_id, representative_id, split
FROM g GROUP BY ticket_id, source_file, cluster_id, representative_id, split, island;
DROP TABLE ticket_lineage;
"""


def actor() -> str:
    """Who is acting: TUNEGATE_ACTOR, else the OS user."""
    try:
        return os.environ.get("TUNEGATE_ACTOR") or getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "unknown"


class CatalogLockedError(UserError):
    """Another process kept the catalog's write lock for longer than the retries wait."""


def _disk_full(exc: BaseException) -> bool:
    return getattr(exc, "errno", None) in (28, 122) or "No space left on device" in str(exc) \
        or "Disk quota exceeded" in str(exc)


def _holder(exc: BaseException) -> str:
    """`PID n (command)` from DuckDB's lock message, as far as it can be read."""
    m = re.search(r"PID (\d+)", str(exc))
    if not m:
        return "another process"
    pid = m.group(1)
    try:
        cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        cmd = ""
    return f"PID {pid}" + (f" ({cmd[:120]})" if cmd else "")


def now() -> datetime:
    return datetime.now(timezone.utc)


class Catalog:
    """Short-lived, serialised access to the catalog file."""

    _ready: set[str] = set()  # catalog files whose schema this process has already ensured

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        key = str(self.path.resolve())
        if key in Catalog._ready and self.path.exists():
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.connect() as con:
            con.execute(SCHEMA)
            kind = con.execute("SELECT table_type FROM information_schema.tables WHERE table_name = 'ticket_lineage'"
                               ).fetchall()
            kind = kind[0] if kind else None
            if kind and kind[0] == "BASE TABLE":
                con.execute(MIGRATE_LINEAGE)
            con.execute(LINEAGE_VIEW)
        Catalog._ready.add(key)

    @contextmanager
    def connect(self, read_only: bool = False, attempts: int = 40) -> Iterator[duckdb.DuckDBPyConnection]:
        delay = 0.05
        t0 = time.monotonic()
        said = 0.0
        for i in range(attempts):
            try:
                con = duckdb.connect(str(self.path), read_only=read_only and self.path.exists())
                break
            except duckdb.IOException as exc:  # another process holds the write lock
                if _disk_full(exc):
                    raise DiskFullError(disk_full_message(self.path.parent, "the catalog")) from None
                if "lock" not in str(exc).lower():
                    raise
                waited = time.monotonic() - t0
                if i == attempts - 1:
                    raise CatalogLockedError(f"the catalog {self.path} is locked by {_holder(exc)} "
                                             f"(waited {waited:.0f} s): let it finish or stop it, then retry") from None
                if waited - said >= 3.0:
                    said = waited
                    log.warning("waiting for the catalog lock on %s held by %s: %.0f s so far",
                                self.path, _holder(exc), waited)
                time.sleep(delay + random.random() * delay)
                delay = min(delay * 1.6, 2.0)
        try:
            if not read_only:
                con.execute("BEGIN TRANSACTION")
            yield con
            if not read_only:
                con.execute("COMMIT")
        except BaseException as exc:
            if not read_only:
                try:
                    con.execute("ROLLBACK")
                except duckdb.Error:
                    pass
            if isinstance(exc, (duckdb.Error, OSError)) and _disk_full(exc):
                raise DiskFullError(disk_full_message(self.path.parent, "the catalog")) from None
            raise
        finally:
            con.close()

    # -- generic ---------------------------------------------------------------------------------
    def query(self, sql: str, params: list | None = None) -> pd.DataFrame:
        with self.connect(read_only=True) as con:
            return con.execute(sql, params or []).df()

    def audit(self, action: str, subject: str, detail: dict | None = None, who: str | None = None) -> None:
        with self.connect() as con:
            con.execute("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?)",
                        [now(), who or actor(), action, subject, json.dumps(detail or {}, default=str)])

    # -- lineage graph ---------------------------------------------------------------------------
    def record_artifact(self, artifact: str, version: str, path: str | None, rows: int | None,
                        parents: list[tuple[str, str]] = (), run_id: str | None = None,
                        code_version: str | None = None, config_hash: str | None = None,
                        meta: dict | None = None) -> None:
        """Record one artifact version (once) and its parent edges (idempotent)."""
        with self.connect() as con:
            con.execute(
                "INSERT INTO artifact_versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [artifact, version, path, rows, run_id, code_version, config_hash, now(),
                 json.dumps(meta or {}, default=str)])
            for p_art, p_ver in parents:
                con.execute("INSERT INTO lineage_edges VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                            [p_art, p_ver, artifact, version])

    def latest_artifact(self, artifact: str) -> dict | None:
        df = self.query("SELECT * FROM artifact_versions WHERE artifact = ? ORDER BY created_at DESC LIMIT 1",
                        [artifact])
        return None if df.empty else df.iloc[0].to_dict()

    def _walk(self, artifact: str, version: str, upward: bool) -> pd.DataFrame:
        """Every artifact version reachable along lineage_edges, with its distance (recursive CTE)."""
        near, far = ("child", "parent") if upward else ("parent", "child")
        return self.query(f"""
            WITH RECURSIVE walk(artifact, version, depth) AS (
                SELECT ?, ?, 0
                UNION
                SELECT e.{far}_artifact, e.{far}_version, walk.depth + 1
                FROM lineage_edges e JOIN walk ON e.{near}_artifact = walk.artifact AND e.{near}_version = walk.version
                WHERE walk.depth < 50)
            SELECT walk.artifact, walk.version, min(walk.depth) AS depth, any_value(a.path) AS path,
                   any_value(a.rows) AS rows
            FROM walk LEFT JOIN artifact_versions a USING (artifact, version)
            GROUP BY ALL ORDER BY depth, artifact, version""", [artifact, version])

    def upstream(self, artifact: str, version: str) -> pd.DataFrame:
        """Every ancestor of an artifact version."""
        return self._walk(artifact, version, upward=True)

    def downstream(self, artifact: str, version: str) -> pd.DataFrame:
        """Everything built from an artifact version."""
        return self._walk(artifact, version, upward=False)

    # -- datasets and splits ---------------------------------------------------------------------
    def split_assignments(self) -> pd.DataFrame:
        return self.query("SELECT ticket_id, split, group_key, first_version, reason FROM split_assignments")

    def publish_dataset(self, version: str, path: str, config_hash: str, counts: dict[str, int],
                        assignments: pd.DataFrame, ticket_lineage: pd.DataFrame,
                        parent_version: str | None, run_id: str | None, meta: dict | None = None) -> bool:
        """Publish a dataset version with its new split assignments and per-ticket lineage, atomically.

        Returns False when the version was already published: nothing is written twice, but it becomes
        the latest version again (landing reverted to an earlier state serves that state)."""
        with self.connect() as con:
            if con.execute("SELECT 1 FROM dataset_versions WHERE version = ?", [version]).fetchone():
                con.execute("UPDATE dataset_versions SET last_published_at = ? WHERE version = ?", [now(), version])
                return False
            seq = con.execute("SELECT coalesce(max(seq), 0) + 1 FROM dataset_versions").fetchall()[0][0]
            raw = (ticket_lineage["raw_version"].dropna() if "raw_version" in ticket_lineage else pd.Series([]))
            con.execute("""INSERT INTO dataset_versions (version, path, config_hash, parent_version, n_train, n_val,
                               n_test, n_held_out, created_at, run_id, meta, last_published_at, seq, raw_version,
                               lineage_dropped) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, false)""",
                        [version, path, config_hash, parent_version, counts.get("train", 0), counts.get("val", 0),
                         counts.get("test", 0), counts.get("held_out", 0), now(), run_id,
                         json.dumps(meta or {}, default=str), now(), seq, raw.iloc[0] if len(raw) else None])
            if len(assignments):
                con.register("new_assign", assignments[["ticket_id", "split", "group_key", "first_version", "reason"]])
                con.execute("INSERT INTO split_assignments SELECT * FROM new_assign ON CONFLICT DO NOTHING")
                con.unregister("new_assign")
            if len(ticket_lineage):
                prev = con.execute("""SELECT max(seq) FROM dataset_versions
                                      WHERE seq < ? AND NOT coalesce(lineage_dropped, false)""", [seq]).fetchall()[0][0]
                self._extend_lineage(con, ticket_lineage, seq, prev)
        return True

    @staticmethod
    def _extend_lineage(con, ticket_lineage: pd.DataFrame, seq: int, prev: int | None) -> None:
        """Per-ticket lineage of the version numbered `seq`: a ticket whose row is unchanged since the
        previous version with lineage (`prev`) extends its interval; any other gets a new interval [seq, seq]."""
        rows = ticket_lineage[["ticket_id"] + LINEAGE_ATTRS].drop_duplicates("ticket_id")
        con.register("new_lineage", rows)
        same = " AND ".join(f"i.{c} IS NOT DISTINCT FROM n.{c}" for c in LINEAGE_ATTRS)
        con.execute(f"""UPDATE ticket_lineage_intervals i SET to_seq = ? FROM new_lineage n
                        WHERE i.ticket_id = n.ticket_id AND i.to_seq = ? AND {same}""", [seq, prev if prev is not None else -1])
        con.execute(f"""INSERT INTO ticket_lineage_intervals
                        SELECT n.ticket_id, ?, ?, {', '.join('n.' + c for c in LINEAGE_ATTRS)} FROM new_lineage n
                        ANTI JOIN (SELECT ticket_id FROM ticket_lineage_intervals WHERE to_seq = ?) i
                        ON i.ticket_id = n.ticket_id""", [seq, seq, seq])
        con.unregister("new_lineage")

    def drop_ticket_lineage(self, version: str) -> None:
        """Forget the per-ticket lineage of one dataset version (gc removed its files): the version leaves
        the `ticket_lineage` view, intervals that end on it are trimmed to the versions still there, and
        intervals that covered nothing else are deleted."""
        with self.connect() as con:
            rows = con.execute("SELECT seq FROM dataset_versions WHERE version = ?", [version]).fetchall()
            if not rows or rows[0][0] is None:
                return
            s = rows[0][0]
            con.execute("UPDATE dataset_versions SET lineage_dropped = true WHERE version = ?", [version])
            live = [r[0] for r in con.execute("""SELECT seq FROM dataset_versions
                                                 WHERE seq IS NOT NULL AND NOT coalesce(lineage_dropped, false)""").fetchall()]
            con.register("live", pd.DataFrame({"seq": pd.Series(live, dtype="int64")}))
            con.execute("""DELETE FROM ticket_lineage_intervals i WHERE from_seq <= ? AND to_seq >= ?
                           AND NOT EXISTS (SELECT 1 FROM live WHERE live.seq BETWEEN i.from_seq AND i.to_seq)""", [s, s])
            con.unregister("live")
            after, before = [x for x in live if x > s], [x for x in live if x < s]
            if after:
                con.execute("UPDATE ticket_lineage_intervals SET from_seq = ? WHERE from_seq = ?", [min(after), s])
            if before:
                con.execute("UPDATE ticket_lineage_intervals SET to_seq = ? WHERE to_seq = ?", [max(before), s])

    def dataset_version(self, version: str = "latest") -> dict:
        if version == "latest":
            df = self.query("SELECT * FROM dataset_versions ORDER BY last_published_at DESC LIMIT 1")
        else:
            # a prefix match without LIKE: `%` and `_` in what the user typed are characters, not wildcards
            df = self.query("SELECT * FROM dataset_versions WHERE version = ? OR starts_with(version, ?) "
                            "ORDER BY created_at DESC", [version, version]) if version else self.query(
                "SELECT * FROM dataset_versions WHERE false")
        if df.empty:
            raise LookupError(f"no dataset version {version!r} in the catalog; run the pipeline first "
                              "(`tunegate demo` or `tunegate run`)")
        if len(df) > 1:
            raise LookupError(f"version prefix {version!r} is ambiguous: {', '.join(df.version)}")
        return df.iloc[0].to_dict()

    # -- fine-tuning, evaluation, routes ---------------------------------------------------------
    def upsert_job(self, row: dict[str, Any]) -> None:
        cols = ["job_id", "endpoint", "base_model", "dataset_version", "config_hash", "files_hash",
                "training_file", "validation_file", "status", "fine_tuned_model", "trained_tokens", "cost",
                "error", "events", "created_at", "finished_at"]
        values = [json.dumps(row[c], default=str) if c == "events" and row.get(c) is not None else row.get(c)
                  for c in cols]
        with self.connect() as con:
            con.execute(f"INSERT OR REPLACE INTO finetune_jobs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                        values)

    def find_job(self, dataset_version: str, config_hash: str, files_hash: str, base_model: str,
                 endpoint: str | None = None) -> dict | None:
        """A usable job for this key; with `endpoint`, only one submitted to that endpoint."""
        df = self.query("""SELECT * FROM finetune_jobs WHERE dataset_version = ? AND config_hash = ? AND files_hash = ?
                           AND base_model = ? AND status NOT IN ('failed', 'cancelled')
                           AND (? IS NULL OR endpoint = ?)
                           ORDER BY created_at DESC LIMIT 1""",
                        [dataset_version, config_hash, files_hash, base_model, endpoint, endpoint])
        return None if df.empty else df.iloc[0].to_dict()

    def record_evaluation(self, eval_id: str, dataset_version: str, candidate: str, model: str, approach: str,
                          metrics: dict, report_path: str | None = None) -> None:
        with self.connect() as con:
            con.execute("INSERT OR REPLACE INTO evaluations VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [eval_id, dataset_version, candidate, model, approach, json.dumps(metrics, default=str),
                         now(), report_path])

    def current_route(self, route: str = "default") -> dict | None:
        df = self.query("SELECT * FROM model_routes WHERE route = ? ORDER BY seq DESC LIMIT 1", [route])
        return None if df.empty else df.iloc[0].to_dict()

    def route_history(self, route: str = "default") -> pd.DataFrame:
        return self.query("SELECT * FROM model_routes WHERE route = ? ORDER BY seq", [route])

    def set_route(self, model: str, action: str, route: str = "default", eval_id: str | None = None,
                  reason: str | None = None) -> None:
        with self.connect() as con:
            seq = con.execute("SELECT coalesce(max(seq), 0) + 1 FROM model_routes").fetchone()[0]
            con.execute("INSERT INTO model_routes VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [seq, route, model, eval_id, action, actor(), reason, now()])
            con.execute("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?)",
                        [now(), actor(), action, model, json.dumps({"route": route, "eval_id": eval_id, "reason": reason})])
