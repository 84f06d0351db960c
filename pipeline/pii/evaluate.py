"""Evaluation harness for PII masking on data in the Presidio research format, and the CLI entry points.

Data: a JSON list of records ``{full_text, spans: [{entity_type, entity_value, start_position,
end_position}], template_id}`` (end exclusive), e.g. the bundled ``synth_dataset_v2.json``.

Token-level rule (as presidio-research's token evaluation; reported beside the span-level figures):
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

Span-level rule (the headline figures; ``SPAN_COVERAGE`` = 0.75, as presidio-research's span evaluator
uses for its overlap threshold): spans are compared through the word tokens they cover.
- a gold span is found when at least 75% of its tokens are masked with its mapped type (recall: how many
  of the values in the data are protected);
- a predicted span is correct when at least 75% of its tokens lie in gold spans of its type (precision:
  how many masks hide something that is PII of that type);
- adjacent gold spans that one mask covers together (a street, city and ZIP masked as one LOCATION) are
  each found, and the mask is correct: the rule scores what is hidden, not where a span is cut.
Per-entity recall is per data entity name; per-entity precision is that of the type it maps to.

Tune / held-out: templates are split deterministically by a hash of the template id (70% tune, 30%
held-out). Patterns and heuristics were developed on the tune templates only. HWU64 has no templates: its
utterances are split in two halves by a hash of the lower-cased utterance (``split`` on each record), rules
were developed on the tune half, and both halves are reported beside the whole file.
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
# HWU64 (annotated_dev.json: {text, intent, entities: [{start, end, entity, value}]}) entity names.
HWU64_TO_DATA = {"person": "PERSON", "place_name": "GPE", "email_address": "EMAIL_ADDRESS",
                 "personal_info": "PERSONAL_INFO"}
DATA_TO_OURS["PERSONAL_INFO"] = None  # "mobile number", "email": words about personal data, not the data
# an utterance with one of these is not "clean": any placeholder elsewhere is a false mask
PRIVATE_DATA_TYPES = {"PERSON", "GPE", "STREET_ADDRESS", "ZIP_CODE", "EMAIL_ADDRESS", "PERSONAL_INFO", "PHONE_NUMBER",
                      "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "US_SSN"}
# Presidio's own names, for baselines that emit them.
PRESIDIO_TO_OURS = {"PERSON": "PERSON", "LOCATION": "LOCATION", "ORGANIZATION": "ORGANIZATION", "NRP": "NRP",
                    "EMAIL_ADDRESS": "EMAIL_ADDRESS", "PHONE_NUMBER": "PHONE_NUMBER", "CREDIT_CARD": "CREDIT_CARD",
                    "IBAN_CODE": "IBAN_CODE", "US_SSN": "US_SSN", "IP_ADDRESS": "IP_ADDRESS", "URL": "URL"}
STRUCTURED_DATA_TYPES = ["EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "US_SSN"]
TUNE_SHARE = 0.70
TEXT_TUNE_SHARE = 0.50  # HWU64: half the utterances to develop on, half held out
SPAN_COVERAGE = 0.75
TARGETS = {"recall": 0.90, "precision": 0.80, "structured_recall": 0.99}
# HWU64 (records with a ``split``): recall per data entity, and the most placeholders in clean utterances
HWU64_TARGETS = {"PERSON": 0.85, "GPE": 0.70, "EMAIL_ADDRESS": 0.95, "false_mask": 0.02}
_TOKEN = re.compile(r"\w+")


def default_data_path() -> Path:
    return Path(str(resources.files("pipeline") / "bundled" / "pii" / "synth_dataset_v2.json"))


def is_tune_template(template_id: int) -> bool:
    h = hashlib.sha256(f"tunegate-pii-split:{template_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64 < TUNE_SHARE


def is_tune_text(text: str) -> bool:
    """The tune half of a file without templates, by a hash of the lower-cased text (a copy of an
    utterance lands in the same half)."""
    h = hashlib.sha256(f"tunegate-pii-text-split:{text.strip().lower()}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64 < TEXT_TUNE_SHARE


def validate_records(records) -> None:
    """Raises ValueError naming the first record that is not in the Presidio research format."""
    if not isinstance(records, list) or not records:
        raise ValueError("expected a non-empty JSON list of records")
    for n, r in enumerate(records):
        if not isinstance(r, dict) or not isinstance(r.get("full_text"), str) or not isinstance(r.get("spans"), list):
            raise ValueError(f"record {n}: expected an object with full_text (a string) and spans (a list)")
        for sp in r["spans"]:
            try:
                ok = (isinstance(sp["entity_type"], str) and 0 <= int(sp["start_position"])
                      < int(sp["end_position"]) <= len(r["full_text"]))
            except (KeyError, TypeError, ValueError):
                ok = False
            if not ok:
                raise ValueError(f"record {n}: a span needs entity_type, start_position < end_position within "
                                 "full_text")


def from_hwu64(recs: list[dict]) -> list[dict]:
    """HWU64 annotated utterances as records: the person, place and e-mail spans under the names above;
    the other 40 slot types (date, business_name, ...) are left out (not personal data); ``label`` is the
    intent, whose words are the row's label words; ``split`` is the half (``is_tune_text``)."""
    out = []
    for r in recs:
        spans = [{"entity_type": HWU64_TO_DATA[e["entity"]], "entity_value": e.get("value", ""),
                  "start_position": int(e["start"]), "end_position": int(e["end"])}
                 for e in r.get("entities", []) if e.get("entity") in HWU64_TO_DATA]
        out.append({"full_text": r["text"], "spans": spans, "label": r.get("intent", ""),
                    "split": "tune" if is_tune_text(r["text"]) else "held_out"})
    return out


def hwu64_path() -> Path:
    """The bundled copy of HWU64's annotated utterances (CC BY 4.0, see its ATTRIBUTION.md)."""
    return Path(str(resources.files("pipeline") / "bundled" / "hwu64" / "annotated_dev.json"))


def load_records(data_path=None, templates: set[int] | None = None) -> list[dict]:
    """Records of a Presidio-research or HWU64 file; ``data_path="hwu64"`` is the bundled HWU64 copy."""
    if str(data_path) == "hwu64":
        data_path = hwu64_path()
    with open(data_path or default_data_path(), encoding="utf-8") as fh:
        recs = json.load(fh)
    if isinstance(recs, list) and recs and isinstance(recs[0], dict) and "text" in recs[0] and "entities" in recs[0]:
        recs = from_hwu64(recs)
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
    return _ratio_prf(tp, tp + fp, tp, tp + fn)


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


def _token_spans(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in _TOKEN.finditer(text)]


def _covered(tokens: list[tuple[int, int]], s: int, e: int) -> list[int]:
    return [i for i, (a, b) in enumerate(tokens) if a < e and b > s]


def score_spans(records: Sequence[dict], predictions: Sequence[Sequence[tuple[str, int, int]]],
                mapping: dict[str, str | None] | None = None, coverage: float = SPAN_COVERAGE) -> dict:
    """Span-level scores (rule in the module docstring); same shape as :func:`score`."""
    mapping = mapping or DATA_TO_OURS
    gold_n, gold_hit, any_hit = Counter(), Counter(), Counter()
    pred_n, pred_ok = Counter(), Counter()
    for rec, pred in zip(records, predictions):
        tokens = _token_spans(rec["full_text"])
        pspans = [(PRESIDIO_TO_OURS.get(t, t), s, e) for t, s, e in pred]
        ptag: list[str | None] = [None] * len(tokens)
        for t, s, e in pspans:
            for i in _covered(tokens, s, e):
                ptag[i] = t
        golds = [(sp["entity_type"], _covered(tokens, sp["start_position"], sp["end_position"]))
                 for sp in rec["spans"]]
        gtypes: list[set] = [set() for _ in tokens]  # every mapped type a token has (gold spans may nest)
        for r, idx in golds:
            for i in idx:
                gtypes[i].add(mapping.get(r))
        for r, idx in golds:
            if not idx:
                continue
            gold_n[r] += 1
            g = mapping.get(r)
            if g is not None and sum(ptag[i] == g for i in idx) >= coverage * len(idx):
                gold_hit[r] += 1
            if g is not None and sum(ptag[i] is not None for i in idx) >= coverage * len(idx):
                any_hit[r] += 1
        for t, s, e in pspans:
            idx = _covered(tokens, s, e)
            pred_n[t] += 1  # a mask over no word (punctuation, outside the text) is not correct
            pred_ok[t] += bool(idx) and sum(t in gtypes[i] for i in idx) >= coverage * len(idx)
    per_type: dict[str, dict] = {}
    for t in sorted({mapping[r] for r in gold_n if mapping.get(r)} | set(pred_n)):
        sup = sum(gold_n[r] for r in gold_n if mapping.get(r) == t)
        hit = sum(gold_hit[r] for r in gold_n if mapping.get(r) == t)
        per_type[t] = {**_ratio_prf(pred_ok[t], pred_n[t], hit, sup), "support": sup, "predicted": pred_n[t]}
    per_entity = {}
    for raw in sorted(gold_n, key=lambda k: -gold_n[k]):
        ours = mapping.get(raw)
        prec = per_type.get(ours, {}).get("precision", 0.0) if ours else 0.0
        rec_ = gold_hit[raw] / gold_n[raw]
        f2 = 5 * prec * rec_ / (4 * prec + rec_) if prec + rec_ else 0.0
        per_entity[raw] = {"precision": prec, "recall": round(rec_, 4), "f2": round(f2, 4),
                           "support": gold_n[raw], "ours": ours or "out of scope"}
    in_scope = [r for r in gold_n if mapping.get(r)]
    overall = _ratio_prf(sum(pred_ok.values()), sum(pred_n.values()),
                         sum(gold_hit[r] for r in in_scope), sum(gold_n[r] for r in in_scope))
    overall["support"] = sum(gold_n[r] for r in in_scope)
    overall["masked_recall"] = _share(sum(any_hit[r] for r in in_scope), overall["support"])
    overall["structured_recall"] = _share(sum(gold_hit[t] for t in STRUCTURED_DATA_TYPES),
                                          sum(gold_n[t] for t in STRUCTURED_DATA_TYPES))
    if not overall["support"]:
        overall["recall"] = None  # nothing to find: not judged
    return {"overall": overall, "per_entity": per_entity, "per_type": per_type, "records": len(records),
            "rule": f"span, token coverage >= {coverage:g}"}


def _share(hit: int, total: int) -> float | None:
    return round(hit / total, 4) if total else None


def _ratio_prf(correct: int, predicted: int, found: int, support: int) -> dict:
    p = correct / predicted if predicted else 0.0
    r = found / support if support else 0.0
    f2 = 5 * p * r / (4 * p + r) if p + r else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f2": round(f2, 4)}


def score_both(records, predictions, mapping=None) -> dict:
    """Span-level figures at the top (``overall``, ``per_entity``), token-level under ``token_level``."""
    out = score_spans(records, predictions, mapping)
    tok = score(records, predictions, mapping)
    out["token_level"] = {k: tok[k] for k in ("overall", "per_entity", "per_type")}
    return out


def targets_met(res: dict) -> bool:
    """Every target with something to measure is met (a file without structured values has no
    structured recall to judge)."""
    o = res["overall"]
    return all(o[k] is None or o[k] >= v for k, v in TARGETS.items())


def hwu64_targets_met(res: dict) -> bool:
    """The HWU64 targets (``HWU64_TARGETS``) on one result with its ``masking_quality``."""
    per = res["per_entity"]
    ok = all(per.get(k, {}).get("recall", 0.0) >= v for k, v in HWU64_TARGETS.items() if k != "false_mask")
    return ok and res["masking_quality"]["false_mask"]["share"] <= HWU64_TARGETS["false_mask"]


def evaluate(data_path=None, masker: Analyzer | None = None, templates: set[int] | None = None) -> dict:
    """Token-level precision/recall/F2 per entity and overall (see the module docstring for the rule)."""
    records = load_records(data_path, templates)
    if masker is None:
        from pipeline.pii.masker import Masker

        masker = Masker()
    preds = masker.analyze([r["full_text"] for r in records])
    return score_both(records, preds, _scope(masker))


def evaluate_splits(data_path=None, masker: Analyzer | None = None, records: list[dict] | None = None) -> dict:
    """All templates at the top, tune and held-out templates under ``splits``; one analysis pass.

    Records with a ``split`` instead (HWU64's utterance halves) are grouped by it, each half with its own
    ``masking_quality``; records with neither (a user's own file) get the all-records figures only.
    """
    if records is None:
        records = load_records(data_path)
    if masker is None:
        from pipeline.pii.masker import Masker

        masker = Masker()
    preds = masker.analyze([r["full_text"] for r in records])
    mapping = _scope(masker)
    out = score_both(records, preds, mapping)
    out["masking_quality"] = masking_quality(records, preds, masker)
    out["splits"] = {}
    if records and all("template_id" in r for r in records):
        tune, held = template_split(records)
        out["templates"] = len(tune) + len(held)
        for name, ids in (("tune", tune), ("held_out", held)):
            sel = [i for i, r in enumerate(records) if r["template_id"] in ids]
            out["splits"][name] = score_both([records[i] for i in sel], [preds[i] for i in sel], mapping)
            out["splits"][name]["templates"] = len(ids)
    elif records and all("split" in r for r in records):
        for name in ("tune", "held_out"):
            sel = [i for i, r in enumerate(records) if r["split"] == name]
            recs, ps = [records[i] for i in sel], [preds[i] for i in sel]
            out["splits"][name] = score_both(recs, ps, mapping)
            out["splits"][name]["masking_quality"] = masking_quality(recs, ps, masker)
    return out


def masking_quality(records: Sequence[dict], preds: Sequence[Sequence[tuple[str, int, int]]], masker=None) -> dict:
    """What masking costs the data (``pipeline.pii.quality``): placeholders in texts with no personal
    data, masks over a word of the row's label (records with a ``label``), near-identical texts masked
    differently."""
    from pipeline.pii.quality import false_mask_share, inconsistency, label_word_share

    texts = [r["full_text"] for r in records]
    clean = [not any(sp["entity_type"] in PRIVATE_DATA_TYPES for sp in r["spans"]) for r in records]
    out = {"false_mask": false_mask_share(preds, clean)}
    if any(r.get("label") for r in records):
        out["label_word_masks"] = label_word_share(texts, preds, [r.get("label", "") for r in records])
    if masker is not None and hasattr(masker, "_apply"):
        masked = [masker._apply(t, p).text for t, p in zip(texts, preds)]
        out["inconsistent_near_duplicates"] = inconsistency(texts, masked)
    return out


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _table(title: str, res: dict):
    from rich.table import Table

    tab = Table(title=title)
    for col in ("entity", "ours", "precision", "recall", "F2", "spans", "token P", "token R"):
        tab.add_column(col, justify="left" if col in ("entity", "ours") else "right")
    tok = res["token_level"]
    for name, m in res["per_entity"].items():
        t = tok["per_entity"].get(name, {})
        tab.add_row(name, m["ours"], _f(m['precision']), _f(m['recall']), _f(m['f2']),
                    str(m["support"]), f"{t.get('precision', 0):.3f}", f"{t.get('recall', 0):.3f}")
    o, to = res["overall"], tok["overall"]
    tab.add_row("OVERALL (in scope)", "", _f(o['precision']), _f(o['recall']), _f(o['f2']),
                str(o["support"]), _f(to['precision']), _f(to['recall']), style="bold")
    units = f", {res['templates']} templates" if "templates" in res else ""
    tab.caption = (f"{res['records']} records{units}; span rule: "
                   f"{res['rule']}; structured recall {_f(o['structured_recall'])}; any-mask recall "
                   f"{_f(o['masked_recall'])}")
    return tab


def _quality(q: dict) -> str:
    return "; ".join(f"{k} {v['share']:.2%} ({v})" for k, v in q.items())


def pii_eval_command(data: str | None, as_json: bool) -> int:
    """Print the evaluation tables (rich) or one JSON object.

    Exit 0 if the span-level targets (HWU64: ``HWU64_TARGETS``) are met on all records and, when templates
    or halves are known, on the held-out part; 1 if not; 2 if the file cannot be read.
    """
    try:
        records = load_records(data)
        validate_records(records)
    except (OSError, ValueError) as exc:
        print(f"pii-eval: cannot use {data or default_data_path()}: {exc}", file=sys.stderr)
        return 2
    res = evaluate_splits(records=records)
    judged = [res] + ([res["splits"]["held_out"]] if "held_out" in res["splits"] else [])
    hwu = all("split" in r for r in records)
    ok = all(hwu64_targets_met(r) if hwu else targets_met(r) for r in judged)
    res["targets"] = dict(HWU64_TARGETS if hwu else TARGETS)
    res["targets_met"] = ok
    if as_json:
        print(json.dumps(res, sort_keys=True))
    else:
        from rich.console import Console

        con = Console()
        if not con.is_terminal:  # piped or redirected: wide enough that no column is cut
            con = Console(width=120)
        con.print(_table("PII detection, all records", res))
        unit = "templates" if "templates" in res else "half"
        for key, title in (("tune", f"tune {unit}"), ("held_out", f"held-out {unit}")):
            if key in res["splits"]:
                con.print(_table(f"PII detection, {title}", res["splits"][key]))
                if "masking_quality" in res["splits"][key]:
                    con.print(f"masking quality, {title}: " + _quality(res["splits"][key]["masking_quality"]))
        con.print("masking quality: " + _quality(res.get("masking_quality", {})))
        if hwu:
            con.print(f"HWU64 targets (recall: person >= {HWU64_TARGETS['PERSON']}, place >= {HWU64_TARGETS['GPE']}, "
                      f"e-mail >= {HWU64_TARGETS['EMAIL_ADDRESS']}; placeholders in clean utterances <= "
                      f"{HWU64_TARGETS['false_mask']:.0%}), whole file and held-out half: {'met' if ok else 'NOT met'}")
        else:
            con.print(f"span-level targets (recall >= {TARGETS['recall']}, precision >= {TARGETS['precision']}, "
                      f"structured recall >= {TARGETS['structured_recall']}): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


def mask_command(in_path: str, out_path: str, text_col: str, config: str | None = None,
                 id_col: str | None = None) -> int:
    """Mask a CSV/JSONL/Parquet file's text column into out_path (any of the three formats); rows the leak
    guard rejects go to a side file with their reasons. Prints counts (no values)."""
    from pipeline.pii.masker import Masker, MaskingError, mask_file

    spec = None
    masker = None
    if config:
        from pipeline.config import load_config

        cfg = load_config(config)
        spec = cfg.masking
        masker = Masker(spec, taxonomy=cfg.taxonomy)
    try:
        res = mask_file(in_path, out_path, text_col, spec, masker=masker, id_col=id_col)
    except MaskingError as exc:
        print(f"masking failed: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(res, sort_keys=True))
    return 0


if __name__ == "__main__":  # python -m pipeline.pii.evaluate [data.json] [--json]
    args = [a for a in sys.argv[1:] if a != "--json"]
    sys.exit(pii_eval_command(args[0] if args else None, "--json" in sys.argv))
