"""Execution engines for the heavy data stages: masking, the leak guard and dedup clustering.

An engine changes where the work runs, never what it produces: the local engine (the default, no
cluster needed) and the Ray engine give the same tables, hence the same version ids. Steps ask
`get_engine(cfg)` for one and call `mask`, `residual` and `clusters`.
"""
from __future__ import annotations

from pipeline.config import TunegateConfig
from pipeline.engine.local import LocalEngine

__all__ = ["LocalEngine", "get_engine"]


def get_engine(cfg: TunegateConfig):
    """The engine the config asks for (`engine.kind`), ready to use; close it with `.close()`."""
    if cfg.engine.kind == "ray":
        from pipeline.engine.ray_engine import RayEngine

        return RayEngine(cfg)
    return LocalEngine(cfg)
