"""Scale benchmark of the data half: per-stage CPU seconds and peak RSS at several history sizes, the fitted
growth exponent per stage, and a full rebuild against a 1% nightly refresh of the same data.

For each size N a history of N distinct tickets is generated (`pipeline.data.sample.scale`, one
Parquet landing file per day) and the data-half steps run one per child process, so each stage's
CPU time (all threads, measured around the step call) and peak RSS (the child's maximum resident
set, imports included) are its own:

    raw_tickets -> masked_tickets -> deduplicated_tickets -> labelled_tickets -> dataset_splits

Refresh: a second warehouse is built from the first 99% of the history (by created_at), then the last
1% is dropped into its landing folder and the steps run again; the refresh's per-stage CPU is printed
next to the full build of all N tickets (the first warehouse), with the warehouse sizes and the share
of new tickets whose split is the one the full build gives them (and how many the refresh held out
under the frozen-test rule, which a full rebuild cannot do). Dedup is incremental (the persisted
index), masking takes unseen texts only from the mask cache, the leak guard reads only masked texts it
has not read, the label checks score only new rows, the stored templates spare the normalisation of
seen texts, and the cross-split check looks only at pairs with a new row. Still over every ticket:
the near-identical grouping inside masking and the split stage's grouping (MinHash and verification
over all templates), which the table shows.

`--skip-masking` replaces masking by a copy of the raw text (a benchmark-only shortcut, said so in
the output): masking is the costliest stage and does not change the other stages' growth.

    nice .venv/bin/python benchmarks/bench_scale.py --sizes 50000 200000 [--million] [--skip-masking]
        [--refresh-share 0.01] [--no-refresh] [--work /tmp/bench_scale] [--json out.json]
    nice .venv/bin/python benchmarks/bench_scale.py --dedup-only --sizes 50000 200000 [--million]
    nice .venv/bin/python benchmarks/bench_scale.py --ray-throughput 600

`--dedup-only` measures dedup alone in child processes: `find_clusters` in memory on all N, the
persisted index built on 99%, then extended by the last 1%. `--ray-throughput N` masks N generated
tickets with the local engine and with Ray at 1 and 2 masking actors, and checks the outputs are equal.

Measured figures only: nothing here is extrapolated; the exponent is the slope of log CPU against
log N between the measured sizes.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

STAGES = ["raw_tickets", "masked_tickets", "deduplicated_tickets", "labelled_tickets", "dataset_splits"]
ROOT = Path(__file__).resolve().parents[1]


# -- child: one stage ------------------------------------------------------------------------------
def run_stage(warehouse: str, stage: str, parents: dict, skip_masking: bool) -> dict:
    os.environ["TUNEGATE_WAREHOUSE"] = warehouse
    from pipeline.config import load_config
    from pipeline.data import steps

    cfg = load_config(None)
    t0, w0 = time.process_time(), time.perf_counter()
    if stage == "raw_tickets":
        out = steps.step_raw_tickets(cfg)
    elif stage == "masked_tickets":
        if skip_masking:  # benchmark-only: the raw text stands in for the masked text
            raw = steps._read(cfg, "raw", "raw_tickets", parents["raw_tickets"], "tickets")
            raw = raw.assign(pii_types="")
            out = steps._finish(cfg, "masked_tickets", "datasets", {"tickets": raw}, len(raw),
                                [("raw_tickets", parents["raw_tickets"])], None, {"skipped_masking": True})
        else:
            out = steps.step_masked_tickets(cfg, parents["raw_tickets"])
    elif stage == "deduplicated_tickets":
        out = steps.step_deduplicated_tickets(cfg, parents["masked_tickets"])
    elif stage == "labelled_tickets":
        out = steps.step_labelled_tickets(cfg, parents["deduplicated_tickets"])
    else:
        out = steps.step_dataset_splits(cfg, parents["labelled_tickets"], parents["raw_tickets"])
    cpu, wall = time.process_time() - t0, time.perf_counter() - w0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    idx = out.meta.get("index", {})
    return {"stage": stage, "version": out.version, "rows": out.rows, "cpu_s": round(cpu, 2),
            "wall_s": round(wall, 2), "peak_rss_mb": round(rss, 1),
            "templates_new": idx.get("templates_new"), "leaks": out.meta.get("cross_split_near_duplicates")}


def run_dedup(n: int, seed: int, mode: str, warehouse: str, share: float) -> dict:
    """One dedup measurement in this (child) process: 'full' = find_clusters in memory; 'history' and
    'refresh' = the persisted index built on the first (1 - share) of the history, then extended."""
    from pipeline.config import DedupSpec
    from pipeline.data.dedup import find_clusters
    from pipeline.data.dedup_index import find_clusters_indexed
    from pipeline.data.sample.scale import generate_history

    hist = generate_history(n, seed=seed).rename(columns={"customer_text": "text"})[["ticket_id", "text", "created_at"]]
    if mode == "history":
        hist = hist.iloc[: int(round(n * (1 - share)))]
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0, w0 = time.process_time(), time.perf_counter()
    if mode == "full":
        _, st = find_clusters(hist, DedupSpec())
    else:
        _, st = find_clusters_indexed(hist, DedupSpec(), Path(warehouse))
    cpu, wall = time.process_time() - t0, time.perf_counter() - w0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"mode": mode, "n": len(hist), "cpu_s": round(cpu, 2), "wall_s": round(wall, 2),
            "peak_rss_mb": round(rss, 1), "rss_before_mb": round(base, 1), "clusters": st["n_clusters"],
            "templates_new": st.get("index", {}).get("templates_new")}


def dedup_bench(sizes: list[int], seed: int, work: Path, share: float) -> dict:
    out = {}
    print("\n== dedup alone (raw generated text stands in for masked text) ==")
    for n in sizes:
        wh = work / f"dedup_{n}"
        shutil.rmtree(wh, ignore_errors=True)
        rows = {}
        for mode in ("full", "history", "refresh"):
            cmd = [sys.executable, __file__, "_dedup", "--n", str(n), "--seed", str(seed), "--mode", mode,
                   "--warehouse", str(wh), "--share", str(share)]
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if proc.returncode != 0 or line is None:
                sys.stderr.write(proc.stderr[-3000:])
                raise SystemExit(f"dedup {mode} at {n} failed")
            rows[mode] = json.loads(line[7:])
            r = rows[mode]
            print(f"{n:>9,} {mode:<8} tickets {r['n']:>9,}  cpu {r['cpu_s']:>8.1f}s  wall {r['wall_s']:>8.1f}s  "
                  f"peak RSS {r['peak_rss_mb']:>7.0f} MB (before {r['rss_before_mb']:.0f} MB)  "
                  f"new templates {r['templates_new']}", flush=True)
        out[n] = rows
    if len(sizes) > 1:
        cpu = [out[n]["full"]["cpu_s"] for n in sizes]
        print(f"fitted exponent of find_clusters CPU: {np.polyfit(np.log(sizes), np.log(cpu), 1)[0]:.2f}")
    return out


def ray_throughput(n: int, seed: int) -> dict:
    """Masking texts/s: the local engine, then Ray with 1 and 2 masking actors (a local Ray instance)."""
    import ray

    from pipeline.config import load_config
    from pipeline.data.sample.scale import generate_history
    from pipeline.engine.local import LocalEngine
    from pipeline.engine.ray_engine import RayEngine

    texts = generate_history(n, seed=seed)["customer_text"].tolist()
    res = {}
    t0 = time.perf_counter()
    from pipeline.pii.masker import Masker

    cfg = load_config(None)
    masker = Masker(cfg.masking, taxonomy=cfg.taxonomy, vocabulary=texts)
    want = [(r.text, r.counts) for r in LocalEngine(cfg).mask(masker, texts)]
    res["local"] = n / (time.perf_counter() - t0)
    for workers in (1, 2):
        eng = RayEngine(load_config(None, engine={"kind": "ray", "ray_workers": workers}), num_cpus=2)
        eng.mask(masker, texts[:50])  # actors up, models loaded
        t0 = time.perf_counter()
        got = [(r.text, r.counts) for r in eng.mask(masker, texts)]
        res[f"ray_{workers}"] = n / (time.perf_counter() - t0)
        assert got == want, "the Ray engine masked differently"
        eng.close()
        assert not ray.is_initialized()
    print(f"\n== masking throughput on {n} generated tickets (texts/s, wall clock; model load excluded for Ray) ==")
    for k, v in res.items():
        print(f"{k:<8} {v:8.1f}")
    return res


def _child(args) -> None:
    print("RESULT " + json.dumps(run_stage(args.warehouse, args.stage, json.loads(args.parents), args.skip_masking)))


# -- parent ----------------------------------------------------------------------------------------
def pipeline(warehouse: Path, skip_masking: bool) -> list[dict]:
    parents: dict = {}
    rows = []
    for stage in STAGES:
        cmd = [sys.executable, __file__, "_stage", "--warehouse", str(warehouse), "--stage", stage,
               "--parents", json.dumps(parents)] + (["--skip-masking"] if skip_masking else [])
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if proc.returncode != 0 or line is None:
            sys.stderr.write(proc.stderr[-3000:])
            raise SystemExit(f"stage {stage} failed in {warehouse}")
        res = json.loads(line[7:])
        parents[stage] = res["version"]
        rows.append(res)
        print(f"    {stage:<22} cpu {res['cpu_s']:>8.1f}s  wall {res['wall_s']:>8.1f}s  "
              f"peak RSS {res['peak_rss_mb']:>7.0f} MB  rows {res['rows']}", flush=True)
    return rows


def dir_mb(p: Path) -> float:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) / 2**20


def split_agreement(full_wh: Path, refresh_wh: Path, new_ids: set[str]) -> dict:
    """New tickets that both warehouses' latest datasets split: how many got the full build's split, and
    how many the refresh held out under the frozen-test rule (near a published test group, or bridging
    two splits), which a full rebuild, having no published test set, cannot do."""
    import pandas as pd

    from pipeline.catalog import Catalog
    from pipeline.config import load_config
    from pipeline.data.steps import read_split

    def splits(wh: Path) -> pd.Series:
        os.environ["TUNEGATE_WAREHOUSE"] = str(wh)
        cfg = load_config(None)
        v = Catalog(cfg.catalog_path).latest_artifact("dataset_splits")["version"]
        parts = []
        for s in ("train", "val", "test", "held_out"):
            try:
                parts.append(read_split(cfg, v, s)[["ticket_id"]].assign(split=s))
            except FileNotFoundError:
                continue
        return pd.concat(parts).set_index("ticket_id")["split"]

    a, b = splits(full_wh), splits(refresh_wh)
    reason = Catalog(refresh_wh / "catalog.duckdb").split_assignments().set_index("ticket_id")["reason"]
    both = sorted(set(a.index) & set(b.index) & new_ids)
    if not both:
        return {"n": 0, "same": 0, "frozen_holds": 0, "same_share": float("nan"), "same_share_assigned": float("nan")}
    same = a.loc[both].to_numpy() == b.loc[both].to_numpy()
    held = reason.reindex(both).isin(["near_frozen_test", "bridges_splits"]).to_numpy()
    assigned = int((~held).sum())
    return {"n": len(both), "same": int(same.sum()), "frozen_holds": int(held.sum()),
            "same_share": float(same.mean()),
            "same_share_assigned": float(same[~held].mean()) if assigned else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd")
    st = sub.add_parser("_stage")
    st.add_argument("--warehouse", required=True)
    st.add_argument("--stage", required=True, choices=STAGES)
    st.add_argument("--parents", default="{}")
    st.add_argument("--skip-masking", action="store_true")
    dd = sub.add_parser("_dedup")
    dd.add_argument("--n", type=int, required=True)
    dd.add_argument("--seed", type=int, default=7)
    dd.add_argument("--mode", choices=["full", "history", "refresh"], required=True)
    dd.add_argument("--warehouse", required=True)
    dd.add_argument("--share", type=float, default=0.01)
    ap.add_argument("--sizes", type=int, nargs="+", default=[50_000, 200_000])
    ap.add_argument("--dedup-only", action="store_true", help="only dedup: in-memory full build vs index refresh")
    ap.add_argument("--ray-throughput", type=int, metavar="N", help="only masking throughput: local vs Ray 1/2 actors")
    ap.add_argument("--million", action="store_true", help="also run 1,000,000 tickets")
    ap.add_argument("--refresh-share", type=float, default=0.01)
    ap.add_argument("--no-refresh", action="store_true")
    ap.add_argument("--skip-masking", action="store_true")
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_scale"))
    ap.add_argument("--json", type=Path)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    if args.cmd == "_stage":
        return _child(args)
    if args.cmd == "_dedup":
        print("RESULT " + json.dumps(run_dedup(args.n, args.seed, args.mode, args.warehouse, args.share)))
        return None
    if args.ray_throughput:
        res = ray_throughput(args.ray_throughput, args.seed)
        if args.json:
            args.json.write_text(json.dumps(res, indent=1))
        return None
    if args.dedup_only:
        sizes = sorted(set(args.sizes + ([1_000_000] if args.million else [])))
        res = dedup_bench(sizes, args.seed, args.work, args.refresh_share)
        if args.json:
            args.json.write_text(json.dumps(res, indent=1))
        return None

    from pipeline.data.sample.scale import generate_history, write_landing

    sizes = sorted(set(args.sizes + ([1_000_000] if args.million else [])))
    report: dict = {"sizes": sizes, "skip_masking": args.skip_masking, "full": {}, "refresh": {}}
    if args.skip_masking:
        print("NOTE: --skip-masking: masked_tickets is a copy of the raw text (benchmark shortcut)")
    for n in sizes:
        hist = generate_history(n, seed=args.seed)
        full_wh = args.work / f"full_{n}"
        shutil.rmtree(full_wh, ignore_errors=True)
        write_landing(hist, full_wh / "landing")
        print(f"\n== {n} tickets: full build ==", flush=True)
        report["full"][n] = {"stages": pipeline(full_wh, args.skip_masking), "warehouse_mb": round(dir_mb(full_wh), 1)}
        if args.no_refresh:
            continue
        cut = int(round(n * (1 - args.refresh_share)))
        ref_wh = args.work / f"refresh_{n}"
        shutil.rmtree(ref_wh, ignore_errors=True)
        old, new = hist.iloc[:cut], hist.iloc[cut:]
        write_landing(old, ref_wh / "landing")
        print(f"== {n} tickets: history of {len(old)} built first ==", flush=True)
        history = pipeline(ref_wh, args.skip_masking)
        before_mb = dir_mb(ref_wh)
        # the new day's tickets arrive in their own file (a day already in the history gets a second file)
        write_landing(new, ref_wh / "landing_new")
        for f in sorted((ref_wh / "landing_new").iterdir()):
            target = ref_wh / "landing" / f.name
            f.rename(target if not target.exists() else target.with_name(target.stem + "_late.parquet"))
        print(f"== {n} tickets: refresh with {len(new)} new tickets ({args.refresh_share:.1%}) ==", flush=True)
        refresh = pipeline(ref_wh, args.skip_masking)
        agree = split_agreement(full_wh, ref_wh, set(new["ticket_id"]))
        report["refresh"][n] = {"history": history, "stages": refresh, "new_tickets": len(new),
                                "warehouse_mb_before": round(before_mb, 1), "warehouse_mb_after": round(dir_mb(ref_wh), 1),
                                "split_agreement": agree}

    print("\n== per-stage CPU seconds / peak RSS MB (full build) ==")
    head = "stage".ljust(22) + "".join(f"{n:>22,}" for n in sizes) + "   exponent"
    print(head)
    for i, stage in enumerate(STAGES):
        cpu = [report["full"][n]["stages"][i]["cpu_s"] for n in sizes]
        rss = [report["full"][n]["stages"][i]["peak_rss_mb"] for n in sizes]
        exp = (np.polyfit(np.log(sizes), np.log(np.maximum(cpu, 1e-3)), 1)[0] if len(sizes) > 1 else float("nan"))
        report.setdefault("exponent", {})[stage] = round(float(exp), 2)
        print(stage.ljust(22) + "".join(f"{c:>10.1f}s {r:>8.0f}MB" for c, r in zip(cpu, rss)) + f"   {exp:>8.2f}")
    tot = [sum(s["cpu_s"] for s in report["full"][n]["stages"]) for n in sizes]
    print("total".ljust(22) + "".join(f"{c:>10.1f}s {'':>10}" for c in tot))

    if report["refresh"]:
        print(f"\n== full rebuild vs {args.refresh_share:.0%} refresh (CPU s, wall s) ==")
        for n, r in report["refresh"].items():
            print(f"-- {n} tickets, {r['new_tickets']} new --")
            for f, g in zip(report["full"][n]["stages"], r["stages"]):
                ratio = g["cpu_s"] / f["cpu_s"] if f["cpu_s"] else float("nan")
                print(f"{f['stage']:<22} full {f['cpu_s']:>8.1f}s {f['wall_s']:>8.1f}s   refresh {g['cpu_s']:>8.1f}s "
                      f"{g['wall_s']:>8.1f}s   ratio {ratio:5.2f}")
            fc = sum(s["cpu_s"] for s in report["full"][n]["stages"])
            rc = sum(s["cpu_s"] for s in r["stages"])
            fw = sum(s["wall_s"] for s in report["full"][n]["stages"])
            rw = sum(s["wall_s"] for s in r["stages"])
            print(f"{'total':<22} full {fc:>8.1f}s {fw:>8.1f}s   refresh {rc:>8.1f}s {rw:>8.1f}s   ratio {rc / fc:5.2f}")
            print(f"warehouse {r['warehouse_mb_before']} MB -> {r['warehouse_mb_after']} MB after the refresh "
                  f"(full build of the same data: {report['full'][n]['warehouse_mb']} MB)")
            a = r["split_agreement"]
            print(f"new tickets split by both builds: {a['n']}; with the full build's split: {a['same']} "
                  f"({a['same_share']:.1%}); held out by the frozen-test rule in the refresh: {a['frozen_holds']}; "
                  f"the others with the full build's split: {a['same_share_assigned']:.1%}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
