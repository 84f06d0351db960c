"""The persisted dedup index survives a kill or a failure at any point of an extension.

A history of generated Banking77 tickets is indexed, then a refresh extends it and dies: killed
(SIGKILL) at the manifest commit, or failing while it writes the cluster table. The next run must
give the clusters an in-memory full build gives, and extensions of one index are serialised.
"""
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from pipeline.config import DedupSpec
from pipeline.data import dedup_index
from pipeline.data.dedup import find_clusters
from pipeline.data.dedup_index import DedupIndexStore, find_clusters_indexed
from pipeline.data.sample.scale import generate_history

pytestmark = pytest.mark.slow  # each test indexes a history, some in a child process

SPEC = DedupSpec()
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tickets() -> pd.DataFrame:
    h = generate_history(2500, seed=4)
    # near-duplicates inside the history and across the cut, so the refresh merges into old clusters
    dup = h.iloc[::25].assign(ticket_id=lambda d: "d" + d["ticket_id"], customer_text=lambda d: d["customer_text"] + "!")
    both = pd.concat([h, dup.assign(created_at=h["created_at"].iloc[-1])], ignore_index=True)
    return both.rename(columns={"customer_text": "text"})[["ticket_id", "text", "created_at"]]


def _history(tickets: pd.DataFrame) -> pd.DataFrame:
    return tickets.iloc[:2200].reset_index(drop=True)


def test_a_refresh_killed_at_the_commit_leaves_the_previous_index(tickets, tmp_path):
    full, _ = find_clusters(tickets, SPEC)
    find_clusters_indexed(_history(tickets), SPEC, tmp_path)
    store = DedupIndexStore(tmp_path, SPEC)
    before = store.manifest()
    tickets.to_parquet(tmp_path / "all.parquet")
    child = textwrap.dedent(f"""
        import os, signal, sys
        import pandas as pd
        from pipeline.config import DedupSpec
        from pipeline.data import dedup_index
        dedup_index._commit_manifest = lambda store, man: os.kill(os.getpid(), signal.SIGKILL)
        dedup_index.find_clusters_indexed(pd.read_parquet({str(tmp_path / 'all.parquet')!r}), DedupSpec(), {str(tmp_path)!r})
    """)
    proc = subprocess.run([sys.executable, "-c", child], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    # the parts and the cluster table of the killed extension are on disk, but nothing names them
    assert store.manifest() == before
    assert (tmp_path / "index" / "dedup" / store.dir.name / "clusters-00001.parquet").exists()
    assert len(store.clusters()) == before["n_nodes"]
    got, st = find_clusters_indexed(tickets, SPEC, tmp_path)
    pd.testing.assert_frame_equal(got, full)
    assert not st["index"]["rebuilt"] and st["index"]["templates_new"] > 0
    man = store.manifest()
    assert man["parts"] == [0, 1] and man["clusters"] == "clusters-00001.parquet"
    assert not (store.dir / "clusters-00000.parquet").exists()  # the superseded table is gone


def test_a_failure_while_writing_the_cluster_table_changes_nothing(tickets, tmp_path, monkeypatch):
    full, _ = find_clusters(tickets, SPEC)
    find_clusters_indexed(_history(tickets), SPEC, tmp_path)
    store = DedupIndexStore(tmp_path, SPEC)
    before, old_clusters = store.manifest(), store.clusters()
    real = dedup_index._write_atomic

    def failing(table, path):
        if path.name.startswith("clusters-"):
            raise OSError(5, "Input/output error")
        return real(table, path)

    monkeypatch.setattr(dedup_index, "_write_atomic", failing)
    with pytest.raises(OSError):
        find_clusters_indexed(tickets, SPEC, tmp_path)
    assert store.manifest() == before
    pd.testing.assert_frame_equal(store.clusters(), old_clusters)
    assert not list(store.dir.glob(".tmp-*"))
    monkeypatch.setattr(dedup_index, "_write_atomic", real)
    got, _ = find_clusters_indexed(tickets, SPEC, tmp_path)
    pd.testing.assert_frame_equal(got, full)


def test_an_index_written_before_named_cluster_tables_is_still_read(tickets, tmp_path):
    find_clusters_indexed(_history(tickets), SPEC, tmp_path)
    store = DedupIndexStore(tmp_path, SPEC)
    man = store.manifest()
    os.replace(store.dir / man.pop("clusters"), store.dir / "clusters.parquet")  # the earlier layout
    (store.dir / "manifest.json").write_text(json.dumps(man))
    got, st = find_clusters_indexed(tickets, SPEC, tmp_path)
    pd.testing.assert_frame_equal(got, find_clusters(tickets, SPEC)[0])
    assert not (store.dir / "clusters.parquet").exists() and store.manifest()["clusters"] == "clusters-00001.parquet"


def test_extensions_of_one_index_wait_for_each_other(tickets, tmp_path):
    store = DedupIndexStore(tmp_path, SPEC)
    tickets.to_parquet(tmp_path / "all.parquet")
    child = textwrap.dedent(f"""
        import pandas as pd
        from pipeline.config import DedupSpec
        from pipeline.data.dedup_index import find_clusters_indexed
        find_clusters_indexed(pd.read_parquet({str(tmp_path / 'all.parquet')!r}), DedupSpec(), {str(tmp_path)!r})
        print("done")
    """)
    with store.locked():
        proc = subprocess.Popen([sys.executable, "-c", child], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        time.sleep(8)
        assert proc.poll() is None and store.manifest()["parts"] == []  # blocked on the lock, wrote nothing
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0 and "done" in out and store.manifest()["parts"] == [0]
