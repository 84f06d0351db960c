"""A full disk in the middle of a run: one clear line, nothing half-written, and the next run after
space is freed ends where a clean run ends.

The real test puts the warehouse on a small tmpfs (needs root to mount; skipped otherwise) filled by a
ballast file, so ENOSPC comes from the kernel wherever the run happens to be writing: a Parquet
version or the DuckDB catalog. A second test
raises ENOSPC from the storage layer's table writer, which works anywhere."""
import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline import storage
from pipeline.catalog import Catalog
from pipeline.config import load_config
from pipeline.data import steps
from pipeline.data.sample.generator import generate_sample


def _chain(cfg):
    return [out.version for out in steps.run_data_half(cfg)]


def _complete(wh: Path) -> None:
    """Every version folder on disk is whole: each Parquet part reads back."""
    import pyarrow.parquet as pq

    assert not list(wh.rglob(".tmp-*"))
    for part in wh.rglob("*.parquet"):
        pq.read_table(part)


@pytest.fixture(scope="module")
def landing(tmp_path_factory):
    root = tmp_path_factory.mktemp("disk-landing")
    generate_sample(root / "landing", root / "manifest.json", n_tickets=400)
    return root / "landing"


@pytest.fixture(scope="module")
def clean(tmp_path_factory, landing):
    wh = tmp_path_factory.mktemp("disk-clean")
    cfg = load_config(None, warehouse=str(wh), landing={"path": str(landing)})
    versions = _chain(cfg)
    size = sum(p.stat().st_size for p in wh.rglob("*") if p.is_file())
    return versions, size


@pytest.mark.slow
def test_enospc_from_the_storage_layer(tmp_path, landing, clean, monkeypatch):
    cfg = load_config(None, warehouse=str(tmp_path / "wh"), landing={"path": str(landing)})
    real = storage._write_table

    def full(df, path):
        if path.name == "clusters.parquet" or path.parent.parent.name == "labelled_tickets":
            with open(path, "wb") as fh:  # half a file, then the disk is full
                fh.write(b"PAR1" + b"\0" * 100)
            raise OSError(errno.ENOSPC, "No space left on device")
        real(df, path)

    monkeypatch.setattr(storage, "_write_table", full)
    with pytest.raises(storage.DiskFullError) as err:
        _chain(cfg)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("disk full while writing") and "free space" in msg
    _complete(cfg.warehouse_path)
    monkeypatch.setattr(storage, "_write_table", real)
    assert _chain(cfg) == clean[0]
    _complete(cfg.warehouse_path)


def _can_mount() -> bool:
    return os.geteuid() == 0 and shutil.which("mount") is not None


@pytest.fixture
def tmpfs(tmp_path):
    if not _can_mount():
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    size_kb = 64 * 1024
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield mnt, size_kb * 1024
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.slow
@pytest.mark.parametrize("free", ["16k", "30%", "60%"])
def test_enospc_on_a_full_tmpfs(tmpfs, landing, clean, free):
    mnt, capacity = tmpfs
    versions, needed = clean
    ballast = mnt / "ballast"
    # the disk fills at some point inside the chain: 16 KiB fails the first Parquet version, the
    # shares of what a clean run needs (mostly the DuckDB catalog) fail later writes
    free_target = 16 * 1024 if free == "16k" else int(needed * int(free.rstrip("%")) / 100)
    with open(ballast, "wb") as fh:
        fh.write(b"\0" * max(0, capacity - free_target))
    cfg = load_config(None, warehouse=str(mnt / "wh"), landing={"path": str(landing)})
    with pytest.raises(storage.DiskFullError) as err:
        _chain(cfg)
    assert "\n" not in str(err.value) and "disk full" in str(err.value)
    print(f"\n[free {free}] {err.value}")
    _complete(cfg.warehouse_path)

    ballast.unlink()  # space is freed
    assert _chain(cfg) == versions
    _complete(cfg.warehouse_path)
    cat = Catalog(cfg.catalog_path)
    assert cat.query("SELECT count(*) AS n FROM dataset_versions")["n"].iloc[0] == 1


def test_a_full_tmpfs_fails_one_version_write_cleanly(tmpfs):
    """The fast version of the above: one version of real tickets onto a full tmpfs, then with room."""
    import pandas as pd

    from pipeline.config import DATA_DIR

    mnt, capacity = tmpfs
    df = pd.read_csv(DATA_DIR / "banking77" / "train.csv").head(3000)
    ballast = mnt / "ballast"
    ballast.write_bytes(b"\0" * (capacity - 24 * 1024))
    with pytest.raises(storage.DiskFullError) as err:
        storage.write_version(mnt / "wh", storage.CLEAN_ZONE, "masked_tickets", {"tickets": df})
    assert "\n" not in str(err.value) and "masked_tickets" in str(err.value)
    assert not list((mnt / "wh").rglob("*.parquet")) and not list((mnt / "wh").rglob(".tmp-*"))
    ballast.unlink()
    version, folder = storage.write_version(mnt / "wh", storage.CLEAN_ZONE, "masked_tickets", {"tickets": df})
    assert version == storage.content_hash({"tickets": df})
    assert storage.read_version(mnt / "wh", storage.CLEAN_ZONE, "masked_tickets", version, "tickets").equals(df)
