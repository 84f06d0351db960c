"""The report's charts, drawn with matplotlib and returned as PNG bytes (the HTML inlines them as base64).

Titles and axes speak the reader's language ("fine-tuned", "monthly cost"), not code names; every
chart stays readable with 150 labels because none draws more than about 30 rows.
"""
from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pipeline.model.report.formats import money  # noqa: E402

APPROACH = {"zero_shot": "zero-shot", "long_prompt": "long prompt", "few_shot": "few-shot", "fine_tuned": "fine-tuned"}
HIGHLIGHT, OTHER, SECOND = "#1b7a3a", "#7f8c99", "#c0612b"


def display_name(cand: dict) -> str:
    """'tg-small fine-tuned' for the candidate tg-small/fine_tuned."""
    return f"{cand.get('base_model', '')} {APPROACH.get(cand.get('approach'), cand.get('approach', ''))}".strip() \
        or cand["name"]


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _style(ax) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(labelsize=10)
    ax.grid(axis="x", color="#e5e5e5", linewidth=0.8)
    ax.set_axisbelow(True)


def accuracy_chart(cands: list[dict], recommended: str) -> bytes:
    """Accuracy and macro-F1 per candidate with their 95% bootstrap intervals."""
    names = [display_name(c) for c in cands][::-1]
    rows = cands[::-1]
    y = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(5.6, 1.3 + 0.42 * len(rows)))
    for off, key, marker, label in ((0.14, "accuracy", "o", "accuracy"), (-0.14, "macro_f1", "s", "macro-F1")):
        v = np.array([100 * c[key] for c in rows])
        lo = np.array([100 * c[f"{key}_ci"][0] for c in rows])
        hi = np.array([100 * c[f"{key}_ci"][1] for c in rows])
        colors = [HIGHLIGHT if c["name"] == recommended else OTHER for c in rows]
        ax.errorbar(v, y + off, xerr=[v - lo, hi - v], fmt="none", ecolor="#999", elinewidth=1.2, capsize=2)
        ax.scatter(v, y + off, c=colors, marker=marker, s=28, zorder=3, label=label)
    ax.set_yticks(y, names)
    ax.set_xlabel("% of the frozen test set (bars: 95% interval)")
    ax.set_title("Accuracy (circles), macro-F1 (squares)", fontsize=11)
    _style(ax)
    return _png(fig)


def cost_accuracy_chart(cands: list[dict], recommended: str, incumbent: str, currency: str) -> bytes:
    """Total monthly cost against accuracy: the cheap-and-accurate corner is bottom right."""
    fig, ax = plt.subplots(figsize=(5.6, 4.2))
    for c in cands:
        x = 100 * c["accuracy"]
        yv = c["economics"]["total_monthly_cost"]
        color = HIGHLIGHT if c["name"] == recommended else SECOND if c["name"] == incumbent else OTHER
        ax.errorbar([x], [yv], xerr=[[x - 100 * c["accuracy_ci"][0]], [100 * c["accuracy_ci"][1] - x]], fmt="o",
                    color=color, ecolor="#bbb", capsize=2, markersize=6)
        ax.annotate(display_name(c), (x, yv), textcoords="offset points", xytext=(4, 5), fontsize=8, color=color)
    ax.set_xlabel("accuracy, % (bars: 95% interval)")
    ax.set_ylabel(f"total cost per month, {currency}")
    ax.set_title("Monthly cost against accuracy", fontsize=11)
    ax.margins(x=0.25, y=0.12)
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: money(v)))
    _style(ax)
    ax.grid(axis="y", color="#e5e5e5", linewidth=0.8)
    return _png(fig)


def monthly_cost_chart(cands: list[dict], currency: str) -> bytes:
    """What each candidate's monthly cost is made of."""
    parts = [("inference_cost", "inference", "#4c72b0"), ("correction_cost", "operator corrections", "#dd8452"),
             ("error_cost", "cost of misrouting", "#c44e52")]
    rows = cands[::-1]
    y = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(5.6, 1.4 + 0.42 * len(rows)))
    left = np.zeros(len(rows))
    for key, label, color in parts:
        vals = np.array([c["economics"][key] for c in rows])
        ax.barh(y, vals, left=left, label=label, color=color, height=0.6)
        left += vals
    ax.set_yticks(y, [display_name(c) for c in rows])
    ax.set_xlabel(f"{currency} per month")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: money(v)))
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(4))
    ax.set_title("What each candidate costs a month", fontsize=11)
    ax.legend(fontsize=8, loc="lower right", frameon=False)
    _style(ax)
    return _png(fig)


def critical_chart(cands: list[dict], currency: str, top: int = 12) -> bytes | None:
    """Monthly cost of each critical label's errors, per candidate (the most expensive labels first)."""
    labels: list[str] = []
    worst: dict[str, float] = {}
    for c in cands:
        for r in c["critical_labels"]:
            worst[r["label"]] = max(worst.get(r["label"], 0.0), r["cost_per_month"])
    labels = sorted(worst, key=lambda k: -worst[k])[:top]
    if not labels:
        return None
    n = len(cands)
    h = 0.8 / n
    y = np.arange(len(labels))[::-1]
    fig, ax = plt.subplots(figsize=(5.6, 1.4 + len(labels) * (0.18 * n + 0.2)))
    cmap = plt.get_cmap("tab10")
    for i, c in enumerate(cands):
        by = {r["label"]: r["cost_per_month"] for r in c["critical_labels"]}
        ax.barh(y + 0.4 - h * (i + 0.5), [by.get(lab, 0.0) for lab in labels], height=h, color=cmap(i % 10),
                label=display_name(c))
    ax.set_yticks(y, labels)
    ax.set_xlabel(f"{currency} per month (misrouting + correction time)")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: money(v)))
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(4))
    ax.set_title("Monthly cost of critical-label errors", fontsize=11)
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    _style(ax)
    return _png(fig)


def per_class_chart(cands: list[dict], recommended: str, n: int = 15) -> tuple[bytes, dict]:
    """F1 of the recommended candidate's worst and best `n` labels, every candidate as a marker."""
    rec = next(c for c in cands if c["name"] == recommended)
    order = sorted(rec["per_class_f1"], key=lambda lab: (rec["per_class_f1"][lab], lab))
    if len(order) > 2 * n:
        shown, split = order[:n] + order[-n:], n
    else:
        shown, split = order, None
    y = np.arange(len(shown))[::-1]
    fig, ax = plt.subplots(figsize=(5.6, 1.4 + 0.24 * len(shown)))
    cmap = plt.get_cmap("tab10")
    for i, c in enumerate(cands):
        vals = [c["per_class_f1"].get(lab, 0.0) for lab in shown]
        big = c["name"] == recommended
        ax.scatter(vals, y, s=40 if big else 16, marker="o", color=HIGHLIGHT if big else cmap(i % 10),
                   alpha=1.0 if big else 0.55, zorder=3 if big else 2, label=display_name(c))
    if split is not None:
        ax.axhline(y[split - 1] - 0.5, color="#999", linestyle="--", linewidth=0.8)
    ax.set_yticks(y, shown, fontsize=8.5)
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("F1 per label")
    ax.set_title(f"{n} weakest and {n} strongest labels" if split else "F1 per label", fontsize=11)
    ax.legend(fontsize=8, frameon=True, framealpha=0.9, loc="lower left")
    _style(ax)
    return _png(fig), {"shown": shown, "worst": order[:n] if split else [], "best": order[-n:] if split else []}


def sensitivity_chart(sens: dict, currency: str) -> bytes:
    """How far the monthly saving moves when each cost assumption is halved or raised by half."""
    rows = sens["one_at_a_time"][::-1]
    y = np.arange(len(rows))
    base = sens["base"]
    fig, ax = plt.subplots(figsize=(5.6, 1.2 + 0.45 * len(rows)))
    for yi, r in zip(y, rows):
        ax.barh(yi, r["at_50"] - base, left=base, color="#8fb3d9", height=0.55)
        ax.barh(yi, r["at_150"] - base, left=base, color="#2f6aa3", height=0.55)
    ax.axvline(base, color="#333", linewidth=1)
    ax.set_yticks(y, [r["name"] for r in rows])
    ax.set_xlabel(f"monthly saving, {currency} (light: at 50%, dark: at 150%)")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: money(v)))
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(4))
    ax.set_title("Saving per cost assumption at 50% / 150%", fontsize=11)
    _style(ax)
    return _png(fig)
