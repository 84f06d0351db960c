"""Progress of the long stages: the line display (every 10%, with an ETA) and the stage functions'
`progress(done, total)` callbacks, on real Banking77 rows."""
import io

import pandas as pd
import pytest

from pipeline import progress
from pipeline.config import DATA_DIR, DedupSpec, LabelCheckSpec


def test_line_display_logs_every_ten_percent_with_totals_and_eta():
    out = io.StringIO()
    old = progress.use_display(progress.LineDisplay(stream=out))
    try:
        p = progress.tracker("masking")
        for done in range(0, 3001, 50):
            p(done, 3000)
        p(3000, 3000)  # a repeat after the end is ignored
    finally:
        progress.use_display(old)
    lines = out.getvalue().splitlines()
    assert len(lines) == 10, lines
    assert lines[0].startswith("masking: 10% (300/3,000), ") and "ETA" in lines[0]
    assert lines[-1].startswith("masking: 100% (3,000/3,000)") and "ETA" not in lines[-1]


class Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, done, total):
        self.calls.append((done, total))


@pytest.fixture(scope="module")
def rows():
    df = pd.read_csv(DATA_DIR / "banking77" / "train.csv").head(1500)
    return pd.DataFrame({"ticket_id": [f"b{i}" for i in range(len(df))], "text": df["text"], "label": df["category"],
                         "created_at": "2026-01-01"})


def test_dedup_reports_progress_up_to_its_total(rows):
    from pipeline.data.dedup import find_clusters

    rec = Recorder()
    with_progress, _ = find_clusters(rows, DedupSpec(), progress=rec)
    without, _ = find_clusters(rows, DedupSpec())
    assert with_progress.equals(without)  # reporting changes nothing
    dones = [d for d, _ in rec.calls]
    total = rec.calls[-1][1]
    assert dones == sorted(dones) and dones[-1] == total and len(rec.calls) >= 2
    assert {t for _, t in rec.calls} == {total} and 1000 < total <= len(rows)


def test_label_checks_report_each_fold(rows):
    from pipeline.data.labels import label_issues

    rec = Recorder()
    label_issues(rows.head(500), LabelCheckSpec(cv_folds=3, min_class_size=3), progress=rec)
    assert rec.calls == [(1, 3), (2, 3), (3, 3)]


def test_run_console_draws_bars_on_a_terminal_and_lines_elsewhere():
    from rich.console import Console

    from assets.run_console import RunConsole

    outputs = {}
    for terminal in (True, False):
        buf = io.StringIO()
        display = RunConsole(console=Console(file=buf, force_terminal=terminal, width=100))
        old = progress.use_display(display)
        try:
            p = progress.tracker("evaluation")
            for done in range(0, 1001, 125):
                p(done, 1000)
        finally:
            progress.use_display(old)
            display.close()
        outputs[terminal] = buf.getvalue()
    assert "/1000" in outputs[True] and "ETA" in outputs[True] and "━" in outputs[True]
    lines = outputs[False].splitlines()
    assert len(lines) == 8 and lines[-1].startswith("evaluation: 100% (1,000/1,000)")
