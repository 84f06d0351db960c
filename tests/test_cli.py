"""The command line on a user's own export: init (also --from the export), run with a column mapping, pull,
lineage; help on every option; one-line errors with exit code 2 for every mistake a user can fix."""
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
    cap = capsys.readouterr()
    assert "400 rows in, 400 kept, 0 quarantined" in cap.out
    # one line per stage start and end, with counts and time; progress of the long stages every 10%
    for stage in ("raw_tickets", "masked_tickets", "deduplicated_tickets", "labelled_tickets", "dataset_splits"):
        assert f"> {stage} started" in cap.err and f"ok {stage}: " in cap.err
    assert "ok raw_tickets: rows in 400, rows 400, rows quarantined 0, " in cap.err
    assert "masking: 100% (400/400)" in cap.err and "label checks: 100% (5/5)" in cap.err
    assert "asset checks: " in cap.err and "Traceback" not in cap.err
    dest = tmp_path / "train.jsonl"
    assert main(["pull", "--config", config, "--split", "train", "--format", "jsonl", "--out", str(dest)]) == 0
    first = dest.read_text()
    # an existing output file is kept unless --force says otherwise
    assert main(["pull", "--config", config, "--split", "val", "--format", "jsonl", "--out", str(dest)]) == 2
    assert "pass --force" in capsys.readouterr().err and dest.read_text() == first
    assert main(["pull", "--config", config, "--split", "train", "--format", "jsonl", "--out", str(dest), "--force"]) == 0
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
    assert "no catalog at" in capsys.readouterr().err and not (tmp_path / "wh" / "catalog.duckdb").exists()


def test_after_a_failed_run_the_summary_names_the_run_of_the_last_report(tmp_path, capsys):
    from assets.cli import _print_summary
    from pipeline.catalog import Catalog

    cfg = load_config(None, warehouse=str(tmp_path / "wh"))
    folder = cfg.warehouse_path / "reports" / "0123abcd"
    folder.mkdir(parents=True)
    (folder / "report.json").write_text(json.dumps({"recommendation": {"headline": "keep the prompt"},
                                                    "candidates": [], "settings": {
        "finetune_skipped": "no fine-tuning API at http://127.0.0.1:1/v1: evaluating prompt candidates only",
        "incomplete": {"tg-large/few_shot": {"failed_rows": 3, "retries": 12}}}}))
    (cfg.warehouse_path / "reports" / "latest").symlink_to("0123abcd", target_is_directory=True)
    Catalog(cfg.catalog_path).record_artifact("decision_report", "0123abcd", str(folder), None, run_id="run-earlier")
    _print_summary(cfg, ok=False)
    out = capsys.readouterr().out
    assert out.startswith("the run FAILED")
    assert "the run failed: the last decision report comes from run run-earlier at " in out
    assert "fine-tuning skipped: no fine-tuning API at" in out
    assert "incomplete (not ranked): tg-large/few_shot: 3 rows failed after 12 retries" in out
    _print_summary(cfg, ok=True)
    out = capsys.readouterr().out
    assert "FAILED" not in out and "the run failed" not in out


def test_pull_without_a_config_refuses_instead_of_creating_a_catalog(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["pull", "--split", "train", "--out", "train.parquet"]) == 2
    err = capsys.readouterr().err
    assert "no catalog at" in err and "--config" in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.rglob("catalog.duckdb")) and not (tmp_path / "train.parquet").exists()
    assert main(["lineage", "X-1"]) == 2


def _taxonomy_as_lists() -> str:
    full = yaml.safe_load((DATA_DIR / "taxonomy.yaml").read_text())
    return yaml.safe_dump({"taxonomy": {"labels": {k: [v.get("description", "")] for k, v in full["labels"].items()}}})


@pytest.mark.parametrize("text, expected", [
    ("dedup: {threshold: 1.8}\n", "`dedup.threshold`: must be <= 1"),
    ("label_checks: {cv_folds: 0}\n", "`label_checks.cv_folds`: must be >= 2 (got 0)"),
    ("endpoint: {concurrency: -1}\n", "`endpoint.concurrency`: must be >= 1 (got -1)"),
    ("evaluation: {few_shot_k: -2, repeats: 0}\n", "`evaluation.few_shot_k`: must be >= 0 (got -2) (also: `evaluation.repeats`)"),
    ("dedup: {treshold: 0.5}\n", "`dedup.treshold`: unknown key"),
    ("taxonomy:\n  labels:\n    yes: {}\n    no: {}\n", "line 3: the key `yes` is read by YAML as a boolean; quote it"),
    ("taxonomy:\n  labels:\n    a: {aliases: [on]}\n    b:\n", "`taxonomy.labels.a.aliases.0`: YAML read `true` as a boolean"),
    ("dedup:\n\tthreshold: 0.5\n", "use spaces, not tabs"),
    (None, "76 more label(s) have the same problem"),
])
def test_config_mistakes_give_one_line_and_exit_2(tmp_path, capsys, text, expected):
    bad = tmp_path / "bad.yaml"
    bad.write_text(_taxonomy_as_lists() if text is None else text)
    assert main(["run", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"tunegate: {bad}") and expected in err and "Traceback" not in err


def test_labels_may_be_bare_names_or_descriptions(tmp_path):
    cfg = tmp_path / "t.yaml"
    cfg.write_text("taxonomy:\n  labels:\n    card_arrival:\n    'yes': the customer agrees\n"
                   "    'no': {critical: true, error_cost: 5}\n")
    labels = load_config(cfg).taxonomy.labels
    assert list(labels) == ["card_arrival", "yes", "no"]
    assert labels["yes"].description == "the customer agrees" and labels["no"].critical


def test_debug_shows_the_traceback_and_version(tmp_path, capsys):
    from pipeline.config import ConfigError

    bad = tmp_path / "bad.yaml"
    bad.write_text("dedup: {threshold: 1.8}\n")
    with pytest.raises(ConfigError):
        main(["--debug", "run", "--config", str(bad)])
    with pytest.raises(ConfigError):
        main(["run", "--config", str(bad), "--debug"])
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("tunegate 0.")


def test_every_option_has_help_and_every_command_examples():
    import argparse

    from assets.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert len(sub.choices) >= 12
    for name, sp in sub.choices.items():
        assert sp.epilog and sp.epilog.startswith("examples:\n  tunegate "), name
        for action in sp._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"


def _export(root, labels_extra=True):
    df = pd.read_csv(DATA_DIR / "banking77" / "train.csv")
    labels = sorted(df["category"].unique())[:20]
    df = df[df["category"].isin(labels)].groupby("category").head(20).reset_index(drop=True)
    export = pd.DataFrame({"Case Number": [f"C-{i:05d}" for i in range(len(df))],
                           "Opened": pd.date_range("2026-01-01", periods=len(df), freq="h").astype(str),
                           "Body": df["text"], "Queue": "retail", "Intent": df["category"]})
    if labels_extra:  # labels YAML would misread, and a second spelling of one label
        extra = pd.DataFrame({"Case Number": ["Y-1", "Y-2", "Y-3", "Y-4"], "Opened": "2026-02-01",
                              "Body": ["My name is Anna Kowalska, call me on +44 20 7946 0958", "yes go ahead",
                                       "no thanks", "Activate My Card please"],
                              "Queue": "retail", "Intent": ["yes", "yes", "no", "Activate My Card"]})
        export = pd.concat([export, extra], ignore_index=True)
    path = root / "tickets.csv"
    export.to_csv(path, index=False)
    return path, export


def test_init_from_maps_columns_and_drafts_the_taxonomy(tmp_path):
    from pipeline.starter import draft_config

    path, export = _export(tmp_path)
    text, summary = draft_config(path, examples=0)
    out = tmp_path / "drafted.yaml"
    out.write_text(text)
    cfg = load_config(out)
    assert (cfg.columns.text, cfg.columns.label, cfg.columns.ticket_id, cfg.columns.created_at) == \
        ("Body", "Intent", "Case Number", "Opened")
    labels = cfg.taxonomy.labels
    assert len(labels) == 22 and {"yes", "no"} <= set(labels)  # quoted, so still strings
    assert labels["activate_my_card"].aliases == ["Activate My Card"]
    assert all(spec.description == "" for spec in labels.values())
    assert "# 21 tickets" in text and "# 1 ticket; below label_checks.min_class_size (8)" in text
    assert "22 labels from 404 rows" in summary


@pytest.mark.slow
def test_init_from_cli_writes_masked_examples(tmp_path, capsys):
    path, export = _export(tmp_path)
    out = tmp_path / "tunegate.yaml"
    assert main(["init", "--from", str(path), "--out", str(out)]) == 0
    text = out.read_text()
    assert "7946 0958" not in text and "Kowalska" not in text and "<PHONE_NUMBER_1>" in text
    assert text.count("      # e.g. ") == 20 * 3 + 2 + 1  # three per label, fewer where there are fewer
    assert main(["init", "--from", str(path), "--out", str(out)]) == 2
    assert "pass --force" in capsys.readouterr().err
    assert main(["init", "--from", str(path), "--out", str(out), "--force", "--examples", "1"]) == 0
    assert out.read_text().count("      # e.g. ") == 22


@pytest.mark.slow
def test_wrong_column_prints_the_mapping_message_in_one_line(own_export, tmp_path, capsys):
    root, _ = own_export
    cfg = yaml.safe_load((root / "tunegate.yaml").read_text())
    cfg["columns"]["text"] = "customer_text"
    cfg["warehouse"] = str(tmp_path / "wh")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    assert main(["run", "--config", str(bad), "--data-only"]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("tunegate: a.csv: required column(s) customer_text not in the file's 5 columns; fix `columns:`")
    assert "Traceback" not in err and "Stack Trace" not in err and len(err.strip().splitlines()) <= 5
