"""The label-check model kept between runs, so a nightly refresh scores only its new tickets.

A full label check fits the text model five times (cross-validated, out-of-fold probabilities for
cleanlab) and once more on every labelled row. That last fit, the out-of-fold scores of every row
and cleanlab's decision cut-offs are stored under `warehouse/index/labels/<settings hash>/`:

- `model.npz`: the classifier's coefficients, intercepts and classes, and both TF-IDF vocabularies
  with their idf weights (plain arrays, loaded with `allow_pickle=False`: no code is ever unpickled);
- `scores.parquet`: per ticket the key of what was scored (a hash of its masked text and label),
  the suggested label, the label quality (probability of the given label) and the issue flag;
- `state.json`: the cut-offs, the number of rows fitted and their mean label quality, and the renames
  found with the rows of unknown labels they were found on; written last.

A refresh takes a row's stored score when the row is unchanged and scores a new row with the stored
model. The model never saw that row, so its probability is out of sample, like the cross-validated
ones. Such a row is an issue when its label quality is at or below the cut-off of its label: the
highest quality among the rows cleanlab flagged for that label in the last full check (cleanlab's
`low_self_confidence` filter ranks rows by that same quality inside each given label).

The model is refitted (a full check) when the rows scored this way exceed
`label_checks.refit_after_share` of the rows fitted, when a label appears that the model does not
know, or when the new rows' mean label quality falls more than `label_checks.refit_drift` below the
fit's (drift). The stored state changes only in a full check and is written to a temporary folder
that is renamed into place, so a run killed half way leaves the earlier state, and a re-run ends as
a run that never failed.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

STATE_FILES = ("model.npz", "scores.parquet", "state.json")


def row_keys(df: pd.DataFrame) -> pd.Series:
    """A hash of each row's text and label: a stored score is reused only for the same text and label."""
    return (df["text"].fillna("").astype(str) + "\x1f" + df["label"].fillna("").astype(str)).map(
        lambda s: hashlib.blake2b(s.encode(), digest_size=8).hexdigest())


@dataclass
class LabelModel:
    """TF-IDF features (word 1-2 grams and character 3-5 grams) and a linear classifier."""

    vectorizers: list  # fitted sklearn TfidfVectorizers
    coef: np.ndarray
    intercept: np.ndarray
    classes: np.ndarray

    def features(self, texts):
        from scipy.sparse import hstack

        texts = pd.Series(texts).fillna("").astype(str)
        return hstack([v.transform(texts) for v in self.vectorizers]).tocsr().astype(np.float32)

    def probabilities(self, X) -> np.ndarray:
        """Softmax over the linear scores (the multinomial-logit reading, as in the cross-validated check)."""
        from scipy.special import softmax

        return softmax(np.asarray(X @ self.coef.T) + self.intercept, axis=1)

    def predict(self, X) -> np.ndarray:
        return self.classes[np.asarray(X @ self.coef.T + self.intercept).argmax(1)]

    @classmethod
    def from_fitted(cls, union, clf) -> "LabelModel":
        return cls([v for _, v in union.transformer_list], clf.coef_.astype(np.float32),
                   clf.intercept_.astype(np.float32), np.asarray(clf.classes_))

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"coef": self.coef, "intercept": self.intercept, "classes": self.classes.astype(str)}
        for i, v in enumerate(self.vectorizers):
            terms = sorted(v.vocabulary_, key=v.vocabulary_.get)
            out[f"terms_{i}"] = np.array(terms, dtype=str)
            out[f"idf_{i}"] = v.idf_.astype(np.float64)
        return out

    @classmethod
    def from_arrays(cls, a, templates: list) -> "LabelModel":
        from sklearn.base import clone

        vecs = []
        for i, tpl in enumerate(templates):
            v = clone(tpl).set_params(vocabulary={t: j for j, t in enumerate(a[f"terms_{i}"].tolist())})
            v.idf_ = a[f"idf_{i}"]
            vecs.append(v)
        return cls(vecs, a["coef"], a["intercept"], a["classes"].astype(object))


@dataclass
class LabelState:
    """What a full label check leaves for the next run (see the module docstring)."""

    model: LabelModel
    scores: pd.DataFrame  # ticket_id, key, suggested_label, label_quality, is_issue
    cutoffs: dict[str, float]  # label -> highest label quality flagged in that label
    n_fit: int
    mean_quality: float
    renames_key: str = ""  # hash of the rows with an unknown label when the renames below were found
    renames: list | None = None  # the renames found then (records), reused while those rows are unchanged

    def save(self, folder: Path) -> None:
        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = folder.with_name(folder.name + f".tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            np.savez(tmp / "model.npz", **self.model.arrays())
            self.scores.to_parquet(tmp / "scores.parquet", index=False)
            (tmp / "state.json").write_text(json.dumps(
                {"cutoffs": self.cutoffs, "n_fit": self.n_fit, "mean_quality": self.mean_quality,
                 "renames_key": self.renames_key, "renames": self.renames or []}, sort_keys=True, default=str))
            old = folder.with_name(folder.name + f".old-{os.getpid()}")
            if folder.exists():
                os.rename(folder, old)
            os.rename(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise OSError(f"could not store the label-check model under {folder}: {exc.strerror or exc}") from None

    @classmethod
    def load(cls, folder: Path, templates: list) -> "LabelState | None":
        folder = Path(folder)
        if not all((folder / f).exists() for f in STATE_FILES):
            return None
        try:
            meta = json.loads((folder / "state.json").read_text())
            with np.load(folder / "model.npz", allow_pickle=False) as a:
                model = LabelModel.from_arrays(a, templates)
            scores = pd.read_parquet(folder / "scores.parquet")
        except (OSError, ValueError, KeyError):  # unreadable or from another release: refit
            return None
        return cls(model, scores, {k: float(v) for k, v in meta["cutoffs"].items()}, int(meta["n_fit"]),
                   float(meta["mean_quality"]), str(meta.get("renames_key", "")), list(meta.get("renames") or []))
