"""The IO manager for version references: each asset's value is a small JSON reference, not its data.

The data of record is the content-addressed Parquet version the step wrote under the warehouse; between
assets only its reference travels (artifact, version, path, rows and JSON-safe figures). Dagster's
default IO manager pickles that reference under `.dagster/storage` and sets the asset's `path` metadata
to the pickle; this one stores it as readable JSON and leaves `path` to the asset, which points it at
the Parquet version folder.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg


class VersionRefIOManager(dg.ConfigurableIOManager):
    """Stores each asset's reference as `<DAGSTER_HOME>/storage/refs/<asset key>.json`."""

    def _file(self, instance: dg.DagsterInstance, key: dg.AssetKey) -> Path:
        return Path(instance.storage_directory()) / "refs" / (os.path.join(*key.path) + ".json")

    def handle_output(self, context: dg.OutputContext, obj: dict) -> None:
        path = self._file(context.step_context.instance, context.asset_key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(obj, sort_keys=True, indent=1), encoding="utf-8")
        os.replace(tmp, path)  # atomic: a reader never sees half a reference

    def load_input(self, context: dg.InputContext) -> dict:
        path = self._file(context.instance, context.asset_key)
        if not path.exists():
            raise dg.Failure(description=f"{context.asset_key.to_user_string()} has not been materialized in this "
                                         f"Dagster instance yet ({path} missing): run it first")
        return json.loads(path.read_text(encoding="utf-8"))
