"""The masking cache: a refresh masks only the texts it has not seen and gives the same masked texts for
the others; a re-run, a damaged part and a cache that is off all end in the same tickets."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from pipeline import storage
from pipeline.config import DATA_DIR, load_config
from pipeline.data.sample.generator import generate_sample
from pipeline.data.steps import step_masked_tickets, step_raw_tickets

pytestmark = pytest.mark.slow  # the masking stage on a 300-ticket sample, four times


def _masked(cfg):
    raw = step_raw_tickets(cfg)
    out = step_masked_tickets(cfg, raw.version)
    t = storage.read_version(cfg.warehouse_path, storage.CLEAN_ZONE, "masked_tickets", out.version, "tickets")
    return out, t.set_index("ticket_id")["text"]


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    wh = tmp_path_factory.mktemp("wh")
    manifest = generate_sample(wh / "landing", wh / "manifest.json", n_tickets=300)
    cfg = load_config(None, warehouse=str(wh))
    first, texts = _masked(cfg)
    return wh, cfg, manifest, first, texts


def test_a_rerun_masks_nothing_and_gives_the_same_tickets(history):
    _, cfg, _, first, texts = history
    assert first.meta["mask_cache"]["texts_masked"] > 0
    again, texts2 = _masked(cfg)
    assert again.meta["mask_cache"]["texts_masked"] == 0 and again.version == first.version
    assert texts2.equals(texts)
    # the cache sits in the raw zone, next to the raw tickets it is made from
    parts = list((cfg.warehouse_path / storage.RAW_ZONE / "mask_cache").rglob("part-*.parquet"))
    assert parts and not list((cfg.warehouse_path / storage.CLEAN_ZONE).rglob("mask_cache"))


def test_a_refresh_masks_only_its_new_tickets(history):
    wh, cfg, manifest, first, texts = history
    new = pd.read_csv(DATA_DIR / "banking77" / "test.csv").head(3)
    rows = pd.DataFrame({"ticket_id": ["NEW-1", "NEW-2", "NEW-3"], "created_at": "2026-10-01T10:00:00+05:00",
                         "channel": "app", "customer_text": [new.text[0] + " My name is Aliya Serikova.",
                                                             new.text[1], new.text[2] + " call +7 701 555 1234"],
                         "operator_label": new.category, "operator_id": "op-001"})
    rows.to_csv(wh / "landing" / "tickets_2026_10.csv", index=False)
    try:
        out, after = _masked(cfg)
        assert out.meta["mask_cache"]["texts_masked"] == 3
        assert out.meta["mask_cache"]["vocabulary"] == "kept from an earlier run"
        assert after.loc[texts.index].equals(texts)  # every earlier ticket masked as before
        assert "Serikova" not in after["NEW-1"] and "555" not in after["NEW-3"]
        # the same as masking those three with the vocabulary of the first run, without the cache
        from pipeline.pii.masker import Masker

        state = json.loads(next((wh / storage.RAW_ZONE / "mask_cache").rglob("state.json")).read_text())
        m = Masker(cfg.masking, taxonomy=cfg.taxonomy)
        m.use_common_words(state["words"])
        assert [r.text for r in m.mask_texts(rows["customer_text"].tolist())] == after.loc[rows.ticket_id].tolist()
    finally:
        (wh / "landing" / "tickets_2026_10.csv").unlink()


def test_a_damaged_part_is_masked_again_with_the_same_result(history):
    _, cfg, _, first, texts = history
    for part in (cfg.warehouse_path / storage.RAW_ZONE / "mask_cache").rglob("part-*.parquet"):
        part.write_bytes(b"garbage")
    out, again = _masked(cfg)
    assert out.meta["mask_cache"]["texts_masked"] > 0 and again.equals(texts)


def test_without_the_cache_the_first_build_is_the_same(history, tmp_path):
    wh, cfg, manifest, first, texts = history
    off = load_config(None, warehouse=str(tmp_path), masking={"cache": False})
    import shutil

    shutil.copytree(wh / "landing", tmp_path / "landing")
    out, plain = _masked(off)
    assert out.meta["mask_cache"]["texts_from_cache"] == 0 and plain.equals(texts)
    assert not (tmp_path / storage.RAW_ZONE / "mask_cache").exists()
