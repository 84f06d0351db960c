"""A run that fails halfway, run again, ends in the same state as a run that never failed."""
import pandas as pd
import pytest

from pipeline.data import steps
from pipeline import storage
from pipeline.catalog import Catalog
from pipeline.config import load_config
from pipeline.data.sample.generator import generate_sample


def _chain(cfg):
    return [out.version for out in steps.run_data_half(cfg)]


def _state(cfg):
    cat = Catalog(cfg.catalog_path)
    files = sorted(str(p.relative_to(cfg.warehouse_path)) for p in cfg.warehouse_path.rglob("*.parquet"))
    return {
        "files": files,
        "tmp": sorted(str(p) for p in cfg.warehouse_path.rglob(".tmp-*")),
        "artifacts": cat.query("SELECT artifact, version, rows FROM artifact_versions ORDER BY ALL").values.tolist(),
        "edges": cat.query("SELECT * FROM lineage_edges ORDER BY ALL").values.tolist(),
        "datasets": cat.query("SELECT version, n_train, n_val, n_test FROM dataset_versions ORDER BY ALL").values.tolist(),
        "assignments": cat.query("SELECT ticket_id, split FROM split_assignments ORDER BY ALL").values.tolist(),
        "lineage": cat.query("SELECT count(*) FROM ticket_lineage").values.tolist(),
    }


@pytest.fixture(scope="module")
def landing(tmp_path_factory):
    root = tmp_path_factory.mktemp("landing")
    generate_sample(root / "landing", root / "manifest.json", n_tickets=1500)
    return root / "landing"


@pytest.mark.slow
def test_failed_run_then_rerun_equals_clean_run(landing, tmp_path, monkeypatch):
    clean = load_config(None, warehouse=str(tmp_path / "clean"), landing={"path": str(landing)})
    clean_versions = _chain(clean)

    broken = load_config(None, warehouse=str(tmp_path / "broken"), landing={"path": str(landing)})
    real_write = storage._write_table
    calls = {"n": 0}

    def failing_write(df, path):
        if path.name == "members.parquet":  # die in the middle of writing the dedup version
            calls["n"] += 1
            raise OSError("disk full (simulated)")
        real_write(df, path)

    monkeypatch.setattr(storage, "_write_table", failing_write)
    with pytest.raises(OSError):
        _chain(broken)
    assert calls["n"] == 1
    assert not list((broken.warehouse_path / "datasets").glob("deduplicated_tickets/*"))  # nothing half-written
    monkeypatch.setattr(storage, "_write_table", real_write)

    assert _chain(broken) == clean_versions
    a, b = _state(clean), _state(broken)
    assert a["tmp"] == [] and b["tmp"] == []
    for key in ("files", "artifacts", "edges", "datasets", "assignments", "lineage"):
        assert a[key] == b[key], key


@pytest.mark.slow
def test_rerun_of_a_finished_run_changes_nothing(landing, tmp_path):
    cfg = load_config(None, warehouse=str(tmp_path / "wh"), landing={"path": str(landing)})
    first = _chain(cfg)
    before = _state(cfg)
    assert _chain(cfg) == first
    assert _state(cfg) == before


@pytest.mark.slow
def test_masking_that_leaves_pii_quarantines_those_tickets(landing, tmp_path, monkeypatch):
    """If masking misses structured PII, the leak guard quarantines those tickets (reason residual_pii, ids and
    types only) and the run goes on with the others: nothing raw leaves the raw zone, nothing aborts."""
    from pipeline.pii.leak_guard import scan_residual
    from pipeline.pii.masker import Masker, MaskResult

    cfg = load_config(None, warehouse=str(tmp_path / "wh"), landing={"path": str(landing)})
    raw = steps.step_raw_tickets(cfg)
    monkeypatch.setattr(Masker, "mask_texts", lambda self, texts, **kw: [MaskResult(t, {}) for t in texts])
    out = steps.step_masked_tickets(cfg, raw.version)
    kept = storage.read_version(cfg.warehouse_path, storage.CLEAN_ZONE, "masked_tickets", out.version, "tickets")
    quarantine = storage.read_version(cfg.warehouse_path, storage.CLEAN_ZONE, "masked_tickets", out.version, "quarantine")
    assert len(quarantine) > 0 and set(quarantine["reason"]) == {"residual_pii"} and "text" not in quarantine
    assert out.meta["quarantined_residual_pii"] == len(quarantine) and len(kept) + len(quarantine) == out.meta["rows_in"]
    assert not set(quarantine["ticket_id"]) & set(kept["ticket_id"])
    assert not any(scan_residual(kept["text"].tolist()))
