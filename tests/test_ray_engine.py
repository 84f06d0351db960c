"""The Ray engine gives what the local engine gives: masking, the leak guard, dedup, and the same version ids.

A local Ray instance with 2 CPUs is started for this module and stopped at its end.
"""
from __future__ import annotations

import pandas as pd
import pytest

from pipeline.config import load_config
from pipeline.data import steps
from pipeline.data.dedup import find_clusters
from pipeline.engine.local import LocalEngine
from pipeline.pii.masker import Masker

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_engine():
    import ray

    from pipeline.engine.ray_engine import RayEngine

    assert not ray.is_initialized()
    eng = RayEngine(load_config(None, engine={"kind": "ray"}), num_cpus=2)
    assert ray.is_initialized() and ray.cluster_resources()["CPU"] == 2
    yield eng
    eng.close()
    assert not ray.is_initialized()


@pytest.fixture(scope="module")
def sample(sample_warehouse) -> pd.DataFrame:
    from pipeline.data.ingest import ingest_landing

    wh, _ = sample_warehouse
    t = ingest_landing(load_config(None), wh / "landing").tickets[["ticket_id", "text", "created_at"]]
    return t.iloc[:5000].reset_index(drop=True)  # the first 5,000: a Ray job on 2 shared cores is slow to start


def test_ray_dedup_equals_local_on_bundled_sample(ray_engine, sample):
    got, st = ray_engine.clusters(sample)
    want, wst = find_clusters(sample, load_config(None).dedup)
    pd.testing.assert_frame_equal(got, want)
    assert st["n_verified_pairs"] == wst["n_verified_pairs"] > 20


def test_ray_masking_and_leak_guard_equal_local(ray_engine, sample_warehouse, sample):
    _, manifest = sample_warehouse
    pii_ids = {tid for tid, _ in manifest["pii_tickets"]}
    texts = sample.loc[sample["ticket_id"].isin(pii_ids), "text"].head(120).tolist()
    texts += sample["text"].head(60).tolist()
    cfg = load_config(None)
    local = LocalEngine(cfg)
    # as the masked_tickets step does: a vocabulary learnt from all texts, handed to every actor
    masker = Masker(cfg.masking, taxonomy=cfg.taxonomy, vocabulary=sample["text"].tolist())
    got = ray_engine.mask(masker, texts)
    want = local.mask(masker, texts)
    assert [(r.text, r.counts) for r in got] == [(r.text, r.counts) for r in want]
    assert sum(len(r.counts) > 0 for r in got) >= 20  # there was PII to mask
    assert ray_engine.residual(texts) == local.residual(texts)
    assert any(ray_engine.residual(texts))  # the raw texts do hold structured PII


def test_ray_steps_write_the_same_versions(ray_engine, tmp_path):
    from pipeline.data.sample.generator import generate_sample

    versions = {}
    for kind in ("local", "ray"):
        wh = tmp_path / kind
        generate_sample(wh / "landing", wh / "manifest.json", n_tickets=300)
        cfg = load_config(None, warehouse=str(wh), engine={"kind": kind})
        raw = steps.step_raw_tickets(cfg)
        masked = steps.step_masked_tickets(cfg, raw.version)
        dedup = steps.step_deduplicated_tickets(cfg, masked.version)
        versions[kind] = (raw.version, masked.version, dedup.version, masked.meta["engine"])
    assert versions["local"][:3] == versions["ray"][:3]
    assert (versions["local"][3], versions["ray"][3]) == ("local", "ray")


def test_cli_run_takes_the_engine_flag(monkeypatch):
    from assets.cli import build_parser

    args = build_parser().parse_args(["run", "--config", "x.yaml", "--engine", "ray", "--ray-address", "auto"])
    assert (args.engine, args.ray_address) == ("ray", "auto")
    monkeypatch.setenv("TUNEGATE_ENGINE", "ray")
    monkeypatch.setenv("TUNEGATE_RAY_ADDRESS", "10.0.0.5:6379")
    cfg = load_config(None)
    assert (cfg.engine.kind, cfg.engine.address) == ("ray", "10.0.0.5:6379")
    local = load_config(None, engine={"kind": "local"})
    assert (cfg.data_hash(), cfg.hash()) == (local.data_hash(), local.hash())  # an engine never changes a version
