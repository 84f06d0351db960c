"""Ticket histories of any size for scale benchmarks: N distinct tickets built from Banking77 requests.

The bundled sample (`generator.py`) is one realistic export of about 14,000 tickets. A benchmark of
the nightly refresh needs 50,000 to 1,000,000 tickets that are all different texts, as a real
history is, so that dedup, masking and the label checks do real work and not cache hits. Each ticket
here is a new combination, never a copy:

    [greeting] + request A + [context clause with numbers or a merchant] + [request B] + [closing]

A and B are Banking77 train-split requests with the same label (B is a follow-up from another
customer of the same intent), so the operator label stays right. The context clauses carry dates,
amounts and merchants, and 15% of the tickets carry a name, phone number or e-mail, so masking has
PII to find. Combinations are drawn without replacement from a space of billions, so every text is
distinct; their templates (digits and fillers folded) are distinct for all but a few percent,
which dedup groups, as it should. The Banking77 test split is not used: it stays a clean holdout.

The output depends only on `n` and the seed. Tickets are spread over `days` days; `write_landing`
writes one Parquet landing file per day, so the last day's file is a nightly refresh.

    python -m pipeline.data.sample.scale --n 200000 --out /tmp/landing [--days 100] [--seed 7]
"""
from __future__ import annotations

import argparse
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

BANKING77_TRAIN = Path(str(resources.files("pipeline") / "bundled" / "banking77" / "train.csv"))
START = datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=5)))

GREETINGS = ["", "Hi, ", "Hello, ", "Hi there, ", "Good morning, ", "Good evening, ", "Hey, ",
             "Dear support, ", "Excuse me, "]
CLOSINGS = ["", " Thanks.", " Thank you!", " Please help.", " Thanks in advance.", " Regards.",
            " Any help is appreciated.", " This is urgent."]
CONTEXTS = [
    "",
    " It happened on {d} {mon}.",
    " This was on {d} {mon} around {h}:{mm}.",
    " The amount was {amt} {cur}.",
    " It was a payment of {amt} {cur} at {merchant}.",
    " I noticed it at {merchant} yesterday.",
    " I have been a customer for {y} years.",
    " I tried {k} times already.",
    " I am travelling in {country} right now.",
    " I use the app on my {device}.",
    " My last transfer was {amt} {cur}.",
    " This is the {k}th time this month.",
    " I contacted you {k} days ago about it.",
]
PII = [
    " My name is {first} {last}.",
    " You can call me on +7 7{p1} {p2} {p3} {p4}.",
    " Please reply to {fl}.{ll}{n}@mail.kz.",
    " {first} {last} here, phone 8 7{p1} {p2} {p3} {p4}.",
]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
CURRENCIES = ["KZT", "USD", "EUR", "RUB", "GBP"]
MERCHANTS = ["MAGNUM ALMATY", "SMALL ASTANA", "TECHNODOM ONLINE", "GLOVO KZ", "YANDEX GO", "AIR ASTANA",
             "ARBUZ KZ", "WOLT ALMATY", "SULPAK", "CHOCOFOOD", "MECHTA KZ", "APPLE.COM/BILL", "BOOKING.COM"]
COUNTRIES = ["Turkey", "Georgia", "the UAE", "Thailand", "Germany", "Uzbekistan", "Kyrgyzstan", "Spain"]
DEVICES = ["iPhone", "Android phone", "tablet", "laptop", "old Samsung"]
FIRST = ["Yerlan", "Dmitry", "Aigerim", "Aliya", "Timur", "Olga", "Madina", "Arman", "Dana", "Sergey",
         "Asel", "Marat", "Zhanna", "Ivan", "Kamila", "Daniyar", "Saule", "Maxim", "Ainur", "Ruslan"]
LAST = ["Abenov", "Sokolov", "Akhmetova", "Kuznetsov", "Ivanova", "Zhakupov", "Omarova", "Tulegenov",
        "Petrov", "Smirnova", "Bekov", "Kassymova", "Iskakov", "Volkov", "Nurpeisova", "Karimov"]
CHANNELS = np.array(["app", "web", "chat", "email", "phone"])
PII_SHARE = 0.15


def _load_requests() -> tuple[np.ndarray, np.ndarray]:
    df = pd.read_csv(BANKING77_TRAIN)
    df["text"] = df["text"].str.strip()
    df = df.drop_duplicates("text").sort_values(["category", "text"], kind="mergesort").reset_index(drop=True)
    return df["text"].to_numpy(dtype=object), df["category"].to_numpy(dtype=object)


def _combinations(n: int, rng: np.random.Generator, n_req: int, group_start: np.ndarray, group_size: np.ndarray,
                  label_of: np.ndarray) -> np.ndarray:
    """n distinct (a, b, greeting, context, closing) tuples; b indexes within a's label group, or -1."""
    dims = np.array([n_req, int(group_size.max()) + 1, len(GREETINGS), len(CONTEXTS), len(CLOSINGS)], dtype=np.int64)
    seen = np.zeros(0, dtype=np.int64)
    rows = np.zeros((0, 5), dtype=np.int64)
    while len(rows) < n:
        m = int((n - len(rows)) * 1.1) + 16
        a = rng.integers(0, n_req, m)
        size = group_size[label_of[a]]
        # b: another member of a's label group (never a itself), or `size`: no second request
        other = (rng.random(m) * (size - 1)).astype(np.int64)
        other = other + (other >= a - group_start[label_of[a]])
        b = np.where((rng.random(m) < 0.6) & (size > 1), other, size)
        # the empty greeting, context and closing are drawn as often as all the others together
        pick = lambda k: np.where(rng.random(m) < 0.5, 0, rng.integers(1, k, m))  # noqa: E731
        cand = np.stack([a, b, pick(dims[2]), pick(dims[3]), pick(dims[4])], axis=1)
        code = np.ravel_multi_index(cand.T, dims)
        _, first = np.unique(code, return_index=True)
        first = np.sort(first)
        cand, code = cand[first], code[first]
        fresh = ~np.isin(code, seen)
        rows = np.concatenate([rows, cand[fresh]])
        seen = np.concatenate([seen, code[fresh]])
    return rows[:n]


def generate_history(n: int, seed: int = 7, days: int = 100) -> pd.DataFrame:
    """n distinct tickets in the landing export's columns, ordered by created_at."""
    if n < 1:
        raise ValueError("n must be positive")
    rng = np.random.default_rng(seed)
    texts, labels = _load_requests()
    cats, label_of = np.unique(labels, return_inverse=True)
    group_start = np.searchsorted(label_of, np.arange(len(cats)))
    group_size = np.bincount(label_of, minlength=len(cats))
    m = n + n // 50 + 8  # a few spare combinations: two can still spell the same text
    combo = _combinations(m, rng, len(texts), group_start, group_size, label_of)
    nums = rng.integers(0, 1 << 30, size=(m, 6))
    pii_kind = np.where(rng.random(m) < PII_SHARE, rng.integers(0, len(PII), m), -1)
    out = []
    for i, (a, b, g, c, e) in enumerate(combo.tolist()):
        x = nums[i]
        lab = label_of[a]
        parts = [GREETINGS[g], texts[a]]
        slot = dict(d=1 + x[0] % 28, mon=MONTHS[x[1] % 12], h=x[2] % 24, mm=f"{x[3] % 60:02d}",
                    amt=f"{10 + x[0] % 90000}.{x[1] % 100:02d}", cur=CURRENCIES[x[2] % 5],
                    merchant=MERCHANTS[x[3] % len(MERCHANTS)], y=1 + x[4] % 15, k=2 + x[4] % 7,
                    country=COUNTRIES[x[5] % len(COUNTRIES)], device=DEVICES[x[5] % len(DEVICES)])
        parts.append(CONTEXTS[c].format(**slot))
        if b < group_size[lab]:
            other = texts[group_start[lab] + b]
            parts.append(" Also, " + other[:1].lower() + other[1:])
        if pii_kind[i] >= 0:
            f, l_ = FIRST[x[0] % len(FIRST)], LAST[x[1] % len(LAST)]
            parts.append(PII[pii_kind[i]].format(first=f, last=l_, fl=f.lower(), ll=l_.lower(), n=x[2] % 100,
                                                 p1=f"{x[3] % 100:02d}", p2=f"{x[4] % 1000:03d}",
                                                 p3=f"{x[5] % 100:02d}", p4=f"{x[0] % 100:02d}"))
        parts.append(CLOSINGS[e])
        out.append("".join(parts))
    keep = ~pd.Series(out).duplicated().to_numpy()
    if keep.sum() < n:  # pragma: no cover - needs ~2% of combinations to collide
        raise ValueError(f"could not draw {n} distinct tickets")
    take = np.flatnonzero(keep)[:n]
    out, combo = [out[i] for i in take], combo[take]
    seconds = np.sort(rng.integers(0, days * 86400, n))
    created = pd.Timestamp(START) + pd.to_timedelta(seconds, unit="s")
    df = pd.DataFrame({
        "ticket_id": [f"h{seed}-{i:07d}" for i in range(n)],
        "created_at": created.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "channel": CHANNELS[rng.integers(0, len(CHANNELS), n)],
        "customer_text": out,
        "operator_label": labels[combo[:, 0]],
        "operator_id": [f"op{k:02d}" for k in rng.integers(1, 37, n)],
    })
    return df


def write_landing(df: pd.DataFrame, folder: Path, days: int | None = None) -> list[Path]:
    """One Parquet landing file per day (tickets_YYYY_MM_DD.parquet); returns the paths in date order."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    day = df["created_at"].str.slice(0, 10)
    paths = []
    for d, part in df.groupby(day, sort=True):
        p = folder / f"tickets_{d.replace('-', '_')}.parquet"
        part.to_parquet(p, index=False)
        paths.append(p)
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--out", type=Path, required=True, help="landing folder to write (one Parquet file per day)")
    ap.add_argument("--days", type=int, default=100)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    df = generate_history(args.n, args.seed, args.days)
    paths = write_landing(df, args.out)
    print(f"{len(df)} distinct tickets in {len(paths)} daily files under {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
