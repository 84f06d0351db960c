"""Fine-tuned models on disk without pickle: weights as numpy arrays, everything else as JSON.

A pickle runs code when it is loaded, so a model file that anyone could write would run anything in the
provider. Here a model is one `.npz` file read with `allow_pickle=False`: the linear model's weights,
each TF-IDF vectorizer's idf vector, and a JSON document (vocabularies, classes, parameters). The only
code it can name is a tokenizer function of `pipeline.provider.models`, looked up by name there.
The write goes to a temporary file renamed into place, so a crash never leaves half a model.
"""
from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np

FORMAT = "tunegate-ft-1"
_MODULE = "pipeline.provider.models"


def _jsonable(value) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


def _vectorizer_params(vec) -> dict:
    params = {}
    for k, v in vec.get_params().items():
        if k == "dtype":
            params[k] = np.dtype(v).name
        elif callable(v):
            if getattr(v, "__module__", None) != _MODULE:
                raise ValueError(f"cannot store a vectorizer whose {k} is {v!r}: only functions of {_MODULE}")
            params[k] = {"function": v.__qualname__}
        elif isinstance(v, tuple):
            params[k] = {"tuple": list(v)}
        elif _jsonable(v):
            params[k] = v
        else:
            raise ValueError(f"cannot store vectorizer parameter {k}={v!r} as JSON")
    return params


def _restore_params(params: dict) -> dict:
    import importlib

    module = importlib.import_module(_MODULE)
    out = {}
    for k, v in params.items():
        if isinstance(v, dict) and "function" in v:
            fn = getattr(module, v["function"], None)
            if not callable(fn) or "." in v["function"]:
                raise ValueError(f"model file names an unknown function {v['function']!r}")
            out[k] = fn
        elif isinstance(v, dict) and "tuple" in v:
            out[k] = tuple(v["tuple"])
        elif k == "dtype":
            out[k] = np.dtype(v).type
        else:
            out[k] = v
    return out


def save_classifier(model, path: str | os.PathLike) -> None:
    """Write a `FineTunedClassifier` (fitted) to `path` (.npz), atomically."""
    from sklearn.pipeline import FeatureUnion

    features: FeatureUnion = model.features
    arrays: dict[str, np.ndarray] = {"coef": np.asarray(model.clf.coef_, dtype=np.float64),
                                     "intercept": np.asarray(model.clf.intercept_, dtype=np.float64)}
    parts = []
    for i, (name, vec) in enumerate(features.transformer_list):
        vocab = sorted(vec.vocabulary_.items(), key=lambda kv: kv[1])
        parts.append({"name": name, "params": _vectorizer_params(vec), "vocabulary": [t for t, _ in vocab]})
        arrays[f"idf_{i}"] = np.asarray(vec.idf_, dtype=np.float64)
    attrs = {k: v for k, v in model.__dict__.items()
             if k not in ("features", "clf") and not k.startswith("_") and _jsonable(v)}
    clf_params = {k: v for k, v in model.clf.get_params().items() if _jsonable(v)}
    meta = {"format": FORMAT, "attrs": attrs, "features": parts,
            "transformer_weights": features.transformer_weights,
            "clf": {"params": clf_params, "classes": [str(c) for c in model.clf.classes_]}}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    with open(tmp, "wb") as fh:
        fh.write(buf.getvalue())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def load_classifier(path: str | os.PathLike):
    """Read a model written by `save_classifier`; never unpickles anything."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import SGDClassifier
    from sklearn.pipeline import FeatureUnion

    from pipeline.provider.models import FineTunedClassifier

    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(bytes(data["meta"]).decode())
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path}: not a tunegate model file (format {meta.get('format')!r})")
        vecs = []
        for i, part in enumerate(meta["features"]):
            vec = TfidfVectorizer(**_restore_params(part["params"]))
            vec.vocabulary_ = {t: j for j, t in enumerate(part["vocabulary"])}
            vec.idf_ = data[f"idf_{i}"]
            vecs.append((part["name"], vec))
        clf = SGDClassifier(**meta["clf"]["params"])
        clf.coef_ = data["coef"]
        clf.intercept_ = data["intercept"]
    clf.classes_ = np.array(meta["clf"]["classes"])
    clf.n_features_in_ = clf.coef_.shape[1]
    model = FineTunedClassifier.__new__(FineTunedClassifier)
    model.__dict__.update(meta["attrs"])
    model.features = FeatureUnion(vecs, transformer_weights=meta.get("transformer_weights"))
    model.clf = clf
    return model
