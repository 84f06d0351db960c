'''The commented starter config that `tunegate init` writes.'''

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
  few_shot_k: 5
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
