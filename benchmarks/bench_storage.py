"""Warehouse size over nightly refreshes: versions as chunk manifests and lineage as intervals, against
full copies and one lineage row per ticket per version.

A generated history (`pipeline.data.sample.scale`, Banking77 requests) is built once, then `--nights`
refreshes each drop `--share` of it as a new landing file and run the data half again. After every
night the warehouse's bytes on disk (hard-linked chunks counted once; the landing folder left out),
the catalog file and the stored per-ticket lineage rows are measured. With `--baseline-src DIR` the
same nights also run on the code in DIR (an export of an earlier revision, e.g.
`git archive <rev> | tar -x -C DIR`), and both are printed side by side. No version is ever removed
(`tunegate gc` is not run), so the figures are what the refreshes themselves write.

Masking is replaced by a copy of the raw text (`--skip-masking` of bench_scale.py, said so in the
output): it writes the same amount of data and does not change what is stored.

    nice .venv/bin/python benchmarks/bench_storage.py --n 20000 --nights 10 --share 0.01 \
        [--baseline-src /tmp/tunegate_base] [--work /tmp/bench_storage] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _child(src: str, warehouse: str) -> None:
    """One data-half run, on the code in `src`, masking skipped."""
    sys.path.insert(0, src)
    os.environ["TUNEGATE_WAREHOUSE"] = warehouse
    from pipeline.config import load_config
    from pipeline.data import steps

    cfg = load_config(None)
    raw = steps.step_raw_tickets(cfg)
    tickets = steps._read(cfg, "raw", "raw_tickets", raw.version, "tickets").assign(pii_types="")
    masked = steps._finish(cfg, "masked_tickets", "datasets", {"tickets": tickets}, len(tickets),
                           [("raw_tickets", raw.version)], None, {"skipped_masking": True})
    dedup = steps.step_deduplicated_tickets(cfg, masked.version)
    lab = steps.step_labelled_tickets(cfg, dedup.version)
    steps.step_dataset_splits(cfg, lab.version, raw.version)


def _disk_bytes(path: Path, skip: str = "landing") -> int:
    seen, total = set(), 0
    for f in path.rglob("*"):
        if f.is_file() and skip not in f.relative_to(path).parts[:1]:
            st = f.stat()
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def _measure(wh: Path) -> dict:
    import duckdb

    con = duckdb.connect(str(wh / "catalog.duckdb"), read_only=True)
    tables = {r[0]: r[1] for r in con.execute("SELECT table_name, table_type FROM information_schema.tables").fetchall()}
    stored = "ticket_lineage_intervals" if "ticket_lineage_intervals" in tables else "ticket_lineage"
    lineage_rows = con.execute(f"SELECT count(*) FROM {stored}").fetchall()[0][0]
    versions = con.execute("SELECT count(*) FROM dataset_versions").fetchall()[0][0]
    con.close()
    return {"warehouse_mb": round(_disk_bytes(wh) / 2**20, 2),
            "catalog_mb": round((wh / "catalog.duckdb").stat().st_size / 2**20, 2),
            "lineage_rows_stored": int(lineage_rows), "dataset_versions": int(versions)}


def run(label: str, src: Path, n: int, nights: int, share: float, seed: int, work: Path) -> list[dict]:
    from pipeline.data.sample.scale import generate_history, write_landing

    hist = generate_history(n, seed=seed)
    step = int(round(n * share))
    cut = n - nights * step
    wh = work / label
    shutil.rmtree(wh, ignore_errors=True)
    write_landing(hist.iloc[:cut], wh / "landing")
    rows = []
    for night in range(nights + 1):
        if night:
            part = hist.iloc[cut + (night - 1) * step: cut + night * step]
            part.to_parquet(wh / "landing" / f"night_{night:02d}.parquet", index=False)
        proc = subprocess.run([sys.executable, __file__, "_night", "--src", str(src), "--warehouse", str(wh)],
                              capture_output=True, text=True, cwd=src)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr[-3000:])
            raise SystemExit(f"{label}: night {night} failed")
        m = {"night": night, **_measure(wh)}
        rows.append(m)
        print(f"{label:<7} night {night:>2}  warehouse {m['warehouse_mb']:>8.2f} MB  catalog {m['catalog_mb']:>6.2f} MB  "
              f"lineage rows stored {m['lineage_rows_stored']:>9,}", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd")
    ch = sub.add_parser("_night")
    ch.add_argument("--src", required=True)
    ch.add_argument("--warehouse", required=True)
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--nights", type=int, default=10)
    ap.add_argument("--share", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--baseline-src", type=Path)
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_storage"))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.cmd == "_night":
        return _child(args.src, args.warehouse)
    print(f"NOTE: masking skipped (raw text copied); history {args.n} tickets, {args.nights} nights of "
          f"{args.share:.1%} each")
    res = {}
    if args.baseline_src:
        res["before"] = run("before", args.baseline_src.resolve(), args.n, args.nights, args.share, args.seed, args.work)
    res["after"] = run("after", ROOT, args.n, args.nights, args.share, args.seed, args.work)
    print("\nnight " + "".join(f"{k + ' warehouse MB':>22}{k + ' lineage rows':>22}" for k in res))
    for i in range(args.nights + 1):
        print(f"{i:>5} " + "".join(f"{res[k][i]['warehouse_mb']:>22.2f}{res[k][i]['lineage_rows_stored']:>22,}" for k in res))
    for k, rows in res.items():
        grow = rows[-1]["warehouse_mb"] - rows[0]["warehouse_mb"]
        print(f"{k}: the {args.nights} refreshes added {grow:.2f} MB to a {rows[0]['warehouse_mb']:.2f} MB warehouse "
              f"({grow / args.nights:.2f} MB a night); catalog {rows[0]['catalog_mb']:.2f} -> {rows[-1]['catalog_mb']:.2f} MB")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
