"""Metadata helpers for the UI: rounded numbers it can plot over runs, small Markdown tables, the report preview.

Numbers are plain floats and ints rounded to a few digits (Dagster plots numeric metadata across
materializations; a 16-digit price only overflows a table). Nothing here ever receives ticket text.
"""
from __future__ import annotations

import base64
import mimetypes
import re
from pathlib import Path

import dagster as dg

MAX_PREVIEW_IMAGE_BYTES = 1_500_000  # all inlined images together; beyond this the preview links the files


def num(value, digits: int = 4) -> float | int | None:
    """A rounded number (ints stay ints); None stays None."""
    if value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    return round(float(value), digits)


def table_md(rows: dict, key: str = "reason", value: str = "rows") -> dg.MetadataValue:
    lines = [f"| {key} | {value} |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows.items()]
    return dg.MetadataValue.md("\n".join(lines) if rows else "_none_")


def plain(meta: dict) -> dict:
    """Step metadata as Dagster metadata: numbers as numbers (rounded), containers as JSON."""
    out = {}
    for k, v in meta.items():
        if isinstance(v, (dict, list)):
            out[k] = dg.MetadataValue.json(v)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = num(v)
        elif v is not None:
            out[k] = v
    return out


_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")


def inline_images(markdown: str, folder: str | Path, budget: int = MAX_PREVIEW_IMAGE_BYTES) -> str:
    """Replace images linked by a relative path with data URIs, so the UI's Markdown preview shows them.

    The UI cannot reach files next to the report; it does render `data:` images. Past `budget` bytes, or
    for a file that is missing, the image becomes a plain note naming the file."""
    root = Path(folder).resolve()
    used = 0

    def swap(m: re.Match) -> str:
        nonlocal used
        alt, target = m.group(1), m.group(2)
        if target.startswith(("data:", "http://", "https://")):
            return m.group(0)
        path = (root / target).resolve()
        if root not in path.parents or not path.is_file():
            return f"_({alt}: {target} not found)_"
        data = path.read_bytes()
        if used + len(data) > budget:
            return f"_({alt}: see {path})_"
        used += len(data)
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return f"![{alt}](data:{mime};base64,{base64.b64encode(data).decode()})"

    return _IMAGE.sub(swap, markdown)
