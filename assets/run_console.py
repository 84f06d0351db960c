"""What `tunegate run` and `tunegate demo` print while the graph runs.

One line when a stage starts and one when it ends (with its counts and time), a rich progress bar with
total and ETA for the stages that report progress (pipeline.progress), and one line per failed check
or step. Failures the user can fix (pipeline.errors.UserError, a config error) are collected so the
command can print them as one line and exit with code 2.
"""
from __future__ import annotations

import logging
import os
import time

from rich.console import Console
from rich.markup import escape
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

from pipeline.progress import LineDisplay

# metadata shown on a stage's end line, in this order, when the asset reports it
COUNT_KEYS = ("rows_in", "rows", "rows_quarantined", "tickets_with_pii", "residual_rows", "groups",
              "cross_split_near_duplicates", "train_examples", "val_examples", "best")
USER_ERRORS = {"UserError", "ConfigError", "EndpointUnreachable"}


def _value(mv):
    v = getattr(mv, "value", mv)
    return v if isinstance(v, (int, float, str)) and not isinstance(v, bool) else None


def user_error_message(err) -> str | None:
    """The message of the first user-fixable error in a Dagster error chain, else None."""
    seen = 0
    stack = [err]
    while stack and seen < 20:
        e = stack.pop(0)
        seen += 1
        if e is None:
            continue
        if e.cls_name in USER_ERRORS:
            text = e.message.strip()
            if ": " in text and text.split(": ", 1)[0].endswith(e.cls_name):  # "pipeline.errors.UserError: ..."
                text = text.split(": ", 1)[1]
            return text.splitlines()[0] if text else e.cls_name
        stack += [e.cause, e.context]
    return None


def _last_line(err) -> str:
    root = err
    while root.cause is not None:
        root = root.cause
    lines = root.message.strip().splitlines()
    return lines[-1] if lines else root.cls_name or "failed"


class RunConsole:
    """Event listener for one in-process Dagster run, plus the progress display for its stages."""

    def __init__(self, console: Console | None = None, debug: bool = False, assets: set[str] | None = None):
        self.console = console or Console(stderr=True, highlight=False, soft_wrap=True)
        self.debug = debug
        level = os.environ.get("TUNEGATE_LOG_LEVEL", "INFO").upper()
        self.level = logging.getLevelName(level) if isinstance(logging.getLevelName(level), int) else logging.INFO
        self.assets = assets  # step keys that are assets; other steps (checks) print only when they fail
        self.checks = {"passed": 0, "failed": 0}
        self.user_errors: list[str] = []
        self.skipped = 0
        self.failures: list[str] = []
        self._counts: dict[str, str] = {}
        self._t0: dict[str, float] = {}
        self._bars: Progress | None = None
        self._lines = LineDisplay(stream=self.console.file)

    # -- pipeline.progress display -------------------------------------------------------------
    def _ensure_bars(self) -> Progress:
        if self._bars is None:
            self._bars = Progress(TextColumn("  {task.description:<18}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                  console=self.console, transient=True)
            self._bars.start()
        return self._bars

    def start(self, stage: str, total: int):
        if not self.console.is_terminal:  # a log file or a pipe: a line every 10% instead of a bar
            return ("lines", self._lines.start(stage, total))
        return ("bar", self._ensure_bars().add_task(stage, total=total))

    def update(self, handle, done: int, total: int) -> None:
        kind, h = handle
        if kind == "lines":
            self._lines.update(h, done, total)
        elif self._bars is not None:
            self._bars.update(h, completed=done, total=total)

    def finish(self, handle) -> None:
        kind, h = handle
        if kind == "bar" and self._bars is not None:
            self._bars.remove_task(h)

    def close(self) -> None:
        if any(self.checks.values()):
            self.console.print(f"  asset checks: {self.checks['passed']} passed"
                               + (f", {self.checks['failed']} did not pass" if self.checks["failed"] else ""))
        if self.skipped:
            self.console.print(f"  {self.skipped} later step(s) not run because of the failure above")
            self.skipped = 0
        if self._bars is not None:
            self._bars.stop()
            self._bars = None

    # -- Dagster events ------------------------------------------------------------------------
    def __call__(self, entry) -> None:
        ev = entry.dagster_event
        if ev is None:  # a message the step logged (context.log), e.g. fine-tuning events
            msg = entry.user_message or ""
            if msg.startswith("Dependencies for step"):  # the skipped steps of a failed run: counted instead
                self.skipped += 1
            elif entry.level >= self.level and msg:
                self.console.print(f"  {entry.step_key or ''}: {msg}", markup=False, highlight=False)
            return
        kind = ev.event_type_value
        step = ev.step_key or ""
        quiet = self.assets is not None and step not in self.assets
        if kind == "STEP_START":
            self._t0[step] = time.monotonic()
            if not quiet:
                self.console.print(f"[bold]>[/] {escape(step)} started")
        elif kind == "ASSET_MATERIALIZATION":
            md = ev.event_specific_data.materialization.metadata
            parts = [f"{k.replace('_', ' ')} {v:,}" if isinstance(v, int) else f"{k.replace('_', ' ')} {v}"
                     for k in COUNT_KEYS if (v := _value(md.get(k))) is not None]
            self._counts[step] = ", ".join(parts[:5])
        elif kind == "STEP_SUCCESS" and not quiet:
            secs = (ev.event_specific_data.duration_ms or 0) / 1000
            counts = self._counts.get(step)
            self.console.print(f"[green]ok[/] {escape(step)}: {escape(counts) + ', ' if counts else ''}{secs:.1f} s")
        elif kind == "STEP_FAILURE":
            err = ev.event_specific_data.error
            if err is not None and self.debug:
                self.console.print(err.to_string(), markup=False, highlight=False)
            user = user_error_message(err) if err is not None else None
            if user:
                self.user_errors.append(user)
                self.console.print(f"[red]FAILED[/] {escape(step)} (the fix is on the last line)")
            else:
                line = f"{step}: {_last_line(err) if err is not None else 'failed'}"
                self.failures.append(line)
                self.console.print(f"[red]FAILED[/] {escape(line)}")
        elif kind == "ASSET_CHECK_EVALUATION":
            data = ev.asset_check_evaluation_data
            self.checks["passed" if data.passed else "failed"] += 1
            if not data.passed:
                self.console.print(f"[yellow]check[/] {data.asset_key.to_user_string()}.{data.check_name} did not pass"
                                   f"{' (blocking)' if data.blocking else ''}")
        elif kind == "STEP_SKIPPED":
            self.console.print(f"  {step} skipped (an upstream step failed or a blocking check did not pass)")
