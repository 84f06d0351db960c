"""What `tunegate init` writes: the commented starter config, or a config drafted from the user's own export.

`draft_config(FILE)` reads an export (CSV, JSONL, JSON or Parquet), maps its columns to tunegate's fields
(by name, then by content: the longest free text is the ticket text, a short repeated value the label,
a unique value the id, a parseable date the creation time) and drafts the taxonomy: one entry per label
with its ticket count and a few example tickets, masked before they are written, as comments; spellings
of one label that differ only in case, spaces or separators become aliases. Descriptions are left
empty to fill in (they are optional: they help the long-prompt baseline). Labels YAML would read as
booleans or numbers are quoted.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pandas as pd
import yaml

from pipeline.errors import UserError


STARTER_CONFIG = """\
# tunegate project config. Every key is optional except where marked; omitted keys take the defaults
# shown. Relative paths are relative to this file. Secrets never go here: name environment variables.
project: my-ticket-router

# Root of the runtime data: landing/, raw/, datasets/, reports/, catalog.duckdb
warehouse: warehouse

landing:
  path: landing                  # relative to the warehouse (or absolute); drop exports here
  patterns: ["*.csv", "*.jsonl", "*.json", "*.parquet"]
  encoding: utf-8                # rows that do not decode are quarantined as bad_encoding

# Canonical column -> the column name in your export. text and label are required;
# set ticket_id to null to derive ids from file name and row number.
columns:
  ticket_id: ticket_id
  created_at: created_at
  channel: channel
  text: customer_text            # REQUIRED
  label: operator_label          # REQUIRED
  operator_id: operator_id

limits:
  min_text_chars: 3
  max_text_chars: 2000           # longer texts are quarantined as oversized_text

# The label taxonomy (REQUIRED for your own data; the default is Banking77's 77 intents).
# A description helps the long-prompt baseline; aliases map old spellings; critical labels carry
# an error cost used by the ROI. Instead of a mapping you may give a file: `taxonomy: taxonomy.yaml`.
taxonomy:
  labels:
    card_arrival:
      description: The customer is waiting for a new or replacement card to arrive.
      aliases: [card_delivery_status]
    lost_or_stolen_card:
      description: The card is lost or stolen and must be blocked.
      critical: true
      error_cost: 25.0
  renames: {}                    # old label -> new label, for taxonomy changes you already know

masking:
  score_threshold: 0.4
  salt_env: TUNEGATE_PII_SALT    # set this variable for pseudonyms stable across runs

dedup:
  threshold: 0.8                 # character 5-gram Jaccard for near-duplicates
  max_cluster_size: 25           # guard against chained similarity

label_checks:
  policy: flag                   # flag | drop rows with likely label errors
  cv_folds: 5

splits:
  train: 0.8
  val: 0.1
  test: 0.1
  seed: 13
  near_dup_threshold: 0.8        # no pair above this may straddle splits

# Model endpoint: leave base_url empty for the embedded local provider, or set it (or the
# OPENAI_BASE_URL variable) for OpenAI or any OpenAI-compatible service. finetune.endpoint and
# evaluation.models[].endpoint override it per role; a server without a fine-tuning API is found
# before any paid work and prompts are evaluated alone (see docs/endpoints.md).
endpoint:
  base_url: null
  api_key_env: OPENAI_API_KEY
  concurrency: 8
  max_retries: 5

finetune:
  base_model: tg-small
  suffix: tunegate
  n_epochs: auto

evaluation:
  models:                        # prices per 1M tokens, from your provider's price list
    - {name: tg-small, price_input_per_1m: 0.15, price_output_per_1m: 0.60, price_training_per_1m: 3.0,
       ft_price_input_per_1m: 0.30, ft_price_output_per_1m: 1.20}
    - {name: tg-large, price_input_per_1m: 2.50, price_output_per_1m: 10.0, price_training_per_1m: 25.0,
       ft_price_input_per_1m: 3.75, ft_price_output_per_1m: 15.0}
  few_shot_k: 5                  # examples per label in the few-shot prompt, from train only
  few_shot_max: 400              # cap on all examples in one prompt (77 labels x 5 = 385)
  repeats: 2
  sample_size: null              # null: the whole frozen test set
  structured: "off"              # auto: JSON schema, then json_object, then free text, as the server allows

business:
  monthly_volume: 60000          # tickets routed per month
  seconds_per_correction: 90     # an operator's time to fix a misrouted ticket
  hourly_cost: 30.0
  default_error_cost: 0.0
  currency: USD
  min_accuracy_gain: 0.01        # a change must beat the incumbent by at least this much accuracy
  max_payback_months: 12         # a fine-tuned model must pay its training back within this
  volume_shares: null            # {label: share of monthly tickets} from production; null: the test set's mix
"""


# canonical field -> column names that usually hold it, most specific first
NAMES = {
    "text": ["customer_text", "text", "body", "message", "ticket_text", "description", "content", "question",
             "utterance", "subject_and_body", "request", "comment"],
    "label": ["operator_label", "label", "intent", "category", "class", "topic", "queue", "tag", "reason", "type"],
    "ticket_id": ["ticket_id", "id", "ticket", "ticket_number", "case_id", "case_number", "case", "key", "number",
                  "uuid"],
    "created_at": ["created_at", "created", "timestamp", "ts", "date", "datetime", "time", "opened_at", "opened",
                   "submitted_at", "received_at"],
    "channel": ["channel", "source", "medium", "via", "origin"],
    "operator_id": ["operator_id", "operator", "agent_id", "agent", "assignee", "handled_by"],
}
FIELD_HELP = {"ticket_id": "unique id (null: derived from file and row)", "created_at": "when the ticket was opened",
              "channel": "e-mail, chat, phone ...", "text": "the customer's words (REQUIRED)",
              "label": "the routing label an operator set (REQUIRED)", "operator_id": "who labelled it"}


def read_export(path: Path) -> pd.DataFrame:
    """An export as strings; a file tunegate cannot read is a UserError naming it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file (init --from takes one export: CSV, JSONL, JSON or Parquet)")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
        elif suffix == ".jsonl":
            df = pd.read_json(path, lines=True, dtype=False)
        elif suffix == ".json":
            df = pd.read_json(path, dtype=False)
        elif suffix == ".parquet":
            df = pd.read_parquet(path)
        else:
            raise UserError(f"{path}: unknown format {suffix or '(no extension)'}; use .csv, .jsonl, .json or .parquet")
    except UserError:
        raise
    except Exception as exc:  # a parser error: say which file and what the parser saw
        raise UserError(f"{path}: cannot be read as {suffix.lstrip('.')}: {str(exc).splitlines()[0]}") from None
    if df.empty or len(df.columns) < 2:
        raise UserError(f"{path}: needs a header and at least two columns (ticket text and label); found "
                        f"{len(df.columns)} column(s) and {len(df)} row(s)")
    return df


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(name).casefold()).strip("_")


def map_columns(df: pd.DataFrame, text: str | None = None, label: str | None = None) -> dict[str, str | None]:
    """Canonical field -> the export's column (None when the export has none)."""
    cols = list(df.columns)
    for given, what in ((text, "text"), (label, "label")):
        if given is not None and given not in cols:
            raise UserError(f"--{what}-col {given!r} is not a column of the export ({', '.join(map(str, cols))})")
    taken: set[str] = {c for c in (text, label) if c}
    out: dict[str, str | None] = {"text": text, "label": label}
    by_norm = {_norm(c): c for c in cols}
    for field, names in NAMES.items():
        if out.get(field):
            continue
        hit = next((by_norm[n] for n in names if n in by_norm and by_norm[n] not in taken), None)
        out[field] = hit
        if hit:
            taken.add(hit)
    sample = df.head(5000)
    strings = {c: sample[c].dropna().astype(str) for c in cols if c not in taken}
    if not out["text"]:  # the longest free text
        lengths = {c: v.str.len().mean() for c, v in strings.items() if len(v) and v.nunique() > 0.5 * len(v)}
        out["text"] = max(lengths, key=lengths.get) if lengths else None
        taken.add(out["text"])
    if not out["label"]:  # a short value that repeats: between 2 and half the rows distinct values
        cands = {c: v.nunique() for c, v in strings.items() if c not in taken and len(v)
                 and 2 <= v.nunique() <= max(2, len(v) // 2) and v.str.len().mean() < 60}
        out["label"] = max(cands, key=cands.get) if cands else None
    if not out["created_at"]:  # a column whose values (almost) all parse as dates
        for c, v in strings.items():
            if c in taken or not len(v) or v.str.len().mean() < 6:
                continue
            if pd.to_datetime(v.head(200), errors="coerce", format="mixed").notna().mean() > 0.95:
                out["created_at"] = c
                taken.add(c)
                break
    if not out["ticket_id"]:  # short values, all distinct
        for c, v in strings.items():
            if c not in taken and len(v) == len(sample) and v.is_unique and v.str.len().mean() < 40:
                out["ticket_id"] = c
                taken.add(c)
                break
    for field in ("text", "label"):
        if not out[field]:
            raise UserError(f"cannot tell which column holds the {'ticket text' if field == 'text' else 'label'} "
                            f"(columns: {', '.join(map(str, cols))}); pass --{field}-col COLUMN")
    return out


def _yaml_key(label: str) -> str:
    """The label as a YAML mapping key, quoted when YAML would read it as something else (yes, 1.0, null)."""
    return yaml.safe_dump({label: None}, allow_unicode=True, width=10_000).split(": null")[0].rstrip(":")


def _comment(text: str, limit: int = 110) -> str:
    t = " ".join(str(text).split())
    return t if len(t) <= limit else t[: limit - 1] + "…"


def draft_taxonomy(df: pd.DataFrame, text_col: str, label_col: str, examples: int = 3,
                   mask=None) -> tuple[list[dict], int]:
    """One entry per label (most frequent first): spelling variants as aliases, count, masked examples.

    `mask(texts) -> texts` masks the examples (default: the pipeline's Masker). Returns (entries, rows)."""
    from pipeline.data.labels import label_key

    rows = df[[text_col, label_col]].copy()
    rows[label_col] = rows[label_col].where(rows[label_col].notna(), "").astype(str).str.strip()
    rows = rows[rows[label_col] != ""]
    rows["_key"] = rows[label_col].map(label_key)
    entries = []
    for key, grp in rows.groupby("_key", sort=False):
        spellings = grp[label_col].value_counts()
        name = spellings.index[0]
        texts = grp[text_col].dropna().astype(str)
        texts = texts[texts.str.strip() != ""].drop_duplicates()
        # deterministic, and not just the first rows of the file
        picked = sorted(texts, key=lambda t: hashlib.sha256(t.encode("utf-8")).hexdigest())[:examples]
        entries.append({"label": name, "aliases": [s for s in spellings.index[1:]], "count": int(len(grp)),
                        "examples": picked})
    entries.sort(key=lambda e: (-e["count"], e["label"]))
    if examples and entries:
        if mask is None:
            from pipeline.pii.masker import Masker

            masker = Masker()
            mask = lambda texts: [r.text for r in masker.mask_texts(texts)]  # noqa: E731
        flat = [t for e in entries for t in e["examples"]]
        masked = iter(mask(flat))
        for e in entries:
            e["examples"] = [next(masked) for _ in e["examples"]]
    return entries, int(len(rows))


def draft_config(path: Path, examples: int = 3, text_col: str | None = None, label_col: str | None = None,
                 mask=None, min_class_size: int = 8) -> tuple[str, str]:
    """The config text drafted from an export, and a one-line summary of what was found."""
    path = Path(path)
    df = read_export(path)
    mapping = map_columns(df, text_col, label_col)
    entries, n = draft_taxonomy(df, mapping["text"], mapping["label"], examples, mask)
    if len(entries) < 2:
        raise UserError(f"{path}: column {mapping['label']!r} holds {len(entries)} distinct label(s); a router needs "
                        "at least two (pass --label-col COLUMN if another column holds the labels)")
    lines = [f"# Drafted by `tunegate init --from {path.name}` from {n:,} labelled rows and {len(entries)} labels.",
             "# Check `columns:`, then fill in the label descriptions you want (optional: they help the",
             "# long-prompt baseline), mark critical labels with `critical: true` and an `error_cost`.",
             "# Example tickets below are masked. Every other setting takes its default: see `tunegate init`.",
             "project: " + yaml.safe_dump(_norm(path.stem) or "my-ticket-router").strip().splitlines()[0],
             "warehouse: warehouse", "",
             "landing:",
             f"  path: {yaml.safe_dump(str(path.resolve().parent)).strip().splitlines()[0]}   # the export's folder",
             f"  patterns: [{yaml.safe_dump('*' + path.suffix.lower()).strip().splitlines()[0]}]", "",
             "# canonical field -> the export's column (null: the export has none)",
             "columns:"]
    for field in ("ticket_id", "created_at", "channel", "text", "label", "operator_id"):
        col = mapping.get(field)
        value = yaml.safe_dump(col).strip().splitlines()[0] if col is not None else "null"
        lines.append(f"  {field}: {value}".ljust(35) + f" # {FIELD_HELP[field]}")
    unmapped = [c for c in df.columns if c not in mapping.values()]
    if unmapped:
        lines.append(f"  # not used: {', '.join(map(str, unmapped))}")
    lines += ["", "taxonomy:", "  labels:"]
    for e in entries:
        rare = f"; below label_checks.min_class_size ({min_class_size})" if e["count"] < min_class_size else ""
        lines.append(f"    {_yaml_key(e['label'])}:".ljust(35) + f" # {e['count']:,} ticket{'s' if e['count'] != 1 else ''}{rare}")
        lines.append('      description: ""')
        if e["aliases"]:
            lines.append("      aliases: " + yaml.safe_dump(e["aliases"], default_flow_style=True, allow_unicode=True,
                                                           width=10_000).strip())
        lines += [f"      # e.g. {_comment(t)}" for t in e["examples"]]
    text = "\n".join(lines) + "\n"
    summary = (f"columns text={mapping['text']}, label={mapping['label']}"
               + "".join(f", {f}={mapping[f]}" for f in ("ticket_id", "created_at", "channel", "operator_id")
                         if mapping.get(f))
               + f"; {len(entries)} labels from {n:,} rows, {examples} masked examples each")
    return text, summary
