"""The command line on a user's own export: init, run with a column mapping, pull, lineage, clear errors."""
import json

import pandas as pd
import pytest
import yaml

from assets.cli import main
from pipeline.config import DATA_DIR, load_config


@pytest.fixture(scope="module")
def own_export(tmp_path_factory):
    """400 Banking77 tickets from 20 labels, exported with other column names and an extra column."""
    root = tmp_path_factory.mktemp("own")
    df = pd.read_csv(DATA_DIR / "banking77" / "train.csv")
    labels = sorted(df["category"].unique())[:20]
    df = df[df["category"].isin(labels)].groupby("category").head(20).reset_index(drop=True)
    export = pd.DataFrame({"id": [f"X-{i:04d}" for i in range(len(df))], "body": df["text"],
                           "intent": df["category"], "ts": pd.date_range("2026-01-01", periods=len(df), freq="h").astype(str),
                           "queue": "retail"})
    (root / "exports").mkdir()
    export.iloc[:200].to_csv(root / "exports" / "a.csv", index=False)
    export.iloc[200:].to_json(root / "exports" / "b.jsonl", orient="records", lines=True)
    assert main(["init", "--out", str(root / "tunegate.yaml")]) == 0
    cfg = yaml.safe_load((root / "tunegate.yaml").read_text())
    full = yaml.safe_load((DATA_DIR / "taxonomy.yaml").read_text())
    cfg.update({"warehouse": "wh", "landing": {"path": str(root / "exports")},
                "columns": {"ticket_id": "id", "created_at": "ts", "channel": None, "text": "body",
                            "label": "intent", "operator_id": None},
                "taxonomy": {"labels": {k: full["labels"][k] for k in labels}}})
    (root / "tunegate.yaml").write_text(yaml.safe_dump(cfg))
    return root, export


def test_init_writes_a_valid_commented_config(tmp_path):
    out = tmp_path / "t.yaml"
    assert main(["init", "--out", str(out)]) == 0
    assert "# " in out.read_text() and load_config(out).columns.text == "customer_text"
    assert main(["init", "--out", str(out)]) == 2  # refuses to overwrite


@pytest.mark.slow
def test_run_pull_and_lineage_on_own_export(own_export, tmp_path, capsys):
    root, export = own_export
    config = str(root / "tunegate.yaml")
    assert main(["run", "--config", config, "--data-only"]) == 0
    out = capsys.readouterr().out
    assert "400 rows in, 400 kept, 0 quarantined" in out
    dest = tmp_path / "train.jsonl"
    assert main(["pull", "--config", config, "--split", "train", "--format", "jsonl", "--out", str(dest)]) == 0
    rows = [json.loads(line) for line in dest.read_text().splitlines()]
    assert len(rows) > 250 and {r["label"] for r in rows} <= set(export["intent"])
    assert main(["lineage", rows[0]["ticket_id"], "--config", config]) == 0
    assert '"kind": "ticket"' in capsys.readouterr().out


def test_clear_errors_without_tracebacks(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("splits: {train: 0.9, val: 0.2, test: 0.1}\n")
    assert main(["run", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "split ratios must sum to 1" in err and "Traceback" not in err
    assert main(["run", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert main(["pull", "--config", str(bad), "--split", "train", "--out", str(tmp_path / "x")]) == 2
    empty = tmp_path / "empty.yaml"
    empty.write_text(f"warehouse: {tmp_path / 'wh'}\n")
    assert main(["pull", "--config", str(empty), "--split", "train", "--out", str(tmp_path / "x")]) == 2
    assert "no dataset version" in capsys.readouterr().err
