"""How figures read in the report: money to three significant figures, shares as percentages, months."""
from __future__ import annotations

import math


def sig(x: float, digits: int = 3) -> float:
    """x rounded to `digits` significant figures."""
    if not x or not math.isfinite(x):
        return x
    return round(x, digits - 1 - int(math.floor(math.log10(abs(x)))))


def money(x: float | None, cur: str = "", digits: int = 3) -> str:
    """81,118.03 -> '81,100 USD'; 0.0421 -> '0.0421 USD': as precise as the assumptions allow, no more."""
    if x is None:
        return "n/a"
    v = sig(float(x), digits)
    text = f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.{max(0, digits - 1 - int(math.floor(math.log10(abs(v)))))}f}" \
        if v else "0"
    return f"{text} {cur}".strip()


def money_range(lo: float, hi: float, cur: str = "") -> str:
    return f"{money(lo)} to {money(hi)} {cur}".strip()


def price(x: float | None, cur: str = "") -> str:
    """A price from the price list, with the cents it was quoted in."""
    return "n/a" if x is None else f"{x:,.2f} {cur}".strip() if x >= 0.1 else f"{x:,.4f} {cur}".strip()


def pct(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None else f"{100 * x:.{digits}f}%"


def pts(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:+.1f} points"


def months(x: float | str | None) -> str:
    if x is None:
        return "—"
    if isinstance(x, str):
        return x
    return "< 0.1 months" if x < 0.1 else f"{x:.1f} months"


def count(x: float | None) -> str:
    return "n/a" if x is None else f"{sig(x, 3):,.0f}" if abs(x) >= 100 else f"{x:,.1f}" if x % 1 else f"{x:,.0f}"


def ci(v: float, interval: list | tuple) -> str:
    return f"{100 * v:.1f}% [{100 * interval[0]:.1f}, {100 * interval[1]:.1f}]"
