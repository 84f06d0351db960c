"""Every asset check, data and model half. A check that guards what comes after it is blocking.

Checks read the stored version (the asset's value is only a reference) and report counts and rounded
shares, never text. Model-side checks: the fine-tuning files are valid, every job succeeded, the
evaluation scored every candidate on every row, no candidate failed, and a recommended change rests on
a statistically significant gain.
"""
import dagster as dg

from assets.data_assets import dataset_splits, deduplicated_tickets, labelled_tickets, masked_tickets, raw_tickets
from assets.metadata import num
from assets.model_assets import decision_report, finetune_files, finetune_job, holdout_evaluation
from assets.resources import TunegateConfigResource
from pipeline import storage


def _suite_result(res) -> dg.AssetCheckResult:
    failed = res.failed()
    return dg.AssetCheckResult(
        passed=res.success,
        metadata={"expectations": len(res.results), "failed": len(failed),
                  "results": dg.MetadataValue.json(res.results)},
        description="; ".join(f"{f['expectation']}({f['column']}): {f['unexpected_count']} unexpected" for f in failed) or None,
    )


def _balance_md(bal) -> str:
    lines = ["| label | train | val | test |", "|---|---|---|---|"]
    lines += [f"| {lab} | {r.train} | {r.val} | {r.test} |" for lab, r in bal.iterrows()]
    return "\n".join(lines)


@dg.asset_check(asset=raw_tickets, blocking=True, description="Great Expectations suite on the canonical raw table.")
def raw_tickets_expectations(tunegate: TunegateConfigResource, raw_tickets: dict) -> dg.AssetCheckResult:
    from pipeline.data.validation import validate_raw_tickets

    cfg = tunegate.load()
    df = storage.read_version(cfg.warehouse_path, storage.RAW_ZONE, "raw_tickets", raw_tickets["version"], "tickets")
    return _suite_result(validate_raw_tickets(df, cfg.limits.min_text_chars, cfg.limits.max_text_chars))


@dg.asset_check(asset=raw_tickets, blocking=True, description="Nothing lost: rows in = rows kept + rows quarantined, per file.")
def raw_tickets_accounted(tunegate: TunegateConfigResource, raw_tickets: dict) -> dg.AssetCheckResult:
    cfg = tunegate.load()
    read = lambda part: storage.read_version(cfg.warehouse_path, storage.RAW_ZONE, "raw_tickets", raw_tickets["version"], part)
    files, tickets, quarantine = read("files"), read("tickets"), read("quarantine")
    kept = tickets.groupby("source_file").size()
    quar = quarantine.groupby("source_file").size()
    bad = [f.source_file for f in files.itertuples()
           if f.rows_in != int(kept.get(f.source_file, 0)) + int(quar.get(f.source_file, 0))]
    total_in = int(files["rows_in"].sum())
    return dg.AssetCheckResult(passed=not bad and total_in == len(tickets) + len(quarantine),
                            metadata={"rows_in": total_in, "rows_kept": len(tickets),
                                      "rows_quarantined": len(quarantine), "files_not_balanced": dg.MetadataValue.json(bad)})


@dg.asset_check(asset=masked_tickets, blocking=True,
             description="Independent leak guard: zero structured PII (email, phone, card, IBAN, IIN/BIN, IP, SSN) left.")
def masked_tickets_no_pii(masked_tickets: dict, tunegate: TunegateConfigResource) -> dg.AssetCheckResult:
    # Re-scans the stored version with the leak guard's own patterns and checksums: independent of
    # the masking step, which already refuses to write a version with residual PII.
    from collections import Counter

    from pipeline.pii.leak_guard import scan_residual

    cfg = tunegate.load()
    df = storage.read_version(cfg.warehouse_path, storage.CLEAN_ZONE, "masked_tickets", masked_tickets["version"],
                              "tickets")
    found = scan_residual(df["text"].tolist())
    hits = [(tid, types) for tid, types in zip(df["ticket_id"], found) if types]
    by_type = Counter(t for _, types in hits for t in set(types))
    return dg.AssetCheckResult(
        passed=not hits,
        metadata={"rows_scanned": len(df), "residual_rows": len(hits), "residual_rate": num(len(hits) / max(1, len(df))),
                  "residual_by_type": dg.MetadataValue.json(dict(by_type)),
                  "residual_ticket_ids": dg.MetadataValue.json([tid for tid, _ in hits][:50])})


@dg.asset_check(asset=deduplicated_tickets, blocking=True, description="No two kept tickets share a normalised text.")
def deduplicated_no_exact_duplicates(deduplicated_tickets: dict, tunegate: TunegateConfigResource) -> dg.AssetCheckResult:
    from pipeline.data.dedup import normalize_text

    cfg = tunegate.load()
    df = storage.read_version(cfg.warehouse_path, storage.CLEAN_ZONE, "deduplicated_tickets",
                              deduplicated_tickets["version"], "tickets")
    dups = int(df["text"].map(normalize_text).duplicated().sum())
    return dg.AssetCheckResult(passed=dups == 0, metadata={"exact_duplicates_left": dups, "rows": len(df)})


@dg.asset_check(asset=labelled_tickets, blocking=False, description="Every kept label is in the taxonomy; share of flagged label issues.")
def labelled_in_taxonomy(labelled_tickets: dict, tunegate: TunegateConfigResource) -> dg.AssetCheckResult:
    cfg = tunegate.load()
    df = storage.read_version(cfg.warehouse_path, storage.CLEAN_ZONE, "labelled_tickets", labelled_tickets["version"], "tickets")
    labelled = df[df["label"].notna()]
    outside = int((~labelled["label"].isin(cfg.labels)).sum())
    issue_share = float(df["label_issue"].mean()) if "label_issue" in df and len(df) else 0.0
    return dg.AssetCheckResult(passed=outside == 0, severity=dg.AssetCheckSeverity.WARN if outside == 0 else dg.AssetCheckSeverity.ERROR,
                            metadata={"labels_outside_taxonomy": outside, "unlabelled_rows": int(df["label"].isna().sum()),
                                      "label_issue_share": round(issue_share, 4)})


@dg.asset_check(asset=dataset_splits, blocking=True,
             description="Zero near-duplicate pairs between test and train/val (and val and train) at the split threshold.")
def splits_no_cross_split_near_duplicates(dataset_splits: dict, tunegate: TunegateConfigResource) -> dg.AssetCheckResult:
    from pipeline.data.splits import cross_split_pairs
    from pipeline.data.steps import read_split

    cfg = tunegate.load()
    tables = {s: read_split(cfg, dataset_splits["version"], s) for s in ("train", "val", "test")}
    pairs = cross_split_pairs(tables, cfg.dedup, cfg.splits.near_dup_threshold)
    return dg.AssetCheckResult(passed=len(pairs) == 0,
                            metadata={"pairs": len(pairs), "threshold": cfg.splits.near_dup_threshold,
                                      "pairs_preview": dg.MetadataValue.json(pairs.head(20).to_dict("records"))})


@dg.asset_check(asset=dataset_splits, blocking=True,
             description="Great Expectations suites on train/val/test, no ticket in two splits, no structured PII.")
def splits_expectations(dataset_splits: dict, tunegate: TunegateConfigResource) -> dg.AssetCheckResult:
    from pipeline.pii.leak_guard import scan_residual
    from pipeline.data.steps import read_split
    from pipeline.data.validation import validate_split

    cfg = tunegate.load()
    tables = {s: read_split(cfg, dataset_splits["version"], s) for s in ("train", "val", "test")}
    results = {s: validate_split(s, t, cfg.labels, cfg.limits.min_text_chars, cfg.limits.max_text_chars)
               for s, t in tables.items()}
    ids = [set(t["ticket_id"]) for t in tables.values()]
    overlap = len(ids[0] & ids[1]) + len(ids[0] & ids[2]) + len(ids[1] & ids[2])
    pii = sum(1 for t in tables.values() for hits in scan_residual(t["text"].tolist()) if hits)
    passed = all(r.success for r in results.values()) and overlap == 0 and pii == 0
    return dg.AssetCheckResult(passed=passed, metadata={
        "suites": dg.MetadataValue.json({s: {"success": r.success, "failed": r.failed()} for s, r in results.items()}),
        "tickets_in_two_splits": overlap, "rows_with_structured_pii": pii})


@dg.asset_check(asset=dataset_splits, blocking=False, description="Every label appears in train and test; ratios near the config.")
def splits_class_balance(dataset_splits: dict, tunegate: TunegateConfigResource) -> dg.AssetCheckResult:
    from pipeline.data.splits import class_balance
    from pipeline.data.steps import read_split

    cfg = tunegate.load()
    tables = {s: read_split(cfg, dataset_splits["version"], s) for s in ("train", "val", "test")}
    bal = class_balance(tables)
    missing_test = [l for l in cfg.labels if l not in bal.index or bal.loc[l, "test"] == 0]
    missing_train = [l for l in cfg.labels if l not in bal.index or bal.loc[l, "train"] == 0]
    return dg.AssetCheckResult(passed=not missing_test and not missing_train, severity=dg.AssetCheckSeverity.WARN,
                            metadata={"labels_missing_in_test": dg.MetadataValue.json(missing_test),
                                      "labels_missing_in_train": dg.MetadataValue.json(missing_train),
                                      "balance": dg.MetadataValue.md(_balance_md(bal))})


# -- model half ------------------------------------------------------------------------------------
@dg.asset_check(asset=finetune_files, blocking=True, description="No format errors and no example over the token limit.")
def finetune_files_valid(finetune_files: dict) -> dg.AssetCheckResult:
    v = finetune_files["meta"]["validation"]
    errors = {s: sum(r["errors"].values()) for s, r in v.items()}
    return dg.AssetCheckResult(passed=finetune_files["meta"]["ok"], metadata={"errors": dg.MetadataValue.json(errors)})


@dg.asset_check(asset=finetune_job, blocking=True,
             description="Every fine-tuning job succeeded and named its fine-tuned model.")
def finetune_jobs_succeeded(finetune_job: dict) -> dg.AssetCheckResult:
    jobs = finetune_job["meta"]["jobs"]
    skipped = finetune_job["meta"].get("finetune_skipped")  # an endpoint without fine-tuning: prompts only
    bad = {base: j.get("status") for base, j in jobs.items()
           if j.get("status") != "succeeded" or not j.get("fine_tuned_model")}
    return dg.AssetCheckResult(passed=(bool(jobs) or bool(skipped)) and not bad,
                               metadata={"jobs": len(jobs), "not_succeeded": dg.MetadataValue.json(bad),
                                         "finetune_skipped": skipped or ""})


def _evaluation(ref: dict):
    from pipeline.model.steps import load_evaluation

    return load_evaluation(ref["path"])


@dg.asset_check(asset=holdout_evaluation, blocking=True, additional_ins={"finetune_job": dg.AssetIn("finetune_job")},
             description="Every candidate (prompts and each fine-tuned model) answered every evaluated row.")
def evaluation_complete(holdout_evaluation: dict, finetune_job: dict, tunegate: TunegateConfigResource) -> dg.AssetCheckResult:
    from pipeline.model.evaluation import candidates_from_config

    result = _evaluation(holdout_evaluation)
    fine_tuned = {base: j["fine_tuned_model"] for base, j in finetune_job["meta"]["jobs"].items()}
    expected = {c.name for c in candidates_from_config(tunegate.load(), fine_tuned)}
    rows = result.predictions.groupby("candidate").size().to_dict()
    missing = sorted(expected - set(result.metrics))
    short = {n: int(rows.get(n, 0)) for n in result.metrics if rows.get(n, 0) != result.n_rows}
    return dg.AssetCheckResult(passed=not missing and not short and result.n_rows > 0, metadata={
        "candidates": len(result.metrics), "rows_per_candidate": result.n_rows,
        "candidates_missing": dg.MetadataValue.json(missing), "candidates_short": dg.MetadataValue.json(short)})


@dg.asset_check(asset=holdout_evaluation, blocking=False,
             description="No candidate failed: no request ended in an error after its retries.")
def evaluation_no_candidate_failed(holdout_evaluation: dict) -> dg.AssetCheckResult:
    result = _evaluation(holdout_evaluation)
    errors = {n: int(m.get("n_errors", 0)) for n, m in result.metrics.items()}
    failing = {n: e for n, e in errors.items() if e}
    return dg.AssetCheckResult(
        passed=not failing, severity=dg.AssetCheckSeverity.WARN,
        description=("; ".join(f"{n}: {e} of {result.n_rows} requests failed" for n, e in failing.items())
                     or None),
        metadata={"failed_requests": sum(errors.values()),
                  "failed_request_share": num(sum(errors.values()) / max(1, result.n_rows * len(errors))),
                  "by_candidate": dg.MetadataValue.json(failing)})


@dg.asset_check(asset=decision_report, blocking=False,
             description="A recommended change rests on a significant accuracy gain over the incumbent.")
def recommendation_significant(decision_report: dict) -> dg.AssetCheckResult:
    rec = decision_report["meta"].get("recommendation") or {}
    chosen, incumbent = rec.get("candidate"), rec.get("incumbent")
    if not chosen or chosen == incumbent:  # nothing changes: there is no gain to prove
        return dg.AssetCheckResult(passed=bool(chosen), metadata={"change": False, "candidate": chosen or ""})
    verdict = next((v for v in rec.get("verdicts", []) if v.get("candidate") == chosen), {})
    p = verdict.get("mcnemar_p")
    return dg.AssetCheckResult(passed=bool(verdict.get("significant")), severity=dg.AssetCheckSeverity.WARN, metadata={
        "change": True, "candidate": chosen, "incumbent": incumbent or "",
        "accuracy_gain": num(verdict.get("accuracy_gain")), "mcnemar_p": num(p, 6) if p is not None else None})
