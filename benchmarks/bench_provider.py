"""Benchmark: the embedded model provider over HTTP, zero-shot vs long-prompt vs few-shot requests.

Starts the provider (`LocalProvider.start` on a temporary state directory; stopped by its PID at the
end), builds the evaluation's three prompt kinds with `pipeline.model.prompts` on Banking77 test tickets:

  - zero_shot:   short system prompt (label names), then the ticket;
  - long_prompt: long system prompt (rules + label descriptions), then the ticket;
  - few_shot:    short system prompt, k examples per label from TRAIN as user/assistant pairs
                 (k=5 x 77 labels = 770 extra messages), then the ticket;

sends N requests of each kind per model through `complete_many` at concurrency 8 (temperature 0, as
the evaluation does), and prints req/s and p50/p95 latency per kind side by side, plus the
few-shot / zero-shot p50 ratio.

``--dump FILE`` writes every answer and usage figure (JSON) and ``--compare FILE`` checks them
against an earlier dump: the same request must get the same answer and the same token counts.

``--client untransformed`` posts the same bodies without the openai SDK's client-side parameter
transform (see `UntransformedClient`), to separate the provider's cost from the client's.

    python benchmarks/bench_provider.py [--n 200] [--models tg-small,tg-large] [--k 5] [--structured]
                                        [--client sdk|untransformed] [--dump out.json] [--compare before.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import openai  # noqa: E402
from openai.types.chat import ChatCompletion  # noqa: E402

from pipeline.model import prompts as pr  # noqa: E402
from pipeline.model.endpoint import LocalProvider, complete_many  # noqa: E402
from pipeline.model.evaluation import select_few_shot  # noqa: E402
from pipeline.config import DATA_DIR

DATA = DATA_DIR / "banking77"
TAXONOMY = Path(__file__).resolve().parents[1] / "pipeline" / "bundled" / "taxonomy.yaml"
KINDS = ("zero_shot", "long_prompt", "few_shot")


def _taxonomy(labels: list[str]) -> dict[str, str]:
    import yaml

    tax = yaml.safe_load(TAXONOMY.read_text(encoding="utf-8")).get("labels", {}) if TAXONOMY.exists() else {}
    return {l: ((tax.get(l) or {}).get("description", "") if isinstance(tax.get(l), dict) else "") for l in labels}


class UntransformedClient:
    """For `complete_many`: `chat.completions.create(**req)` posts `req` as the JSON body as it is,
    through the SDK's own request machinery (same errors, status codes, response parsing), but without
    the SDK's recursive per-field transform of the parameters, whose cost grows with the number of
    messages (hundreds of milliseconds of client CPU for a 770-message few-shot request). It measures
    the provider rather than the client; plain dicts of strings, as the evaluation sends, go out the same."""

    def __init__(self, client: openai.OpenAI):
        self._client = client
        self.chat = SimpleNamespace(completions=SimpleNamespace(create=self._create))

    def with_options(self, **kwargs) -> "UntransformedClient":
        return UntransformedClient(self._client.with_options(**kwargs))

    def _create(self, **req):
        return self._client.post("/chat/completions", body=req, cast_to=ChatCompletion)


def build_requests(model: str, texts: list[str], taxonomy: dict[str, str], shots: pd.DataFrame,
                   structured: bool) -> dict[str, list[dict]]:
    fmt = pr.label_response_format(list(taxonomy)) if structured else None
    out: dict[str, list[dict]] = {}
    for kind in KINDS:
        style = "long" if kind == "long_prompt" else "short"
        ex = shots if kind == "few_shot" else None
        reqs = []
        for t in texts:
            req = {"model": model, "temperature": 0.0, "max_tokens": 16, "seed": 13,
                   "messages": pr.build_messages(taxonomy, t, style, examples=ex)}
            if fmt is not None:
                req["response_format"] = fmt
            reqs.append(req)
        out[kind] = reqs
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="requests per kind and model")
    ap.add_argument("--models", default="tg-small,tg-large")
    ap.add_argument("--k", type=int, default=5, help="few-shot examples per label")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--structured", action="store_true", help="send the json_schema response format")
    ap.add_argument("--warmup", type=int, default=1, help="requests per kind sent before timing (not counted)")
    ap.add_argument("--client", choices=("sdk", "untransformed"), default="sdk",
                    help="sdk: client.chat.completions.create, as pipeline.model.endpoint sends today; untransformed: "
                         "the same request body posted without the SDK's client-side parameter transform")
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--dump", help="write answers and usage to this JSON file")
    ap.add_argument("--compare", help="compare answers and usage with this earlier --dump file")
    a = ap.parse_args()

    train = pd.read_csv(Path(a.data) / "train.csv")
    test = pd.read_csv(Path(a.data) / "test.csv")
    labels = sorted(train["category"].unique())
    taxonomy = _taxonomy(labels)
    texts = test.sample(n=min(a.n, len(test)), random_state=0)["text"].astype(str).tolist()
    examples = select_few_shot(train, labels, a.k, a.k * len(labels), seed=13, text_col="text", label_col="category")
    shots = pd.DataFrame(examples, columns=["text", "label"])
    print(f"{len(texts)} tickets per kind, {len(labels)} labels, few-shot: {len(examples)} examples "
          f"({2 * len(examples)} extra messages), concurrency {a.concurrency}, client: {a.client}", flush=True)

    dump: dict[str, list] = {}
    with tempfile.TemporaryDirectory(prefix="bench_provider_") as tmp:
        provider = LocalProvider.start(Path(tmp) / "state")
        try:
            client = openai.OpenAI(base_url=provider.url, api_key=provider.api_key, max_retries=0, timeout=120)
            if a.client == "untransformed":
                client = UntransformedClient(client)
            print(f"provider pid {provider.pid} at {provider.url}\n", flush=True)
            header = f"{'model':9s} {'kind':12s} {'req/s':>7s} {'p50 ms':>8s} {'p95 ms':>8s} {'errors':>6s}"
            print(header)
            print("-" * len(header))
            for model in [m.strip() for m in a.models.split(",") if m.strip()]:
                reqs = build_requests(model, texts, taxonomy, shots, a.structured)
                p50: dict[str, float] = {}
                for kind in KINDS:
                    if a.warmup:
                        complete_many(client, reqs[kind][: a.warmup], concurrency=1, max_retries=0)
                    t0 = time.perf_counter()
                    res = complete_many(client, reqs[kind], concurrency=a.concurrency, max_retries=0)
                    wall = time.perf_counter() - t0
                    lat = np.array([r.latency_s for r in res if r.ok]) * 1000
                    errors = sum(not r.ok for r in res)
                    p50[kind] = float(np.percentile(lat, 50)) if len(lat) else float("nan")
                    p95 = float(np.percentile(lat, 95)) if len(lat) else float("nan")
                    print(f"{model:9s} {kind:12s} {len(res) / wall:7.1f} {p50[kind]:8.1f} {p95:8.1f} {errors:6d}",
                          flush=True)
                    dump[f"{model}/{kind}"] = [[r.content, r.prompt_tokens, r.completion_tokens, r.error]
                                               for r in res]
                print(f"{model:9s} few-shot / zero-shot p50 ratio: {p50['few_shot'] / p50['zero_shot']:.1f}x  "
                      f"(long-prompt / zero-shot: {p50['long_prompt'] / p50['zero_shot']:.1f}x)\n", flush=True)
        finally:
            provider.stop()

    if a.dump:
        Path(a.dump).write_text(json.dumps(dump))
        print(f"answers written to {a.dump}")
    if a.compare:
        before = json.loads(Path(a.compare).read_text())
        bad = 0
        for key, rows in dump.items():
            old = before.get(key)
            if old is None:
                print(f"{key}: not in {a.compare}")
                continue
            diff = [i for i, (x, y) in enumerate(zip(old, rows)) if x != y] + list(range(min(len(old), len(rows)),
                                                                                        max(len(old), len(rows))))
            same = len(rows) - len(diff)
            print(f"{key:22s} identical answers and usage: {same}/{len(rows)}")
            for i in diff[:3]:
                print(f"    row {i}: before {old[i] if i < len(old) else None} after {rows[i] if i < len(rows) else None}")
            bad += len(diff)
        print("comparison:", "IDENTICAL" if bad == 0 else f"{bad} rows differ")
        if bad:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
