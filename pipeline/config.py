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
from typing import ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DATA_DIR = Path(str(resources.files("pipeline") / "bundled"))
DEFAULT_TAXONOMY_FILE = DATA_DIR / "taxonomy.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LabelSpec(_Strict):
    description: str = ""
    aliases: list[str] = Field(default_factory=list)
    critical: bool = False
    error_cost: float | None = None  # cost of one misrouted ticket of this label; None -> business default


class TaxonomySpec(_Strict):
    labels: dict[str, LabelSpec]
    # Known renames (old name -> new name). Renames that are not declared are detected and reported.
    renames: dict[str, str] = Field(default_factory=dict)

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
    min_text_chars: int = 3
    max_text_chars: int = 2000


class MaskingSpec(_Strict):
    score_threshold: float = 0.4
    # Name of the environment variable holding the salt for cross-run stable pseudonyms.
    # When it is unset, placeholders are numbered per ticket (<PERSON_1>) and carry no token.
    salt_env: str = "TUNEGATE_PII_SALT"
    batch_size: int = 256
    # Company names are off by default: in bank tickets they are mostly merchants and banks (the intent
    # signal: "Uber charged me twice"), not data about the customer.
    mask_organizations: bool = False


class DedupSpec(_Strict):
    num_perm: int = 128
    ngram: int = 5  # character n-gram size for near-duplicate shingles
    threshold: float = 0.8  # Jaccard threshold for near-duplicates
    max_cluster_size: int = 25  # guard against chained similarity swallowing a class
    seed: int = 13
    backend: Literal["rensa", "datasketch"] = "rensa"  # MinHash LSH implementation
    # LSH bands; None -> the fewest candidates that still catch a pair at the threshold with p >= 0.999
    lsh_bands: int | None = None
    # A short ticket with one typo loses up to 2n of its shingles: two template texts of
    # typo_min_chars..typo_max_chars characters one edit apart (insert, delete, substitute, swap two
    # neighbours) are near duplicates. Found by a deletion-neighbourhood index, verified exactly; 0 disables.
    typo_edits: Literal[0, 1] = 1
    typo_min_chars: int = 20
    typo_max_chars: int = 120
    # Containment: the shorter text's shingles (almost) all in the longer one. None (default) disables it:
    # on Banking77 the words a longer text adds are mostly qualifiers that change the intent ("... at
    # stores", "... in China"), see benchmarks/bench_dedup.py; fillers are dropped by normalize_template.
    containment: float | None = None  # |A & B| / min(|A|, |B|), e.g. 0.9
    containment_min_shingles: int = 15  # the shorter text needs this many shingles (~19 characters)
    # ... and the pair must keep this Jaccard; LSH candidates are generated at min(threshold, this)
    containment_min_jaccard: float = 0.6


class EngineSpec(_Strict):
    """Where the heavy stages run; never changes a result, so it is outside the data hash."""
    kind: Literal["local", "ray"] = "local"  # ray: masking, leak guard and dedup banding as Ray Data jobs
    address: str | None = None  # Ray cluster address; None starts a local Ray instance
    ray_workers: int | None = None  # masking actors on Ray; None: one per CPU Ray reports
    # Persisted dedup index (warehouse/index/dedup): a refresh hashes and queries only new templates.
    dedup_index: bool = True


class LabelCheckSpec(_Strict):
    policy: Literal["flag", "drop"] = "flag"
    cv_folds: int = 5
    min_class_size: int = 8
    seed: int = 13
    # a label whose last use is before another label's first use, with similar texts, is a rename
    rename_min_similarity: float = 0.5
    # share of the old label's rows allowed after the new label's first use (stragglers after a switch)
    rename_max_overlap: float = 0.02
    rename_min_rows: int = 5  # an unknown label needs this many rows before it can be called a rename
    # cleanlab find_label_issues filter: low_self_confidence caught 96% of planted errors on Banking77
    # where the default prune_by_noise_rate caught 73%
    issue_filter_by: Literal["low_self_confidence", "prune_by_noise_rate", "both", "confident_learning",
                             "low_normalized_margin", "predicted_neq_given"] = "low_self_confidence"


class SplitSpec(_Strict):
    train: float = 0.8
    val: float = 0.1
    test: float = 0.1
    seed: int = 13
    near_dup_threshold: float = 0.8  # the blocking cross-split check uses the same MinHash settings

    @model_validator(mode="after")
    def _sum_to_one(self) -> "SplitSpec":
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"split ratios must sum to 1, got {total}")
        return self


class EndpointSpec(_Strict):
    base_url: str | None = None  # None -> the embedded local provider (or OPENAI_BASE_URL if set)
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = 60.0
    max_retries: int = 5
    concurrency: int = 8
    poll_interval_s: float = 2.0


class CandidateModel(_Strict):
    name: str
    price_input_per_1m: float = 0.0  # price per 1M prompt tokens
    price_output_per_1m: float = 0.0
    price_training_per_1m: float = 0.0  # per 1M trained tokens (fine-tuning)
    ft_price_input_per_1m: float | None = None  # inference price of its fine-tuned variant
    ft_price_output_per_1m: float | None = None
    finetune: bool = True


class FinetuneSpec(_Strict):
    base_model: str = "tg-small"
    suffix: str = "tunegate"
    n_epochs: int | Literal["auto"] = "auto"
    # The system prompt the model is trained and then served with. "short" (the label list) is what
    # fine-tuning is for: the model learns the descriptions from examples, and every training and
    # inference call is ~5x cheaper than with the long prompt.
    prompt_style: Literal["short", "long"] = "short"
    max_tokens_per_example: int = 16385
    # How long the finetune_job asset follows a job before it stops waiting (the job keeps running;
    # the `finetune_job_sensor` re-materializes the asset when it reaches a terminal state).
    follow_timeout_s: float = 3600.0


class EvaluationSpec(_Strict):
    models: list[CandidateModel] = Field(
        default_factory=lambda: [
            CandidateModel(name="tg-small", price_input_per_1m=0.15, price_output_per_1m=0.60,
                           price_training_per_1m=3.0, ft_price_input_per_1m=0.30, ft_price_output_per_1m=1.20),
            CandidateModel(name="tg-large", price_input_per_1m=2.50, price_output_per_1m=10.0,
                           price_training_per_1m=25.0, ft_price_input_per_1m=3.75, ft_price_output_per_1m=15.0),
        ]
    )
    few_shot_k: int = 5  # examples per label, from train only
    few_shot_max: int = 400  # cap on all examples in one prompt (77 labels x 5 = 385)
    repeats: int = 2  # runs per candidate, for the stability figure
    bootstrap: int = 1000
    sample_size: int | None = None  # None -> the whole frozen test set
    seed: int = 13


class BusinessSpec(_Strict):
    monthly_volume: int = 60000
    seconds_per_correction: float = 90.0
    hourly_cost: float = 30.0
    default_error_cost: float = 0.0  # extra cost of a misrouted ticket beyond the correction time
    currency: str = "USD"
    min_accuracy_gain: float = 0.01  # a change must beat the incumbent by this much to be recommended
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
    def landing_path(self) -> Path:
        p = Path(os.path.expanduser(self.landing.path))
        return p if p.is_absolute() else self.warehouse_path / p

    @property
    def catalog_path(self) -> Path:
        return self.warehouse_path / "catalog.duckdb"

    def _digest(self, include: set[str] | None = None, exclude: set[str] | None = None) -> str:
        payload = self.model_dump(mode="json", include=include, exclude=exclude)
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

    @property
    def labels(self) -> list[str]:
        assert self.taxonomy is not None
        return list(self.taxonomy.labels)


class ConfigError(ValueError):
    """A config file that cannot be read or does not validate; the message says where."""


def load_taxonomy(path: Path) -> TaxonomySpec:
    with open(path, encoding="utf-8") as fh:
        return TaxonomySpec.model_validate(yaml.safe_load(fh))


def load_config(path: str | os.PathLike | None = None, **overrides) -> TunegateConfig:
    """Load and validate a config file; `None` gives the embedded defaults.

    TUNEGATE_WAREHOUSE, when set, overrides the warehouse folder (for demos and tests);
    TUNEGATE_ENGINE and TUNEGATE_RAY_ADDRESS override `engine.kind` and `engine.address`."""
    data: dict = {}
    base_dir = Path.cwd()
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"config file not found: {p}")
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: the top level must be a mapping")
        base_dir = p.resolve().parent
        if isinstance(data.get("taxonomy"), str):  # taxonomy: path/to/taxonomy.yaml
            tax_path = Path(data["taxonomy"])
            tax_path = tax_path if tax_path.is_absolute() else base_dir / tax_path
            data["taxonomy"] = yaml.safe_load(tax_path.read_text(encoding="utf-8"))
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
    except Exception as exc:  # pydantic.ValidationError -> a readable message
        where = f"{path}" if path else "defaults"
        raise ConfigError(f"invalid config ({where}):\n{exc}") from None
