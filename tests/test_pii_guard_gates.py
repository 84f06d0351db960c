"""The leak guard at the gates where data leaves: fine-tuning files (built without flagged rows, scanned again
right before upload) and the guard's own findings on real Banking77 text (no false alarms)."""
from __future__ import annotations

import csv
import json

import pandas as pd
import pytest

from pipeline.config import DATA_DIR, load_config
from pipeline.model.finetune import guard_file
from pipeline.model.finetune_files import build_finetune_files
from pipeline.pii.checksums import iban_with_check
from pipeline.pii.leak_guard import scan_residual


def _banking(n: int) -> list[dict]:
    with open(DATA_DIR / "banking77" / "train.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))[:n]


def test_finetune_files_leave_out_rows_the_guard_flags(tmp_path):
    cfg = load_config(None)
    rows = _banking(40)
    leak = iban_with_check("KZ", "601KZT8741529038")
    df = pd.DataFrame({"ticket_id": [f"t{i}" for i in range(len(rows))],
                       "text": [r["text"] for r in rows], "label": [r["category"] for r in rows]})
    df.loc[3, "text"] = f"send it to {leak} Please"
    out = build_finetune_files({"train": df.iloc[:30], "val": df.iloc[30:]}, cfg.taxonomy, tmp_path)
    assert out["train"]["rows"] == 29 and out["train"]["quarantine"] == [{"ticket_id": "t3", "reason": "residual_pii"}]
    text = open(out["train"]["path"], encoding="utf-8").read()
    assert leak not in text
    guard_file(out["train"]["path"])  # a clean file passes the last gate


def test_upload_gate_refuses_a_file_that_holds_pii(tmp_path):
    path = tmp_path / "train.jsonl"
    leak = "4400 4302 1234 5679"
    lines = [{"messages": [{"role": "system", "content": "route"}, {"role": "user", "content": t},
                           {"role": "assistant", "content": "card_arrival"}]}
             for t in ("where is my card", f"my card {leak} is lost")]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    with pytest.raises(ValueError) as err:
        guard_file(path)
    assert "lines [2]" in str(err.value) and "CREDIT_CARD" in str(err.value) and leak not in str(err.value)


def test_guard_is_quiet_on_banking77_texts():
    texts = [r["text"] for r in _banking(5000)]
    flagged = [t for t, k in zip(texts, scan_residual(texts)) if k]
    assert len(flagged) <= 5, flagged[:5]  # measured: 0
