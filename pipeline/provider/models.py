"""The small, real models served by the embedded local provider (`pipeline.provider.app`).

They read the prompt the way a chat model would, so prompt content changes answers: label names and
descriptions in the system message, few-shot pairs in the conversation, and the ticket last.

Prompt protocol
---------------
One module, `pipeline.model.prompts`, writes prompts and reads answers for the whole product; this
module reads requests with the same module (`read_system_prompt` for the label lines of the system
message, `answer_label` for assistant turns), so the provider and the evaluation cannot drift apart.
The last ``user`` message is the ticket to classify; earlier ``user`` / ``assistant`` pairs are few-shot
examples. The answer is the bare label, or ``{"label": "<label>"}`` when the request's
``response_format`` is ``json_object`` or ``json_schema`` (with a ``json_schema`` whose only string
property has another name, that name is used as the key; an ``enum`` on it restricts the label space).

Base models
-----------
* ``tg-small``: cosine similarity of character n-gram TF-IDF vectors between the ticket and each
  label's text (its name, plus its description when the prompt gives one); with few-shot examples
  it adds the similarity of the nearest in-context example of each label.
* ``tg-large``: a stronger lexical model: stemmed word uni/bigrams and character n-grams, label
  descriptions weighted; with few-shot examples it fits a regularised logistic regression over the
  in-context examples and the label texts (its "in-context learning").

What these models are: lexical stand-ins (TF-IDF similarity, logistic regression), deterministic.
They always answer a label from the prompt, give the same answer at any temperature, and ignore the
order of few-shot examples. Figures that only a real chat model can produce (format validity,
stability under sampling, order sensitivity) therefore mean nothing for them, and the report shows
them as not applicable rather than measuring a constant.

Test switch (off by default): `TUNEGATE_PROVIDER_SIMULATE` set to a comma-separated list of
``slips`` (when unsure, answer a paraphrase of the label at a fixed rate: 6% tg-small, 4% tg-large,
2% fine-tuned), ``recency`` (in-context examples nearer the ticket weigh up to 20% more) and
``sampling`` (at temperature > 0, sample among the top three), or ``all``. It exists only so tests can
check that the evaluation measures these behaviours when a model has them; nothing in the product
sets it, and the report says when it was on.

Fine-tuning (`FineTunedClassifier`) trains a linear model (TF-IDF features + SGD logistic regression,
one pass over the data per epoch) on the user -> assistant pairs of a chat-format JSONL file; it
answers from its own label set (restricted to the prompt's labels when those overlap).

`python -m pipeline.provider.models --bench` measures all of this on the Banking77 split.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.preprocessing import normalize

from pipeline.config import DATA_DIR
from pipeline.model import prompts as protocol

BASE_MODELS = ("tg-small", "tg-large")
NO_LABELS_ANSWER = "I can't choose a category: the prompt lists no labels."


class PromptError(ValueError):
    """A request whose messages cannot be read as a classification prompt."""


# ------------------------------------------------------------------------------- test switch
SIMULATE_ENV = "TUNEGATE_PROVIDER_SIMULATE"
SIMULATIONS = ("slips", "recency", "sampling")


@dataclass(frozen=True)
class Simulation:
    """Behaviour injected on purpose, for tests of the evaluation's figures only. All off by default."""
    slips: bool = False
    recency: bool = False
    sampling: bool = False

    @classmethod
    def parse(cls, value: str | None) -> "Simulation":
        parts = {p.strip().lower() for p in (value or "").split(",") if p.strip()}
        if "all" in parts:
            parts = set(SIMULATIONS)
        unknown = sorted(parts - set(SIMULATIONS))
        if unknown:
            raise ValueError(f"{SIMULATE_ENV}: unknown behaviour(s) {unknown}; use {', '.join(SIMULATIONS)} or all")
        return cls(**{p: True for p in parts})

    @property
    def active(self) -> bool:
        return self.slips or self.recency or self.sampling

    def names(self) -> list[str]:
        return [n for n in SIMULATIONS if getattr(self, n)]


@functools.lru_cache(maxsize=8)
def _simulation_for(value: str) -> Simulation:
    return Simulation.parse(value)


def current_simulation() -> Simulation:
    """The test switch as set in this process's environment (off unless `TUNEGATE_PROVIDER_SIMULATE` is set)."""
    return _simulation_for(os.environ.get(SIMULATE_ENV, ""))


# ----------------------------------------------------------------------------------------- prompt
@dataclass(frozen=True)
class Prompt:
    labels: tuple[str, ...]
    descriptions: dict[str, str]
    examples: tuple[tuple[str, str], ...]  # (ticket text, label)
    ticket: str
    context_key: str  # hash of everything but the ticket: the cache key for precomputed state


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}]
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content)


_LABELS_CACHE = None


def parse_labels(system_text: str) -> tuple[list[str], dict[str, str]]:
    """(labels, descriptions) from a system message; cached, the same prompt comes back per ticket."""
    global _LABELS_CACHE
    if _LABELS_CACHE is None:
        _LABELS_CACHE = _LRU(256)
    labels, descriptions = _LABELS_CACHE.get_or_build(system_text, lambda: _parse_labels(system_text))
    return list(labels), dict(descriptions)


def _parse_labels(system_text: str) -> tuple[list[str], dict[str, str]]:
    return protocol.read_system_prompt(system_text)


class PrefixKey:
    """The (role, content text, name) of each message before the last: hashed once, compared exactly."""

    __slots__ = ("items", "_hash")

    def __init__(self, items: tuple):
        self.items = items
        self._hash = hash(items)  # TypeError for unhashable parts

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return self is other or (type(other) is PrefixKey and self._hash == other._hash and self.items == other.items)


def prefix_key(messages: Sequence[dict]) -> PrefixKey | None:
    """A hashable identity of everything before the last message (role, content text and name of each
    message), or None when the messages cannot be keyed (they then take the uncached path).

    Requests of one evaluation share the system prompt and the few-shot examples and differ only in
    the ticket, so whatever depends on the prefix alone (the parsed context, its token count) is
    computed once per prefix: building this key is one pass over the messages, with no serialisation."""
    try:
        key = tuple((m["role"], c if type(c := m.get("content")) is str else _content_text(c), m.get("name"))
                    for m in messages[:-1])
        if any(e[2] is not None and type(e[2]) is not str for e in key):
            return None  # names of other types: compare equal across types (1 == True), count differently
        return PrefixKey(key)
    except (TypeError, KeyError, AttributeError):
        return None


@dataclass(frozen=True)
class _Context:
    """Everything a prompt is made of but its ticket: parsed once per distinct message prefix."""
    labels: tuple[str, ...]
    descriptions: dict[str, str]
    examples: tuple[tuple[str, str], ...]
    context_key: str


_CONTEXTS = None


def _read_turns(messages: Sequence[dict]) -> tuple[list[str], list[tuple[str, str]]]:
    system_parts: list[str] = []
    turns: list[tuple[str, str]] = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or "role" not in msg:
            raise PromptError(f"messages[{i}] must be an object with a role")
        role = msg["role"]
        text = _content_text(msg.get("content"))
        if role in ("system", "developer"):
            system_parts.append(text)
        elif role in ("user", "assistant"):
            turns.append((role, text))
        elif role == "tool":
            continue
        else:
            raise PromptError(f"messages[{i}].role {role!r} is not one of system, developer, user, assistant")
    return system_parts, turns


def _context(system_parts: list[str], history: list[tuple[str, str]]) -> _Context:
    examples: list[tuple[str, str]] = []
    j = 0
    while j + 1 < len(history):
        if history[j][0] == "user" and history[j + 1][0] == "assistant":
            examples.append((history[j][1], protocol.answer_label(history[j + 1][1])))
            j += 2
        else:
            j += 1
    system_text = "\n".join(system_parts)
    labels, descriptions = parse_labels(system_text)
    key_src = json.dumps([system_text, examples], ensure_ascii=False)
    key = hashlib.sha1(key_src.encode("utf-8")).hexdigest()
    return _Context(tuple(labels), descriptions, tuple(examples), key)


def _prefix_context(prefix: Sequence[dict]) -> _Context:
    system_parts, turns = _read_turns(prefix)
    return _context(system_parts, turns)


def parse_prompt(messages: Sequence[dict], key: PrefixKey | None = None) -> Prompt:
    """The prompt of a chat request. When the last message is the user's ticket, the rest is parsed
    once per distinct prefix (`prefix_key`; pass `key` when the caller already computed it)."""
    global _CONTEXTS
    if not messages:
        raise PromptError("messages must be a non-empty list")
    last = messages[-1]
    if isinstance(last, dict) and last.get("role") == "user":
        if key is None:
            key = prefix_key(messages)
        if key is not None:
            if _CONTEXTS is None:
                _CONTEXTS = _LRU(64)
            ctx = _CONTEXTS.get_or_build(key, lambda: _prefix_context(messages[:-1]))
            return Prompt(ctx.labels, dict(ctx.descriptions), ctx.examples, _content_text(last.get("content")),
                          ctx.context_key)
    system_parts, turns = _read_turns(messages)
    if not turns or turns[-1][0] != "user":
        raise PromptError("the last message must be a user message (the ticket to classify)")
    ctx = _context(system_parts, turns[:-1])
    return Prompt(ctx.labels, dict(ctx.descriptions), ctx.examples, turns[-1][1], ctx.context_key)


# --------------------------------------------------------------------------------- text features
_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(ENGLISH_STOP_WORDS) - {"not", "no", "never", "cannot", "nothing", "without", "why", "how", "where", "when"}


def _stem(tok: str) -> str:
    for suf, keep in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("ly", ""), ("s", "")):
        if tok.endswith(suf) and len(tok) - len(suf) >= 3:
            return tok[: len(tok) - len(suf)] + keep
    return tok


def word_tokens(text: str) -> list[str]:
    toks = [_stem(t) for t in _WORD.findall(text.lower().replace("_", " ")) if t not in _STOP]
    return toks + [f"{a} {b}" for a, b in zip(toks, toks[1:])]


def _clean(text: str) -> str:
    return " ".join(text.lower().replace("_", " ").split())


def label_text(label: str) -> str:
    return label.replace("_", " ").replace("-", " ")


class _LRU:
    """A thread-safe LRU cache. Concurrent misses on one key build it once: the others wait for it
    (so eight concurrent first requests of a new few-shot context fit its scorer once, not eight times)."""

    def __init__(self, size: int):
        self.size = size
        self.data: OrderedDict = OrderedDict()
        self.lock = threading.Lock()
        self._pending: dict[Any, threading.Event] = {}

    def get_or_build(self, key, build: Callable[[], Any]):
        with self.lock:
            if key in self.data:
                self.data.move_to_end(key)
                return self.data[key]
            pending = self._pending.get(key)
            if pending is None:
                self._pending[key] = threading.Event()
        if pending is not None:  # another thread is building it
            pending.wait()
            with self.lock:
                if key in self.data:
                    self.data.move_to_end(key)
                    return self.data[key]
            return build()  # that build failed (or was evicted already): build here, raising its error
        try:
            value = build()
            with self.lock:
                self.data[key] = value
                while len(self.data) > self.size:
                    self.data.popitem(last=False)
            return value
        finally:
            with self.lock:
                self._pending.pop(key).set()


def _fast_tfidf(vec: TfidfVectorizer) -> Callable[[str], sparse.csr_matrix]:
    """vec.transform for one text without scikit-learn's per-call validation overhead (same values
    for the sublinear_tf + l2 settings used here)."""
    analyzer, vocab, idf = vec.build_analyzer(), vec.vocabulary_, vec.idf_
    n = len(vocab)

    def transform(text: str) -> sparse.csr_matrix:
        counts: dict[int, int] = {}
        for tok in analyzer(text):
            j = vocab.get(tok)
            if j is not None:
                counts[j] = counts.get(j, 0) + 1
        if not counts:
            return sparse.csr_matrix((1, n))
        cols = np.fromiter(sorted(counts), dtype=np.int64, count=len(counts))
        vals = (1.0 + np.log([counts[j] for j in cols])) * idf[cols]
        vals /= np.sqrt((vals * vals).sum())
        return sparse.csr_matrix((vals, cols, np.array([0, len(cols)])), shape=(1, n))

    return transform


# -------------------------------------------------------------------------------- prompt scorers
class _Scorer:
    """Precomputed state for one (system prompt, few-shot examples) context."""

    labels: list[str]

    def scores(self, ticket: str) -> np.ndarray:  # one score per label
        raise NotImplementedError


def _example_label_matrix(ex_labels: list[str], labels: list[str]) -> sparse.csr_matrix:
    idx = {l: i for i, l in enumerate(labels)}
    rows = [i for i, l in enumerate(ex_labels)]
    cols = [idx[l] for l in ex_labels]
    return sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(ex_labels), len(labels)))


RECENCY_BIAS = 0.2  # only with the test switch `recency`


def recency_weights(n: int, bias: float = 0.0) -> np.ndarray:
    """Weights of n in-context examples by position: all 1.0, or (test switch `recency`) from 1.0 for
    the first to 1 + bias for the last, the way a chat model leans towards the nearest examples."""
    if n <= 1 or not bias:
        return np.ones(n)
    return 1.0 + bias * np.arange(n) / (n - 1)


def _max_per_label(sims: np.ndarray, ex_cols: np.ndarray, n_labels: int) -> np.ndarray:
    out = np.zeros(n_labels)
    np.maximum.at(out, ex_cols, sims)
    return out


class _SmallScorer(_Scorer):
    """Character n-gram TF-IDF: ticket vs label text, plus nearest in-context example per label."""

    def __init__(self, labels: list[str], descriptions: dict[str, str], examples: list[tuple[str, str]],
                 recency_bias: float = 0.0):
        self.labels = labels
        docs = [_clean(label_text(l) + " " + descriptions.get(l, "")) for l in labels]
        ex_texts = [_clean(t) for t, _ in examples]
        self.vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True)
        self.vec.fit(docs + ex_texts)
        self.L = self.vec.transform(docs)
        idx = {l: i for i, l in enumerate(labels)}
        self.ex_cols = np.array([idx[l] for _, l in examples], dtype=int)
        self.E = self.vec.transform(ex_texts) if ex_texts else None
        self.ex_w = recency_weights(len(examples), recency_bias)
        self._one = _fast_tfidf(self.vec)

    def scores(self, ticket: str) -> np.ndarray:
        t = self._one(_clean(ticket))
        s = (self.L @ t.T).toarray().ravel()
        if self.E is not None:
            ex = (self.E @ t.T).toarray().ravel() * self.ex_w
            s = s + _max_per_label(ex, self.ex_cols, len(self.labels))
        return s


class _LargeScorer(_Scorer):
    """Stemmed words + character n-grams; descriptions weighted; kNN + prototype over examples."""

    desc_weight = 1.0
    char_weight = 1.5

    def __init__(self, labels: list[str], descriptions: dict[str, str], examples: list[tuple[str, str]],
                 recency_bias: float = 0.0):
        self.labels = labels
        names = [_clean(label_text(l)) for l in labels]
        descs = [_clean(descriptions.get(l, "")) for l in labels]
        ex_texts = [_clean(t) for t, _ in examples]
        corpus = names + [d for d in descs if d] + ex_texts
        self.wvec = TfidfVectorizer(analyzer=word_tokens, sublinear_tf=True).fit(corpus)
        self.cvec = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True).fit(corpus)
        name_m = self._feats(names)
        desc_m = self._feats([d or n for d, n in zip(descs, names)])
        self.L = normalize(name_m + self.desc_weight * desc_m)
        self.lr = None
        if ex_texts:
            # in-context learning: a regularised logistic regression over the examples and label texts
            train_x = ex_texts + names + [f"{n} {d}" for n, d in zip(names, descs) if d]
            train_y = [l for _, l in examples] + labels + [l for l, d in zip(labels, descs) if d]
            weights = np.concatenate([recency_weights(len(examples), recency_bias), np.ones(len(train_y) - len(examples))])
            self.lr = LogisticRegression(C=10.0, max_iter=300).fit(self._feats(train_x), train_y,
                                                                   sample_weight=weights)
            self.lr_cols = np.array([list(self.lr.classes_).index(l) for l in labels])

    def _feats(self, texts: list[str]) -> sparse.csr_matrix:
        return normalize(sparse.hstack([self.wvec.transform(texts), self.char_weight * self.cvec.transform(texts)]).tocsr())

    def _feats_one(self, text: str) -> sparse.csr_matrix:
        if not hasattr(self, "_w1"):
            self._w1, self._c1 = _fast_tfidf(self.wvec), _fast_tfidf(self.cvec)
        m = sparse.hstack([self._w1(text), self.char_weight * self._c1(text)]).tocsr()
        norm = np.sqrt((m.data * m.data).sum())
        return m / norm if norm > 0 else m

    def scores(self, ticket: str) -> np.ndarray:
        t = self._feats_one(_clean(ticket))
        s = (self.L @ t.T).toarray().ravel()
        if self.lr is not None:
            return self.lr.predict_proba(t)[0][self.lr_cols]
        return s


_SCORERS: dict[str, type[_Scorer]] = {"tg-small": _SmallScorer, "tg-large": _LargeScorer}


# ---------------------------------------------------------------------------------- answering
@dataclass
class Decision:
    label: str  # the answer text (a label, or a paraphrase when the model slips)
    in_label_space: bool
    candidates: list[tuple[str, float]] = field(default_factory=list)


def _stable_unit(*parts: Any) -> float:
    h = hashlib.sha1("\x1f".join(map(str, parts)).encode("utf-8")).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def _choose(labels: list[str], scores: np.ndarray, *, temperature: float, seed: int | None, ticket: str,
            model: str, slip_rate: float, sharpness: float, allow_slip: bool = True,
            simulation: Simulation | None = None) -> Decision:
    """The top-scoring label. Sampling at temperature > 0 and paraphrase slips happen only under the
    test switch (`Simulation`); by default the answer is the argmax at every temperature."""
    sim = simulation or current_simulation()
    order = np.argsort(-scores, kind="stable")
    top = [(labels[i], float(scores[i])) for i in order[:5]]
    pick = int(order[0])
    if sim.sampling and temperature and temperature > 0 and len(order) > 1:
        k = min(3, len(order))
        cand = order[:k]
        z = (scores[cand] - scores[cand[0]]) * sharpness / max(temperature, 1e-3)
        p = np.exp(z)
        p /= p.sum()
        rng = np.random.default_rng(None if seed is None else
                                    int.from_bytes(hashlib.sha1(f"{seed}\x1f{ticket}".encode()).digest()[:8], "big"))
        pick = int(cand[rng.choice(k, p=p)])
    label = labels[pick]
    # test switch `slips`: when unsure, answer a paraphrase of the label instead of the label
    margin = float(scores[order[0]] - scores[order[1]]) if len(order) > 1 else 1.0
    if sim.slips and allow_slip and slip_rate > 0 and margin < 0.02 and _stable_unit(model, ticket) < slip_rate:
        return Decision(label_text(label), False, top)
    return Decision(label, True, top)


class BaseModelRunner:
    """A base model: answers a classification prompt from the prompt alone."""

    def __init__(self, name: str, cache_size: int = 64):
        if name not in _SCORERS:
            raise KeyError(name)
        self.name = name
        self._cache = _LRU(cache_size)
        self.slip_rate = 0.06 if name == "tg-small" else 0.04  # only with the test switch `slips`
        self.sharpness = 25.0

    def scorer(self, prompt: Prompt, allowed: Sequence[str] | None = None) -> _Scorer | None:
        # the label space and the examples depend on the context and `allowed` only: looked up first,
        # derived (and the scorer fitted) once per context
        bias = RECENCY_BIAS if current_simulation().recency else 0.0
        key = (prompt.context_key, tuple(allowed or ()), bias)
        return self._cache.get_or_build(key, lambda: self._build_scorer(prompt, allowed, bias))

    def _build_scorer(self, prompt: Prompt, allowed: Sequence[str] | None, bias: float = 0.0) -> _Scorer | None:
        labels = list(prompt.labels)
        for _, l in prompt.examples:  # few-shot labels join the label space
            if l not in labels and l:
                labels.append(l)
        if allowed:
            labels = [l for l in labels if l in allowed] or list(allowed)
        if not labels:
            return None
        examples = [(t, l) for t, l in prompt.examples if l in labels]
        return _SCORERS[self.name](labels, dict(prompt.descriptions), examples, recency_bias=bias)

    def answer(self, prompt: Prompt, *, temperature: float = 0.0, seed: int | None = None,
               allowed: Sequence[str] | None = None) -> Decision:
        sc = self.scorer(prompt, allowed)
        if sc is None:
            return Decision(NO_LABELS_ANSWER, False)
        return _choose(sc.labels, sc.scores(prompt.ticket), temperature=temperature, seed=seed,
                       ticket=prompt.ticket, model=self.name, slip_rate=self.slip_rate, sharpness=self.sharpness,
                       allow_slip=not allowed)  # an enum in a strict schema constrains the answer


# -------------------------------------------------------------------------------- fine-tuning
class TrainingDataError(ValueError):
    """A training or validation file the fine-tuning job cannot use; the message says why."""


def read_chat_jsonl(data: bytes, what: str = "training file") -> list[tuple[str, str, list[str]]]:
    """(ticket, label, prompt labels) per line of a chat-format JSONL file; errors name the line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TrainingDataError(f"{what} is not UTF-8 text: {exc}") from None
    out: list[tuple[str, str, list[str]]] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise TrainingDataError(f"{what}, line {n}: not valid JSON ({exc.msg})") from None
        msgs = obj.get("messages") if isinstance(obj, dict) else None
        if not isinstance(msgs, list) or not msgs:
            raise TrainingDataError(f"{what}, line {n}: expected an object with a non-empty 'messages' list")
        if not isinstance(msgs[-1], dict) or msgs[-1].get("role") != "assistant":
            raise TrainingDataError(f"{what}, line {n}: the last message must be the assistant's answer")
        label = protocol.answer_label(_content_text(msgs[-1].get("content")))
        if not label:
            raise TrainingDataError(f"{what}, line {n}: the assistant answer is empty")
        try:
            prompt = parse_prompt(msgs[:-1])
        except PromptError as exc:
            raise TrainingDataError(f"{what}, line {n}: {exc}") from None
        if not prompt.ticket.strip():
            raise TrainingDataError(f"{what}, line {n}: the user message is empty")
        out.append((prompt.ticket, label, list(prompt.labels)))
    if not out:
        raise TrainingDataError(f"{what} has no examples")
    return out


def auto_epochs(n_examples: int) -> int:
    """OpenAI's rule: 3 epochs, more for tiny sets (>= ~100 example passes), fewer for huge ones."""
    if n_examples * 3 < 100:
        return min(25, math.ceil(100 / n_examples))
    if n_examples * 3 > 25000:
        return max(1, 25000 // n_examples)
    return 3


def _ft_features(base: str):
    from sklearn.pipeline import FeatureUnion

    if base == "tg-large":
        parts = [("w", TfidfVectorizer(analyzer=word_tokens, sublinear_tf=True, min_df=2)),
                 ("c", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, min_df=2))]
    else:
        parts = [("c", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, min_df=2))]
    return FeatureUnion(parts)


class FineTunedClassifier:
    """A linear model trained on chat-format examples; persisted with pickle by the provider."""

    def __init__(self, base: str, seed: int):
        self.base = base
        self.seed = seed
        self.features = None
        self.clf: SGDClassifier | None = None
        self.classes: list[str] = []
        self.slip_rate = 0.02  # only with the test switch `slips`

    def fit(self, train: list[tuple[str, str]], val: list[tuple[str, str]] | None, n_epochs: int,
            on_epoch: Callable[[int, dict], None] | None = None, should_stop: Callable[[], bool] | None = None,
            ) -> list[dict]:
        texts = [_clean(t) for t, _ in train]
        y = np.array([l for _, l in train])
        self.classes = sorted(set(y.tolist()))
        if len(self.classes) < 2:
            raise TrainingDataError(
                f"the training file has a single label ({self.classes[0]!r}): a classifier needs at least two labels")
        counts = {c: int((y == c).sum()) for c in self.classes}
        self.features = _ft_features(self.base).fit(texts)
        X = self.features.transform(texts)
        if X.shape[1] == 0:
            raise TrainingDataError("the training texts have no usable characters")
        self.clf = SGDClassifier(loss="log_loss", alpha=1e-5, average=True, random_state=self.seed,
                                 learning_rate="optimal")
        rng = np.random.default_rng(self.seed)
        Xv = yv = None
        if val:
            Xv = self.features.transform([_clean(t) for t, _ in val])
            yv = np.array([l for _, l in val])
        history = []
        classes = np.array(self.classes)
        for epoch in range(1, n_epochs + 1):
            if should_stop and should_stop():
                break
            perm = rng.permutation(len(y))  # one pass over the shuffled data per epoch
            self.clf.partial_fit(X[perm], y[perm], classes=classes)
            proba = self.clf.predict_proba(X)
            col = {c: i for i, c in enumerate(self.clf.classes_)}
            p_true = proba[np.arange(len(y)), [col[c] for c in y]]
            m = {"epoch": epoch, "step": epoch * len(y),
                 "train_loss": float(-np.mean(np.log(np.clip(p_true, 1e-12, 1)))),
                 "train_accuracy": float(np.mean(self.clf.classes_[proba.argmax(1)] == y))}
            if Xv is not None:
                m["valid_accuracy"] = float(np.mean(self.clf.predict(Xv) == yv))
                known = np.isin(yv, classes)
                if known.any():
                    pv = self.clf.predict_proba(Xv[known])
                    pt = pv[np.arange(known.sum()), [col[c] for c in yv[known]]]
                    m["valid_loss"] = float(-np.mean(np.log(np.clip(pt, 1e-12, 1))))
            history.append(m)
            if on_epoch:
                on_epoch(epoch, m)
        self.label_counts = counts
        return history

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_fast", None)  # closures, rebuilt on first use
        return state

    def scores(self, ticket: str) -> np.ndarray:
        assert self.clf is not None and self.features is not None
        if getattr(self, "_fast", None) is None:
            self._fast = [_fast_tfidf(t) for _, t in self.features.transformer_list]
        text = _clean(ticket)
        x = sparse.hstack([f(text) for f in self._fast]).tocsr()
        # the one-vs-rest logistic probabilities of predict_proba, without per-call validation
        z = np.asarray(x @ self.clf.coef_.T).ravel() + self.clf.intercept_
        p = 1.0 / (1.0 + np.exp(-z))
        total = p.sum()
        return p / total if total > 0 else np.full_like(p, 1.0 / len(p))

    def answer(self, prompt: Prompt, *, temperature: float = 0.0, seed: int | None = None,
               allowed: Sequence[str] | None = None) -> Decision:
        labels = list(self.clf.classes_)
        s = self.scores(prompt.ticket)
        space = set(prompt.labels) & set(labels)
        if allowed:
            space = (space or set(labels)) & set(allowed) or space
        if space and len(space) < len(labels):
            keep = np.array([l in space for l in labels])
            labels = [l for l, k in zip(labels, keep) if k]
            s = s[keep]
        # slips are keyed on what the model was trained from (base model, training seed), not on its
        # served name, whose job id differs from run to run: the same training gives the same answers
        return _choose(labels, s, temperature=temperature, seed=seed, ticket=prompt.ticket,
                       model=f"ft:{self.base}:{self.seed}", slip_rate=self.slip_rate, sharpness=8.0,
                       allow_slip=not allowed)


# -------------------------------------------------------------------------------- benchmark
def _bench(train_csv: str, test_csv: str, taxonomy: str, limit: int | None) -> None:  # pragma: no cover
    import time

    import pandas as pd
    import yaml

    tr = pd.read_csv(train_csv)
    te = pd.read_csv(test_csv)
    if limit:
        te = te.sample(n=min(limit, len(te)), random_state=0)
    labels = sorted(tr["category"].unique())
    tax = yaml.safe_load(open(taxonomy, encoding="utf-8"))["labels"]
    desc = {l: (tax.get(l) or {}).get("description", "") for l in labels}
    rows = []
    for model in BASE_MODELS:
        runner = BaseModelRunner(model)
        settings: list[tuple[str, str, list]] = [
            ("zero-shot, names", labels, []),
            ("zero-shot, descriptions", desc, []),
        ]
        for k in (1, 3, 5):
            ex = tr.groupby("category", sort=True).sample(n=k, random_state=13)
            settings.append((f"few-shot k={k}", labels, list(zip(ex["text"], ex["category"]))))
        for name, tax, ex in settings:
            t0 = time.perf_counter()
            correct = slips = 0
            for text, gold in zip(te["text"], te["category"]):
                d = runner.answer(parse_prompt(protocol.build_messages(tax, text, "long", ex)))
                correct += d.label == gold
                slips += not d.in_label_space
            dt = time.perf_counter() - t0
            rows.append((model, name, correct / len(te), slips / len(te), len(te) / dt))
            print(f"{model:9s} {name:26s} acc={correct/len(te):.3f} off-list={slips/len(te):.3f} {len(te)/dt:.0f}/s",
                  flush=True)
        ft = FineTunedClassifier(model, seed=13)
        t0 = time.perf_counter()
        ft.fit(list(zip(tr["text"], tr["category"])), None, auto_epochs(len(tr)))
        fit_s = time.perf_counter() - t0
        correct = slips = 0
        for text, gold in zip(te["text"], te["category"]):
            d = ft.answer(parse_prompt(protocol.build_messages(labels, text, "short")))
            correct += d.label == gold
            slips += not d.in_label_space
        print(f"{model:9s} {'fine-tuned (' + str(auto_epochs(len(tr))) + ' ep)':26s} acc={correct/len(te):.3f} "
              f"off-list={slips/len(te):.3f} fit={fit_s:.1f}s", flush=True)


if __name__ == "__main__":  # pragma: no cover
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", action="store_true")
    ap.add_argument("--train", default=str(DATA_DIR / "banking77" / "train.csv"))
    ap.add_argument("--test", default=str(DATA_DIR / "banking77" / "test.csv"))
    ap.add_argument("--taxonomy", default=str(DATA_DIR / "taxonomy.yaml"))
    ap.add_argument("--limit", type=int, default=None)
    a = ap.parse_args()
    if a.bench:
        _bench(a.train, a.test, a.taxonomy, a.limit)
