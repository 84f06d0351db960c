"""Shared fixtures: the bundled sample and one data-half run through Dagster, made once per session."""
import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
# The suite decides these itself: a value inherited from the shell (an injected fault, a real
# endpoint, another warehouse, a masking salt) would change what the tests observe.
for _var in ("TUNEGATE_PROVIDER_FAULTS", "TUNEGATE_PROVIDER_FAULT_SEED", "TUNEGATE_PROVIDER_MIN_EPOCH_S",
             "OPENAI_BASE_URL", "TUNEGATE_WAREHOUSE", "TUNEGATE_PII_SALT"):
    os.environ.pop(_var, None)
# the key of the providers the tests reach by URL (tests/loopback.py), never a real account's key
os.environ["OPENAI_API_KEY"] = "tg-test-loopback-key"


@pytest.fixture(scope="session")
def embedded_provider(tmp_path_factory):
    """One embedded provider (default settings) for the modules that only talk to it: started once per
    session, stopped by its PID at the end, and its process is gone afterwards. Tests that need other
    settings (fault injection, slow epochs) start their own."""
    from pipeline.model.endpoint import LocalProvider, _pid_alive

    p = LocalProvider.start(tmp_path_factory.mktemp("embedded_provider"))
    try:
        yield p
    finally:
        p.stop()
        assert not _pid_alive(p.pid)


@pytest.fixture(scope="session")
def sample_warehouse(tmp_path_factory):
    """A warehouse whose landing folder holds the full bundled sample; returns (warehouse, manifest)."""
    from pipeline.data.sample.generator import generate_sample

    wh = tmp_path_factory.mktemp("warehouse")
    manifest = generate_sample(wh / "landing", wh / "sample_manifest.json")
    return wh, manifest


@pytest.fixture(scope="session")
def data_run(sample_warehouse):
    """The data half materialized once through Dagster on the full sample."""
    from assets.runner import run_job
    from pipeline.config import load_config

    wh, manifest = sample_warehouse
    old = os.environ.get("TUNEGATE_WAREHOUSE")
    os.environ["TUNEGATE_WAREHOUSE"] = str(wh)
    try:
        cfg = load_config(None)
        result = run_job(cfg, None, job="refresh_dataset", raise_on_error=False)
    finally:
        if old is None:
            os.environ.pop("TUNEGATE_WAREHOUSE", None)
        else:
            os.environ["TUNEGATE_WAREHOUSE"] = old
    return {"cfg": cfg, "result": result, "manifest": manifest, "warehouse": wh}


def artifact_meta(cfg, artifact: str) -> tuple[str, dict]:
    from pipeline.catalog import Catalog

    row = Catalog(cfg.catalog_path).latest_artifact(artifact)
    assert row is not None, f"{artifact} was not recorded"
    return row["version"], json.loads(row["meta"])


@pytest.fixture(scope="session")
def model_run(data_run, tmp_path_factory):
    """The model half through Dagster on the data run's published version, with a sampled test set.

    The embedded provider starts by itself (no endpoint configured) and is stopped by its PID at the end."""
    import yaml

    from assets.runner import run_job
    from pipeline.config import load_config
    from pipeline.model.endpoint import LocalProvider

    wh = data_run["warehouse"]
    path = tmp_path_factory.mktemp("config") / "tunegate.yaml"
    path.write_text(yaml.safe_dump({"warehouse": str(wh),
                                    "evaluation": {"sample_size": 231, "bootstrap": 300, "repeats": 2}}))
    cfg = load_config(path)
    assert cfg.data_hash() == data_run["cfg"].data_hash()
    old = os.environ.pop("OPENAI_BASE_URL", None)
    try:
        first = run_job(cfg, str(path), job="model_half", raise_on_error=False)
        second = run_job(cfg, str(path), job="model_half", raise_on_error=False)
        yield {"cfg": cfg, "config_path": path, "first": first, "second": second}
    finally:
        if old is not None:
            os.environ["OPENAI_BASE_URL"] = old
        provider = LocalProvider.find(wh / "provider")
        if provider is not None:
            provider.stop(force=True)
