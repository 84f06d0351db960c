"""Evaluation harness for PII masking on data in the Presidio research format, and the CLI entry points.

Data: a JSON list of records ``{full_text, spans: [{entity_type, entity_value, start_position,
end_position}], template_id}`` (end exclusive), e.g. the bundled ``synth_dataset_v2.json``.

Matching rule (token-level overlap, as presidio-research's token evaluation):
- the text is cut into word tokens (``\\w+`` runs; punctuation is not counted);
- a token's gold type is the mapped type of the gold span that overlaps it (``DATA_TO_OURS``), its
  predicted type that of the predicted span that overlaps it; "O" when none;
- true positive: gold type == predicted type != O; false positive: predicted != O and != gold;
  false negative: gold != O and predicted != gold. A type confusion (a street tagged PERSON) is an FP
  for the predicted type and an FN for the gold type.
- precision, recall and F2 (recall weighted 4x: a missed name leaks, an extra mask costs little) are
  micro-averaged over tokens, per type and overall.
Gold types mapped to None are out of scope (not masked by design): their tokens count as "O", so masking
them would be a false positive, and they are listed with their support and our recall of 0.
``masked_recall`` is type-agnostic (gold in-scope token covered by any mask): the privacy figure.

Tune / held-out: templates are split deterministically by a hash of the template id (70% tune, 30%
held-out). Patterns and heuristics were developed on the tune templates only.
"""
from __future__ import annotations

import hashlib
import json
import re
import sys
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Protocol, Sequence

# Data entity name -> our entity type (None: out of scope, see docs/pii.md).
DATA_TO_OURS: dict[str, str | None] = {
    "PERSON": "PERSON",
    "STREET_ADDRESS": "LOCATION",
    "GPE": "LOCATION",
    "ZIP_CODE": "LOCATION",
    "ORGANIZATION": "ORGANIZATION",  # only when MaskingSpec.mask_organizations is on
    "NRP": "NRP",
    "CREDIT_CARD": "CREDIT_CARD",
    "PHONE_NUMBER": "PHONE_NUMBER",
    "EMAIL_ADDRESS": "EMAIL_ADDRESS",
    "IBAN_CODE": "IBAN_CODE",
    "US_SSN": "US_SSN",
    "IP_ADDRESS": "IP_ADDRESS",
    "DOMAIN_NAME": "URL",
    "US_DRIVER_LICENSE": None,  # no reliable pattern without a state; 5 spans in the data
    "DATE_TIME": None,  # dates are not identifying alone and carry the intent ("two days ago")
    "TITLE": None,  # honorifics and job titles
    "AGE": None,
}
# Presidio's own names, for baselines that emit them.
PRESIDIO_TO_OURS = {"PERSON": "PERSON", "LOCATION": "LOCATION", "ORGANIZATION": "ORGANIZATION", "NRP": "NRP",
                    "EMAIL_ADDRESS": "EMAIL_ADDRESS", "PHONE_NUMBER": "PHONE_NUMBER", "CREDIT_CARD": "CREDIT_CARD",
                    "IBAN_CODE": "IBAN_CODE", "US_SSN": "US_SSN", "IP_ADDRESS": "IP_ADDRESS", "URL": "URL"}
STRUCTURED_DATA_TYPES = ["EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "US_SSN"]
TUNE_SHARE = 0.70
_TOKEN = re.compile(r"\w+")


def default_data_path() -> Path:
    return Path(str(resources.files("pipeline") / "data" / "pii" / "synth_dataset_v2.json"))


def is_tune_template(template_id: int) -> bool:
    h = hashlib.sha256(f"tunegate-pii-split:{template_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64 < TUNE_SHARE


def load_records(data_path=None, templates: set[int] | None = None) -> list[dict]:
    with open(data_path or default_data_path(), encoding="utf-8") as fh:
        recs = json.load(fh)
    if templates is not None:
        recs = [r for r in recs if r.get("template_id") in templates]
    return recs


def template_split(records: Sequence[dict]) -> tuple[set[int], set[int]]:
    ids = {r["template_id"] for r in records}
    tune = {t for t in ids if is_tune_template(t)}
    return tune, ids - tune


class Analyzer(Protocol):
    def analyze(self, texts: Sequence[str]) -> list[list[tuple[str, int, int]]]: ...


def _token_labels(text: str, spans: Sequence[tuple[str | None, int, int]]) -> list[tuple[str, str | None]]:
    """(token, type or None) for every word token of the text."""
    out = []
    for m in _TOKEN.finditer(text):
        lab = None
        for t, s, e in spans:
            if t is not None and s < m.end() and e > m.start():
                lab = t
                break
        out.append((m.group(), lab))
    return out


def _prf(tp: int, fp: int, fn: int) -> dict:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f2 = 5 * p * r / (4 * p + r) if p + r else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f2": round(f2, 4)}


def _scope(masker) -> dict[str, str | None]:
    """The mapping for this masker: organisations are out of scope unless it masks them."""
    spec = getattr(masker, "spec", None)
    mapping = dict(DATA_TO_OURS)
    if spec is not None and not getattr(spec, "mask_organizations", True):
        mapping["ORGANIZATION"] = None
    return mapping


def score(records: Sequence[dict], predictions: Sequence[Sequence[tuple[str, int, int]]],
          mapping: dict[str, str | None] | None = None) -> dict:
    """Token-level scores of predictions against the records' gold spans (rule in the module docstring)."""
    DATA_TO_OURS = mapping or globals()["DATA_TO_OURS"]
    tp, fp, fn = Counter(), Counter(), Counter()
    data_support, data_hit = Counter(), Counter()
    masked_hit = masked_total = 0
    for rec, pred in zip(records, predictions):
        text = rec["full_text"]
        gold_raw = [(s["entity_type"], s["start_position"], s["end_position"]) for s in rec["spans"]]
        gold_raw.sort(key=lambda s: s[2] - s[1])  # innermost span wins where gold spans nest
        raw_tok = _token_labels(text, gold_raw)
        pred_tok = _token_labels(text, [(PRESIDIO_TO_OURS.get(t, t), s, e) for t, s, e in pred])
        for (_, raw), (_, p) in zip(raw_tok, pred_tok):
            g = DATA_TO_OURS.get(raw) if raw else None
            if raw:
                data_support[raw] += 1
                if g is not None and p == g:
                    data_hit[raw] += 1
            if g is not None:
                masked_total += 1
                masked_hit += p is not None
            if p is not None and p == g:
                tp[p] += 1
            else:
                if p is not None:
                    fp[p] += 1
                if g is not None:
                    fn[g] += 1
    per_type = {t: {**_prf(tp[t], fp[t], fn[t]), "support": tp[t] + fn[t], "predicted": tp[t] + fp[t]}
                for t in sorted(set(tp) | set(fp) | set(fn))}
    per_entity = {}
    for raw in sorted(data_support, key=lambda k: -data_support[k]):
        ours = DATA_TO_OURS.get(raw)
        rec_ = data_hit[raw] / data_support[raw]
        prec = per_type.get(ours, {}).get("precision", 0.0) if ours else 0.0
        f2 = 5 * prec * rec_ / (4 * prec + rec_) if prec + rec_ else 0.0
        per_entity[raw] = {"precision": prec, "recall": round(rec_, 4), "f2": round(f2, 4),
                           "support": data_support[raw], "ours": ours or "out of scope"}
    overall = _prf(sum(tp.values()), sum(fp.values()), sum(fn.values()))
    overall["support"] = sum(tp.values()) + sum(fn.values())
    overall["masked_recall"] = round(masked_hit / masked_total, 4) if masked_total else 0.0
    structured = [data_hit[t] for t in STRUCTURED_DATA_TYPES], [data_support[t] for t in STRUCTURED_DATA_TYPES]
    overall["structured_recall"] = round(sum(structured[0]) / max(1, sum(structured[1])), 4)
    return {"overall": overall, "per_entity": per_entity, "per_type": per_type, "records": len(records)}


def evaluate(data_path=None, masker: Analyzer | None = None, templates: set[int] | None = None) -> dict:
    """Token-level precision/recall/F2 per entity and overall (see the module docstring for the rule)."""
    records = load_records(data_path, templates)
    if masker is None:
        from pipeline.masking import Masker

        masker = Masker()
    preds = masker.analyze([r["full_text"] for r in records])
    return score(records, preds, _scope(masker))


def evaluate_splits(data_path=None, masker: Analyzer | None = None) -> dict:
    """All templates, tune templates and held-out templates, one analysis pass."""
    records = load_records(data_path)
    if masker is None:
        from pipeline.masking import Masker

        masker = Masker()
    preds = masker.analyze([r["full_text"] for r in records])
    tune, held = template_split(records)
    mapping = _scope(masker)
    out = {"all": score(records, preds, mapping)}
    for name, ids in (("tune", tune), ("held_out", held)):
        sel = [i for i, r in enumerate(records) if r["template_id"] in ids]
        out[name] = score([records[i] for i in sel], [preds[i] for i in sel], mapping)
        out[name]["templates"] = len(ids)
    out["all"]["templates"] = len(tune) + len(held)
    return out


def _table(title: str, res: dict):
    from rich.table import Table

    tab = Table(title=title)
    for col in ("entity", "ours", "precision", "recall", "F2", "support (tokens)"):
        tab.add_column(col, justify="left" if col in ("entity", "ours") else "right")
    for name, m in res["per_entity"].items():
        tab.add_row(name, m["ours"], f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f2']:.3f}", str(m["support"]))
    o = res["overall"]
    tab.add_row("OVERALL (in scope)", "", f"{o['precision']:.3f}", f"{o['recall']:.3f}", f"{o['f2']:.3f}",
                str(o["support"]), style="bold")
    tab.caption = (f"{res['records']} records, {res.get('templates', '?')} templates; structured recall "
                   f"{o['structured_recall']:.3f}; any-mask recall {o['masked_recall']:.3f}")
    return tab


def pii_eval_command(data: str | None, as_json: bool) -> int:
    """Print the evaluation table (rich) or one JSON object; 0 if the quality targets are met, else 1."""
    res = evaluate_splits(data)
    ok = all(res[k]["overall"]["recall"] >= 0.90 and res[k]["overall"]["precision"] >= 0.80
             and res[k]["overall"]["structured_recall"] >= 0.99 for k in ("all", "held_out"))
    res["targets_met"] = ok
    if as_json:
        print(json.dumps(res, sort_keys=True))
    else:
        from rich.console import Console

        con = Console()
        for key, title in (("all", "all templates"), ("tune", "tune templates"), ("held_out", "held-out templates")):
            con.print(_table(f"PII detection, token-level, {title}", res[key]))
        con.print(f"targets (recall >= 0.90, precision >= 0.80, structured recall >= 0.99): "
                  f"{'met' if ok else 'NOT met'}")
    return 0 if ok else 1


def mask_command(in_path: str, out_path: str, text_col: str) -> int:
    """Mask a CSV/JSONL/Parquet file's text column into out_path; prints counts (no values)."""
    from pipeline.masking import MaskingError, mask_file

    try:
        res = mask_file(in_path, out_path, text_col)
    except MaskingError as exc:
        print(f"masking failed: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(res, sort_keys=True))
    return 0


if __name__ == "__main__":  # python -m pipeline.pii_eval [data.json] [--json]
    args = [a for a in sys.argv[1:] if a != "--json"]
    sys.exit(pii_eval_command(args[0] if args else None, "--json" in sys.argv))
