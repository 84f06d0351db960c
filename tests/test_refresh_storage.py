"""What a nightly refresh adds to the warehouse: chunks its new rows fall into, and lineage intervals.

Tables are generated Banking77 histories (`pipeline.data.sample.scale`); the catalog migration runs
on a catalog in the layout written before the intervals existed.
"""
import json

import duckdb
import pandas as pd
import pytest

from pipeline import catalog as catalog_mod
from pipeline import storage
from pipeline.catalog import Catalog
from pipeline.data.sample.scale import generate_history


@pytest.fixture(scope="module")
def history():
    h = generate_history(12000, seed=2)
    return h.assign(created_at=pd.to_datetime(h["created_at"], utc=True))


def test_a_refresh_writes_only_the_chunks_its_new_rows_fall_into(history, tmp_path):
    cut = int(len(history) * 0.99)
    v1, f1 = storage.write_version(tmp_path, storage.CLEAN_ZONE, "dataset_splits",
                                   {"train": history.iloc[:cut], "held_out": history.iloc[:0]})
    one = storage.disk_bytes(tmp_path)
    # the refresh: 1% new tickets, and one old ticket whose row changed (a label was corrected)
    changed = history.copy()
    changed.loc[10, "operator_label"] = "card_arrival"
    v2, f2 = storage.write_version(tmp_path, storage.CLEAN_ZONE, "dataset_splits",
                                   {"train": changed, "held_out": history.iloc[:0]})
    assert v1 != v2
    two = storage.disk_bytes(tmp_path)
    manifest = json.loads((f2 / storage.MANIFEST).read_text())["parts"]["train"]
    assert len(manifest["chunks"]) >= 4 and manifest["chunks_linked"] == len(manifest["chunks"]) - 2
    assert two - one < 0.4 * one  # not a second copy
    for version, want in ((v1, history.iloc[:cut]), (v2, changed)):
        got = storage.read_version(tmp_path, storage.CLEAN_ZONE, "dataset_splits", version, "train")
        pd.testing.assert_frame_equal(got, want.reset_index(drop=True))
        assert len(storage.read_version(tmp_path, storage.CLEAN_ZONE, "dataset_splits", version, "held_out")) == 0
    # any Parquet reader reads a part folder, in order
    assert pd.read_parquet(f2 / "train.parquet")["ticket_id"].tolist() == changed["ticket_id"].tolist()
    # the chunking is a function of the rows only: the same table written fresh chunks the same way
    _, f3 = storage.write_version(tmp_path / "fresh", storage.CLEAN_ZONE, "dataset_splits", {"train": changed})
    assert sorted(p.name for p in (f3 / "train.parquet").iterdir()) == sorted(p.name for p in (f2 / "train.parquet").iterdir())


def test_versions_written_before_chunking_are_still_read(history, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    v = "0123456789abcdef"  # the layout of earlier releases: one Parquet file per part
    folder = tmp_path / storage.CLEAN_ZONE / "dataset_splits" / v
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pandas(history.head(500), preserve_index=False), folder / "train.parquet")
    got = storage.read_version(tmp_path, storage.CLEAN_ZONE, "dataset_splits", v, "train")
    pd.testing.assert_frame_equal(got, history.head(500).reset_index(drop=True))


def test_removing_a_version_frees_only_the_chunks_nobody_else_links(history, tmp_path):
    from pipeline.gc import _freed

    cut = int(len(history) * 0.99)
    _, f1 = storage.write_version(tmp_path, storage.CLEAN_ZONE, "masked_tickets", {"tickets": history.iloc[:cut]})
    _, f2 = storage.write_version(tmp_path, storage.CLEAN_ZONE, "masked_tickets", {"tickets": history})
    freed = _freed([f1])
    assert 0 < freed < 0.2 * storage.disk_bytes(f1)
    before = storage.disk_bytes(tmp_path)
    import shutil

    shutil.rmtree(f1)
    assert before - storage.disk_bytes(tmp_path) == freed
    pd.testing.assert_frame_equal(storage.read_version(tmp_path, storage.CLEAN_ZONE, "masked_tickets", f2.name, "tickets"),
                                  history.reset_index(drop=True))


def _lineage_rows(ids, raw, split_of=lambda t: "train") -> pd.DataFrame:
    return pd.DataFrame({"ticket_id": ids, "raw_version": raw, "source_file": "night.parquet",
                         "cluster_id": ["c" + t for t in ids], "representative_id": ids,
                         "split": [split_of(t) for t in ids]})


def test_lineage_is_one_interval_per_unchanged_ticket_over_ten_nights(history, tmp_path):
    cat = Catalog(tmp_path / "catalog.duckdb")
    ids = history["ticket_id"].tolist()
    n0 = 2000
    for night in range(10):
        upto = n0 + 20 * night
        moved = ids[5] if night == 6 else None  # one ticket's split changes on night 6
        rows = _lineage_rows(ids[:upto], f"raw{night}", lambda t: "held_out" if t == moved else "train")
        assert cat.publish_dataset(f"v{night}", "p", "h", {}, pd.DataFrame(), rows, None, None)
    view = cat.query("SELECT dataset_version, count(*) AS n FROM ticket_lineage GROUP BY 1 ORDER BY 1")
    assert view["n"].tolist() == [n0 + 20 * k for k in range(10)]
    stored = cat.query("SELECT count(*) AS n FROM ticket_lineage_intervals")["n"].iloc[0]
    assert stored == n0 + 20 * 9 + 2  # every ticket once, plus the moved ticket's two extra intervals
    per_version = cat.query("SELECT split, dataset_version FROM ticket_lineage WHERE ticket_id = ? ORDER BY 2", [ids[5]])
    assert per_version["split"].tolist() == ["train"] * 6 + ["held_out"] + ["train"] * 3
    assert cat.query("SELECT DISTINCT raw_version FROM ticket_lineage WHERE dataset_version = 'v3'")["raw_version"].tolist() == ["raw3"]
    # gc drops a version: it leaves the view, the others keep every row
    cat.drop_ticket_lineage("v0")
    cat.drop_ticket_lineage("v6")
    view = cat.query("SELECT dataset_version, count(*) AS n FROM ticket_lineage GROUP BY 1 ORDER BY 1")
    assert view["dataset_version"].tolist() == [f"v{k}" for k in range(1, 10) if k != 6]
    assert view["n"].tolist() == [n0 + 20 * k for k in range(1, 10) if k != 6]
    assert cat.query("SELECT count(*) AS n FROM ticket_lineage_intervals WHERE from_seq = 1")["n"].iloc[0] == 0


def test_a_catalog_with_one_lineage_row_per_ticket_per_version_is_migrated(history, tmp_path):
    path = tmp_path / "catalog.duckdb"
    old = catalog_mod.SCHEMA.split("ALTER TABLE")[0] + """
        CREATE TABLE ticket_lineage (ticket_id TEXT NOT NULL, dataset_version TEXT NOT NULL, raw_version TEXT,
            source_file TEXT, cluster_id TEXT, representative_id TEXT, split TEXT, PRIMARY KEY (ticket_id, dataset_version));"""
    con = duckdb.connect(str(path))
    con.execute(old)
    ids = history["ticket_id"].head(300).tolist()
    for k in range(4):
        at = pd.Timestamp("2026-03-01", tz="UTC") + pd.Timedelta(days=k)
        con.execute("INSERT INTO dataset_versions VALUES (?, 'p', 'h', NULL, 0, 0, 0, 0, ?, NULL, '{}', ?)", [f"old{k}", at, at])
        if k == 1:
            continue  # a version whose lineage an older gc already deleted
        rows = _lineage_rows(ids[: 200 + 30 * k], f"raw{k}", lambda t: "test" if (t == ids[0] and k == 3) else "train")
        con.register("r", rows[["ticket_id"]].assign(dataset_version=f"old{k}").join(rows.drop(columns="ticket_id")))
        con.execute("INSERT INTO ticket_lineage SELECT ticket_id, dataset_version, raw_version, source_file, cluster_id, "
                    "representative_id, split FROM r")
        con.unregister("r")
    before = con.execute("SELECT * FROM ticket_lineage ORDER BY ALL").df()
    con.close()

    cat = Catalog(path)
    after = cat.query("SELECT * FROM ticket_lineage ORDER BY ALL")
    pd.testing.assert_frame_equal(before, after)
    assert cat.query("SELECT count(*) AS n FROM ticket_lineage_intervals")["n"].iloc[0] < len(before) / 2
    # the next night extends the migrated intervals
    assert cat.publish_dataset("new", "p", "h", {}, pd.DataFrame(), _lineage_rows(ids[:290], "raw4"), "old3", None)
    assert cat.query("SELECT count(*) AS n FROM ticket_lineage WHERE dataset_version = 'new'")["n"].iloc[0] == 290
    assert cat.query("SELECT seq FROM dataset_versions WHERE version = 'new'")["seq"].iloc[0] == 5
