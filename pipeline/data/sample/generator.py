"""The bundled demo sample: Banking77 turned into a realistic Kazakhstan bank ticket export.

`generate_sample` draws from the bundled Banking77 training split only (10,003 labelled customer
requests), gives every request synthetic ticket metadata spread over January to September 2026, and
writes the landing files a bank's ticket system would export: one file per quarter in a different
format (CSV, JSONL, Parquet), a legacy call-centre export in cp1251 and an empty file.

Problems are planted on purpose so that every stage has something real to find, and each one is
recorded in a JSON manifest by ticket id (or file and line for rows that cannot be parsed): personal
data (names, e-mails, phone numbers, card numbers, IBANs, Kazakhstan IINs; all invented and
checksum-valid), exact and near duplicates, system templates, label conflicts, label spelling
variants, an undeclared label rename, empty, whitespace-only and oversized texts, missing labels,
broken rows, unparseable timestamps, reused ticket ids, a re-export overlap, a non-UTF-8 file and a
handful of deliberately wrong labels. The manifest never contains the personal data itself; the
invented values planted are listed beside it, in `<manifest>_pii_values.json`, for the leak tests.

Banking77's official test split (3,080 requests) never enters the landing files: `write_fresh_sample`
writes it as the fresh sample (`fresh_sample.csv`: ticket_id, text, label), tickets of the same kind
that never went through the pipeline, on which `tunegate evaluate --fresh` checks the frozen-test
estimate.

The output depends only on the seed and `n_tickets`: the same arguments give byte-identical files.

    python -m pipeline.data.sample.generator --out landing/ --manifest landing_manifest.json [--seed 7] [--n 2000]
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import random
import re
import string
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from importlib import resources
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.pii.checksums import iban_ok, iban_with_check, kz_control_digit, kz_control_ok, luhn_complete, luhn_ok

BANKING77_DIR = Path(str(resources.files("pipeline") / "bundled" / "banking77"))

COLUMNS = ["ticket_id", "created_at", "channel", "customer_text", "operator_label", "operator_id"]
UNKNOWN_COLUMN = "priority"
TZ = timezone(timedelta(hours=5))  # Asia/Almaty (UTC+5 since 2024)
PERIOD_START = datetime(2026, 1, 1, tzinfo=TZ)
PERIOD_END = datetime(2026, 9, 30, 23, 59, 59, tzinfo=TZ)

FILE_Q1 = "tickets_2026_q1.csv"
FILE_Q2 = "tickets_2026_q2.jsonl"
FILE_Q3 = "tickets_2026_q3.parquet"
FILE_LEGACY = "tickets_legacy_cp1251.csv"
FILE_EMPTY = "tickets_empty.csv"
QUARTER_FILES = {1: FILE_Q1, 2: FILE_Q2, 3: FILE_Q3}

RENAME_OLD = "top_up_failed"
RENAME_NEW = "topup_declined"
RENAME_FROM = date(2026, 5, 18)

PII_TYPES = ["PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "KZ_IIN"]
PII_SHARE = 0.15

CHANNELS = ["app", "web", "chat", "email", "phone"]
CHANNEL_WEIGHTS = [45, 20, 15, 12, 8]
N_OPERATORS = 36
MIN_TICKETS = 20  # below this the planted kinds no longer fit

# Planted fractions of the source rows (with a floor so that small samples still show each kind).
FRACTIONS = {
    "exact_duplicates": (0.020, 4),
    "near_duplicates": (0.015, 4),
    "label_conflicts": (0.006, 2),
    "label_variants": (0.012, 4),
    "mislabelled": (0.0035, 3),
    "missing_labels": (0.003, 2),
    "empty_texts": (0.002, 2),
    "whitespace_texts": (0.0015, 2),
    "oversized_texts": (0.0012, 2),
    "bad_timestamps": (0.002, 3),
    "duplicate_ticket_ids": (0.0025, 2),
    "reexport_overlap": (0.001, 2),
    "legacy_cyrillic": (0.003, 2),
}
TEMPLATE_FRACTION = 0.03  # templated tickets, spread over the templates

# -- names and PII ----------------------------------------------------------------------------

FIRST_M = ["Yerlan", "Dmitry", "Nursultan", "Timur", "Sergey", "Bauyrzhan", "Arman", "Alexei",
           "Daniyar", "Ivan", "Askar", "Marat", "Kairat", "Maxim", "Yerzhan", "Azamat", "Ruslan",
           "Nikolai", "Olzhas", "Zhandos"]
FIRST_F = ["Aigerim", "Aliya", "Dana", "Asel", "Olga", "Madina", "Gulnara", "Yelena", "Zhanna",
           "Saule", "Natalia", "Aruzhan", "Svetlana", "Dinara", "Anna", "Kamila", "Ainur",
           "Tatiana", "Assem", "Botagoz"]
SURNAMES = ["Abenov", "Sokolov", "Akhmetov", "Kuznetsov", "Ivanov", "Zhakupov", "Omarov",
            "Tulegenov", "Petrov", "Smirnov", "Bekov", "Kassymov", "Iskakov", "Volkov",
            "Mukhamedzhanov", "Sultanbekov", "Orlov", "Nurpeisov", "Baimukhanov", "Popov",
            "Seitkali", "Dzhaksybekov", "Yessenov", "Karimov"]
PATRONYM_ROOTS = ["Nurlan", "Yerlan", "Serik", "Bolat", "Sergey", "Askar", "Marat", "Kairat",
                  "Ivan", "Nikolai", "Timur", "Daulet"]
CYRILLIC_NAMES = ["Дмитрий Соколов", "Айгерим Нурлановна", "Ерлан Абенов", "Алия Ахметова",
                  "Тимур Жакупов", "Ольга Кузнецова", "Асель Омарова", "Сергей Петров",
                  "Мадина Касымова", "Арман Тулегенов", "Наталья Иванова", "Марат Исказов"]
EMAIL_DOMAINS = ["mail.ru", "gmail.com", "yandex.kz", "inbox.kz", "bk.ru", "list.ru",
                 "outlook.com", "icloud.com", "yahoo.com"]
KZ_MOBILE = ["700", "701", "702", "705", "707", "708", "747", "771", "775", "776", "777", "778"]
KZ_BANK_CODES = ["601", "722", "998", "914", "826", "965", "551", "070", "856", "949"]
CARD_BINS = ["440043", "440563", "400303", "516949", "539545", "548601", "457832", "220049",
             "404243", "521324"]
MERCHANTS = ["MAGNUM ALMATY", "SMALL ASTANA", "TECHNODOM ONLINE", "GLOVO KZ", "YANDEX GO",
             "AIR ASTANA", "ARBUZ KZ", "WOLT ALMATY", "SULPAK SHYMKENT", "CHOCOFOOD", "MECHTA KZ",
             "APPLE.COM/BILL", "BOOKING.COM", "AMAZON EU"]
ATM_PLACES = ["Abay Ave 150, Almaty", "Mega Park, Almaty", "Khan Shatyr, Astana",
              "Dostyk Plaza, Almaty", "Keruen Mall, Astana", "Tole Bi St 59, Almaty",
              "Shymkent Plaza", "Karaganda city centre"]


# check digits: the one implementation in pipeline.pii.checksums
_luhn_complete = luhn_complete
_iban_with_check = iban_with_check
iin_check_digit = kz_control_digit


def luhn_valid(number: str) -> bool:
    digits = "".join(c for c in number if c.isdigit())
    return len(digits) >= 12 and luhn_ok(digits)


def iban_valid(iban: str) -> bool:
    return iban_ok(iban)


def iin_valid(iin: str) -> bool:
    return kz_control_ok(iin)


class _Pii:
    """Draws invented, checksum-valid personal data from one seeded random generator."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.planted: list[tuple[str, str]] = []  # (type, value) of every value written into a ticket

    def person(self) -> str:
        r = self.rng
        female = r.random() < 0.5
        first = r.choice(FIRST_F if female else FIRST_M)
        surname = r.choice(SURNAMES)
        if female and surname.endswith(("ov", "ev", "in")):
            surname += "a"
        root = r.choice(PATRONYM_ROOTS)
        patronym = root + ("ovna" if female else "ovich")
        form = r.random()
        if form < 0.6:
            return f"{first} {surname}"
        if form < 0.85:
            return f"{first} {patronym}"
        return f"{first} {patronym} {surname}"

    def email(self) -> str:
        r = self.rng
        first = r.choice(FIRST_F + FIRST_M).lower()
        last = r.choice(SURNAMES).lower()
        sep = r.choice([".", "_", "", "."])
        tail = r.choice(["", "", str(r.randint(1, 99)), str(r.randint(1975, 2006))])
        user = r.choice([f"{first}{sep}{last}{tail}", f"{first[0]}{sep}{last}{tail}",
                         f"{last}{sep}{first}{tail}"])
        return f"{user}@{r.choice(EMAIL_DOMAINS)}"

    def phone(self) -> str:
        r = self.rng
        if r.random() < 0.12:  # international numbers in the ranges reserved for fiction
            if r.random() < 0.5:
                return f"+44 20 7946 0{r.randint(0, 999):03d}"
            return f"+1 415 555 01{r.randint(0, 99):02d}"
        op = r.choice(KZ_MOBILE)
        a, b, c = f"{r.randint(0, 999):03d}", f"{r.randint(0, 99):02d}", f"{r.randint(0, 99):02d}"
        return r.choice([
            f"+7 {op} {a} {b} {c}",
            f"+7{op}{a}{b}{c}",
            f"8 {op} {a} {b}{c}",
            f"8 ({op}) {a}-{b}-{c}",
            f"8{op}{a}{b}{c}",
            f"+7-{op}-{a}-{b}-{c}",
            f"+7 ({op}) {a}-{b}-{c}",
        ])

    def card(self) -> str:
        r = self.rng
        partial = r.choice(CARD_BINS) + "".join(r.choice(string.digits) for _ in range(9))
        num = _luhn_complete(partial)
        groups = [num[i:i + 4] for i in range(0, 16, 4)]
        return r.choice([" ".join(groups), " ".join(groups), "-".join(groups), num])

    def iban(self) -> str:
        r = self.rng
        u = r.random()
        if u < 0.75:
            bank = r.choice(KZ_BANK_CODES)
            if r.random() < 0.6:
                acct = "KZT" + "".join(r.choice(string.digits) for _ in range(10))
            else:
                acct = "".join(r.choice(string.digits + string.ascii_uppercase) for _ in range(13))
            iban = _iban_with_check("KZ", bank + acct)
        elif u < 0.88:
            bank = r.choice(["NWBK", "BARC", "LOYD", "HBUK", "MIDL"])
            iban = _iban_with_check("GB", bank + "".join(r.choice(string.digits) for _ in range(14)))
        else:
            iban = _iban_with_check("DE", "".join(r.choice(string.digits) for _ in range(18)))
        if r.random() < 0.35:
            return " ".join(iban[i:i + 4] for i in range(0, len(iban), 4))
        return iban

    def iin(self) -> str:
        r = self.rng
        while True:
            year = r.randint(1955, 2007)
            month = r.randint(1, 12)
            day = r.randint(1, 28)
            female = r.random() < 0.5
            century = (3 if year < 2000 else 5) + (1 if female else 0)
            first11 = f"{year % 100:02d}{month:02d}{day:02d}{century}{r.randint(0, 9999):04d}"
            check = iin_check_digit(first11)
            if check is not None:  # numbers whose check digit is undefined are never issued
                return first11 + str(check)

    def value(self, kind: str) -> str:
        v = self.draw(kind)
        self.planted.append((kind, v))
        return v

    def draw(self, kind: str) -> str:
        return {"PERSON": self.person, "EMAIL_ADDRESS": self.email, "PHONE_NUMBER": self.phone,
                "CREDIT_CARD": self.card, "IBAN_CODE": self.iban, "KZ_IIN": self.iin}[kind]()


PII_PHRASES = {
    "PERSON": [("pre", "My name is {v}. "), ("pre", "Hi, this is {v}. "), ("pre", "Hello, {v} here. "),
               ("post", " Regards, {v}"), ("post", " Thanks, {v}"), ("post", " - {v}")],
    "EMAIL_ADDRESS": [("post", " Please reply to {v}"), ("post", " My email is {v}."),
                      ("post", " You can write to me at {v}"), ("pre", "From: {v}. ")],
    "PHONE_NUMBER": [("post", " Call me on {v}."), ("post", " You can reach me at {v}"),
                     ("post", " my number is {v}"), ("pre", "Calling from {v}. "),
                     ("post", " Please call back {v}")],
    "CREDIT_CARD": [("post", " My card is {v}."), ("pre", "Card number {v}. "),
                    ("post", " (card {v})"), ("post", " The card number is {v}")],
    "IBAN_CODE": [("post", " My account is {v}."), ("post", " IBAN: {v}"),
                  ("pre", "Account {v}. "), ("post", " It was sent to {v}")],
    "KZ_IIN": [("post", " My IIN is {v}."), ("pre", "IIN {v}. "), ("post", " IIN: {v}"),
               ("post", " my individual identification number is {v}")],
}
PII_WEIGHTS = [35, 15, 25, 12, 7, 6]

# -- labels: neighbours (for conflicts) and families (for wrong labels) ------------------------

NEIGHBOURS = [
    ("card_arrival", "card_delivery_estimate"), ("pending_top_up", "top_up_failed"),
    ("top_up_failed", "top_up_reverted"), ("declined_transfer", "failed_transfer"),
    ("pending_transfer", "transfer_timing"), ("balance_not_updated_after_bank_transfer", "transfer_timing"),
    ("transfer_not_received_by_recipient", "pending_transfer"),
    ("card_payment_not_recognised", "compromised_card"), ("cash_withdrawal_not_recognised", "compromised_card"),
    ("lost_or_stolen_card", "compromised_card"), ("card_not_working", "declined_card_payment"),
    ("contactless_not_working", "card_not_working"), ("virtual_card_not_working", "card_not_working"),
    ("getting_virtual_card", "get_disposable_virtual_card"), ("disposable_card_limits", "get_disposable_virtual_card"),
    ("order_physical_card", "get_physical_card"), ("getting_spare_card", "order_physical_card"),
    ("verify_my_identity", "why_verify_identity"), ("unable_to_verify_identity", "verify_my_identity"),
    ("pin_blocked", "change_pin"), ("request_refund", "Refund_not_showing_up"),
    ("reverted_card_payment?", "pending_card_payment"), ("exchange_rate", "card_payment_wrong_exchange_rate"),
    ("wrong_exchange_rate_for_cash_withdrawal", "card_payment_wrong_exchange_rate"),
    ("exchange_charge", "exchange_rate"), ("card_payment_fee_charged", "extra_charge_on_statement"),
    ("transfer_fee_charged", "extra_charge_on_statement"), ("cash_withdrawal_charge", "wrong_exchange_rate_for_cash_withdrawal"),
    ("top_up_by_card_charge", "top_up_by_bank_transfer_charge"), ("topping_up_by_card", "top_up_by_card_charge"),
    ("declined_cash_withdrawal", "wrong_amount_of_cash_received"), ("pending_cash_withdrawal", "declined_cash_withdrawal"),
    ("supported_cards_and_currencies", "fiat_currency_support"), ("card_linking", "activate_my_card"),
    ("country_support", "card_acceptance"), ("passcode_forgotten", "lost_or_stolen_phone"),
    ("transaction_charged_twice", "card_payment_not_recognised"), ("pending_card_payment", "declined_card_payment"),
    ("top_up_by_cash_or_cheque", "balance_not_updated_after_cheque_or_cash_deposit"),
    ("transfer_into_account", "receiving_money"), ("exchange_via_app", "exchange_rate"),
    ("automatic_top_up", "topping_up_by_card"), ("card_swallowed", "declined_cash_withdrawal"),
    ("beneficiary_not_allowed", "declined_transfer"), ("cancel_transfer", "pending_transfer"),
]
_STOP = {"card", "or", "of", "to", "by", "not", "my", "and", "the", "for", "after", "a", "via"}

# -- templates (system-generated tickets), each with its Banking77 label -----------------------

TEMPLATE_LABELS = {
    "transfer_failed": "failed_transfer",
    "card_declined": "declined_card_payment",
    "topup_failed": "top_up_failed",
    "atm_not_dispensed": "wrong_amount_of_cash_received",
    "payment_pending": "pending_card_payment",
}
TEMPLATE_WEIGHTS = [30, 25, 15, 15, 15]

# -- text edits for near duplicates ------------------------------------------------------------

FILLERS_PRE = ["Hi, ", "Hello, ", "Hi there. ", "Good afternoon, ", "Hey, ", "Excuse me, "]
FILLERS_POST = [" Thanks.", " Thank you!", " Please help.", " Thanks in advance.", " pls help", " ASAP"]


@dataclass(eq=False)
class _Row:
    seq: int
    text: str
    label: str | None  # the canonical label the operator meant
    created: datetime
    channel: str
    operator: str
    origin: str = "banking77"  # banking77 | template | copy | near | filler
    source_row: int | None = None  # index in the Banking77 training split
    pii: list[str] = field(default_factory=list)
    group: bool = False  # part of a duplicate / near-duplicate / conflict pair: keep its label
    written_label: str | None = None
    written_created: str | None = None  # an unparseable timestamp written instead of created
    ticket_id: str = ""
    file: str = ""
    broken: str | None = None  # too_many_fields | too_few_fields | truncated_json | not_json
    kinds: set = field(default_factory=set)
    priority: str | None = None


def _count(kind: str, n: int) -> int:
    frac, floor = FRACTIONS[kind]
    return max(floor, round(frac * n))


def load_banking77(split: str = "train") -> pd.DataFrame:
    """One Banking77 split, columns text, label, split. The landing files come from `train` only."""
    df = pd.read_csv(BANKING77_DIR / f"{split}.csv", dtype=str, keep_default_na=False)
    return pd.DataFrame({"text": df["text"], "label": df["category"], "split": split})


FRESH_SAMPLE_FILE = "fresh_sample.csv"


def write_fresh_sample(path: Path, seed: int = 7) -> dict:
    """Write Banking77's official test split as the fresh sample (ticket_id, text, label); returns a summary.

    None of these requests is in the landing files. To be tickets of the same kind, they carry personal
    data at the landing files' rate (PII_SHARE of rows, the same kinds and phrasings, invented and
    checksum-valid), so the fresh-sample check exercises masking as the pipeline does."""
    df = load_banking77("test")
    rng = random.Random(seed * 7_919 + 3)
    pii = _Pii(random.Random(seed * 1_000_003 + 29))
    texts = df["text"].tolist()
    for i in sorted(rng.sample(range(len(texts)), round(PII_SHARE * len(texts)))):
        texts[i] = _insert_pii(pii, rng, texts[i], _pii_kinds(rng))
    out = pd.DataFrame({"ticket_id": [f"FRESH-{i:05d}" for i in range(len(df))], "text": texts,
                        "label": df["label"]})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(path, index=False, lineterminator="\n")
    return {"path": str(path), "rows": len(out), "source": "banking77 test split", "labels": int(out["label"].nunique()),
            "rows_with_personal_data": round(PII_SHARE * len(texts))}


def _stratified(df: pd.DataFrame, n: int, rng: random.Random) -> list[int]:
    """Row indices of a label-stratified subsample of exactly n rows (largest remainder)."""
    n = max(1, min(n, len(df)))
    groups = {lab: list(idx) for lab, idx in df.groupby("label", sort=True).groups.items()}
    quotas = {lab: n * len(ix) / len(df) for lab, ix in groups.items()}
    take = {lab: int(q) for lab, q in quotas.items()}
    rest = n - sum(take.values())
    for lab in sorted(quotas, key=lambda k: (-(quotas[k] - take[k]), k))[:rest]:
        take[lab] += 1
    chosen: list[int] = []
    for lab in sorted(groups):
        chosen.extend(rng.sample(groups[lab], take[lab]))
    return sorted(chosen)


def _sample(rng: random.Random, population, k: int) -> list:
    """rng.sample that takes what there is when the population is smaller than k."""
    population = list(population)
    return rng.sample(population, max(0, min(k, len(population))))


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _random_time(rng: random.Random) -> datetime:
    days = (PERIOD_END.date() - PERIOD_START.date()).days + 1
    day = PERIOD_START + timedelta(days=rng.randrange(days))
    # more tickets in working hours (Almaty time)
    hour = rng.choices(range(24), weights=[1, 1, 1, 1, 1, 2, 3, 5, 8, 10, 10, 10, 9, 10, 10, 10, 9, 8,
                                           7, 6, 5, 4, 3, 2])[0]
    return day + timedelta(hours=hour, minutes=rng.randrange(60), seconds=rng.randrange(60))


def _later(rng: random.Random, t: datetime, max_hours: float = 72.0) -> datetime:
    delta = timedelta(seconds=rng.randint(300, int(max_hours * 3600)))
    return t + delta if t + delta <= PERIOD_END else t - delta


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="seconds")


def _typo(rng: random.Random, text: str) -> str | None:
    words = [(m.start(), m.end()) for m in re.finditer(r"[A-Za-z]{4,}", text)]
    if not words:
        return None
    s, e = rng.choice(words)
    i = rng.randrange(s, e - 1)
    return text[:i] + text[i + 1] + text[i] + text[i + 2:]


def _near_edit(rng: random.Random, text: str) -> str:
    """One or two small edits: filler words, punctuation, one typo, please/pls, you/u."""
    base = text.strip()
    for _ in range(10):
        out = base
        for op in rng.sample(["pre", "post", "punct", "typo", "pls"], rng.choice([1, 1, 2])):
            if op == "pre":
                out = rng.choice(FILLERS_PRE) + out[:1].lower() + out[1:]
            elif op == "post":
                out = out + rng.choice(FILLERS_POST)
            elif op == "punct":
                if out.endswith(("?", ".", "!")):
                    out = out[:-1] + rng.choice(["", "??", "!", " ?", "..."])
                else:
                    out = out + rng.choice(["?", ".", "!!"])
            elif op == "typo":
                out = _typo(rng, out) or out
            elif op == "pls":
                if re.search(r"\bplease\b", out, re.I):
                    out = re.sub(r"\bplease\b", "pls", out, count=1, flags=re.I)
                elif re.search(r"\byou\b", out):
                    out = re.sub(r"\byou\b", "u", out, count=1)
                else:
                    out = out + " please"
        if _norm(out) != _norm(text):
            return out
    return base + " please"


def _case_ws_variant(rng: random.Random, text: str) -> tuple[str, str]:
    kind = rng.choice(["lower", "upper", "spaces", "trailing"])
    if kind == "lower":
        out = text.lower()
    elif kind == "upper":
        out = text.upper()
    elif kind == "spaces":
        out = re.sub(" ", "  ", text, count=2)
    else:
        out = "  " + text + " \n"
    if out == text:
        out, kind = "  " + text + " \n", "trailing"
    return out, kind


def _pii_kinds(rng: random.Random) -> list[str]:
    """One to three distinct kinds of personal data for one ticket."""
    k = rng.choices([1, 2, 3], weights=[70, 25, 5])[0]
    kinds: list[str] = []
    while len(kinds) < k:
        kind = rng.choices(PII_TYPES, weights=PII_WEIGHTS)[0]
        if kind not in kinds:
            kinds.append(kind)
    return kinds


def _insert_pii(pii: _Pii, rng: random.Random, text: str, kinds: list[str]) -> str:
    pre, post = "", ""
    for kind in kinds:
        where, phrase = rng.choice(PII_PHRASES[kind])
        piece = phrase.format(v=pii.value(kind))
        if where == "pre":
            pre = pre + piece
        else:
            post = post + piece
    return pre + text.strip() + post


def _template_text(rng: random.Random, pii: _Pii, name: str, t: datetime) -> tuple[str, list[str]]:
    amount = f"{rng.choice([rng.randint(1, 500) * 100, rng.randint(100, 99999)])}.{rng.choice(['00', '00', '50', '99'])}"
    when = (t - timedelta(days=rng.randint(0, 3))).date().isoformat()
    last4 = f"{rng.randint(0, 9999):04d}"
    if name == "transfer_failed":
        iban = pii.iban() if rng.random() < 0.5 else _iban_compact_kz(pii)
        pii.planted.append(("IBAN_CODE", iban))
        return (f"Transfer #{rng.randint(100000, 999999)} of {amount} KZT to account {iban} failed on "
                f"{when}. Error code E-{rng.randint(100, 999)}.", ["IBAN_CODE"])
    if name == "card_declined":
        return (f"Card ending {last4} declined at {rng.choice(MERCHANTS)} on {when}. "
                f"Amount: {amount} KZT.", [])
    if name == "topup_failed":
        return (f"Top-up of {amount} KZT from card ending {last4} failed. "
                f"Reference TU-{rng.randint(10000000, 99999999)}.", [])
    if name == "atm_not_dispensed":
        return (f"ATM withdrawal of {amount} KZT at {rng.choice(ATM_PLACES)} on {when}: cash not "
                f"dispensed, account debited. Terminal {rng.randint(10000, 99999)}.", [])
    cur = rng.choice(["KZT", "KZT", "USD", "EUR", "RUB"])
    return (f"Automatic notification: card ending {last4} payment of {amount} {cur} at "
            f"{rng.choice(MERCHANTS)} pending since {when}.", [])


def _iban_compact_kz(pii: _Pii) -> str:
    while True:
        v = pii.iban()
        if v.startswith("KZ"):
            return v.replace(" ", "")


def _oversized(rng: random.Random, text: str, t: datetime) -> str:
    lines = [text.strip(), "", "Here is what the app shows, I copied everything:"]
    ts = t - timedelta(minutes=30)
    services = ["PaymentService", "CardGateway", "AuthService", "TopUpWorker", "FxEngine", "Ledger"]
    codes = ["DECLINED_05", "TIMEOUT", "RETRY", "INSUFFICIENT_FUNDS", "3DS_FAILED", "OK", "PENDING"]
    while sum(len(s) + 1 for s in lines) < 2300 + rng.randint(0, 2500):
        ts += timedelta(seconds=rng.randint(1, 40))
        lines.append(f"{ts.strftime('%Y-%m-%dT%H:%M:%S')}.{rng.randint(0, 999):03d}Z "
                     f"{rng.choice(['INFO', 'WARN', 'ERROR', 'DEBUG'])} [{rng.choice(services)}] "
                     f"txn={rng.randint(1000000, 9999999)} code={rng.choice(codes)} "
                     f"retry={rng.randint(0, 3)} latency_ms={rng.randint(20, 9000)}")
    lines.append("Please fix this!")
    return "\n".join(lines)


def _label_variant(rng: random.Random, label: str) -> str:
    words = label.rstrip("?").split("_")
    tail = "?" if label.endswith("?") else ""
    forms = [
        "_".join(w.capitalize() for w in words) + tail,  # Card_Arrival
        " ".join(words) + tail + " ",  # "card arrival "
        "-".join(words).upper() + tail,  # CARD-ARRIVAL
        " " + label.upper(),  # " CARD_ARRIVAL"
        " ".join(w.capitalize() for w in words) + tail,  # Card Arrival
        label + "  ",  # trailing spaces
    ]
    out = rng.choice(forms)
    return out if out != label else label.upper()


# -- the generator ----------------------------------------------------------------------------


def generate_sample(landing_dir: Path, manifest_path: Path, seed: int = 7,
                    n_tickets: int | None = None) -> dict:
    """Write the landing files and the manifest; returns the manifest."""
    landing_dir = Path(landing_dir)
    manifest_path = Path(manifest_path)
    rng = random.Random(seed)
    pii = _Pii(random.Random(seed * 1_000_003 + 17))
    src = load_banking77()
    labels = list(json.loads((BANKING77_DIR / "categories.json").read_text(encoding="utf-8")))
    if n_tickets is not None and n_tickets < MIN_TICKETS:
        raise ValueError(f"n_tickets must be at least {MIN_TICKETS} (got {n_tickets})")
    full = n_tickets is None or n_tickets >= len(src)
    idx = list(range(len(src))) if full else _stratified(src, n_tickets, rng)
    n = len(idx)
    operators = [f"op-{i:03d}" for i in range(1, N_OPERATORS + 1)]

    seq = 0

    def new_row(**kw) -> _Row:
        nonlocal seq
        seq += 1
        kw.setdefault("channel", rng.choices(CHANNELS, weights=CHANNEL_WEIGHTS)[0])
        kw.setdefault("operator", rng.choice(operators))
        return _Row(seq=seq, **kw)

    texts = src["text"].tolist()
    src_labels = src["label"].tolist()
    base = [new_row(text=texts[i], label=src_labels[i], created=_random_time(rng), source_row=i) for i in idx]
    rows: list[_Row] = list(base)
    planted: dict[str, list] = {k: [] for k in [
        "exact_duplicates", "near_duplicates", "label_conflicts", "label_variants", "mislabelled",
        "missing_labels", "empty_texts", "whitespace_texts", "oversized_texts", "templates"]}

    used: set[int] = set()  # base rows already given a role that fixes their text or label

    def pick(pool: list[_Row], k: int, cond=lambda r: True) -> list[_Row]:
        cands = [r for r in pool if r.seq not in used and cond(r)]
        chosen = _sample(rng, cands, k)
        used.update(r.seq for r in chosen)
        return chosen

    # near duplicates: small rewordings of a Banking77 text, same label
    for s in pick(base, _count("near_duplicates", n), lambda r: r.text.strip() != ""):
        r = new_row(text=_near_edit(rng, s.text), label=s.label, created=_later(rng, s.created, 24 * 14),
                    origin="near", source_row=s.source_row, group=True)
        s.group = True
        rows.append(r)
        planted["near_duplicates"].append((r, s))

    # system templates
    n_templates = max(len(TEMPLATE_LABELS) * 3, round(TEMPLATE_FRACTION * n))
    names = list(TEMPLATE_LABELS)
    for i in range(n_templates):
        name = names[i % len(names)] if i < len(names) * 3 else rng.choices(names, weights=TEMPLATE_WEIGHTS)[0]
        t = _random_time(rng)
        text, kinds = _template_text(rng, pii, name, t)
        r = new_row(text=text, label=TEMPLATE_LABELS[name], created=t, origin="template",
                    channel=rng.choice(["app", "email"]), pii=list(kinds))
        r.kinds.add("template:" + name)
        rows.append(r)
        planted["templates"].append(r)

    # personal data: about PII_SHARE of all rows end up carrying some (copies inherit it)
    already = sum(1 for r in rows if r.pii)
    target = round(PII_SHARE * len(rows)) - already
    # (not in near-duplicate pairs, which must stay near; not in system templates, which have none)
    cands = [r for r in rows if not r.pii and not r.group and r.origin != "template" and r.text.strip()]
    for r in _sample(rng, cands, target):
        kinds = _pii_kinds(rng)
        r.text = _insert_pii(pii, rng, r.text, kinds)
        r.pii = sorted(kinds, key=PII_TYPES.index)

    # exact duplicates (re-submissions), 40% only equal after normalising case and whitespace
    for s in pick(base, _count("exact_duplicates", n), lambda r: r.text.strip() != ""):
        text, variant = (s.text, "exact")
        if rng.random() < 0.4:
            text, variant = _case_ws_variant(rng, s.text)
        r = new_row(text=text, label=s.label, created=_later(rng, s.created), origin="copy",
                    source_row=s.source_row, pii=list(s.pii), group=True)
        s.group = True
        rows.append(r)
        planted["exact_duplicates"].append((r, s, variant))

    # conflicts: the same text labelled differently by another operator
    neigh: dict[str, list[str]] = {}
    for a, b in NEIGHBOURS:
        neigh.setdefault(a, []).append(b)
        neigh.setdefault(b, []).append(a)
    for s in pick(base, _count("label_conflicts", n), lambda r: r.label in neigh and r.text.strip() != ""):
        other = rng.choice([o for o in operators if o != s.operator])
        r = new_row(text=s.text, label=rng.choice(neigh[s.label]), created=_later(rng, s.created, 24 * 10),
                    origin="copy", source_row=s.source_row, pii=list(s.pii), group=True, operator=other)
        s.group = True
        rows.append(r)
        planted["label_conflicts"].append((s, r))

    # empty, whitespace-only and oversized texts (new tickets)
    for _ in range(_count("empty_texts", n)):
        r = new_row(text="", label=rng.choice(labels), created=_random_time(rng), origin="filler")
        rows.append(r)
        planted["empty_texts"].append(r)
    for _ in range(_count("whitespace_texts", n)):
        r = new_row(text=rng.choice(["   ", "\n", " \t ", "\n\n  ", "  \n "]), label=rng.choice(labels),
                    created=_random_time(rng), origin="filler")
        rows.append(r)
        planted["whitespace_texts"].append(r)
    for s in _sample(rng, base, _count("oversized_texts", n)):
        t = _random_time(rng)
        r = new_row(text=_oversized(rng, texts[s.source_row], t), label=s.label, created=t,
                    origin="filler", source_row=s.source_row)
        rows.append(r)
        planted["oversized_texts"].append(r)

    # label problems on Banking77 rows that are not part of a pair
    free = lambda r: not r.group and not r.pii  # noqa: E731
    fam = lambda lab: set(lab.rstrip("?").lower().split("_")) - _STOP  # noqa: E731
    for s in pick(base, _count("mislabelled", n), free):
        wrong = rng.choice([lab for lab in labels if lab != s.label and lab != RENAME_OLD
                            and not (fam(lab) & fam(s.label)) and lab not in neigh.get(s.label, [])])
        planted["mislabelled"].append((s, s.label))
        s.label = wrong
    for s in pick(base, _count("label_variants", n), lambda r: free(r) and r.label != RENAME_OLD):
        s.written_label = _label_variant(rng, s.label)
        planted["label_variants"].append(s)
    # (ASCII texts only: a missing label on a row the cp1251 export cannot write would be quarantined
    # for its encoding first, and the manifest would count it twice)
    for s in pick(base, _count("missing_labels", n), lambda r: free(r) and r.text.isascii()):
        planted["missing_labels"].append(s)
        s.written_label = None
        s.label = None

    # order by time, assign ticket ids, rename the label from RENAME_FROM on
    rows.sort(key=lambda r: (r.created, r.seq))
    for i, r in enumerate(rows):
        r.ticket_id = f"TCK-{100001 + i:07d}"
        if r.written_label is None and r.label is not None:
            r.written_label = r.label
        if r.label == RENAME_OLD and r.created.date() >= RENAME_FROM:
            r.written_label = RENAME_NEW
        q = (r.created.month - 1) // 3 + 1
        r.file = QUARTER_FILES[q]
        if r.file == FILE_Q1 and r.channel == "phone":
            r.file = FILE_LEGACY  # the call-centre system still exports in cp1251
        if r.file == FILE_Q2:
            r.priority = rng.choices(["low", "normal", "high", "urgent"], weights=[20, 60, 15, 5])[0]

    # legacy export: Cyrillic names (personal data that is not valid UTF-8 once encoded in cp1251)
    legacy = [r for r in rows if r.file == FILE_LEGACY and r.text.strip() and r.origin != "filler"
              and not r.group and r.label is not None]
    cyr = _sample(rng, legacy, _count("legacy_cyrillic", n))
    for r in cyr:
        name = rng.choice(CYRILLIC_NAMES)
        pii.planted.append(("PERSON", name))
        r.text = rng.choice([f"My name is {name}. {r.text.strip()}", f"{r.text.strip()} — {name}",
                             f"{r.text.strip()} Regards, {name}"])
        r.pii = sorted(set(r.pii) | {"PERSON"}, key=PII_TYPES.index)
        r.kinds.add("cyrillic")

    # unparseable timestamps
    plain = [r for r in rows if r.origin == "banking77" and not r.group and not r.pii
             and r.file != FILE_LEGACY and r.label is not None and r.written_label == r.label]
    bad_ts = _sample(rng, plain, _count("bad_timestamps", n))
    for r in bad_ts:
        r.written_created = rng.choice(["yesterday", "31/02/2026", "2026-02-30T25:61:00", "today 14:05",
                                        "N/A", "2026-13-01T09:00:00", "31.02.2026 10:15"])
    bad_set = {r.seq for r in bad_ts}

    # broken rows: CSV lines with too many / too few fields, malformed JSONL lines
    def simple(r: _Row) -> bool:
        return (r.origin == "banking77" and not r.group and not r.pii and r.seq not in bad_set
                and '"' not in r.text and "\n" not in r.text and r.text == r.text.strip()
                and r.written_label == r.label and r.label is not None)

    k_csv = 2 if n < 3000 else 3
    q1 = [r for r in rows if r.file == FILE_Q1 and simple(r)]
    for r in _sample(rng, [r for r in q1 if "," in r.text], k_csv):
        r.broken = "too_many_fields"
    for r in _sample(rng, [r for r in q1 if not r.broken and "," not in r.text], k_csv):
        r.broken = "too_few_fields"
    q2 = [r for r in rows if r.file == FILE_Q2 and simple(r)]
    for j, r in enumerate(_sample(rng, q2, 2 if n < 3000 else 4)):
        r.broken = "truncated_json" if j % 2 == 0 else "not_json"

    # re-export overlap: the last Q1 rows of the main export delivered again in the Q2 file
    ok_q1 = [r for r in rows if r.file == FILE_Q1 and not r.broken and r.seq not in bad_set]
    overlap = ok_q1[-_count("reexport_overlap", n):]

    # duplicate ticket ids: a later ticket reuses an earlier ticket's id for another text
    overlap_set = {r.seq for r in overlap}
    eligible = [r for r in rows if r.origin == "banking77" and not r.group and not r.pii and not r.broken
                and r.seq not in bad_set and r.seq not in overlap_set and r.kinds == set()
                and r.seq not in used and r.label is not None and r.written_label == r.label]
    dup_ids: list[tuple[_Row, _Row]] = []
    pairs = _sample(rng, range(len(eligible) - 1), _count("duplicate_ticket_ids", n) * 3)
    taken: set[int] = set()
    for i in pairs:
        a, b = eligible[i], eligible[rng.randint(i + 1, min(len(eligible) - 1, i + 400))]
        if a.seq in taken or b.seq in taken or _norm(a.text) == _norm(b.text):
            continue
        taken.update((a.seq, b.seq))
        b.ticket_id = a.ticket_id
        b.kinds.add("dup_id")
        dup_ids.append((a, b))
        if len(dup_ids) == _count("duplicate_ticket_ids", n):
            break

    # -- write ---------------------------------------------------------------------------------
    landing_dir.mkdir(parents=True, exist_ok=True)
    by_file: dict[str, list[_Row]] = {f: [] for f in [FILE_Q1, FILE_Q2, FILE_Q3, FILE_LEGACY]}
    for r in rows:
        by_file[r.file].append(r)
    broken_items: list[dict] = []
    files: dict[str, dict] = {}

    def values(r: _Row) -> list:
        created = r.written_created if r.written_created is not None else _iso(r.created)
        return [r.ticket_id, created, r.channel, r.text, r.written_label, r.operator]

    files[FILE_Q1] = _write_csv(landing_dir / FILE_Q1, by_file[FILE_Q1], values, "utf-8", broken_items)
    files[FILE_LEGACY] = _write_csv(landing_dir / FILE_LEGACY, by_file[FILE_LEGACY], values, "cp1251",
                                    broken_items)
    files[FILE_Q2] = _write_jsonl(landing_dir / FILE_Q2, overlap + by_file[FILE_Q2], values, broken_items)
    files[FILE_Q3] = _write_parquet(landing_dir / FILE_Q3, by_file[FILE_Q3], values)
    not_utf8 = files[FILE_LEGACY].pop("not_utf8_ticket_ids")
    unencodable = files[FILE_LEGACY].pop("unencodable_ticket_ids")
    (landing_dir / FILE_EMPTY).write_bytes(b"")
    files[FILE_EMPTY] = {"format": "csv", "encoding": "utf-8", "rows": 0, "bytes": 0}

    # -- manifest ------------------------------------------------------------------------------
    ids = lambda rs: sorted(r.ticket_id for r in rs)  # noqa: E731
    pii_rows = [r for r in rows if r.pii]
    pii_counts = {k: sum(k in r.pii for r in pii_rows) for k in PII_TYPES}
    total_rows = sum(f["rows"] for f in files.values())
    delivered = total_rows - len(overlap)
    source_groups: dict[str, list[_Row]] = {}
    for r in base:
        if r.origin == "banking77" and r.text.strip():
            source_groups.setdefault(_norm(texts[r.source_row]), []).append(r)
    natural = [sorted(g, key=lambda r: r.ticket_id) for g in source_groups.values() if len(g) > 1]
    renamed = [r for r in rows if r.written_label == RENAME_NEW]

    planted_out = {
        "exact_duplicates": {
            "count": len(planted["exact_duplicates"]),
            "ticket_ids": ids([d for d, _, _ in planted["exact_duplicates"]]),
            "pairs": sorted([d.ticket_id, s.ticket_id] for d, s, _ in planted["exact_duplicates"]),
            "normalised_only": sorted(d.ticket_id for d, _, v in planted["exact_duplicates"] if v != "exact"),
            "note": "ticket_ids are the re-submissions; pairs are [re-submission, original]",
        },
        "near_duplicates": {
            "count": len(planted["near_duplicates"]),
            "ticket_ids": ids([d for d, _ in planted["near_duplicates"]]),
            "pairs": sorted([d.ticket_id, s.ticket_id] for d, s in planted["near_duplicates"]),
        },
        "templates": {
            "count": len(planted["templates"]),
            "ticket_ids": ids(planted["templates"]),
            "by_template": {
                name: {"label": TEMPLATE_LABELS[name],
                       "ticket_ids": ids([r for r in planted["templates"] if "template:" + name in r.kinds])}
                for name in TEMPLATE_LABELS
            },
        },
        "label_conflicts": {
            "count": len(planted["label_conflicts"]),
            "ticket_ids": ids([x for pair in planted["label_conflicts"] for x in pair]),
            "pairs": sorted(
                ({"ticket_ids": [a.ticket_id, b.ticket_id], "labels": [a.written_label, b.written_label],
                  "operators": [a.operator, b.operator]} for a, b in planted["label_conflicts"]),
                key=lambda d: d["ticket_ids"]),
        },
        "label_variants": {
            "count": len(planted["label_variants"]),
            "ticket_ids": ids(planted["label_variants"]),
            "items": sorted(({"ticket_id": r.ticket_id, "written": r.written_label, "canonical": r.label}
                             for r in planted["label_variants"]), key=lambda d: d["ticket_id"]),
        },
        "label_rename": {
            "old": RENAME_OLD, "new": RENAME_NEW, "from_date": RENAME_FROM.isoformat(),
            "declared_in_taxonomy": False,
            "count": len(renamed), "ticket_ids": ids(renamed),
        },
        "mislabelled": {
            "count": len(planted["mislabelled"]),
            "ticket_ids": ids([r for r, _ in planted["mislabelled"]]),
            "items": sorted(({"ticket_id": r.ticket_id, "true_label": true, "given_label": r.written_label}
                             for r, true in planted["mislabelled"]), key=lambda d: d["ticket_id"]),
        },
        "missing_labels": {"count": len(planted["missing_labels"]), "ticket_ids": ids(planted["missing_labels"])},
        "empty_texts": {"count": len(planted["empty_texts"]), "ticket_ids": ids(planted["empty_texts"])},
        "whitespace_texts": {"count": len(planted["whitespace_texts"]),
                             "ticket_ids": ids(planted["whitespace_texts"])},
        "oversized_texts": {"count": len(planted["oversized_texts"]), "ticket_ids": ids(planted["oversized_texts"]),
                            "min_chars": min((len(r.text) for r in planted["oversized_texts"]), default=0)},
        "bad_timestamps": {
            "count": len(bad_ts), "ticket_ids": ids(bad_ts),
            "items": sorted(({"ticket_id": r.ticket_id, "file": r.file, "value": r.written_created}
                             for r in bad_ts), key=lambda d: d["ticket_id"]),
        },
        "broken_rows": {
            "count": len(broken_items),
            "items": sorted(broken_items, key=lambda d: (d["file"], d["line"])),
            "note": "line is the 1-based physical line in the file (the CSV header is line 1)",
        },
        "duplicate_ticket_ids": {
            "count": len(dup_ids),
            "ticket_ids": sorted(a.ticket_id for a, _ in dup_ids),
            "items": sorted(({"ticket_id": a.ticket_id, "files": [a.file, b.file]} for a, b in dup_ids),
                            key=lambda d: d["ticket_id"]),
            "note": "the same ticket_id carries two different texts; the later one is the reuse",
        },
        "reexport_overlap": {
            "count": len(overlap), "ticket_ids": ids(overlap), "files": [FILE_Q1, FILE_Q2],
            "note": "identical rows delivered in both files",
        },
        "bad_encoding": {
            "file": FILE_LEGACY, "encoding": "cp1251",
            "count": len(not_utf8), "ticket_ids": not_utf8,
            "cyrillic_name_ticket_ids": ids(cyr),
            "unencodable_ticket_ids": unencodable,
            "note": "ticket_ids: rows whose bytes are not valid UTF-8 (the Cyrillic names, and any row "
                    "with '€', '…' or a no-break space); unencodable: rows with '£', which cp1251 lacks "
                    "and the export wrote as '?'",
        },
        "unknown_columns": {FILE_Q2: [UNKNOWN_COLUMN]},
        "empty_files": [FILE_EMPTY],
    }

    manifest = {
        "generator": "pipeline.data.sample.generator",
        "seed": seed,
        "n_tickets": n_tickets,
        "source": {"dataset": "banking77", "split": "train", "rows_used": n, "rows_available": len(src),
                   "licence": "CC BY 4.0", "attribution": "pipeline/bundled/banking77/ATTRIBUTION.md"},
        "period": {"start": _iso(PERIOD_START), "end": _iso(PERIOD_END)},
        "columns": COLUMNS,
        "files": files,
        "total_rows": total_rows,
        "unique_deliveries": delivered,
        "pii": pii_counts,
        "pii_tickets": sorted([r.ticket_id, list(r.pii)] for r in pii_rows),
        "pii_ticket_count": len(pii_rows),
        "pii_share": round(len(pii_rows) / delivered, 4),
        "pii_note": "one entity per type per ticket; values are never stored here",
        "planted": planted_out,
        "source_exact_duplicates": {
            "count": len(natural), "groups": sorted([r.ticket_id for r in g] for g in natural),
            "note": "Banking77's own normalised duplicates among the tickets drawn (not planted)",
        },
    }
    # the values planted, for tests that look for them downstream of masking: beside the manifest (which
    # holds no value), in the raw zone with the landing files they come from; invented data only
    values_path = manifest_path.with_name(manifest_path.stem + "_pii_values.json")
    manifest["pii_values_file"] = values_path.name
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    values_path.write_text(json.dumps(sorted(set(pii.planted)), ensure_ascii=False, indent=0) + "\n",
                           encoding="utf-8")
    manifest_path.write_text(json.dumps(manifest, sort_keys=True, indent=1, ensure_ascii=False) + "\n",
                             encoding="utf-8")
    return manifest


def _csv_line(values: list) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue()


def _write_csv(path: Path, rows: list[_Row], values, encoding: str, broken_items: list[dict]) -> dict:
    """Returns the file entry; for a non-UTF-8 encoding also the ids of rows that are not valid UTF-8."""
    chunks = [_csv_line(COLUMNS).encode(encoding)]
    line = 2
    not_utf8: list[str] = []
    replaced: list[str] = []
    for r in rows:
        v = ["" if x is None else x for x in values(r)]
        if r.broken == "too_many_fields":
            s = ",".join(v) + "\n"  # the text's commas are not quoted
        elif r.broken == "too_few_fields":
            s = ",".join(v[:4]) + "\n"  # label and operator cut off
        else:
            s = _csv_line(v)
        if r.broken:
            broken_items.append({"file": path.name, "line": line, "problem": r.broken, "ticket_id": r.ticket_id})
        line += s.count("\n")
        b = s.encode(encoding, errors="replace")  # cp1251 has no '£': the old system wrote '?'
        if encoding != "utf-8":
            if b.decode(encoding) != s:
                replaced.append(r.ticket_id)
            try:
                b.decode("utf-8")
            except UnicodeDecodeError:
                not_utf8.append(r.ticket_id)
        chunks.append(b)
    data = b"".join(chunks)
    path.write_bytes(data)
    entry = {"format": "csv", "encoding": encoding, "rows": len(rows), "bytes": len(data)}
    if encoding != "utf-8":
        entry["not_utf8_ticket_ids"] = sorted(not_utf8)
        entry["unencodable_ticket_ids"] = sorted(replaced)
    return entry


def _write_jsonl(path: Path, rows: list[_Row], values, broken_items: list[dict]) -> dict:
    out = []
    for i, r in enumerate(rows, start=1):
        rec = dict(zip(COLUMNS, values(r)))
        if r.priority is not None:
            rec[UNKNOWN_COLUMN] = r.priority
        s = json.dumps(rec, ensure_ascii=False)
        if r.broken == "truncated_json" and r.file == path.name:
            s = s[: len(s) * 2 // 3]
        elif r.broken == "not_json" and r.file == path.name:
            s = "{" + ", ".join(f"'{k}': '{v}'" for k, v in rec.items()) + "}"
        if r.broken and r.file == path.name:
            broken_items.append({"file": path.name, "line": i, "problem": r.broken, "ticket_id": r.ticket_id})
        out.append(s)
    data = ("\n".join(out) + "\n").encode("utf-8")
    path.write_bytes(data)
    return {"format": "jsonl", "encoding": "utf-8", "rows": len(rows), "bytes": len(data)}


def _write_parquet(path: Path, rows: list[_Row], values) -> dict:
    cols = list(zip(*[values(r) for r in rows])) if rows else [[] for _ in COLUMNS]
    table = pa.table({c: pa.array(list(col), type=pa.string()) for c, col in zip(COLUMNS, cols)})
    pq.write_table(table, path, compression="zstd", compression_level=3, use_dictionary=True,
                   write_statistics=True, version="2.6", data_page_version="1.0",
                   row_group_size=1_000_000, store_schema=True)
    return {"format": "parquet", "encoding": "utf-8", "rows": len(rows), "bytes": path.stat().st_size}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.data.sample.generator",
                                     description="Write the Banking77-based demo landing files and their manifest.")
    parser.add_argument("--out", required=True, type=Path, help="landing folder to write")
    parser.add_argument("--manifest", required=True, type=Path, help="manifest JSON file to write")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--n", type=int, default=None, help="tickets drawn from Banking77's training split (default: all 10,003)")
    args = parser.parse_args(argv)
    m = generate_sample(args.out, args.manifest, seed=args.seed, n_tickets=args.n)
    for name, f in sorted(m["files"].items()):
        print(f"{name:28s} {f['format']:8s} {f['rows']:6d} rows")
    print(f"total rows {m['total_rows']}, PII share {m['pii_share']:.1%}, "
          + ", ".join(f"{k} {v['count']}" for k, v in sorted(m["planted"].items()) if isinstance(v, dict) and "count" in v))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
