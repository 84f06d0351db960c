"""Project configuration: one YAML file, validated with pydantic, that describes the task.

The config names the landing folder and column mapping, the label taxonomy (with descriptions,
aliases, critical labels and error costs), thresholds for masking, dedup, label checks and splits,
the model endpoint, the candidates to compare with their prices, and the business figures used for
the ROI. Secrets (API keys, the pseudonym salt) are never in the file: it names environment variables.

`load_config(None)` returns the embedded defaults: the bundled Banking77 sample, a warehouse under
`./warehouse`, and the embedded local model provider.
"""
from __future__ import annotations

import hashlib
import json
import os
from importlib import resources
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.errors import UserError

DATA_DIR = Path(str(resources.files("pipeline") / "bundled"))
DEFAULT_TAXONOMY_FILE = DATA_DIR / "taxonomy.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LabelSpec(_Strict):
    description: str = ""
    aliases: list[str] = Field(default_factory=list)
    critical: bool = False
    error_cost: float | None = Field(None, ge=0)  # cost of one misrouted ticket of this label; None -> business default


class TaxonomySpec(_Strict):
    labels: dict[str, LabelSpec]
    # Known renames (old name -> new name). Renames that are not declared are detected and reported.
    renames: dict[str, str] = Field(default_factory=dict)

    @field_validator("labels", mode="before")
    @classmethod
    def _shorthands(cls, v):
        """`label:` alone (no description yet), `label: a description`, or a plain list of names."""
        if isinstance(v, list) and all(isinstance(x, str) for x in v):
            return {x: {} for x in v}
        if isinstance(v, dict):
            return {k: ({} if spec is None else {"description": spec} if isinstance(spec, str) else spec)
                    for k, spec in v.items()}
        return v

    @field_validator("labels")
    @classmethod
    def _non_empty(cls, v: dict) -> dict:
        if len(v) < 2:
            raise ValueError("the taxonomy needs at least two labels")
        return v


class LandingSpec(_Strict):
    path: str = "landing"  # relative paths are relative to the warehouse root
    patterns: list[str] = Field(default_factory=lambda: ["*.csv", "*.jsonl", "*.json", "*.parquet"])
    encoding: str = "utf-8"
    # A symlink in landing is reported and skipped unless this is true (it may point anywhere).
    follow_symlinks: bool = False
    # Limits on what one record may hold; a record over a limit is quarantined as `over_limit`.
    max_json_depth: int = Field(default=32, ge=2)
    max_number_digits: int = Field(default=64, ge=1)
    max_line_chars: int = Field(default=1_000_000, ge=1000)  # one physical line (CSV or JSONL)
    max_field_chars: int = Field(default=100_000, ge=100)  # one CSV field


class ColumnMap(_Strict):
    """Canonical column -> column name in the export (defaults: the bundled sample's export).

    Only text and label are required; a None ticket_id derives ids from file and row."""

    ticket_id: str | None = "ticket_id"
    created_at: str | None = "created_at"
    channel: str | None = "channel"
    text: str = "customer_text"
    label: str = "operator_label"
    operator_id: str | None = "operator_id"


class LimitsSpec(_Strict):
    min_text_chars: int = Field(3, ge=0)
    max_text_chars: int = Field(2000, ge=1)

    @model_validator(mode="after")
    def _order(self) -> "LimitsSpec":
        if self.max_text_chars < self.min_text_chars:
            raise ValueError(f"max_text_chars ({self.max_text_chars}) is below min_text_chars ({self.min_text_chars})")
        return self


class MaskingSpec(_Strict):
    score_threshold: float = Field(0.4, ge=0, le=1)
    # Name of the environment variable holding the salt for cross-run stable pseudonyms.
    # When it is unset, placeholders are numbered per ticket (<PERSON_1>) and carry no token.
    salt_env: str = "TUNEGATE_PII_SALT"
    batch_size: int = Field(256, ge=1)
    # Company names are off by default: in bank tickets they are mostly merchants and banks (the intent
    # signal: "Uber charged me twice"), not data about the customer.
    mask_organizations: bool = False
    # The not-a-name vocabulary (pipeline/pii/vocabulary.py): words in at least this share of the landing
    # tickets (and at least common_word_min_tickets of them), the taxonomy's label words, and these words,
    # are never a person on their own; a name-type mask made only of label words is dropped.
    common_word_min_share: float = Field(default=0.01, ge=0, le=1)
    common_word_min_tickets: int = Field(default=5, ge=1)
    not_name_words: list[str] = Field(default_factory=list)
    # Generic places a user names ("downtown", "the airport", "the mall", "penn station"): where the person
    # is or goes, but no name; on HWU64 they are most of the place spans a gazetteer cannot find (docs/pii.md)
    mask_generic_places: bool = True
    # A name NER finds in a lower-case text's Capitalised copy may rest on rare words that are no English
    # word ("einstein"), not only on a known name word. Off: on HWU64 it finds more names but masks more
    # clean utterances (the trade-off in docs/pii.md)
    lower_case_rare_names: bool = False
    # Masking results kept in the raw zone between runs (pipeline/pii/mask_cache.py): a refresh masks only
    # texts it has not seen, with the vocabulary of the last full masking while the unseen texts are at
    # most cache_refit_share of the texts it was learnt on
    cache: bool = True
    cache_refit_share: float = Field(default=0.10, ge=0, le=1)


class DedupSpec(_Strict):
    num_perm: int = Field(128, ge=16, le=1024)
    ngram: int = Field(5, ge=1, le=20)  # character n-gram size for near-duplicate shingles
    threshold: float = Field(0.8, gt=0, le=1)  # Jaccard threshold for near-duplicates
    max_cluster_size: int = Field(25, ge=2)  # guard against chained similarity swallowing a class
    seed: int = 13
    backend: Literal["rensa", "datasketch"] = "rensa"  # MinHash LSH implementation
    # LSH bands; None -> the fewest candidates that still catch a pair at the threshold with p >= 0.999
    lsh_bands: int | None = Field(None, ge=1)
    # A short ticket with one typo loses up to 2n of its shingles: two template texts of
    # typo_min_chars..typo_max_chars characters one edit apart (insert, delete, substitute, swap two
    # neighbours) are near duplicates. Found by a deletion-neighbourhood index, verified exactly; 0 disables.
    typo_edits: Literal[0, 1] = 1
    typo_min_chars: int = Field(20, ge=1)
    typo_max_chars: int = Field(120, ge=1)
    # Containment: the shorter text's shingles (almost) all in the longer one. None (default) disables it:
    # on Banking77 the words a longer text adds are mostly qualifiers that change the intent ("... at
    # stores", "... in China"), see benchmarks/bench_dedup.py; fillers are dropped by normalize_template.
    containment: float | None = Field(None, gt=0, le=1)  # |A & B| / min(|A|, |B|), e.g. 0.9
    containment_min_shingles: int = Field(15, ge=1)  # the shorter text needs this many shingles (~19 characters)
    # ... and the pair must keep this Jaccard; LSH candidates are generated at min(threshold, this)
    containment_min_jaccard: float = Field(0.6, gt=0, le=1)


class EngineSpec(_Strict):
    """Where the heavy stages run; never changes a result, so it is outside the data hash."""
    kind: Literal["local", "ray"] = "local"  # ray: masking, leak guard and dedup banding as Ray Data jobs
    address: str | None = None  # Ray cluster address; None starts a local Ray instance
    ray_workers: int | None = None  # masking actors on Ray; None: one per CPU Ray reports
    # Persisted dedup index (warehouse/index/dedup): a refresh hashes and queries only new templates.
    dedup_index: bool = True


class LabelCheckSpec(_Strict):
    policy: Literal["flag", "drop"] = "flag"
    cv_folds: int = Field(5, ge=2)
    min_class_size: int = Field(8, ge=1)
    seed: int = 13
    # a label whose last use is before another label's first use, with similar texts, is a rename
    rename_min_similarity: float = Field(0.5, ge=0, le=1)
    # share of the old label's rows allowed after the new label's first use (stragglers after a switch)
    rename_max_overlap: float = Field(0.02, ge=0, le=1)
    rename_min_rows: int = Field(5, ge=1)  # an unknown label needs this many rows before it can be called a rename
    # cleanlab find_label_issues filter: on the 100 wrong labels planted in Banking77 train by
    # tests/test_labels.py, low_self_confidence flags 98 where the default prune_by_noise_rate flags 74
    issue_filter_by: Literal["low_self_confidence", "prune_by_noise_rate", "both", "confident_learning",
                             "low_normalized_margin", "predicted_neq_given"] = "low_self_confidence"
    # keep the model of the last full check (warehouse/index/labels/) and score only new rows with it
    # (pipeline/data/label_model.py); refit when the rows scored that way exceed this share of the rows
    # fitted, when a label appears that the model does not know, or when the new rows' mean label
    # quality falls more than refit_drift below the fit's
    incremental: bool = True
    refit_after_share: float = Field(0.10, ge=0, le=1)
    refit_drift: float = Field(0.10, ge=0, le=1)


class SplitSpec(_Strict):
    train: float = Field(0.8, gt=0, lt=1)
    val: float = Field(0.1, ge=0, lt=1)
    test: float = Field(0.1, gt=0, lt=1)
    seed: int = 13
    near_dup_threshold: float = Field(0.8, gt=0, le=1)  # the blocking cross-split check uses the same MinHash settings

    @model_validator(mode="after")
    def _sum_to_one(self) -> "SplitSpec":
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"split ratios must sum to 1, got {total}")
        return self


class EndpointSpec(_Strict):
    """An OpenAI-compatible endpoint and how to load it.

    `endpoint` in the config is the default for every role; `finetune.endpoint` and
    `evaluation.models[].endpoint` override it field by field (what they leave out comes from `endpoint`)."""

    base_url: str | None = None  # None -> the embedded local provider (or OPENAI_BASE_URL if set)
    api_key_env: str = "OPENAI_API_KEY"
    # a request's timeout: timeout_s plus timeout_per_1k_tokens_s per 1,000 prompt tokens (a long
    # few-shot prompt on a slow server takes longer than a short one)
    timeout_s: float = Field(60.0, gt=0)
    timeout_per_1k_tokens_s: float = Field(15.0, ge=0)
    max_retries: int = Field(5, ge=0)
    concurrency: int = Field(8, ge=1)  # the most requests in flight at once
    # requests in flight at the start; concurrency rises while latency holds and halves on 429, 5xx, timeouts
    concurrency_start: int = Field(2, ge=1)
    poll_interval_s: float = Field(2.0, gt=0)

    @model_validator(mode="after")
    def _limits(self) -> "EndpointSpec":
        if self.concurrency < 1 or self.concurrency_start < 1:
            raise ValueError("concurrency and concurrency_start must be at least 1")
        return self


class CandidateModel(_Strict):
    name: str
    price_input_per_1m: float = Field(0.0, ge=0)  # price per 1M prompt tokens
    price_output_per_1m: float = Field(0.0, ge=0)
    price_training_per_1m: float = Field(0.0, ge=0)  # per 1M trained tokens (fine-tuning)
    ft_price_input_per_1m: float | None = Field(None, ge=0)  # inference price of its fine-tuned variant
    ft_price_output_per_1m: float | None = Field(None, ge=0)
    finetune: bool = True  # false: prompts only for this model (also automatic on an endpoint without fine-tuning)
    endpoint: EndpointSpec | None = None  # where this model is served (None: the default `endpoint`)
    # the model's context window in tokens; None: as the endpoint reports it, else unlimited.
    # Few-shot examples are chosen to fit it.
    context_tokens: int | None = Field(None, gt=0)


class FinetuneSpec(_Strict):
    base_model: str = "tg-small"
    suffix: str = "tunegate"
    n_epochs: Annotated[int, Field(ge=1, le=50)] | Literal["auto"] = "auto"
    # The system prompt the model is trained and then served with. "short" (the label list) is what
    # fine-tuning is for: the model learns the descriptions from examples, and every training and
    # inference call is ~5x cheaper than with the long prompt.
    prompt_style: Literal["short", "long"] = "short"
    max_tokens_per_example: int = Field(16385, ge=1)
    # How long the finetune_job asset follows a job before it stops waiting (the job keeps running;
    # the `finetune_job_sensor` re-materializes the asset when it reaches a terminal state).
    follow_timeout_s: float = Field(3600.0, ge=0)
    # where jobs run and fine-tuned models are served (None: the default `endpoint`). An endpoint
    # without a fine-tuning API is detected before any paid work: prompts are then evaluated alone.
    endpoint: EndpointSpec | None = None


class EvaluationSpec(_Strict):
    models: list[CandidateModel] = Field(
        default_factory=lambda: [
            CandidateModel(name="tg-small", price_input_per_1m=0.15, price_output_per_1m=0.60,
                           price_training_per_1m=3.0, ft_price_input_per_1m=0.30, ft_price_output_per_1m=1.20),
            CandidateModel(name="tg-large", price_input_per_1m=2.50, price_output_per_1m=10.0,
                           price_training_per_1m=25.0, ft_price_input_per_1m=3.75, ft_price_output_per_1m=15.0),
        ]
    )
    few_shot_k: int = Field(5, ge=0)  # examples per label, from train only
    few_shot_max: int = Field(400, ge=0)  # cap on all examples in one prompt (77 labels x 5 = 385)
    repeats: int = Field(2, ge=1)  # runs per candidate, for the stability figure
    bootstrap: int = Field(1000, ge=100)
    sample_size: int | None = Field(None, ge=1)  # None -> the whole frozen test set
    seed: int = 13
    # response_format for answers: "on" asks for a JSON schema (an enum of the labels), "off" for free
    # text, "auto" tries a JSON schema, then json_object, then free text, deciding per model on the
    # first refusal. Format validity then measures the model and the server's constraint together.
    structured: Literal["auto", "on", "off"] = "off"

    @field_validator("structured", mode="before")
    @classmethod
    def _yaml_switch(cls, v):  # YAML reads a bare on / off as true / false
        return {True: "on", False: "off"}.get(v, v) if isinstance(v, bool) else v
    # A labelled file of tickets that never entered the pipeline (CSV, JSONL or Parquet with columns text
    # and label; relative to the config file). Every candidate is also scored on it, through the same
    # masking and prompts, and the report shows frozen-test and fresh accuracy side by side. The demo
    # uses Banking77's official test split. fresh_sample_size: a stratified sample of it (None: all).
    fresh_sample: str | None = None
    fresh_sample_size: int | None = None
    # Score the fine-tuned candidates and the best prompt candidate on the fresh rows unmasked as well, to
    # show what masking costs in accuracy. This sends the fresh file's raw text to the endpoint: None (auto)
    # does it only when every such candidate runs on the embedded local provider; true: on any endpoint.
    masking_ablation: bool | None = None


class BusinessSpec(_Strict):
    monthly_volume: int = Field(60000, ge=1)
    seconds_per_correction: float = Field(90.0, ge=0)
    hourly_cost: float = Field(30.0, ge=0)
    default_error_cost: float = Field(0.0, ge=0)  # extra cost of a misrouted ticket beyond the correction time
    currency: str = "USD"
    min_accuracy_gain: float = Field(0.01, ge=0, le=1)  # a change must beat the incumbent by this much to be recommended
    max_payback_months: float = Field(12.0, gt=0)  # a fine-tuned model must pay its training back by then
    # Share of monthly tickets per label, from production routing (normalised; an unlisted label
    # counts 0). None: the frozen test set's label mix, which dedup and sampling may have shifted.
    volume_shares: dict[str, float] | None = None

    @field_validator("volume_shares")
    @classmethod
    def _shares(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        if v is not None and (any(x < 0 for x in v.values()) or sum(v.values()) <= 0):
            raise ValueError("volume_shares must be non-negative with a positive sum")
        return v


class TunegateConfig(_Strict):
    project: str = "tunegate-demo"
    warehouse: str = "warehouse"
    landing: LandingSpec = Field(default_factory=LandingSpec)
    columns: ColumnMap = Field(default_factory=ColumnMap)
    limits: LimitsSpec = Field(default_factory=LimitsSpec)
    taxonomy: TaxonomySpec | None = None  # None -> the bundled Banking77 taxonomy
    masking: MaskingSpec = Field(default_factory=MaskingSpec)
    dedup: DedupSpec = Field(default_factory=DedupSpec)
    label_checks: LabelCheckSpec = Field(default_factory=LabelCheckSpec)
    splits: SplitSpec = Field(default_factory=SplitSpec)
    endpoint: EndpointSpec = Field(default_factory=EndpointSpec)
    finetune: FinetuneSpec = Field(default_factory=FinetuneSpec)
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    business: BusinessSpec = Field(default_factory=BusinessSpec)
    engine: EngineSpec = Field(default_factory=EngineSpec)

    # Filled by load_config: where the file lives, so relative paths resolve against it.
    base_dir: str = Field(default=".", exclude=True)

    @model_validator(mode="after")
    def _fill_taxonomy(self) -> "TunegateConfig":
        if self.taxonomy is None:
            self.taxonomy = load_taxonomy(DEFAULT_TAXONOMY_FILE)
        unknown = sorted(set(self.business.volume_shares or ()) - set(self.taxonomy.labels))
        if unknown:
            raise ValueError(f"business.volume_shares names labels not in the taxonomy: {', '.join(unknown[:5])}")
        return self

    # -- derived paths -------------------------------------------------------------------------
    @property
    def warehouse_path(self) -> Path:
        p = Path(os.path.expanduser(self.warehouse))
        return p if p.is_absolute() else (Path(self.base_dir) / p).resolve()

    @property
    def fresh_sample_path(self) -> Path | None:
        if not self.evaluation.fresh_sample:
            return None
        p = Path(os.path.expanduser(self.evaluation.fresh_sample))
        return p if p.is_absolute() else (Path(self.base_dir) / p).resolve()

    @property
    def landing_path(self) -> Path:
        p = Path(os.path.expanduser(self.landing.path))
        return p if p.is_absolute() else self.warehouse_path / p

    @property
    def catalog_path(self) -> Path:
        return self.warehouse_path / "catalog.duckdb"

    def _digest(self, include: set[str] | None = None, exclude: set[str] | None = None) -> str:
        payload = self.model_dump(mode="json", include=include, exclude=exclude)
        # where a role is served is not what it computes: endpoints never enter a hash
        payload.get("finetune", {}).pop("endpoint", None)
        for m in payload.get("evaluation", {}).get("models", []):
            m.pop("endpoint", None)
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    DATA_SECTIONS: ClassVar[set[str]] = {"columns", "limits", "taxonomy", "masking", "dedup", "label_checks", "splits"}

    def data_hash(self) -> str:
        """Hash of the settings that shape the data (versions of the data half depend on these only)."""
        return self._digest(include=self.DATA_SECTIONS)

    def finetune_hash(self) -> str:
        """Hash that keys a fine-tuning job: the data settings and the fine-tuning settings."""
        return self._digest(include=self.DATA_SECTIONS | {"finetune"})

    def hash(self) -> str:
        """Hash of everything but paths and the endpoint (evaluations and reports depend on all of it)."""
        return self._digest(exclude={"warehouse", "landing", "endpoint", "base_dir", "project", "engine"})

    def endpoint_for(self, override: EndpointSpec | None) -> EndpointSpec:
        """The default endpoint with the fields an override sets (finetune.endpoint, models[].endpoint)."""
        if override is None:
            return self.endpoint
        return EndpointSpec(**{**self.endpoint.model_dump(), **override.model_dump(exclude_unset=True)})

    @property
    def finetune_endpoint(self) -> EndpointSpec:
        return self.endpoint_for(self.finetune.endpoint)

    def model_endpoint(self, name: str) -> EndpointSpec:
        """Where base model `name` is evaluated."""
        m = next((m for m in self.evaluation.models if m.name == name), None)
        return self.endpoint_for(m.endpoint if m is not None else None)

    @property
    def labels(self) -> list[str]:
        assert self.taxonomy is not None
        return list(self.taxonomy.labels)


class ConfigError(UserError, ValueError):
    """A config file that cannot be read or does not validate; the one-line message says where and how to fix it."""


class _Loader(yaml.SafeLoader):
    """Safe YAML loading that refuses mapping keys YAML 1.1 turns into booleans (`yes:`, `no:`, `on:`)."""

    def construct_mapping(self, node, deep=False):
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag == "tag:yaml.org,2002:bool":
                raise _BoolKey(key_node.value, key_node.start_mark.line + 1)
        return super().construct_mapping(node, deep=deep)


class _BoolKey(Exception):
    def __init__(self, text: str, line: int):
        super().__init__(text)
        self.text, self.line = text, line


def read_yaml(path: Path):
    """Parse a YAML file; any problem is a ConfigError of one line that names the file, line and fix."""
    try:
        return yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506 (a SafeLoader)
    except _BoolKey as exc:
        raise ConfigError(f"{path} line {exc.line}: the key `{exc.text}` is read by YAML as a boolean; "
                          f"quote it (\"{exc.text}\":) if it is a label") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = (getattr(exc, "problem", None) or str(exc)).strip().replace("\n", " ")
        hint = "use spaces, not tabs, to indent" if "\\t" in problem or "\t" in problem else \
            "check the indentation and quote values that contain ': ' or start with a special character"
        raise ConfigError(f"{path}{where}: not valid YAML ({problem}); {hint}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; save it as UTF-8") from None


_BRANCH = {"int", "float", "str", "bool", "none", "dict", "list"}
_RANGE = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}


def _loc(loc: tuple) -> tuple:
    """The field path of a pydantic error, without the union-branch parts pydantic adds."""
    return tuple(x for x in loc if not (isinstance(x, str) and (x in _BRANCH or "[" in x or x.startswith("constrained"))))


def _explain(err: dict) -> str:
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    if isinstance(value, bool) and kind in ("string_type", "literal_error", "enum"):
        return f"YAML read `{str(value).lower()}` as a boolean (it reads yes/no/on/off so); quote it"
    if kind in _RANGE:
        bound = next(iter(ctx.values()))
        return f"must be {_RANGE[kind]} {bound} (got {value!r})"
    if kind == "extra_forbidden":
        return "unknown key: check its spelling and indentation"
    if kind == "missing":
        return "required: add it"
    if kind in ("model_type", "dict_type") and isinstance(value, (str, int, float, list)):
        return f"must be a mapping of keys, not {type(value).__name__} {str(value)[:40]!r}"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    msg = err["msg"]
    return f"{msg[0].lower()}{msg[1:]} (got {str(value)[:40]!r})" if value is not None and not isinstance(value, dict) else msg


def describe_validation_error(exc, where: str) -> str:
    """One line for a pydantic ValidationError: the first problem, how many labels share it, what else failed.

    Errors under `taxonomy.labels.<label>` are grouped, so 150 labels with the same mistake give one
    line, not 150 errors."""
    groups: dict[tuple, list] = {}
    for err in exc.errors(include_url=False):
        loc = _loc(err["loc"])
        is_label = loc[:2] == ("taxonomy", "labels") and len(loc) > 2
        gen = ("taxonomy", "labels", "<label>") + loc[3:] if is_label else loc
        gen = tuple("<n>" if isinstance(x, int) else x for x in gen)
        groups.setdefault(gen, []).append((loc, err))
    gen, first = next(iter(groups.items()))
    loc, err = first[0]
    field = ".".join(str(x) for x in loc) or "(top level)"
    line = f"{where}: `{field}`: {_explain(err)}"
    if len(first) > 1:
        same = len({x[0][2] for x in first if x[0][:2] == ("taxonomy", "labels") and len(x[0]) >= 3}) - 1
        line += (f"; {same} more label(s) have the same problem" if same > 0
                 else f"; {len(first) - 1} more value(s) there have the same problem")
    if "<label>" in gen and err["type"] in ("model_type", "dict_type"):
        line += " (write each label as `name:`, `name: description` or `name: {description: ..., critical: true}`)"
    others = [".".join(str(x) for x in errs[0][0]) for errs in list(groups.values())[1:]]
    if others:
        line += f" (also: {', '.join('`' + o + '`' for o in others[:3])}{' and more' if len(others) > 3 else ''})"
    return line


def load_taxonomy(path: Path) -> TaxonomySpec:
    from pydantic import ValidationError

    try:
        return TaxonomySpec.model_validate(read_yaml(path))
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, str(path)).replace("`taxonomy.", "`")) from None


def load_config(path: str | os.PathLike | None = None, **overrides) -> TunegateConfig:
    """Load and validate a config file; `None` gives the embedded defaults.

    TUNEGATE_WAREHOUSE, when set, overrides the warehouse folder (for demos and tests);
    TUNEGATE_ENGINE and TUNEGATE_RAY_ADDRESS override `engine.kind` and `engine.address`. Every problem
    is a ConfigError whose message is one line naming the file, the field and the fix."""
    from pydantic import ValidationError

    data: dict = {}
    base_dir = Path.cwd()
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"config file not found: {p} (write one with `tunegate init --out {p}`)")
        data = read_yaml(p) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: the top level must be a mapping of sections (project:, columns:, taxonomy:, ...)")
        base_dir = p.resolve().parent
        if isinstance(data.get("taxonomy"), str):  # taxonomy: path/to/taxonomy.yaml
            tax_path = Path(data["taxonomy"])
            tax_path = tax_path if tax_path.is_absolute() else base_dir / tax_path
            if not tax_path.exists():
                raise ConfigError(f"{p}: `taxonomy`: file {tax_path} not found")
            data["taxonomy"] = read_yaml(tax_path)
    if os.environ.get("TUNEGATE_WAREHOUSE"):  # set by `tunegate demo --warehouse` and the tests
        data["warehouse"] = os.environ["TUNEGATE_WAREHOUSE"]
    if os.environ.get("TUNEGATE_ENGINE"):  # set by `tunegate run --engine ray [--ray-address ADDR]`
        engine = dict(data.get("engine") or {}, kind=os.environ["TUNEGATE_ENGINE"])
        if os.environ.get("TUNEGATE_RAY_ADDRESS"):
            engine["address"] = os.environ["TUNEGATE_RAY_ADDRESS"]
        data["engine"] = engine
    data.update(overrides)
    data["base_dir"] = str(base_dir)
    try:
        return TunegateConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, str(path) if path else "config")) from None
