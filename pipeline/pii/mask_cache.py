"""Masking results kept between runs, so a nightly refresh masks only the texts it has not seen.

The masker's output for a text depends on the text, the masking settings, the code of `pipeline.pii`,
the salt (when placeholders carry salted tokens) and the not-a-name vocabulary learnt from the landing
data. The cache lives in the raw zone, next to the raw tickets it is made from:

    warehouse/raw/mask_cache/<settings key>/state.json          the vocabulary in use and the texts it was learnt on
    warehouse/raw/mask_cache/<settings key>/<vocabulary key>/part-NNNNN.parquet
                                                               h (hash of the raw text), text (masked), counts

The settings key covers the settings, the code and a fingerprint of the salt (an HMAC, never the salt).
A refresh keeps the vocabulary of the last full masking while the texts it has not seen are at most
`masking.cache_refit_share` of the texts the vocabulary was learnt on; past that it learns the vocabulary
again from all texts and starts a new folder, as a full build does. A refresh can therefore mask a few
words differently from a full rebuild of the same data (a word that just became common), never less
safely: the structured identifiers do not depend on the vocabulary, and the leak guard runs on every
text either way.

Parts are written to a temporary file and renamed, and the state last, so a run killed half way leaves
only whole parts; the entries are deterministic, so a re-run ends as a run that never failed.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from pipeline.hash_parts import append_part, read_parts

ZONE = "mask_cache"
COLUMNS = ["text", "counts"]  # the masked text and its entity counts (JSON)


def text_hash(text: str) -> str:
    return hashlib.blake2b((text or "").encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def settings_key(spec, taxonomy, code_version: str, masker) -> str:
    salted = masker.token("CACHE", "key") if getattr(masker, "_key", None) else ""
    blob = json.dumps({"masking": spec.model_dump(mode="json"), "taxonomy": taxonomy.model_dump(mode="json"),
                       "code": code_version, "salt": salted}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _vocabulary_key(words) -> str:
    return hashlib.sha256("\n".join(sorted(words)).encode()).hexdigest()[:16]


def mask_with_cache(root: Path, key: str, masker, texts: list[str], mask, refit_share: float
                    ) -> tuple[list, dict, list[int]]:
    """Mask `texts` (results in order), masking only the texts the cache does not hold.

    `mask(texts)` masks a list with the engine in use; `masker` is the engine's `Masker`, whose
    vocabulary is set here. Returns (results, info for the run's metadata, indices of the texts masked
    in this run: one per distinct text)."""
    from pipeline.pii.masker import MaskResult

    folder = Path(root) / ZONE / key
    state_file = folder / "state.json"
    hashes = [text_hash(t) for t in texts]
    state = None
    if state_file.exists():
        try:
            state = json.loads(state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            state = None
    cached: dict[str, tuple[str, str]] = {}
    if state is not None:  # a damaged part is skipped: its texts are masked again
        cached = read_parts(folder / state["vocabulary_key"], COLUMNS)
    unseen = len({h for h in hashes if h not in cached})
    refit = state is None or unseen > refit_share * max(1, int(state["n_texts"]))
    if refit:
        masker.fit_vocabulary(texts)
        words = masker.common_words() or []
        before = None if state is None else state["vocabulary_key"]
        state = {"vocabulary_key": _vocabulary_key(words), "n_texts": len(texts), "words": words}
        if state["vocabulary_key"] != before:  # the same vocabulary keeps its entries: they are still right
            cached = {}
    else:
        masker.use_common_words(state["words"])
    todo = sorted({h: i for i, h in enumerate(hashes) if h not in cached}.values())
    fresh = mask([texts[i] for i in todo]) if todo else []
    new_rows = {hashes[i]: (r.text, json.dumps(r.counts, sort_keys=True)) for i, r in zip(todo, fresh)}
    stored = append_part(folder / state["vocabulary_key"], COLUMNS, new_rows)
    try:
        if refit or new_rows:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = state_file.with_name(f"state.json.tmp-{os.getpid()}")
            tmp.write_text(json.dumps(state, sort_keys=True), encoding="utf-8")
            os.replace(tmp, state_file)
            for other in folder.iterdir():  # parts of an earlier vocabulary are never read again
                if other.is_dir() and other.name != state["vocabulary_key"]:
                    import shutil

                    shutil.rmtree(other, ignore_errors=True)
    except OSError:  # the cache only saves time: a full disk here costs the next run a full masking
        stored = False
    cached.update(new_rows)
    results = [MaskResult(cached[h][0], json.loads(cached[h][1])) for h in hashes]
    return results, {"texts_masked": len(todo), "texts_from_cache": len(texts) - len(todo),
                     "vocabulary": "learnt from this run's texts" if refit else "kept from an earlier run",
                     "cache_stored": stored}, todo
