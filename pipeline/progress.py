"""Progress of long stages (masking, dedup, label checks, evaluation), with totals and an ETA.

A stage function takes an optional `progress` callback and calls it as `progress(done, total)` after
each batch. `tracker(stage)` gives such a callback, drawn by whatever display is installed:

- by default one line on stderr at every 10% ("masking: 40% (1,200/3,000), 12 s, ETA 18 s"), which
  the Dagster UI shows in the step's logs;
- under `tunegate run` / `tunegate demo`, a rich progress bar per stage (`use_display`).

No display state lives in the stage functions: they only report counts.
"""
from __future__ import annotations

import sys
import threading
import time
from typing import Callable, Protocol

Progress = Callable[[int, int], None]


class Display(Protocol):
    def start(self, stage: str, total: int) -> object: ...

    def update(self, handle: object, done: int, total: int) -> None: ...

    def finish(self, handle: object) -> None: ...


def _fmt_s(seconds: float) -> str:
    seconds = max(0.0, seconds)
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


class LineDisplay:
    """One line per 10% step on a stream (stderr by default): readable in logs and in the Dagster UI."""

    def __init__(self, stream=None, step_pct: int = 10):
        self.stream = stream
        self.step = step_pct

    def start(self, stage: str, total: int) -> dict:
        return {"stage": stage, "t0": time.monotonic(), "next": self.step}

    def update(self, h: dict, done: int, total: int) -> None:
        if total <= 0:
            return
        pct = 100 * done / total
        if pct + 1e-9 < h["next"]:
            return
        while h["next"] <= pct + 1e-9:
            h["next"] += self.step
        elapsed = time.monotonic() - h["t0"]
        eta = elapsed * (total - done) / done if done else 0.0
        line = (f"{h['stage']}: {pct:.0f}% ({done:,}/{total:,}), {_fmt_s(elapsed)}"
                + (f", ETA {_fmt_s(eta)}" if done < total else ""))
        print(line, file=self.stream or sys.stderr, flush=True)

    def finish(self, h: dict) -> None:
        pass


_lock = threading.Lock()
_display: Display = LineDisplay()


def use_display(display: Display | None) -> Display:
    """Install a display (None: the default line display); returns the one it replaces."""
    global _display
    with _lock:
        old, _display = _display, display or LineDisplay()
    return old


def tracker(stage: str) -> Progress:
    """A `progress(done, total)` callback for one stage, drawn by the installed display.

    The first call starts the stage's bar; reaching the total finishes it. Calls are thread-safe."""
    display = _display
    state: dict = {}
    lock = threading.Lock()

    def progress(done: int, total: int) -> None:
        with lock:
            if "h" not in state:
                state["h"] = display.start(stage, total)
            if state.get("finished"):
                return
            display.update(state["h"], min(done, total), total)
            if total and done >= total:
                state["finished"] = True
                display.finish(state["h"])

    return progress


def report(progress: Progress | None, done: int, total: int) -> None:
    """Call `progress` if one was given: the one line a stage function needs per batch."""
    if progress is not None:
        progress(done, total)
