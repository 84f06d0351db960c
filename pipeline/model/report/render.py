"""Renders the report dict into HTML and Markdown through the Jinja2 templates next to this module."""
from __future__ import annotations

import base64
from pathlib import Path

from jinja2 import ChainableUndefined, Environment, FileSystemLoader, select_autoescape

from pipeline.model.report import formats

TEMPLATES = Path(__file__).with_name("templates")


def _env(autoescape: bool) -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), undefined=ChainableUndefined, trim_blocks=True,
                      lstrip_blocks=True, keep_trailing_newline=True,
                      autoescape=select_autoescape(["html", "j2"]) if autoescape else False)
    env.filters.update({"money": formats.money, "price": formats.price, "pct": formats.pct, "pts": formats.pts,
                        "months": formats.months, "count": formats.count, "ci": formats.ci,
                        "md": lambda s: str(s).replace("|", "\\|")})
    return env


def comparison_text(c: dict | None) -> str:
    if not c:
        return "Only one candidate was evaluated."
    verdict = "significant" if c["significant"] else "not significant"
    return (f"{c['a']} vs {c['b']}: accuracy difference {100 * c['diff']:+.1f} points, paired bootstrap "
            f"95% CI [{100 * c['diff_low']:+.1f}, {100 * c['diff_high']:+.1f}]; exact McNemar p={c['mcnemar_p']:.3g} "
            f"({c['a_only']} rows only {c['a']} got right, {c['b_only']} only {c['b']}): {verdict}.")


def _context(report: dict) -> dict:
    rec = report["recommendation"]
    by = {c["name"]: c for c in report["candidates"]}
    details_keys: list[str] = []
    for c in report["candidates"]:
        for k in c.get("details") or {}:
            if k not in details_keys:
                details_keys.append(k)
    return {"r": report, "rec": rec, "cur": report["currency"], "money": report.get("decision_money") or {},
            "chosen": by[rec["candidate"]], "incumbent": by.get(rec["incumbent"]), "by": by,
            "details_keys": details_keys, "comparison": comparison_text(report.get("best_vs_runner_up")), "labels_all": sorted(by[rec["candidate"]]["per_class_f1"],
                                                               key=lambda lab: by[rec["candidate"]]["per_class_f1"][lab])}


def render_html(report: dict, images: dict[str, bytes]) -> str:
    data = {k: "data:image/png;base64," + base64.b64encode(v).decode() for k, v in images.items()}
    return _env(True).get_template("report.html.j2").render(**_context(report), img=data)


def render_markdown(report: dict) -> str:
    return _env(False).get_template("report.md.j2").render(**_context(report))
