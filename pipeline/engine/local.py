"""The local engine: every heavy stage in this process (the default; the demo and the tests need no cluster)."""
from __future__ import annotations

import os
from typing import Sequence

import pandas as pd

from pipeline.config import TunegateConfig


class LocalEngine:
    name = "local"

    def __init__(self, cfg: TunegateConfig):
        self.cfg = cfg

    def salted(self) -> bool:
        return bool(os.environ.get(self.cfg.masking.salt_env))

    def mask(self, masker, texts: Sequence[str], progress=None) -> list:
        """`masker.mask_texts`: one `MaskResult` (masked text, entity counts) per text."""
        return masker.mask_texts(list(texts), progress=progress)

    def residual(self, texts: Sequence[str]) -> list[list[str]]:
        """Per text, the structured PII types the leak guard still finds (never the values)."""
        from pipeline.pii.leak_guard import scan_residual

        return scan_residual(list(texts))

    def clusters(self, df: pd.DataFrame, progress=None) -> tuple[pd.DataFrame, dict]:
        """`dedup.find_clusters`, through the persisted index when `engine.dedup_index` is on."""
        if self.cfg.engine.dedup_index:
            from pipeline.data.dedup_index import find_clusters_indexed

            return find_clusters_indexed(df, self.cfg.dedup, self.cfg.warehouse_path)
        from pipeline.data.dedup import find_clusters

        return find_clusters(df, self.cfg.dedup, progress=progress)

    def close(self) -> None:
        pass
