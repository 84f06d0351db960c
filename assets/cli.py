"""The `tunegate` command line: demo, init, run, pull, lineage, models, masking tools, the UI.

Commands that run the asset graph (`demo`, `run`, `ui`) go through Dagster (imported lazily from
`assets/`), so the command line and the UI run exactly the same graph and checks. Everything else
works on the catalog and the stored versions directly. Errors a user can fix are printed as one
clear line (exit code 2), never as a stack trace.
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


class UserError(Exception):
    """An error the user can fix; printed without a traceback."""


def _config(args):
    from pipeline.config import load_config

    return load_config(getattr(args, "config", None))


# -- data ------------------------------------------------------------------------------------------
def cmd_demo(args) -> int:
    from pipeline.config import load_config
    from pipeline.data.sample.generator import generate_sample

    overrides = {"warehouse": args.warehouse} if args.warehouse else {}
    cfg = load_config(None, **overrides)
    t0 = time.time()
    landing = cfg.landing_path
    manifest = cfg.warehouse_path / "sample_manifest.json"
    m = generate_sample(landing, manifest, n_tickets=args.n)
    print(f"bundled sample: {m['total_rows']} rows in {len(m['files'])} landing files -> {landing}")
    if args.warehouse:
        os.environ["TUNEGATE_WAREHOUSE"] = str(cfg.warehouse_path)
    job = "refresh_dataset" if args.data_only else "full_pipeline"
    ok = _run_graph(cfg, None, job)
    _print_summary(cfg)
    print(f"wall time: {time.time() - t0:.1f} s")
    return 0 if ok else 1


def cmd_run(args) -> int:
    if args.engine:  # read by load_config in every step, in this process and in Dagster's
        os.environ["TUNEGATE_ENGINE"] = args.engine
    if args.ray_address:
        os.environ["TUNEGATE_RAY_ADDRESS"] = args.ray_address
    cfg = _config(args)
    job = "refresh_dataset" if args.data_only else "full_pipeline"
    ok = _run_graph(cfg, args.config, job)
    _print_summary(cfg)
    return 0 if ok else 1


def _run_graph(cfg, config_path, job: str) -> bool:
    from assets.runner import run_job

    res = run_job(cfg, config_path, job=job, raise_on_error=False)
    for e in res.all_events:
        if e.event_type_value == "STEP_FAILURE":
            err = e.event_specific_data.error
            msg = "failed"
            if err is not None:
                root = err.cause or err
                msg = root.message.strip().splitlines()[-1] if root.message.strip() else msg
            print(f"FAILED {e.step_key}: {msg}", file=sys.stderr)
        elif e.event_type_value == "ASSET_CHECK_EVALUATION":
            ev = e.asset_check_evaluation_data
            if not ev.passed:
                print(f"check {ev.asset_key.to_user_string()}.{ev.check_name} did not pass"
                      f"{' (blocking)' if ev.blocking else ''}", file=sys.stderr)
    return res.success


def _print_summary(cfg) -> None:
    from pipeline.catalog import Catalog

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
        print(f"decision report: {report.parent / 'report.html'} (also report.md, report.json)")
        print(f"recommendation: {rec.get('headline', rec.get('action'))}")
        cur = r.get("currency", "")
        print(f"  {'candidate':24s} {'accuracy':>8s} {'macro-F1':>8s} {'valid':>6s} {'/1k ans':>8s} "
              f"{'fixes/mo':>9s} {'payback':>9s}")
        for c in r.get("candidates", []):
            e = c.get("economics", {})
            pb = e.get("payback_months")
            pb = "-" if pb is None else (pb if isinstance(pb, str) else f"{pb:.2f} mo")
            print(f"  {c['name']:24s} {c['accuracy']:8.1%} {c['macro_f1']:8.1%} {c['format_validity']:6.1%} "
                  f"{c['price_per_1000']:8.2f} {e.get('corrections_per_month', 0):9,.0f} {pb:>9s}")
        print(f"  (prices in {cur} per 1,000 answers; fixes/mo = answers an operator must correct per month)")


def cmd_init(args) -> int:
    from pipeline.starter import STARTER_CONFIG

    out = Path(args.out)
    if out.exists() and not args.force:
        raise UserError(f"{out} exists; pass --force to overwrite")
    out.write_text(STARTER_CONFIG, encoding="utf-8")
    print(f"wrote {out}: edit landing, columns and taxonomy, then `tunegate run --config {out}`")
    return 0


def cmd_pull(args) -> int:
    from pipeline.pull import pull_split, write_table

    cfg = _config(args)
    df, version = pull_split(cfg, args.version, args.split, with_version=True)
    out = write_table(df, args.out, args.format)
    print(f"{len(df)} rows of {args.split} from dataset version {version} -> {out}")
    return 0


def cmd_lineage(args) -> int:
    from pipeline.lineage import lineage

    cfg = _config(args)
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
    print(promote(cfg, args.model, force=args.force, route=args.route))
    return 0


def cmd_rollback(args) -> int:
    from pipeline.routes import rollback

    cfg = _config(args)
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

    return mask_command(args.in_path, args.out_path, args.text_col)


def cmd_ui(args) -> int:
    """Start `dagster dev` on the code location, with the project's instance settings."""
    from assets.runner import PROJECT_ROOT, dagster_home

    cfg = _config(args)
    env = dict(os.environ, DAGSTER_HOME=str(dagster_home(cfg)))
    if args.config:
        env["TUNEGATE_CONFIG"] = str(Path(args.config).resolve())
    os.chdir(PROJECT_ROOT)
    # dagster dev started from a non-interactive shell ignores SIGINT/SIGTERM; restore the default
    # handler before exec so that `kill -TERM` stops the whole tree.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    exe = Path(sys.executable).with_name("dagster")
    argv = [str(exe), "dev", "-m", "assets.definitions", "-h", args.host, "-p", str(args.port)]
    os.execve(str(exe), argv, env)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tunegate", description="Clean, versioned ticket data to a fine-tuned router, with an honest test.")
    sub = p.add_subparsers(dest="command", required=True)

    def add(name, fn, help_):
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.set_defaults(fn=fn)
        return sp

    sp = add("demo", cmd_demo, "Generate the bundled sample into warehouse/landing and run the whole chain on it.")
    sp.add_argument("--warehouse", help="warehouse folder (default ./warehouse)")
    sp.add_argument("--n", type=int, default=None, help="tickets drawn from Banking77 (default: all)")
    sp.add_argument("--data-only", action="store_true", help="stop after dataset_splits")

    sp = add("init", cmd_init, "Write a commented starter config.")
    sp.add_argument("--out", default="tunegate.yaml")
    sp.add_argument("--force", action="store_true")

    sp = add("run", cmd_run, "Run the chain on the config's landing folder, outside the UI.")
    sp.add_argument("--config", required=True)
    sp.add_argument("--data-only", action="store_true", help="stop after dataset_splits")
    sp.add_argument("--engine", choices=["local", "ray"], help="where masking, the leak guard and dedup run "
                    "(default: the config's engine.kind, local)")
    sp.add_argument("--ray-address", help="Ray cluster address (default: start a local Ray instance)")

    sp = add("pull", cmd_pull, "Write one split of a dataset version to a file (audited).")
    sp.add_argument("--config")
    sp.add_argument("--version", default="latest")
    sp.add_argument("--split", required=True, choices=["train", "val", "test"])
    sp.add_argument("--format", default="parquet", choices=["parquet", "jsonl", "csv"])
    sp.add_argument("--out", required=True)

    sp = add("lineage", cmd_lineage, "Walk lineage from a model, job, dataset version or ticket id.")
    sp.add_argument("subject")
    sp.add_argument("--config")
    sp.add_argument("--limit", type=int, default=20, help="ticket ids to list per split")

    sp = add("serve-local", cmd_serve_local, "Run the embedded OpenAI-compatible provider alone.")
    sp.add_argument("--config")
    sp.add_argument("--port", type=int, default=8765)
    sp.add_argument("--state", help="state folder (default <warehouse>/provider)")

    sp = add("report", cmd_report, "Print the latest decision report.")
    sp.add_argument("--config")
    sp.add_argument("--format", default="md", choices=["md", "json"])

    for name, fn, help_ in (("promote", cmd_promote, "Route traffic to MODEL if its evaluation beats the current route."),
                            ("rollback", cmd_rollback, "Route traffic back to the previous model.")):
        sp = add(name, fn, help_)
        if name == "promote":
            sp.add_argument("model")
            sp.add_argument("--force", action="store_true", help="promote even if it does not beat the current route")
        sp.add_argument("--config")
        sp.add_argument("--route", default="default")

    sp = add("gc", cmd_gc, "Remove old versions no route, pull or published test needs (a dry run unless --delete).")
    sp.add_argument("--config")
    sp.add_argument("--keep-last", type=int, default=1, help="newest versions of each artifact always kept")
    sp.add_argument("--delete", action="store_true", help="remove what the dry run lists")

    sp = add("pii-eval", cmd_pii_eval, "Precision, recall and F2 of masking on a Presidio-research-format file.")
    sp.add_argument("--data", default=None, help="JSON file (default: the bundled synth_dataset_v2)")
    sp.add_argument("--json", action="store_true")

    sp = add("mask", cmd_mask, "Mask PII in a CSV, JSONL or Parquet file.")
    sp.add_argument("--in", dest="in_path", required=True)
    sp.add_argument("--out", dest="out_path", required=True)
    sp.add_argument("--text-col", required=True)

    sp = add("ui", cmd_ui, "Start the Dagster UI (dagster dev) on the tunegate code location.")
    sp.add_argument("--config")
    sp.add_argument("--host", default="127.0.0.1")
    sp.add_argument("--port", type=int, default=3000)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from pipeline.config import ConfigError

    try:
        return args.fn(args)
    except (UserError, ConfigError, LookupError, FileNotFoundError) as exc:
        print(f"tunegate: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
