"""Render the decision report in headless Chromium at desktop and phone widths and check the layout.

For each width the page is loaded with every <details> opened, then checked: the page must not
scroll sideways (document scrollWidth <= viewport width), no element outside a `.scroll` table
wrapper may reach past the right edge, and every inline chart must decode. Uses Debian's `chromium`
(`apt-get install -y chromium`) through its command line: no browser download.

    python benchmarks/check_report_layout.py                     # builds a 77-label report from Banking77
    python benchmarks/check_report_layout.py --html warehouse/reports/latest/report.html --screenshots /tmp/shots

Exit code 0 when every width passes; the JSON result per width is printed.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

WIDTHS = {"desktop": 1280, "phone": 390}
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")

PROBE = """
<script>
window.addEventListener('load', () => {
  document.querySelectorAll('details').forEach(d => d.open = true);
  const vw = document.documentElement.clientWidth;
  const bad = [];
  for (const el of document.body.querySelectorAll('*')) {
    if (el.parentElement && el.parentElement.closest('.scroll')) continue;  // scrolls inside its wrapper
    const r = el.getBoundingClientRect();
    if (r.width > 0 && (r.right > vw + 1 || r.left < -1)) {
      bad.push(el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
               (el.className && typeof el.className === 'string' ? '.' + el.className.split(' ').join('.') : '') +
               ' right=' + Math.round(r.right));
    }
  }
  const imgs = [...document.images];
  const out = {viewport: vw, scroll_width: document.documentElement.scrollWidth, overflowing: bad.slice(0, 15),
               n_overflowing: bad.length, images: imgs.length, images_broken: imgs.filter(i => !i.naturalWidth).length};
  if (window.parent !== window) { window.parent.postMessage(JSON.stringify(out), '*'); return; }
  const pre = document.createElement('pre');
  pre.id = 'tg-layout';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"""
# Headless Chromium keeps windows at least 500 px wide: narrower widths are checked in an iframe
# of exactly that width, which reports back to its host page.
HOST = """<!doctype html><html><body style="margin:0">
<iframe src="{src}" style="width:{width}px;height:{height}px;border:0;display:block"></iframe>
<script>window.addEventListener('message', e => {{
  const pre = document.createElement('pre'); pre.id = 'tg-layout'; pre.textContent = e.data;
  document.body.appendChild(pre); }});</script></body></html>
"""
MIN_WINDOW = 500


def chromium_available() -> bool:
    return Path(CHROMIUM).exists() or shutil.which("chromium") is not None


def _chromium(args: list[str], timeout: float = 90) -> str:
    exe = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    with tempfile.TemporaryDirectory() as profile:
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
               f"--user-data-dir={profile}", "--no-first-run", "--disable-extensions", *args]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return res.stdout


def check_html(html_path: Path, widths: dict[str, int] = WIDTHS, screenshots: Path | None = None) -> dict:
    """Layout figures per width; `ok` is True when nothing overflows and every chart decodes."""
    html = Path(html_path).read_text(encoding="utf-8")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe.html"
        probe.write_text(html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
        for name, width in widths.items():
            page = probe
            if width < MIN_WINDOW:
                page = Path(tmp) / f"host_{width}.html"
                page.write_text(HOST.format(src=probe.name, width=width, height=2400), encoding="utf-8")
            window = max(width, MIN_WINDOW) + (40 if width < MIN_WINDOW else 0)
            dom = _chromium([f"--window-size={window},1200", "--virtual-time-budget=5000", "--dump-dom", page.as_uri()])
            m = re.search(r'<pre id="tg-layout">(.*?)</pre>', dom, re.S)
            if not m:
                results[name] = {"ok": False, "error": "the page did not finish loading in Chromium"}
                continue
            r = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))
            r["ok"] = r["scroll_width"] <= r["viewport"] and r["n_overflowing"] == 0 and r["images_broken"] == 0
            results[name] = r
            if screenshots is not None:
                screenshots.mkdir(parents=True, exist_ok=True)
                shot = Path(tmp) / f"shot_{width}.html"
                shot.write_text(HOST.format(src=probe.name, width=width, height=6000), encoding="utf-8")
                _chromium([f"--window-size={window},6000", f"--screenshot={screenshots / f'report_{name}.png'}",
                           shot.as_uri()])
    return results


def build_sample_report(out_dir: Path) -> Path:
    """A report on Banking77's 77 labels with four candidates of known error rates (the test suite's recipe)."""
    import numpy as np
    import pandas as pd

    from pipeline.config import DATA_DIR, load_config
    from pipeline.model.evaluation import Candidate, score_candidates
    from pipeline.model.report import build_report

    labels = pd.read_csv(DATA_DIR / "banking77" / "test.csv").groupby("category", sort=False).head(10)["category"].tolist()
    crit = ["lost_or_stolen_card", "compromised_card", "card_swallowed", "cash_withdrawal_not_recognised",
            "transaction_charged_twice"]
    cfg = load_config(None, evaluation={"bootstrap": 300},
                      taxonomy={"labels": {lab: ({"critical": True, "error_cost": 25.0} if lab in crit else {})
                                           for lab in dict.fromkeys(labels)}})
    vocab = sorted(set(labels))
    rng = np.random.default_rng(0)
    order = rng.permutation(len(labels))
    cands = [Candidate("tg-small/zero_shot", "tg-small", "zero_shot", "tg-small", 0.15, 0.6),
             Candidate("tg-small/few_shot", "tg-small", "few_shot", "tg-small", 0.15, 0.6),
             Candidate("tg-small/fine_tuned", "ft:tg-small:tunegate:5f3a9c", "fine_tuned", "tg-small", 0.3, 1.2),
             Candidate("tg-large/long_prompt", "tg-large", "long_prompt", "tg-large", 2.5, 10.0)]
    rates = {"tg-small/zero_shot": 0.5, "tg-small/few_shot": 0.45, "tg-small/fine_tuned": 0.1, "tg-large/long_prompt": 0.3}
    tokens = {"tg-small/zero_shot": 450, "tg-small/few_shot": 2500, "tg-small/fine_tuned": 300, "tg-large/long_prompt": 1500}
    scored = {}
    for c in cands:
        pred = list(labels)
        for i in order[: int(round(rates[c.name] * len(labels)))]:
            pred[i] = vocab[(vocab.index(labels[i]) + 1) % len(vocab)]
        n = len(pred)
        scored[c.name] = pd.DataFrame({"predicted": pred, "parsed": pred, "valid": [True] * n, "error": [None] * n,
                                       "latency_s": [0.05] * n, "prompt_tokens": [tokens[c.name]] * n,
                                       "completion_tokens": [6] * n})
    res = score_candidates(cfg, cands, [f"t{i}" for i in range(len(labels))], labels, scored,
                           dataset_version="d41d8cd98f00b204", settings={"test_rows_total": 3080})
    build_report(res, cfg, 80.0, None, out_dir, run_id="8c5b2f0e-3d7a-4c61-9a55-2f1d0b6e7c11",
                 endpoint="embedded:warehouse/provider", generated_at="2026-11-29 12:00 UTC")
    return out_dir / "report.html"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--html", type=Path, help="a report.html to check (default: build a sample report)")
    ap.add_argument("--screenshots", type=Path, help="also save full-page screenshots in this folder")
    args = ap.parse_args(argv)
    if not chromium_available():
        print("chromium not found: apt-get install -y chromium (or set CHROMIUM)", file=sys.stderr)
        return 2
    html = args.html
    if html is None:
        html = build_sample_report(Path(tempfile.mkdtemp(prefix="tg-report-")))
    results = check_html(html, screenshots=args.screenshots)
    print(json.dumps({"html": str(html), **results}, indent=2))
    return 0 if all(r["ok"] for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
