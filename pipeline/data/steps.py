"""The data half as steps: read the parent version, run the stage, write an immutable version, record lineage.

Each `step_*` function is what one Dagster asset does (the assets only wrap them), and what
`tunegate run` and the tests call through Dagster. A step takes its parent's version id and returns a
`StepOutput` with its own version id and JSON-safe metadata: counts and statistics, never ticket text.
Because versions are content hashes written atomically, re-running a step after a failure ends in the
same state as a clean run: existing versions are reused, nothing is written twice.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pipeline import storage
from pipeline.catalog import Catalog
from pipeline.config import TunegateConfig
from pipeline.progress import tracker

CODE_VERSION = "1"


@dataclass
class StepOutput:
    artifact: str
    version: str
    path: str
    rows: int
    meta: dict = field(default_factory=dict)

    def ref(self) -> dict:
        return {"artifact": self.artifact, "version": self.version, "path": self.path, "rows": self.rows}


def _finish(cfg: TunegateConfig, artifact: str, zone: str, tables: dict[str, pd.DataFrame], rows: int,
            parents: list[tuple[str, str]], run_id: str | None, meta: dict) -> StepOutput:
    version = storage.content_hash(tables, extra=f"{artifact}:{CODE_VERSION}:{cfg.data_hash()}")
    version, folder = storage.write_version(cfg.warehouse_path, zone, artifact, tables, version=version)
    Catalog(cfg.catalog_path).record_artifact(
        artifact, version, str(folder), rows, parents=parents, run_id=run_id, code_version=CODE_VERSION,
        config_hash=cfg.data_hash(), meta=meta)
    return StepOutput(artifact, version, str(folder), rows, meta)


def _read(cfg: TunegateConfig, zone: str, artifact: str, version: str, part: str) -> pd.DataFrame:
    return storage.read_version(cfg.warehouse_path, zone, artifact, version, part)


# -- raw_tickets -----------------------------------------------------------------------------------
def step_raw_tickets(cfg: TunegateConfig, run_id: str | None = None) -> StepOutput:
    from pipeline.data.ingest import ingest_landing

    storage.clean_stale_tmp(cfg.warehouse_path)
    res = ingest_landing(cfg)
    if res.rows_in == 0:
        from pipeline.errors import UserError

        raise UserError(f"no records in landing folder {cfg.landing_path} ({len(res.files)} files; patterns "
                        f"{cfg.landing.patterns}): drop an export there or fix `landing:` in the config")
    meta = {
        "rows_in": res.rows_in,
        "rows_kept": len(res.tickets),
        "rows_quarantined": len(res.quarantine),
        "quarantine_by_reason": res.quarantine_counts(),
        "files": res.files.drop(columns=["message"]).to_dict("records"),
        "warnings": res.warnings,
    }
    out = _finish(cfg, "raw_tickets", storage.RAW_ZONE,
                  {"tickets": res.tickets, "quarantine": res.quarantine, "files": res.files},
                  len(res.tickets), [], run_id, meta)
    if res.tickets.empty:  # the quarantine is kept (above) so the reasons can be read
        from pipeline.errors import UserError

        why = sorted((f"{r.source_file}: {r.message}" for r in res.files.itertuples() if getattr(r, "message", "")),
                     key=lambda m: "required column" not in m)
        raise UserError((why[0] + "; " if why else "") + f"every one of the {res.rows_in} records in "
                        f"{cfg.landing_path} was quarantined: {res.quarantine_counts()}")
    return out


# -- masked_tickets --------------------------------------------------------------------------------
def step_masked_tickets(cfg: TunegateConfig, raw_version: str, run_id: str | None = None) -> StepOutput:
    from pipeline.engine import get_engine
    from pipeline.pii.leak_guard import RESIDUAL_REASON, scan_residual_cached
    from pipeline.pii.masker import Masker

    raw = _read(cfg, storage.RAW_ZONE, "raw_tickets", raw_version, "tickets")
    engine = get_engine(cfg)
    # the not-a-name vocabulary comes from this landing data and the taxonomy (pipeline/pii/vocabulary.py);
    # with the cache, texts masked by an earlier run are taken from it (pipeline/pii/mask_cache.py)
    texts_in = raw["text"].fillna("").astype(str).tolist()
    progress = tracker("masking")
    if cfg.masking.cache:
        from pipeline.code_version import code_version
        from pipeline.pii.mask_cache import mask_with_cache, settings_key

        masker = Masker(cfg.masking, taxonomy=cfg.taxonomy)
        key = settings_key(cfg.masking, cfg.taxonomy, code_version("masked_tickets"), masker)
        results, cache_info, masked_now = mask_with_cache(
            cfg.warehouse_path / storage.RAW_ZONE, key, masker, texts_in,
            lambda ts: engine.mask(masker, ts, progress=progress), cfg.masking.cache_refit_share)
    else:
        masker = Masker(cfg.masking, taxonomy=cfg.taxonomy, vocabulary=texts_in)
        results = engine.mask(masker, texts_in, progress=progress)
        cache_info, masked_now = {"texts_masked": len(texts_in), "texts_from_cache": 0}, None
    # the same words masked the same way in near-identical tickets (pipeline/pii/consistency.py)
    results, consistency = _harmonise(raw, results, masker, engine, cfg)
    texts, counts = [r.text for r in results], [r.counts for r in results]
    masked = raw.drop(columns=["text"]).copy()
    masked.insert(3, "text", texts)
    masked["pii_types"] = [",".join(sorted(c)) for c in counts]
    by_type: Counter = Counter()
    for c in counts:
        by_type.update(c)
    # the leak guard reads every masked text; one it has read before (same text, same guard) is not read again
    residual, guard_info = scan_residual_cached(masked["text"].tolist(), cfg.warehouse_path / storage.RAW_ZONE
                                                / "leak_guard_cache", scan=engine.residual)
    residual_rows = [{"ticket_id": t, "reason": RESIDUAL_REASON, "types": ",".join(sorted(set(types)))}
                     for t, types in zip(masked["ticket_id"], residual) if types]
    residual_by_type = Counter(t for row in residual_rows for t in row["types"].split(","))
    # a ticket the independent guard still finds structured PII in never leaves the raw zone: it is
    # quarantined (ids and types only, never its text) and the run goes on with the others
    quarantine = pd.DataFrame(residual_rows, columns=["ticket_id", "reason", "types"])
    if residual_rows:
        masked = masked[~masked["ticket_id"].isin(set(quarantine["ticket_id"]))].reset_index(drop=True)
    meta = {
        "rows_in": len(raw),
        "rows": len(masked),
        "quarantined_residual_pii": len(residual_rows),
        "tickets_with_pii": int((masked["pii_types"] != "").sum()),
        "pii_share": round(float((masked["pii_types"] != "").mean()), 4) if len(masked) else 0.0,
        "entities_by_type": dict(sorted(by_type.items())),
        "residual_rows": len(residual_rows),
        "residual_by_type": dict(residual_by_type),
        "residual_ticket_ids": [r["ticket_id"] for r in residual_rows][:50],
        "salted_tokens": engine.salted(),
        "engine": engine.name,
        # what masking costs the data (pipeline/pii/quality.py): masks over a word of the row's own label,
        # near-identical tickets masked differently
        **_masking_quality(raw, results, masker, cfg, masked_now),
        "inconsistent_near_duplicates": consistency,
        "mask_cache": cache_info,
        "leak_guard_cache": guard_info,
    }
    return _finish(cfg, "masked_tickets", storage.CLEAN_ZONE, {"tickets": masked, "quarantine": quarantine}, len(masked),
                   [("raw_tickets", raw_version)], run_id, meta)


def _harmonise(raw: pd.DataFrame, results, masker, engine, cfg: TunegateConfig) -> tuple[list, dict]:
    from pipeline.pii.consistency import harmonise
    from pipeline.pii.masker import MaskResult

    h = harmonise(raw["text"].fillna("").astype(str).tolist(), [r.text for r in results], cfg.dedup,
                  token=masker.token if engine.salted() else None,
                  template_cache=cfg.warehouse_path / storage.RAW_ZONE / "template_cache")
    out = [r if not add else MaskResult(t, dict(Counter(r.counts) + add))
           for r, t, add in zip(results, h.texts, h.added)]
    return out, h.summary()


def _masking_quality(raw: pd.DataFrame, results, masker, cfg: TunegateConfig, masked_now=None) -> dict:
    """`masked_now`: the rows masked in this run when the others came from the mask cache; the label-word
    share is measured on those (their analysis is still in the masker's memory), not all rows again."""
    from pipeline.pii.quality import label_word_share

    texts = raw["text"].fillna("").astype(str).tolist()
    out = {}
    label_col = "label" if "label" in raw.columns else "label_raw"  # the operator's label, as written
    if label_col in raw.columns:
        rows = range(len(texts)) if masked_now is None else masked_now
        sub = [texts[i] for i in rows]
        spans = masker.analyze(sub)  # cached: no second analysis
        labels = raw[label_col].iloc[list(rows)].fillna("").astype(str).str.strip().str.casefold().tolist()
        out["label_word_masks"] = {**label_word_share(sub, spans, labels, cfg.taxonomy),
                                   "rows_measured": len(sub)}
    return out


# -- deduplicated_tickets --------------------------------------------------------------------------
def step_deduplicated_tickets(cfg: TunegateConfig, masked_version: str, run_id: str | None = None) -> StepOutput:
    from pipeline.data.dedup import cluster_label_conflicts
    from pipeline.engine import get_engine

    masked = _read(cfg, storage.CLEAN_ZONE, "masked_tickets", masked_version, "tickets")
    clusters, stats = get_engine(cfg).clusters(masked[["ticket_id", "text", "created_at"]], progress=tracker("dedup"))
    members = masked.merge(clusters, on="ticket_id", how="left", validate="one_to_one")
    reps = members[members["is_representative"]].reset_index(drop=True)
    conflicts = cluster_label_conflicts(members.assign(label=members["label_raw"].str.strip().str.casefold()))
    meta = {"rows_in": len(masked), "rows_kept": len(reps), "rows_removed": len(masked) - len(reps),
            "label_conflicting_clusters_raw": len(conflicts), **_json_safe(stats)}
    return _finish(cfg, "deduplicated_tickets", storage.CLEAN_ZONE,
                   {"tickets": reps, "members": members}, len(reps),
                   [("masked_tickets", masked_version)], run_id, meta)


# -- labelled_tickets ------------------------------------------------------------------------------
def label_state_dir(cfg: TunegateConfig) -> Path:
    """Where the label-check model of the last full check is kept, per label-check settings and taxonomy."""
    blob = json.dumps({"label_checks": cfg.label_checks.model_dump(mode="json"),
                       "taxonomy": cfg.taxonomy.model_dump(mode="json")}, sort_keys=True, default=str)
    return cfg.warehouse_path / "index" / "labels" / hashlib.sha256(blob.encode()).hexdigest()[:16]


def step_labelled_tickets(cfg: TunegateConfig, dedup_version: str, run_id: str | None = None) -> StepOutput:
    from pipeline.data.labels import check_labels

    members = _read(cfg, storage.CLEAN_ZONE, "deduplicated_tickets", dedup_version, "members")
    rep_of = members.loc[members["is_representative"], ["cluster_id", "ticket_id"]].rename(
        columns={"ticket_id": "representative_id"})
    members = members.merge(rep_of, on="cluster_id", how="left", validate="many_to_one")
    labelled, report = check_labels(members, members[["ticket_id", "cluster_id", "exact_group"]], cfg.taxonomy,
                                    cfg.label_checks, frozen=published_labels(cfg),
                                    progress=tracker("label checks"), state_dir=label_state_dir(cfg))
    rejected = report.pop("rejected", None)
    context = members[["ticket_id", "created_at", "channel", "text", "operator_id", "source_file", "cluster_id",
                       "exact_group", "representative_id", "is_representative", "dup_kind"]]
    labelled = context.merge(labelled, on="ticket_id", how="inner", validate="one_to_one")
    tables = {"tickets": labelled}
    if rejected is not None and len(rejected):
        tables["rejected"] = rejected.astype({c: str for c in rejected.columns if rejected[c].dtype == object})
    meta = {"rows": len(labelled), "rows_rejected": 0 if rejected is None else len(rejected),
            **{k: v for k, v in _json_safe(report).items() if k not in ("class_counts", "variants")},
            "label_variants": len(report.get("variants", [])),
            "classes": len(report.get("class_counts", {}))}
    return _finish(cfg, "labelled_tickets", storage.CLEAN_ZONE, tables, len(labelled),
                   [("deduplicated_tickets", dedup_version)], run_id, meta)


# -- dataset_splits --------------------------------------------------------------------------------
def step_dataset_splits(cfg: TunegateConfig, labelled_version: str, raw_version: str | None = None,
                        run_id: str | None = None) -> StepOutput:
    from pipeline.data.splits import assign_splits, cross_split_pairs, pin_published, pinning_stats

    catalog = Catalog(cfg.catalog_path)
    labelled = _read(cfg, storage.CLEAN_ZONE, "labelled_tickets", labelled_version, "tickets")
    previous = catalog.split_assignments()
    # published tickets are split again even when a new, earlier copy took over their cluster
    labelled = pin_published(labelled, previous["ticket_id"])
    eligible = labelled[labelled["split_row"]].drop(columns=["split_row", "split_representative_id"]
                                                    ).reset_index(drop=True)
    if eligible.empty:
        raise ValueError(f"no labelled ticket is left to split ({len(labelled)} labelled rows, none with a taxonomy "
                         "label): check the quarantine and the label report of this run")
    result = assign_splits(eligible, previous, cfg.splits, cfg.dedup,
                           template_cache=cfg.warehouse_path / "index" / "templates")
    result.stats.update(pinning_stats(labelled))
    tables = result.tables
    check_key, checked = _checked_rows(cfg, catalog, tables)
    leaks = cross_split_pairs(tables, cfg.dedup, cfg.splits.near_dup_threshold, checked=checked, index=result.index)
    meta = {**_json_safe(result.stats), "cross_split_near_duplicates": len(leaks),
            "cross_split_check": "all pairs" if checked is None else
            f"pairs with the {sum(len(tables[s]) for s in ('train', 'val', 'test')) - len(checked)} rows not in "
            f"the latest published version"}
    out = _finish(cfg, "dataset_splits", storage.CLEAN_ZONE, tables, int(sum(result.stats["sizes"].values())),
                  [("labelled_tickets", labelled_version)], run_id, meta)
    if len(leaks) == 0:  # never publish a leaking split: the blocking check fails the run instead
        # per-ticket lineage: every member of a cluster maps to the split of its representative
        split_of = pd.concat([tables[s][["ticket_id"]].assign(split=s) for s in tables])
        members = labelled[["ticket_id", "split_representative_id", "cluster_id", "source_file"]].rename(
            columns={"split_representative_id": "representative_id"})
        lineage = members.merge(split_of.rename(columns={"ticket_id": "representative_id"}),
                                on="representative_id", how="left")
        lineage["split"] = lineage["split"].fillna("excluded")
        lineage["dataset_version"] = out.version
        lineage["raw_version"] = raw_version
        assignments = result.new_assignments.assign(first_version=out.version)
        try:
            previous = catalog.dataset_version("latest")["version"]
        except LookupError:  # the first version
            previous = None
        catalog.publish_dataset(out.version, out.path, cfg.data_hash(), result.stats["sizes"], assignments, lineage,
                                parent_version=previous if previous != out.version else None, run_id=run_id,
                                meta={**meta, "cross_split_key": check_key})
    out.meta = {**meta, "leak_pairs_preview": leaks.head(20).to_dict("records")}
    return out


def _checked_rows(cfg: TunegateConfig, catalog: Catalog, tables: dict) -> tuple[str, set | None]:
    """The settings key of the cross-split check, and the rows whose pairs with each other it need not
    look at again: rows of the latest published version (which passed the check under the same key) with
    the same split and the same text. None (check everything) when there is no such version."""
    from pipeline.code_version import code_version

    key = hashlib.sha256(json.dumps({"dedup": cfg.dedup.model_dump(mode="json"),
                                     "threshold": cfg.splits.near_dup_threshold,
                                     "code": [code_version("dataset_splits"), code_version("deduplicated_tickets")]},
                                    sort_keys=True, default=str).encode()).hexdigest()[:16]
    try:
        latest = catalog.dataset_version("latest")
    except LookupError:
        return key, None
    meta = latest.get("meta")
    meta = json.loads(meta) if isinstance(meta, str) else (meta or {})
    if meta.get("cross_split_key") != key:
        return key, None
    try:
        old = pd.concat([read_split(cfg, latest["version"], s)[["ticket_id", "text"]].assign(split=s)
                         for s in ("train", "val", "test")], ignore_index=True)
    except Exception:  # noqa: BLE001 - an unreadable version: check every pair
        return key, None
    now = pd.concat([tables[s][["ticket_id", "text"]].assign(split=s) for s in ("train", "val", "test")],
                    ignore_index=True)
    same = now.merge(old, on=["ticket_id", "text", "split"], how="inner")
    return key, set(same["ticket_id"].astype(str))


def published_labels(cfg: TunegateConfig) -> pd.Series:
    """Ticket id -> label of every ticket in the latest published dataset version (empty before the first).

    Every published ticket stays in every later version, so the latest one holds all of them."""
    try:
        version = Catalog(cfg.catalog_path).dataset_version("latest")["version"]
    except LookupError:
        return pd.Series(dtype=object)
    parts = [read_split(cfg, version, s)[["ticket_id", "label"]] for s in ("train", "val", "test", "held_out")]
    both = pd.concat(parts, ignore_index=True)
    return both.set_index("ticket_id")["label"]


def read_split(cfg: TunegateConfig, version: str, split: str) -> pd.DataFrame:
    return _read(cfg, storage.CLEAN_ZONE, "dataset_splits", version, split)


def _json_safe(obj):
    return json.loads(json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


# -- the whole data half, without an orchestrator ---------------------------------------------------
def run_data_half(cfg: TunegateConfig, run_id: str | None = None) -> list[StepOutput]:
    """Every data step in order, each on its parent's version (what `refresh_dataset` runs through Dagster,
    minus the asset checks): raw, masked, deduplicated, labelled tickets and the dataset splits."""
    raw = step_raw_tickets(cfg, run_id)
    masked = step_masked_tickets(cfg, raw.version, run_id)
    dedup = step_deduplicated_tickets(cfg, masked.version, run_id)
    labelled = step_labelled_tickets(cfg, dedup.version, run_id)
    splits = step_dataset_splits(cfg, labelled.version, raw_version=raw.version, run_id=run_id)
    return [raw, masked, dedup, labelled, splits]
