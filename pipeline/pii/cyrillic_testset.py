"""A Cyrillic (Russian-language) support-ticket test set for masking, written by a generator whose
templates are not the ones any rule was written against: names and places appear without a cue word
("передайте", "меня зовут") in most templates, in nominative form, with Kazakh and Russian given names,
patronymics and surnames from Faker's ru_RU lists and Kazakh first names, and Kazakh cities in Russian.

    python -m pipeline.pii.cyrillic_testset --out cyrillic.json [--n 400] [--seed 11]
    tunegate pii-eval --data cyrillic.json

Records are in the Presidio research format (``full_text``, ``spans``), so ``pii-eval`` scores them.
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

KAZAKH_FIRST = ["Айгерим", "Данияр", "Нурлан", "Асель", "Ержан", "Жанар", "Болат", "Гульнара", "Арман", "Динара",
                "Сауле", "Ерлан", "Айдана", "Тимур", "Алия", "Бауыржан", "Мадина", "Канат", "Айжан", "Серик"]
CITIES = ["Алматы", "Астана", "Караганда", "Шымкент", "Павлодар", "Актобе", "Костанай", "Семей", "Атырау",
          "Усть-Каменогорск", "Кызылорда", "Тараз", "Петропавловск", "Актау", "Уральск", "Новосибирск", "Москва"]
# {p}: a person, {c}: a city. Ticket phrasings of a bank's chat, no rule was tuned on them.
TEMPLATES = [
    "{p} не может войти в приложение уже второй день",
    "Карта на имя {p} заблокирована после покупки в интернете",
    "Перевод для {p} завис, деньги списались, а получатель их не видит",
    "Клиент {p} просит вернуть комиссию за снятие наличных",
    "Я сейчас в городе {c}, банкомат проглотил карту",
    "Доставка карты в {c} задерживается на неделю",
    "{p} из города {c} жалуется на двойное списание",
    "Оформляли кредит в отделении в {c}, хочу досрочно погасить",
    "Подскажите, где в {c} можно снять доллары без комиссии",
    "Звонил {p}, говорит что перевод отклонён",
    "Курьер привёз карту в {c}, но {p} не было дома",
    "Сотрудник {p} обещал перезвонить и не перезвонил",
    "Почему {p} не получает смс с кодом подтверждения?",
    "Переезжаю в {c}, как сменить адрес доставки выписки",
    "Добрый день! {p}, вы можете разблокировать мой счёт?",
    "Оплата за квартиру в {c} не прошла, пишет ошибка",
]
EMPTY = ["Не приходит кэшбэк за прошлый месяц", "Как увеличить лимит по карте?",
         "Приложение вылетает после обновления", "Хочу закрыть депозит досрочно",
         "Почему списали комиссию за обслуживание?", "Не могу привязать карту к телефону"]


def _person(rng: random.Random, faker_ru) -> str:
    form = rng.random()
    first = rng.choice(KAZAKH_FIRST) if rng.random() < 0.5 else faker_ru.first_name()
    if form < 0.4:
        return f"{first} {faker_ru.last_name()}"
    if form < 0.6:
        return f"{faker_ru.last_name()} {first}"
    if form < 0.8:
        return f"{first} {faker_ru.middle_name()}"
    return first


def generate(n: int = 400, seed: int = 11) -> list[dict]:
    """``n`` records; about one in six has no personal data."""
    from faker import Faker

    faker_ru = Faker("ru_RU")
    faker_ru.seed_instance(seed)
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        if rng.random() < 0.15:
            out.append({"full_text": rng.choice(EMPTY), "spans": []})
            continue
        tpl = rng.choice(TEMPLATES)
        text, spans, pos = "", [], 0
        for piece in tpl.replace("{p}", "\0p\0").replace("{c}", "\0c\0").split("\0"):
            if piece in ("p", "c"):
                value = _person(rng, faker_ru) if piece == "p" else rng.choice(CITIES)
                spans.append({"entity_type": "PERSON" if piece == "p" else "GPE", "entity_value": value,
                              "start_position": len(text), "end_position": len(text) + len(value)})
                text += value
            else:
                text += piece
        out.append({"full_text": text, "spans": spans})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args(argv)
    args.out.write_text(json.dumps(generate(args.n, args.seed), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
