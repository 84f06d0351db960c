"""The prompt protocol shared by fine-tuning export, the model provider and evaluation.

One place defines what a model sees and how its answer is read back:

- the system message states the task and lists the allowed labels one per line, as
  `- <label>: <description>` (long style) or `- <label>` (short style);
- the user message is the (PII-masked) ticket text;
- the assistant message is the label as plain text.

Few-shot prompts insert user/assistant pairs between the system message and the ticket.
`parse_answer` reads a reply back into a label and says whether the reply was strictly valid
(exactly a known label, plain or as `{"label": ...}`) or only recovered leniently.

The reading side of the same protocol, used by the embedded provider (`pipeline.provider.models`) to
understand a request and by its tests: `read_system_prompt` takes the label lines back out of a
system message (only lines that start with `- ` are labels; a label is the text up to the first `:`,
so labels contain no colon), and `answer_label` reads the label of an assistant turn (a few-shot
example or a training line), bare or as `{"label": ...}`.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import pandas as pd

Style = Literal["short", "long"]

TASK_LINE = "Classify the customer support ticket into exactly one of the labels listed below."
LONG_RULES = (
    "Rules:",
    "1. Answer with exactly one label from the list, written exactly as shown, and nothing else.",
    "2. If several labels could apply, pick the most specific one.",
    "3. Use the descriptions to tell neighbouring labels apart.",
)
LABELS_HEADER = "Labels:"
SCHEMA_NAME = "ticket_label"


def label_items(taxonomy: Any) -> list[tuple[str, str]]:
    """(label, description) pairs in taxonomy order.

    Accepts a `TaxonomySpec`, a config with a `.taxonomy`, a mapping label -> LabelSpec / description,
    or an iterable of label names."""
    if not isinstance(taxonomy, Mapping) and getattr(taxonomy, "taxonomy", None) is not None:  # a config
        taxonomy = taxonomy.taxonomy
    labels = taxonomy if isinstance(taxonomy, Mapping) else getattr(taxonomy, "labels", taxonomy)
    if isinstance(labels, Mapping):
        items = []
        for name, spec in labels.items():
            if isinstance(spec, str):
                desc = spec
            elif spec is None:
                desc = ""
            else:
                desc = getattr(spec, "description", None)
                if desc is None and isinstance(spec, Mapping):
                    desc = spec.get("description", "")
            items.append((str(name), " ".join(str(desc or "").split())))
        return items
    if isinstance(labels, Iterable) and not isinstance(labels, (str, bytes)):
        return [(str(name), "") for name in labels]
    raise TypeError(f"cannot read labels from {type(taxonomy).__name__}")


def system_prompt(taxonomy: Any, style: Style = "long") -> str:
    """The system message: task line, (long style) rules, then one line per allowed label."""
    if style not in ("short", "long"):
        raise ValueError(f"style must be 'short' or 'long', got {style!r}")
    items = label_items(taxonomy)
    if not items:
        raise ValueError("the taxonomy has no labels")
    lines = [TASK_LINE]
    if style == "long":
        lines.extend(LONG_RULES)
        lines.append(LABELS_HEADER)
        lines.extend(f"- {name}: {desc}" if desc else f"- {name}" for name, desc in items)
    else:
        lines.append("Answer with the label only.")
        lines.append(LABELS_HEADER)
        lines.extend(f"- {name}" for name, _ in items)
    return "\n".join(lines)


def user_message(text: str) -> dict:
    return {"role": "user", "content": str(text)}


def assistant_message(label: str) -> dict:
    return {"role": "assistant", "content": str(label)}


def few_shot_messages(examples: pd.DataFrame | Iterable[tuple[str, str]] | None) -> list[dict]:
    """User/assistant pairs, in row order, from a frame with `text` and `label` columns (or from
    (text, label) pairs)."""
    if examples is None or len(examples) == 0:
        return []
    if not isinstance(examples, pd.DataFrame):
        examples = pd.DataFrame(list(examples), columns=["text", "label"])
    missing = {"text", "label"} - set(examples.columns)
    if missing:
        raise ValueError(f"few-shot examples need columns text and label; missing {sorted(missing)}")
    out: list[dict] = []
    for text, label in zip(examples["text"].tolist(), examples["label"].tolist()):
        out.append(user_message(text))
        out.append(assistant_message(label))
    return out


def build_messages(taxonomy: Any, text: str, style: Style = "long",
                   examples: pd.DataFrame | Iterable[tuple[str, str]] | None = None) -> list[dict]:
    """System message, optional few-shot pairs, then the ticket as the user message."""
    return [{"role": "system", "content": system_prompt(taxonomy, style)},
            *few_shot_messages(examples), user_message(text)]


def label_response_format(labels: Iterable[str]) -> dict:
    """A `response_format` (json_schema, strict) whose only field `label` is an enum of the labels."""
    return {
        "type": "json_schema",
        "json_schema": {
            "name": SCHEMA_NAME,
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {"label": {"type": "string", "enum": list(labels)}},
                "required": ["label"],
                "additionalProperties": False,
            },
        },
    }


def _norm(s: str) -> str:
    return re.sub(r"[\s\-]+", "_", s.strip().lower())


def parse_answer(content: str | None, labels: set[str] | Iterable[str]) -> tuple[str | None, bool]:
    """Read a model reply back into a label.

    Returns (label or None, strictly valid). Strictly valid means the reply, stripped of surrounding
    whitespace, is exactly a known label, or is a JSON object `{"label": <known label>}` and nothing
    else. Otherwise a label is recovered leniently when exactly one known label can be read from the
    reply (quotes, backticks, a trailing period, a `label:` prefix, different case, or one label named
    in a sentence); such answers count as format errors."""
    labels = labels if isinstance(labels, (set, frozenset)) else set(labels)
    if content is None:
        return None, False
    text = content.strip()
    if not text:
        return None, False
    if text in labels:
        return text, True
    # JSON object answer (structured outputs)
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except ValueError:
            obj = None
        if isinstance(obj, dict) and isinstance(obj.get("label"), str):
            value = obj["label"].strip()
            if obj["label"] in labels and set(obj) == {"label"}:
                return obj["label"], True
            if value in labels:
                return value, False
            text = value
    # lenient recovery
    by_norm = {_norm(lab): lab for lab in labels}
    candidate = text.strip().strip("`'\"").strip()
    candidate = re.sub(r"^(label|answer|intent|category)\s*[:=]\s*", "", candidate, flags=re.I)
    candidate = candidate.strip().strip("`'\"").rstrip(".").strip().strip("`'\"")
    if _norm(candidate) in by_norm:
        return by_norm[_norm(candidate)], False
    lowered = text.lower()
    found = {lab for lab in labels
             if re.search(r"(?<![a-z0-9_])" + re.escape(lab.lower()) + r"(?![a-z0-9_])", lowered)}
    # a label that is part of a longer found label (card_payment vs card_payment_fee_charged) does not count
    found = {lab for lab in found if not any(lab != other and lab.lower() in other.lower() for other in found)}
    if len(found) == 1:
        return found.pop(), False
    return None, False


# ------------------------------------------------------------------------ the reading side
_LABEL_LINE = re.compile(r"^\s*[-*]\s+(?P<label>[^:\n]+?)\s*(?::\s*(?P<desc>.*?))?\s*$")


def read_system_prompt(system_text: str) -> tuple[list[str], dict[str, str]]:
    """(labels in order, label -> description) from a system message written by `system_prompt`
    (or by hand in the same shape). A bullet of more than six words is a sentence, not a label."""
    labels: list[str] = []
    descriptions: dict[str, str] = {}
    for line in system_text.splitlines():
        m = _LABEL_LINE.match(line)
        if not m:
            continue
        label = m.group("label").strip()
        if not label or " " in label and len(label.split()) > 6:
            continue
        if label not in descriptions:
            labels.append(label)
            descriptions[label] = (m.group("desc") or "").strip()
    return labels, descriptions


def answer_label(content: str | None) -> str:
    """The label of an assistant turn: the bare text, or the value of a JSON `{"label": ...}` (or of a
    JSON object's only field)."""
    text = (content or "").strip()
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except ValueError:
            return text
        if isinstance(obj, dict):
            if "label" in obj:
                return str(obj["label"]).strip()
            if len(obj) == 1:
                return str(next(iter(obj.values()))).strip()
    return text


def __getattr__(name: str) -> Any:
    # LABEL_SCHEMA: the response format for the bundled taxonomy (built lazily; configs with their own
    # taxonomy call label_response_format(config.labels)).
    if name == "LABEL_SCHEMA":
        from pipeline.config import DEFAULT_TAXONOMY_FILE, load_taxonomy
        return label_response_format(load_taxonomy(DEFAULT_TAXONOMY_FILE).labels)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
