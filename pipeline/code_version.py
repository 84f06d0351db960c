"""Code versions: a short hash of the source a stage runs, so an orchestrator can tell which outputs
were made by code that has changed since (Dagster shows them as stale).

Each stage names the modules and packages of its logic; the hash covers their `.py` files byte for
byte, so an edit anywhere in them gives a new version and nothing else does.
"""
from __future__ import annotations

import hashlib
import importlib.util
from functools import lru_cache
from pathlib import Path

# The logic behind each stage (the shared step shell `pipeline.data.steps`, config and storage are in
# every stage: a change to how any stage reads, versions or writes data touches them all).
COMMON = ("pipeline.config", "pipeline.storage", "pipeline.data.steps")
STAGE_SOURCES: dict[str, tuple[str, ...]] = {
    "raw_tickets": ("pipeline.data.ingest",),
    "masked_tickets": ("pipeline.pii", "pipeline.engine"),
    "deduplicated_tickets": ("pipeline.data.dedup", "pipeline.data.dedup_index", "pipeline.data.signatures",
                             "pipeline.engine"),
    "labelled_tickets": ("pipeline.data.labels",),
    "dataset_splits": ("pipeline.data.splits", "pipeline.data.validation", "pipeline.pii.leak_guard"),
    "finetune_files": ("pipeline.model.steps", "pipeline.model.finetune_files", "pipeline.model.prompts",
                       "pipeline.pii.leak_guard"),
    "finetune_job": ("pipeline.model.steps", "pipeline.model.finetune", "pipeline.model.endpoint"),
    "holdout_evaluation": ("pipeline.model.steps", "pipeline.model.evaluation", "pipeline.model.fresh",
                           "pipeline.model.prompts", "pipeline.model.stats", "pipeline.model.endpoint"),
    "decision_report": ("pipeline.model.steps", "pipeline.model.report"),
}


def _files(module: str) -> list[tuple[str, Path]]:
    """(name inside the module, path) of each source file of a module or package."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ValueError(f"no module {module}")
    origin = Path(spec.origin)
    if spec.submodule_search_locations:  # a package: every module in it
        return [(p.relative_to(origin.parent).as_posix(), p) for p in sorted(origin.parent.rglob("*.py"))]
    return [(origin.name, origin)]


@lru_cache(maxsize=None)
def code_version(stage: str) -> str:
    """16 hex digits of the SHA-256 of the stage's source files (see STAGE_SOURCES)."""
    h = hashlib.sha256()
    for module in sorted(set(COMMON + STAGE_SOURCES[stage])):
        for name, path in _files(module):
            h.update(f"{module}:{name}".encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]
