"""Pulling a versioned split for a training run: the same table from Python or the command line, audited.

A pull reads only published versions: a version's files are complete before the catalog lists it, so
a pull during a run gets the last published version, whole. The output file is written to a
temporary sibling and renamed into place, so a full disk or a kill never leaves half a file."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from pipeline.catalog import Catalog, actor
from pipeline.config import TunegateConfig
from pipeline.storage import DiskFullError, disk_full_message, read_part

PULL_COLUMNS = ["ticket_id", "text", "label", "created_at", "channel", "group_key", "cluster_id",
                "label_status", "label_issue", "suggested_label"]


def pull_split(cfg: TunegateConfig, version: str = "latest", split: str = "train", who: str | None = None,
               with_version: bool = False):
    """Return one split of a published dataset version as a DataFrame (masked text only).

    Every pull is written to the audit log: who, when, which version and split."""
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be train, val or test, not {split!r}")
    catalog = Catalog(cfg.catalog_path)
    row = catalog.dataset_version(version)
    path = Path(row["path"]) / f"{split}.parquet"
    if not path.exists():
        raise FileNotFoundError(f"dataset version {row['version']} is in the catalog but {path} is missing")
    df = read_part(path)  # one file, or a folder of chunks (pipeline/storage.py)
    df = df[[c for c in PULL_COLUMNS if c in df.columns]]
    # the independent leak guard on the export: a row still holding structured PII is left out (by id)
    from pipeline.pii.leak_guard import scan_residual

    flagged = [bool(k) for k in scan_residual(df["text"].astype(str).tolist())] if "text" in df else []
    held = df.loc[flagged, "ticket_id"].astype(str).tolist() if any(flagged) else []
    if held:
        df = df.loc[[not f for f in flagged]].reset_index(drop=True)
    catalog.audit("pull", row["version"], {"split": split, "rows": len(df), "residual_pii_held_back": held},
                  who=who or actor())
    return (df, row["version"]) if with_version else df


def write_table(df: pd.DataFrame, out: str | Path, fmt: str) -> Path:
    out = Path(out)
    if fmt not in ("parquet", "jsonl", "csv"):
        raise ValueError(f"unknown format {fmt!r}: parquet, jsonl or csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        if fmt == "parquet":
            df.to_parquet(tmp, index=False)
        elif fmt == "jsonl":
            df.to_json(tmp, orient="records", lines=True, force_ascii=False, date_format="iso")
        else:
            df.to_csv(tmp, index=False)
        os.replace(tmp, out)
    except OSError as exc:
        if exc.errno in (28, 122):
            raise DiskFullError(disk_full_message(out.parent, str(out.name))) from exc
        raise
    finally:
        tmp.unlink(missing_ok=True)
    return out
