"""`tunegate gc` on a real warehouse: two nightly builds of a generated Banking77 history."""
from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.catalog import Catalog
from pipeline.config import load_config
from pipeline.data import steps
from pipeline.data.sample.scale import generate_history, write_landing
from pipeline.gc import plan_gc, run_gc

pytestmark = pytest.mark.slow


def _build(cfg) -> dict:
    raw = steps.step_raw_tickets(cfg)
    masked = steps.step_masked_tickets(cfg, raw.version)
    dedup = steps.step_deduplicated_tickets(cfg, masked.version)
    lab = steps.step_labelled_tickets(cfg, dedup.version)
    split = steps.step_dataset_splits(cfg, lab.version, raw.version)
    return {"raw_tickets": raw, "masked_tickets": masked, "deduplicated_tickets": dedup,
            "labelled_tickets": lab, "dataset_splits": split}


@pytest.fixture(scope="module")
def two_nights(tmp_path_factory):
    wh = tmp_path_factory.mktemp("gc_wh")
    hist = generate_history(2400, seed=11, days=3)
    days = hist["created_at"].str.slice(0, 10)
    write_landing(hist[days < days.max()], wh / "landing")
    cfg = load_config(None, warehouse=str(wh))
    first = _build(cfg)
    write_landing(hist[days == days.max()], wh / "landing")  # the next night's file
    second = _build(cfg)
    assert all(first[a].version != second[a].version for a in first)
    return cfg, first, second


def test_dry_run_lists_old_versions_and_changes_nothing(two_nights):
    cfg, first, second = two_nights
    plan = plan_gc(cfg)
    removed = set(zip(plan.remove.artifact, plan.remove.version))
    assert removed == {(a, o.version) for a, o in first.items()}
    assert {(a, o.version) for a, o in second.items()} <= set(zip(plan.keep.artifact, plan.keep.version))
    assert all(Path(o.path).exists() for o in first.values())  # a plan removes nothing
    assert plan.bytes_freed > 0 and "remove raw_tickets@" in plan.summary()


def test_pull_keeps_a_version_and_everything_upstream(two_nights):
    from pipeline.pull import pull_split

    cfg, first, _ = two_nights
    pull_split(cfg, first["dataset_splits"].version, "train", who="analyst")
    plan = plan_gc(cfg)
    assert plan.remove.empty  # the pulled dataset needs every version of the first night
    keep = plan.keep.set_index(["artifact", "version"])["reason"]
    assert keep[("dataset_splits", first["dataset_splits"].version)] == "pulled by analyst"
    assert keep[("raw_tickets", first["raw_tickets"].version)] == "upstream of a kept version"
    with Catalog(cfg.catalog_path).connect() as con:  # forget the pull for the next tests
        con.execute("DELETE FROM audit_log WHERE action = 'pull'")


def test_gc_refuses_what_a_fine_tuning_job_points_to(two_nights):
    cfg, first, _ = two_nights
    cat = Catalog(cfg.catalog_path)
    with cat.connect() as con:
        con.execute("INSERT INTO finetune_jobs (job_id, dataset_version, status) VALUES ('ftjob-old', ?, 'succeeded')",
                    [first["dataset_splits"].version])
    try:
        plan = plan_gc(cfg)
        assert plan.remove.empty
        ref = plan.refused.set_index(["artifact", "version"])["reason"]
        assert ref[("dataset_splits", first["dataset_splits"].version)] == "fine-tuning job ftjob-old trained on it"
        assert ref[("raw_tickets", first["raw_tickets"].version)].startswith("upstream of refused")
    finally:
        with cat.connect() as con:
            con.execute("DELETE FROM finetune_jobs WHERE job_id = 'ftjob-old'")


def test_cli_dry_run_then_delete(two_nights, capsys):
    from assets.cli import main

    cfg, first, second = two_nights
    cfg_file = Path(cfg.warehouse_path) / "tunegate.yaml"
    cfg_file.write_text(f"warehouse: {cfg.warehouse_path}\n")
    assert main(["gc", "--config", str(cfg_file)]) == 0
    assert "dry run" in capsys.readouterr().out
    assert all(Path(o.path).exists() for o in first.values())
    old_lineage = Catalog(cfg.catalog_path).query("SELECT count(*) AS n FROM ticket_lineage WHERE dataset_version = ?",
                                                  [first["dataset_splits"].version]).n.iloc[0]
    assert old_lineage > 0
    assert main(["gc", "--config", str(cfg_file), "--delete"]) == 0
    assert "removed 5 versions" in capsys.readouterr().out
    assert not any(Path(o.path).exists() for o in first.values())
    assert all(Path(o.path).exists() for o in second.values())
    cat = Catalog(cfg.catalog_path)
    assert cat.query("SELECT count(*) AS n FROM ticket_lineage WHERE dataset_version = ?",
                     [first["dataset_splits"].version]).n.iloc[0] == 0
    assert len(cat.query("SELECT * FROM audit_log WHERE action = 'gc'")) == 5
    assert plan_gc(cfg).remove.empty  # nothing left to collect


def test_caches_of_settings_no_longer_in_use_are_collected(two_nights):
    """The state stages keep between runs (docs/refresh.md): the folder of the current label-check settings,
    or else the one written last, stays; an older settings' folder goes, and nothing else is touched."""
    import os
    import shutil

    cfg, _, _ = two_nights
    wh = cfg.warehouse_path
    kept = [steps.label_state_dir(cfg)] + [next(p for p in (wh / rel).iterdir() if p.is_dir())
                                           for rel in ("raw/mask_cache", "raw/leak_guard_cache")]
    assert all(p.is_dir() for p in kept)  # the two builds wrote them
    old_labels = wh / "index" / "labels" / "0000000000000000"
    old_mask = wh / "raw" / "mask_cache" / "0000000000000000"
    shutil.copytree(kept[0], old_labels)
    shutil.copytree(kept[1], old_mask)
    for f in old_mask.rglob("*"):  # written before the current cache
        os.utime(f, (1, 1))
    os.utime(kept[0], (1, 1))  # the current label settings stay however old their folder is
    plan = plan_gc(cfg)
    assert {old_labels, old_mask} <= set(plan.stale_indexes)
    assert not set(kept) & set(plan.stale_indexes)
    assert "stale" in plan.summary()
    run_gc(cfg, plan)
    assert not old_labels.exists() and not old_mask.exists() and all(p.is_dir() for p in kept)
