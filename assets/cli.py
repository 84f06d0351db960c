"""The `tunegate` command line: demo, init, run, pull, lineage, models, masking tools, the UI.

Commands that run the asset graph (`demo`, `run`, `ui`) go through Dagster (imported lazily from
`assets/`), so the command line and the UI run exactly the same graph and checks; while they run, each
stage prints a start and an end line and the long ones a progress bar (assets.run_console). Everything
else works on the catalog and the stored versions directly. Errors a user can fix
(pipeline.errors.UserError, config errors, a missing catalog or version) are printed as one line that
names the file or field and the fix, with exit code 2; `--debug` shows the traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")


from pipeline.errors import UserError  # noqa: E402

DEFAULT_CONFIG = "tunegate.yaml"


def _config(args):
    """The config named by --config, else ./tunegate.yaml when there is one, else the built-in demo defaults."""
    from pipeline.config import load_config

    path = getattr(args, "config", None)
    if path is None and Path(DEFAULT_CONFIG).is_file():
        path = DEFAULT_CONFIG
    return load_config(path)


def _need_catalog(cfg, args) -> None:
    """Refuse (rather than create an empty catalog here) when the warehouse has no catalog yet."""
    if not cfg.catalog_path.exists():
        hint = ("the warehouse named in that config has not been built: run `tunegate run --config "
                f"{args.config}` first" if getattr(args, "config", None) else
                "pass --config <your tunegate.yaml> (its `warehouse:` holds the catalog), or run this from "
                "the folder that holds tunegate.yaml")
        raise UserError(f"no catalog at {cfg.catalog_path}: {hint}")


def _refuse_overwrite(path: Path, force: bool) -> None:
    if path.exists() and not force:
        raise UserError(f"{path} exists; pass --force to overwrite it, or choose another --out")


# -- data ------------------------------------------------------------------------------------------
def cmd_demo(args) -> int:
    import yaml

    from pipeline.config import load_config
    from pipeline.data.sample.generator import FRESH_SAMPLE_FILE, generate_sample, write_fresh_sample

    overrides = {"warehouse": args.warehouse} if args.warehouse else {}
    cfg = load_config(None, **overrides)
    t0 = time.time()
    landing = cfg.landing_path
    manifest = cfg.warehouse_path / "sample_manifest.json"
    m = generate_sample(landing, manifest, n_tickets=args.n)
    print(f"bundled sample: {m['total_rows']} rows in {len(m['files'])} landing files -> {landing}")
    # Banking77's official test split never lands: it is the fresh sample the estimate is checked on
    fresh = write_fresh_sample(cfg.warehouse_path / FRESH_SAMPLE_FILE)
    print(f"fresh sample: {fresh['rows']} tickets ({fresh['source']}) -> {fresh['path']}")
    demo_config = cfg.warehouse_path / "demo.yaml"
    demo_config.write_text(yaml.safe_dump({"warehouse": str(cfg.warehouse_path),
                                           "evaluation": {"fresh_sample": FRESH_SAMPLE_FILE}}), encoding="utf-8")
    cfg = load_config(demo_config)
    if args.warehouse:
        os.environ["TUNEGATE_WAREHOUSE"] = str(cfg.warehouse_path)
    job = "refresh_dataset" if args.data_only else "full_pipeline"
    code = _run_graph(cfg, str(demo_config), job, debug=args.debug)
    _print_summary(cfg, code == 0)
    print(f"wall time: {time.time() - t0:.1f} s")
    return code


def cmd_run(args) -> int:
    if args.engine:  # read by load_config in every step, in this process and in Dagster's
        os.environ["TUNEGATE_ENGINE"] = args.engine
    if args.ray_address:
        os.environ["TUNEGATE_RAY_ADDRESS"] = args.ray_address
    cfg = _config(args)
    job = "refresh_dataset" if args.data_only else "full_pipeline"
    code = _run_graph(cfg, args.config, job, debug=args.debug)
    _print_summary(cfg, code == 0)
    return code


def _run_graph(cfg, config_path, job: str, debug: bool = False) -> int:
    """Run a job in process, printing stage lines and progress bars; 0 ok, 2 a user-fixable failure, 1 other."""
    from assets.run_console import RunConsole
    from assets.runner import run_job
    from pipeline import progress

    from assets.definitions import defs

    console = RunConsole(debug=debug, assets={k.to_user_string() for k in defs.resolve_all_asset_keys()})
    previous = progress.use_display(console)
    try:
        res = run_job(cfg, config_path, job=job, raise_on_error=False, on_event=console)
    finally:
        console.close()
        progress.use_display(previous)
    if console.user_errors:
        for msg in dict.fromkeys(console.user_errors):
            print(f"tunegate: {msg}", file=sys.stderr)
        return 2
    return 0 if res.success else 1


def _print_summary(cfg, ok: bool = True) -> None:
    from pipeline.catalog import Catalog

    if not ok:
        print("the run FAILED (see the FAILED lines above): what follows are the last recorded results, "
              "not this run's")
    if not cfg.catalog_path.exists():
        return
    cat = Catalog(cfg.catalog_path)
    arts = cat.query("""SELECT artifact, version, rows, meta FROM artifact_versions a
                        WHERE created_at = (SELECT max(created_at) FROM artifact_versions b WHERE b.artifact = a.artifact)""")
    meta = {r.artifact: (r.version, r.rows, json.loads(r.meta)) for r in arts.itertuples()}
    if "raw_tickets" in meta:
        _, _, m = meta["raw_tickets"]
        print(f"raw_tickets: {m['rows_in']} rows in, {m['rows_kept']} kept, {m['rows_quarantined']} quarantined "
              f"{m['quarantine_by_reason']}")
    if "masked_tickets" in meta:
        _, _, m = meta["masked_tickets"]
        print(f"masked_tickets: {m['tickets_with_pii']} tickets with PII ({m['pii_share']:.1%}); "
              f"entities {m['entities_by_type']}; residual {m['residual_rows']}")
    if "deduplicated_tickets" in meta:
        v, rows, m = meta["deduplicated_tickets"]
        print(f"deduplicated_tickets: {rows} kept of {m.get('rows_in')}; "
              + ", ".join(f"{k}={m[k]}" for k in m if k.startswith(("n_", "largest", "capped"))))
    if "labelled_tickets" in meta:
        _, _, m = meta["labelled_tickets"]
        keys = [k for k in m if isinstance(m[k], (int, float)) and k != "rows"]
        print("labelled_tickets: " + ", ".join(f"{k}={m[k]}" for k in keys))
    if "dataset_splits" in meta:
        v, _, m = meta["dataset_splits"]
        print(f"dataset_splits {v}: {m['sizes']}, cross-split near-duplicates {m['cross_split_near_duplicates']}")
    report = cfg.warehouse_path / "reports" / "latest" / "report.json"
    if report.exists():
        r = json.loads(report.read_text())
        rec = r.get("recommendation") or {}
        if not ok:  # never a stale report presented as current
            src = cat.query("SELECT run_id, created_at FROM artifact_versions WHERE artifact = 'decision_report' "
                            "AND version = ?", [report.resolve().parent.name])
            when = (f"run {src.run_id.iloc[0]} at {src.created_at.iloc[0]:%Y-%m-%d %H:%M:%S %Z}" if len(src)
                    else "an earlier run")
            print(f"the run failed: the last decision report comes from {when}")
        print(f"decision report: {report.parent / 'report.html'} (also report.md, report.json)")
        settings = r.get("settings") or {}
        if settings.get("finetune_skipped"):
            print(f"fine-tuning skipped: {settings['finetune_skipped']}")
        for name, inc in (settings.get("incomplete") or {}).items():
            print(f"incomplete (not ranked): {name}: {inc.get('failed_rows')} rows failed after "
                  f"{inc.get('retries')} retries; the next run asks only for those rows")
        print(f"recommendation: {rec.get('headline', rec.get('action'))}")
        cur = r.get("currency", "")
        print(f"  {'candidate':24s} {'accuracy':>8s} {'macro-F1':>8s} {'valid':>6s} {'/1k ans':>8s} "
              f"{'fixes/mo':>9s} {'payback':>9s}")
        for c in r.get("candidates", []):
            e = c.get("economics", {})
            pb = e.get("payback_months")
            pb = "-" if pb is None else (pb if isinstance(pb, str) else f"{pb:.2f} mo")
            fv = "n/a" if c["format_validity"] is None else f"{c['format_validity']:.1%}"
            print(f"  {c['name']:24s} {c['accuracy']:8.1%} {c['macro_f1']:8.1%} {fv:>6s} "
                  f"{c['price_per_1000']:8.2f} {e.get('corrections_per_month', 0):9,.0f} {pb:>9s}")
        print(f"  (prices in {cur} per 1,000 answers; fixes/mo = answers an operator must correct per month)")
        _print_fresh(r.get("fresh_sample"), (r.get("endpoint") or {}).get("note"))


def _print_fresh(fresh: dict | None, note: str | None = None) -> None:
    if note:
        print(f"  {note}")
    if not fresh:
        return
    print(f"frozen test vs fresh sample ({fresh['file']}, {fresh['rows_scored']} tickets never in the pipeline):")
    for n, c in fresh["candidates"].items():
        print(f"  {n:24s} frozen {c['frozen_accuracy']:6.1%}  fresh {c['fresh_accuracy']:6.1%}  "
              f"gap {100 * c['gap']:+5.1f} pts [{100 * c['gap_ci'][0]:+.1f}, {100 * c['gap_ci'][1]:+.1f}]"
              + (f"  | fresh w/o train twins {c['fresh_accuracy_without_train_twins']:6.1%} gap "
                 f"{100 * c['gap_without_train_twins']:+5.1f} pts" if "gap_without_train_twins" in c else ""))
    if fresh.get("train_twins"):
        print(f"  {fresh['train_twins']} fresh tickets ({fresh['train_twins_share']:.1%}) have a near-duplicate in train")
    print(f"  best on frozen: {fresh['best_on_frozen']}; best on fresh: {fresh['best_on_fresh']}. {fresh['note']}")


def cmd_evaluate(args) -> int:
    """Score the latest evaluation's candidates on a fresh labelled file, next to their frozen-test figures."""
    from pipeline.catalog import Catalog
    from pipeline.data.steps import read_split
    from pipeline.model.evaluation import Candidate
    from pipeline.model.fresh import fresh_sample_check, load_fresh_sample, mask_fresh
    from pipeline.model.steps import evaluation_routes, load_evaluation

    cfg = _config(args)
    if args.sample:
        cfg = cfg.model_copy(update={"evaluation": cfg.evaluation.model_copy(update={"fresh_sample_size": args.sample})})
    row = Catalog(cfg.catalog_path).latest_artifact("holdout_evaluation") if cfg.catalog_path.exists() else None
    if row is None:
        raise UserError("no holdout evaluation in the catalog: run `tunegate demo` or `tunegate run` first")
    frozen = load_evaluation(row["path"])
    rows, facts = load_fresh_sample(args.fresh, cfg.taxonomy)
    candidates = [Candidate(**c) for c in frozen.candidates]
    train = read_split(cfg, frozen.dataset_version, "train")
    routes, provenance = evaluation_routes(cfg, candidates)
    print(f"fresh sample {facts['file']}: {facts['rows_used']} rows ({facts['rows_left_out']} left out: no taxonomy "
          f"label); masking, then scoring {len(candidates)} candidates on {provenance['endpoint']}")
    res = fresh_sample_check(None, mask_fresh(rows, cfg.masking), facts, train, cfg, candidates, frozen, provenance,
                             routes=routes)
    out = Path(row["path"]) / "fresh_sample.json"
    out.write_text(json.dumps(res, indent=2, sort_keys=True), encoding="utf-8")
    if args.json:
        print(json.dumps(res, indent=2, sort_keys=True))
    else:
        _print_fresh(res, provenance["note"])
        print(f"written to {out}")
    return 0


def cmd_init(args) -> int:
    from pipeline.starter import STARTER_CONFIG, draft_config

    out = Path(args.out)
    _refuse_overwrite(out, args.force)
    if args.from_file:
        text, summary = draft_config(Path(args.from_file), examples=args.examples, text_col=args.text_col,
                                     label_col=args.label_col)
        out.write_text(text, encoding="utf-8")
        print(f"wrote {out}: {summary}")
        print(f"check `columns:` and fill in the label descriptions, then `tunegate run --config {out}`")
        return 0
    out.write_text(STARTER_CONFIG, encoding="utf-8")
    print(f"wrote {out}: edit landing, columns and taxonomy, then `tunegate run --config {out}`")
    return 0


def cmd_pull(args) -> int:
    from pipeline.pull import pull_split, write_table

    cfg = _config(args)
    _need_catalog(cfg, args)
    _refuse_overwrite(Path(args.out), args.force)
    df, version = pull_split(cfg, args.version, args.split, with_version=True)
    out = write_table(df, args.out, args.format)
    print(f"{len(df)} rows of {args.split} from dataset version {version} -> {out}")
    return 0


def cmd_lineage(args) -> int:
    from pipeline.lineage import lineage

    cfg = _config(args)
    _need_catalog(cfg, args)
    result = lineage(cfg, args.subject, limit=args.limit)
    print(json.dumps(result, indent=2, default=str))
    return 0


# -- models ----------------------------------------------------------------------------------------
def cmd_serve_local(args) -> int:
    from pipeline.provider.app import serve

    cfg = _config(args)
    state = Path(args.state) if args.state else cfg.warehouse_path / "provider"
    serve(host="127.0.0.1", port=args.port, state_dir=state)
    return 0


def cmd_report(args) -> int:
    cfg = _config(args)
    folder = cfg.warehouse_path / "reports" / "latest"
    path = folder / ("report.json" if args.format == "json" else "report.md")
    if not path.exists():
        raise UserError(f"no report at {path}: run `tunegate demo` or `tunegate run` first")
    print(path.read_text(encoding="utf-8"))
    return 0


def cmd_promote(args) -> int:
    from pipeline.routes import promote

    cfg = _config(args)
    _need_catalog(cfg, args)
    print(promote(cfg, args.model, force=args.force, route=args.route))
    return 0


def cmd_rollback(args) -> int:
    from pipeline.routes import rollback

    cfg = _config(args)
    _need_catalog(cfg, args)
    print(rollback(cfg, route=args.route))
    return 0


def cmd_gc(args) -> int:
    from pipeline.gc import plan_gc, run_gc

    cfg = _config(args)
    plan = plan_gc(cfg, keep_last=args.keep_last)
    print(plan.summary())
    if not args.delete:
        print("dry run: nothing was removed (add --delete to remove the versions listed)")
        return 0
    print(f"removed {len(plan.remove)} versions, {run_gc(cfg, plan) / 2**20:.1f} MB freed")
    return 0


# -- masking tools ---------------------------------------------------------------------------------
def cmd_pii_eval(args) -> int:
    from pipeline.pii.evaluate import pii_eval_command

    return pii_eval_command(args.data, args.json)


def cmd_mask(args) -> int:
    from pipeline.pii.evaluate import mask_command

    if Path(args.out_path).exists() and not args.force:
        raise UserError(f"{args.out_path} exists; pass --force to overwrite it")
    return mask_command(args.in_path, args.out_path, args.text_col, args.config, args.id_col)


def cmd_ui(args) -> int:
    """Start `dagster dev` on the code location, with the project's instance settings."""
    from assets.runner import PROJECT_ROOT, dagster_home

    cfg = _config(args)
    home = dagster_home(cfg)
    env = dict(os.environ, DAGSTER_HOME=str(home))
    if args.config:
        env["TUNEGATE_CONFIG"] = str(Path(args.config).resolve())
    else:  # the defaults resolve the warehouse from the current folder: pin it for the code server
        env.setdefault("TUNEGATE_WAREHOUSE", str(cfg.warehouse_path))
    # `dagster dev` points to a `dg` command line that is not installed here: drop that hint
    env["PYTHONWARNINGS"] = ",".join(filter(None, [env.get("PYTHONWARNINGS"),
                                                   "ignore:Function `dev_command` is superseded"]))
    # run from DAGSTER_HOME, whose dagster.yaml is the one in use (dagster dev warns about any other)
    os.chdir(home)
    # dagster dev started from a non-interactive shell ignores SIGINT/SIGTERM; restore the default
    # handler before exec so that `kill -TERM` stops the whole tree.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    exe = Path(sys.executable).with_name("dagster")
    argv = [str(exe), "dev", "-m", "assets.definitions", "-d", str(PROJECT_ROOT), "-h", args.host, "-p", str(args.port)]
    os.execve(str(exe), argv, env)
    return 0


# -- parser ------------------------------------------------------------------------------------------
_FMT = argparse.RawDescriptionHelpFormatter


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tunegate")
    except PackageNotFoundError:
        return "unknown"


def _config_option(sp) -> None:
    sp.add_argument("--config", metavar="FILE",
                    help=f"project config (YAML); default: ./{DEFAULT_CONFIG} if present, else the built-in demo "
                         "settings (bundled Banking77 sample, ./warehouse)")


def _parse_demo(add) -> None:
    sp = add("demo", cmd_demo, "Generate the bundled sample into warehouse/landing and run the whole chain on it.",
             _examples("tunegate demo                      # the whole chain on the bundled Banking77 sample",
                       "tunegate demo --n 2000 --data-only  # a quick look at the data half"))
    sp.add_argument("--warehouse", metavar="DIR", help="warehouse folder (default ./warehouse)")
    sp.add_argument("--n", type=int, default=None, metavar="N",
                    help="tickets drawn from Banking77's training split for the sample (default: all 10,003)")
    sp.add_argument("--data-only", action="store_true", help="stop after dataset_splits (no model calls)")


def _parse_init(add) -> None:
    sp = add("init", cmd_init, "Write a commented starter config, or draft one from your own export with --from.",
             _examples("tunegate init                               # commented starter config -> tunegate.yaml",
                       "tunegate init --from exports/tickets.csv    # columns mapped, one taxonomy entry per label",
                       "tunegate init --from t.jsonl --out my.yaml --force"))
    sp.add_argument("--out", default=DEFAULT_CONFIG, metavar="FILE", help=f"file to write (default {DEFAULT_CONFIG})")
    sp.add_argument("--from", dest="from_file", metavar="FILE",
                    help="an export (CSV, JSONL, JSON or Parquet): map its columns and draft the taxonomy from its "
                         "labels, with counts and masked example tickets as comments")
    sp.add_argument("--examples", type=int, default=3, metavar="N",
                    help="masked example tickets per label in the comments, with --from (default 3)")
    sp.add_argument("--text-col", metavar="COLUMN", help="with --from: the column holding the ticket text "
                    "(default: found by name, else the longest free text)")
    sp.add_argument("--label-col", metavar="COLUMN", help="with --from: the column holding the label "
                    "(default: found by name, else a short repeated value)")
    sp.add_argument("--force", action="store_true", help="overwrite --out if it exists")


def _parse_run(add) -> None:
    sp = add("run", cmd_run, "Run the chain on the config's landing folder, outside the UI.",
             _examples("tunegate run --config tunegate.yaml",
                       "tunegate run --config tunegate.yaml --data-only",
                       "TUNEGATE_LOG_LEVEL=DEBUG tunegate run --config tunegate.yaml --debug"))
    sp.add_argument("--config", required=True, metavar="FILE", help="project config (YAML), e.g. from `tunegate init`")
    sp.add_argument("--data-only", action="store_true", help="stop after dataset_splits (no model calls)")
    sp.add_argument("--engine", choices=["local", "ray"], help="where masking, the leak guard and dedup run "
                    "(default: the config's engine.kind, local)")
    sp.add_argument("--ray-address", metavar="ADDR", help="Ray cluster address (default: start a local Ray instance)")


def _parse_gc(add) -> None:
    sp = add("gc", cmd_gc, "Remove old versions no route, pull or published test needs (a dry run unless --delete).",
             _examples("tunegate gc --config tunegate.yaml", "tunegate gc --config tunegate.yaml --keep-last 3 --delete"))
    _config_option(sp)
    sp.add_argument("--keep-last", type=int, default=1, metavar="N", help="newest versions of each artifact always kept")
    sp.add_argument("--delete", action="store_true", help="remove what the dry run lists")


def _parse_pull(add) -> None:
    sp = add("pull", cmd_pull, "Write one split of a dataset version to a file (audited).",
             _examples("tunegate pull --config tunegate.yaml --split train --out train.parquet",
                       "tunegate pull --config tunegate.yaml --version 3f2a --split test --format jsonl --out test.jsonl"))
    _config_option(sp)
    sp.add_argument("--version", default="latest", metavar="VERSION",
                    help="dataset version or a unique prefix of it (default: the latest published)")
    sp.add_argument("--split", required=True, choices=["train", "val", "test"], help="which split to write")
    sp.add_argument("--format", default="parquet", choices=["parquet", "jsonl", "csv"], help="output format (default parquet)")
    sp.add_argument("--out", required=True, metavar="FILE", help="output file")
    sp.add_argument("--force", action="store_true", help="overwrite --out if it exists")


def _parse_lineage(add) -> None:
    sp = add("lineage", cmd_lineage, "Walk lineage from a model, job, dataset version or ticket id.",
             _examples("tunegate lineage ft:tg-small:tunegate:1a2b --config tunegate.yaml",
                       "tunegate lineage X-0042 --config tunegate.yaml   # a ticket id"))
    sp.add_argument("subject", help="a model id, fine-tuning job id, dataset version or ticket id")
    _config_option(sp)
    sp.add_argument("--limit", type=int, default=20, metavar="N", help="ticket ids to list per split (default 20)")


def _parse_serve_local(add) -> None:
    sp = add("serve-local", cmd_serve_local,
             "Run the embedded OpenAI-compatible provider alone (a stand-in with small lexical models, for trying "
             "the pipeline without an account; its figures say nothing about a real model).",
             _examples("tunegate serve-local --port 8765",
                       "OPENAI_BASE_URL=http://127.0.0.1:8765/v1 tunegate run --config tunegate.yaml"))
    _config_option(sp)
    sp.add_argument("--port", type=int, default=8765, help="loopback port (default 8765)")
    sp.add_argument("--state", metavar="DIR", help="state folder (default <warehouse>/provider)")


def _parse_report(add) -> None:
    sp = add("report", cmd_report, "Print the latest decision report (Markdown or JSON); the HTML is next to it.",
             _examples("tunegate report --config tunegate.yaml", "tunegate report --format json | jq .recommendation"))
    _config_option(sp)
    sp.add_argument("--format", default="md", choices=["md", "json"], help="md (default) or json")


def _parse_promote(add) -> None:
    sp = add("promote", cmd_promote, "Route traffic to MODEL if its evaluation beats the current route.",
             _examples("tunegate promote ft:tg-small:tunegate:1a2b --config tunegate.yaml",
                       "tunegate promote tg-large --force   # even if it does not beat the current route"))
    sp.add_argument("model", help="exact model id, as listed under 'Models' in the decision report")
    sp.add_argument("--force", action="store_true", help="promote even if it does not beat the current route")
    _config_option(sp)
    sp.add_argument("--route", default="default", help="route name (default 'default')")


def _parse_rollback(add) -> None:
    sp = add("rollback", cmd_rollback, "Route traffic back to the previous model.",
             _examples("tunegate rollback --config tunegate.yaml"))
    _config_option(sp)
    sp.add_argument("--route", default="default", help="route name (default 'default')")


def _parse_pii_eval(add) -> None:
    sp = add("pii-eval", cmd_pii_eval, "Precision, recall and F2 of masking on a Presidio-research or HWU64 file, "
             "and what masking costs the data.",
             _examples("tunegate pii-eval", "tunegate pii-eval --data hwu64 --json", "tunegate pii-eval --data my_gold.json"))
    sp.add_argument("--data", default=None, metavar="FILE",
                    help='Presidio-research or HWU64 JSON file, or "hwu64" for the bundled HWU64 copy '
                         "(default: the bundled synth_dataset_v2)")
    sp.add_argument("--json", action="store_true", help="print the figures as JSON")


def _parse_mask(add) -> None:
    sp = add("mask", cmd_mask, "Mask PII in a CSV, JSONL or Parquet file (into any of the three; rows the leak "
             "guard rejects go to <out>.rejected.csv with their reasons).",
             _examples("tunegate mask --in tickets.csv --out masked.parquet --text-col body",
                       "tunegate mask --in t.jsonl --out m.csv --text-col text --config tunegate.yaml --id-col id"))
    sp.add_argument("--in", dest="in_path", required=True, metavar="FILE", help="input file (.csv, .jsonl, .parquet)")
    sp.add_argument("--out", dest="out_path", required=True, metavar="FILE", help="output file (.csv, .jsonl, .parquet)")
    sp.add_argument("--text-col", required=True, metavar="COLUMN", help="the column holding the ticket text")
    sp.add_argument("--config", metavar="FILE", help="project config: masking settings and the taxonomy's label words")
    sp.add_argument("--id-col", metavar="COLUMN", help="column written to the rejects file to identify a row (never the text)")
    sp.add_argument("--force", action="store_true", help="overwrite an existing output file")


def _parse_evaluate(add) -> None:
    sp = add("evaluate", cmd_evaluate, "Score the latest evaluation's candidates on a fresh labelled file "
             "(same masking and prompts) next to their frozen-test accuracy.",
             _examples("tunegate evaluate --fresh fresh_tickets.csv", "tunegate evaluate --fresh f.parquet --sample 1000 --json"))
    sp.add_argument("--fresh", required=True, metavar="FILE", help="CSV, JSONL or Parquet file with text and label columns")
    _config_option(sp)
    sp.add_argument("--sample", type=int, default=None, metavar="N", help="score a stratified sample of N rows")
    sp.add_argument("--json", action="store_true", help="print the comparison as JSON")


def _parse_ui(add) -> None:
    sp = add("ui", cmd_ui, "Start the Dagster UI (dagster dev) on the tunegate code location.",
             _examples("tunegate ui --config tunegate.yaml", "tunegate ui --port 3001"))
    _config_option(sp)
    sp.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sp.add_argument("--port", type=int, default=3000, help="port (default 3000)")


PARSERS = [_parse_demo, _parse_init, _parse_run, _parse_pull, _parse_lineage, _parse_serve_local, _parse_report,
           _parse_promote, _parse_rollback, _parse_gc, _parse_evaluate, _parse_pii_eval, _parse_mask, _parse_ui]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tunegate", formatter_class=_FMT,
        description="Clean, versioned ticket data to a fine-tuned router, with an honest test.",
        epilog=_examples("tunegate demo", "tunegate init --from exports/tickets.csv",
                         "tunegate run --config tunegate.yaml",
                         "tunegate <command> --help   # options and examples of one command")
        + "\n\nenvironment:\n  TUNEGATE_LOG_LEVEL  Dagster log level of `run` and `demo` (DEBUG, INFO, WARNING; default INFO)"
          "\n  OPENAI_BASE_URL     an OpenAI-compatible endpoint (default: the embedded stand-in provider)")
    p.add_argument("--version", action="version", version=f"tunegate {_version()}")
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback of an error")
    sub = p.add_subparsers(dest="command", required=True, metavar="<command>")

    def add(name, fn, help_, epilog=None):
        sp = sub.add_parser(name, help=help_, description=help_, epilog=epilog, formatter_class=_FMT,
                            parents=[common])
        sp.set_defaults(fn=fn)
        return sp

    for parse in PARSERS:
        parse(add)
    return p


def _is_user_error(exc: BaseException) -> bool:
    """UserError and config errors, a route refusal, a missing file, a version the catalog does not hold."""
    from pydantic import ValidationError

    from pipeline.routes import RouteError

    return isinstance(exc, (UserError, RouteError, FileNotFoundError, ValidationError)) or type(exc) is LookupError


def _one_line(exc: BaseException) -> str:
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        from pipeline.config import describe_validation_error

        return describe_validation_error(exc, exc.title)
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split("\n")[:1])


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if args.debug:
            raise
        if _is_user_error(exc):
            print(f"tunegate: {_one_line(exc)}", file=sys.stderr)
            return 2
        print(f"tunegate: internal error: {type(exc).__name__}: {_one_line(exc)} "
              "(run again with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
