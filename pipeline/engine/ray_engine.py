"""The Ray engine: masking, the leak guard and dedup banding as Ray Data jobs (`engine: {kind: ray}`).

- Masking: `map_batches` with a callable class, i.e. an actor pool; each actor loads spaCy and the
  recognizers once (`pipeline.pii.masker.Masker`) and masks pandas batches. The masking salt, when
  set, is handed to the actors in their constructor, never written anywhere.
- Leak guard: stateless `map_batches` tasks over the masked text.
- Dedup: templates are encoded (shingle hashes -> MinHash signature -> band keys) in `map_batches`
  tasks; the banding is a shuffle: rows (band, key, node) hash-partitioned on the band key, each
  partition emitting the pairs of nodes that share a (band, key); verification runs distributed over the candidate pairs (both
  templates travel with the pair; shingles are recomputed in the task); the capped union-find runs
  on the verified edge list in the driver, exactly as the local engine does it.

Each stage gives the same rows as the local engine (the order is restored by position), so the
versions written are the same. Ray is an optional extra (`uv sync --extra ray`); the plain Ray
client is used from inside the step (see docs/scale.md for why not a Dagster Ray resource). With
`engine.address` unset a local Ray instance is started and stopped by the engine; raw text lives in
Ray's in-memory object store only for the masking job.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import pandas as pd

from pipeline.config import DedupSpec, MaskingSpec, TunegateConfig


class _MaskActor:
    """One masking model per actor, loaded once."""

    def __init__(self, spec: dict, salt: str | None, taxonomy: dict | None = None,
                 common_words: list[str] | None = None):
        os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
        from pipeline.config import TaxonomySpec
        from pipeline.pii.masker import Masker

        tax = TaxonomySpec.model_validate(taxonomy) if taxonomy is not None else None
        self.masker = Masker(MaskingSpec.model_validate(spec), salt=salt, taxonomy=tax)
        if common_words is not None:  # the driver's vocabulary, learnt once from all landing texts
            self.masker.use_common_words(common_words)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        import json

        res = self.masker.mask_texts(batch["text"].tolist())
        return pd.DataFrame({"pos": batch["pos"].to_numpy(), "text": [r.text for r in res],
                             "counts": [json.dumps(r.counts, sort_keys=True) for r in res]})


def _residual(batch: pd.DataFrame) -> pd.DataFrame:
    from pipeline.pii.leak_guard import scan_residual

    return pd.DataFrame({"pos": batch["pos"].to_numpy(),
                         "types": [",".join(t) for t in scan_residual(batch["text"].tolist())]})


def _band_rows(batch: pd.DataFrame, spec: dict, threshold: float) -> pd.DataFrame:
    """(band, key, node, template) rows for a batch of templates."""
    from pipeline.data import signatures as sig
    from pipeline.data.dedup import NearDupIndex

    idx = NearDupIndex(DedupSpec.model_validate(spec), threshold=threshold)
    templ = batch["template"].tolist()
    flat, off = sig.shingle_hashes(templ, idx.spec.ngram)
    bk = sig.band_keys(sig.signatures(flat, off, idx.num_perm, idx.spec.seed, idx.backend), idx.bands, idx.rows)
    node = batch["node"].to_numpy()
    tk, tr = sig.deletion_keys(templ, idx.typo_eligible(templ))
    # one-edit keys ride the same shuffle as band -1
    return pd.DataFrame({
        "band": np.r_[np.repeat(np.arange(idx.bands), len(node)), np.full(len(tk), -1)].astype(np.int64),
        "key": np.r_[bk.T.ravel(), tk].view(np.int64),
        "node": np.r_[np.tile(node, idx.bands), node[tr]].astype(np.int64),
    })


def _partition_pairs(part: pd.DataFrame) -> pd.DataFrame:
    """Candidate node pairs (a < b) of one shuffle partition: rows sharing (band, key)."""
    from pipeline.data import signatures as sig

    band = part["band"].to_numpy()
    nodes = part["node"].to_numpy().astype(np.int64)
    out = []
    for is_typo in (False, True):
        m = (band == -1) if is_typo else (band >= 0)
        if m.sum() < 2:
            continue
        # (band, key) -> one uint64: a hash of both; a collision only adds a candidate, verified later
        keys = sig.mix64(part["key"].to_numpy()[m].view(np.uint64) ^ (band[m] + 1).astype(np.uint64))
        p = sig.pairs_sharing_key(keys, nodes[m])
        out.append(pd.DataFrame({"a": p[:, 0], "b": p[:, 1], "typo": np.full(len(p), is_typo)}))
    if not out:
        return pd.DataFrame({"a": np.zeros(0, np.int64), "b": np.zeros(0, np.int64), "typo": np.zeros(0, bool)})
    return pd.concat(out, ignore_index=True)


def _verify(batch: pd.DataFrame, spec: dict, threshold: float) -> pd.DataFrame:
    from pipeline.data import signatures as sig
    from pipeline.data.dedup import NearDupIndex

    idx = NearDupIndex(DedupSpec.model_validate(spec), threshold=threshold)
    ta, tb = batch["ta"].tolist(), batch["tb"].tolist()
    fa, oa = sig.shingle_hashes(ta, idx.spec.ngram)
    fb, ob = sig.shingle_hashes(tb, idx.spec.ngram)
    k = np.arange(len(batch), dtype=np.int64)
    lsh = np.stack([k, k], axis=1)[batch["lsh"].to_numpy()]
    typo = np.stack([k, k], axis=1)[batch["typo"].to_numpy()]
    a, _, j = idx.verify(lsh, typo, ta, tb, (fa, oa), (fb, ob))
    return pd.DataFrame({"a": batch["a"].to_numpy()[a], "b": batch["b"].to_numpy()[a], "j": j})


class RayEngine:
    name = "ray"

    def __init__(self, cfg: TunegateConfig, num_cpus: int | None = None):
        import ray

        self.cfg = cfg
        self._started = False
        if not ray.is_initialized():
            kw = {"address": cfg.engine.address} if cfg.engine.address else {
                "num_cpus": num_cpus or cfg.engine.ray_workers or os.cpu_count(), "include_dashboard": False,
                "object_store_memory": 400 * 2**20}
            ray.init(ignore_reinit_error=True, log_to_driver=False, configure_logging=False, **kw)
            self._started = True
        import ray.data

        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.execution_options.verbose_progress = False
        self.workers = cfg.engine.ray_workers or max(1, int(ray.cluster_resources().get("CPU", 1)))

    def salted(self) -> bool:
        return bool(os.environ.get(self.cfg.masking.salt_env))

    def mask(self, masker, texts: Sequence[str], progress=None) -> list:
        """One `MaskResult` per text, masked by an actor pool of maskers configured as `masker`
        (its spec, salt, taxonomy and the vocabulary it learnt from all the landing texts)."""
        import json

        import ray.data

        from pipeline.pii.masker import MaskResult

        df = pd.DataFrame({"pos": np.arange(len(texts)), "text": ["" if t is None else str(t) for t in texts]})
        batch = self.cfg.masking.batch_size
        blocks = max(1, min(len(df), max(self.workers, -(-len(df) // batch))))  # every actor gets work
        ds = ray.data.from_pandas(df, override_num_blocks=blocks)
        out = ds.map_batches(_MaskActor, batch_format="pandas", batch_size=batch,
                             concurrency=self.workers, num_cpus=1,
                             fn_constructor_kwargs={"spec": masker.spec.model_dump(mode="json"),
                                                    "salt": os.environ.get(self.cfg.masking.salt_env) or None,
                                                    "taxonomy": self.cfg.taxonomy.model_dump(mode="json"),
                                                    "common_words": masker.common_words()})
        res = out.to_pandas().sort_values("pos")
        if progress is not None:
            progress(len(res), len(res))
        return [MaskResult(t, json.loads(c)) for t, c in zip(res["text"], res["counts"])]

    def residual(self, texts: Sequence[str]) -> list[list[str]]:
        import ray.data

        df = pd.DataFrame({"pos": np.arange(len(texts)), "text": ["" if t is None else str(t) for t in texts]})
        ds = ray.data.from_pandas(df, override_num_blocks=max(1, min(len(df) // 1000, 4 * self.workers)))
        res = ds.map_batches(_residual, batch_format="pandas", batch_size=2048).to_pandas().sort_values("pos")
        return [t.split(",") if t else [] for t in res["types"]]

    def pairs(self, nodes: list[str], spec: DedupSpec, threshold: float | None = None) -> list[tuple[int, int, float]]:
        """Verified pairs among template texts (as `NearDupIndex.self_pairs`), on Ray."""
        import ray.data

        thr = spec.threshold if threshold is None else threshold
        s = spec.model_dump(mode="json")
        blocks = max(1, min(len(nodes) // 2000, 4 * self.workers))
        ds = ray.data.from_pandas(pd.DataFrame({"node": np.arange(len(nodes)), "template": nodes}),
                                  override_num_blocks=blocks)
        rows = ds.map_batches(_band_rows, batch_format="pandas", batch_size=5000,
                              fn_kwargs={"spec": s, "threshold": thr})
        # the shuffle: every (band, key) row goes to the partition its key hashes to; a partition then
        # pairs up the rows that share a (band, key), vectorised (one Python call per partition, not per key)
        n_parts = 2 * self.workers
        rows = rows.map_batches(lambda b: b.assign(part=(b["key"].to_numpy().view(np.uint64)
                                                         % np.uint64(n_parts)).astype(np.int64)),
                                batch_format="pandas")
        cand = rows.groupby("part", num_partitions=n_parts).map_groups(_partition_pairs,
                                                                       batch_format="pandas").to_pandas()
        if cand.empty:
            return []
        cand = cand.groupby(["a", "b"], as_index=False).agg(typo=("typo", "max"), lsh=("typo", lambda t: (~t).any()))
        tpl = np.array(nodes, dtype=object)
        cand["ta"], cand["tb"] = tpl[cand["a"].to_numpy()], tpl[cand["b"].to_numpy()]
        ver = ray.data.from_pandas(cand, override_num_blocks=max(1, min(len(cand) // 5000, 4 * self.workers)))
        out = ver.map_batches(_verify, batch_format="pandas", batch_size=20000,
                              fn_kwargs={"spec": s, "threshold": thr}).to_pandas()
        out = out.sort_values(["a", "b"])
        return list(zip(out["a"].astype(int).tolist(), out["b"].astype(int).tolist(), out["j"].astype(float).tolist()))

    def clusters(self, df: pd.DataFrame, progress=None) -> tuple[pd.DataFrame, dict]:
        """`dedup.find_clusters` with the banding and the verification on Ray; union-find here."""
        from pipeline.data.dedup import NearDupIndex, _sha, clusters_frame, cluster_templates, normalize_template

        spec = self.cfg.dedup
        if not df["ticket_id"].is_unique:
            raise ValueError("ticket_id must be unique")
        templ = [normalize_template(t) for t in df["text"]]
        nodes = sorted(set(templ))
        pairs = self.pairs(nodes, spec)
        root, uf = cluster_templates(nodes, pairs, spec.max_cluster_size)
        node_cluster = pd.DataFrame({"template": nodes, "cluster_id": ["c_" + _sha(nodes[r]) for r in root]})
        node_cluster["cluster_templates"] = node_cluster.groupby("cluster_id")["template"].transform("size")
        idx = NearDupIndex(spec)
        extra = {"n_verified_pairs": len(pairs), "capped_merges": int(uf.refused),
                 "lsh": {"backend": spec.backend, "bands": idx.bands, "rows": idx.rows, "num_perm": idx.num_perm}}
        return clusters_frame(df, templ, node_cluster, extra)

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False
