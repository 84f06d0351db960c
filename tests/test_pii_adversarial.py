"""Property-based tests: no valid structured identifier survives masking, in any context.

Hypothesis generates valid IBANs (every registry country, any case and grouping), cards (12-19 digits,
Luhn), Kazakh IIN/BIN, Kazakh and international phones, plain, spoken and bracketed e-mails, IPv4 and IPv6,
and puts one to three of them into generated contexts (see ``tests/pii_strategies.py``). Each example is a
batch of texts so the masker runs in batches as it does in the pipeline: ADVERSARIAL_EXAMPLES x BATCH
cases (10,000) run in CI. A survivor is a planted identifier with any letter or digit left outside a mask.

A separate test fuzzes the leak guard alone: it must report every planted identifier in the raw text, and
nothing in the masked text.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.pii.leak_guard import scan_residual
from tests.pii_strategies import planted_texts

BATCH = 50
ADVERSARIAL_EXAMPLES = 200  # x BATCH = 10,000 generated cases
GUARD_EXAMPLES = 100

_SETTINGS = dict(deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def masker():
    from pipeline.pii.masker import Masker

    return Masker()


def survivors(text: str, planted, spans) -> list[str]:
    covered = [False] * len(text)
    for _, s, e in spans:
        for k in range(s, e):
            covered[k] = True
    return [kind for kind, s, e in planted if any(text[k].isalnum() and not covered[k] for k in range(s, e))]


GUARD_KIND = {"IBAN_CODE": {"IBAN_CODE"}, "CREDIT_CARD": {"CREDIT_CARD", "KZ_IIN", "KZ_BIN", "PHONE_NUMBER"},
              "KZ_ID": {"KZ_IIN", "KZ_BIN"}, "PHONE_NUMBER": {"PHONE_NUMBER", "CREDIT_CARD", "KZ_IIN", "KZ_BIN"},
              "EMAIL_ADDRESS": {"EMAIL_ADDRESS"}, "IP_ADDRESS": {"IP_ADDRESS"}}


@pytest.mark.slow
@pytest.mark.timeout(7200)  # 10,000 texts through the masker: minutes on a quiet machine, more on a busy one
@settings(max_examples=ADVERSARIAL_EXAMPLES, **_SETTINGS)
@given(st.lists(planted_texts(), min_size=BATCH, max_size=BATCH))
def test_no_structured_identifier_survives_masking(masker, batch):
    texts = [t for t, _ in batch]
    found = masker.analyze(texts)
    bad = [(t, k) for (t, planted), spans in zip(batch, found) for k in survivors(t, planted, spans)]
    assert bad == []


@settings(max_examples=4, **_SETTINGS)
@given(st.lists(planted_texts(), min_size=BATCH, max_size=BATCH))
def test_no_structured_identifier_survives_masking_fast_tier(masker, batch):
    """The same property on 200 cases, for the fast tier."""
    texts = [t for t, _ in batch]
    found = masker.analyze(texts)
    bad = [(t, k) for (t, planted), spans in zip(batch, found) for k in survivors(t, planted, spans)]
    assert bad == []


def _guard_misses(batch):
    texts = [t for t, _ in batch]
    missed = []
    for (t, planted), kinds in zip(batch, scan_residual(texts)):
        for kind, _, _ in planted:
            if not GUARD_KIND[kind] & set(kinds):
                missed.append((t, kind, kinds))
    return missed


@pytest.mark.slow
@settings(max_examples=GUARD_EXAMPLES, **_SETTINGS)
@given(st.lists(planted_texts(), min_size=BATCH, max_size=BATCH))
def test_leak_guard_alone_finds_every_planted_identifier(batch):
    assert _guard_misses(batch) == []


@settings(max_examples=4, **_SETTINGS)
@given(st.lists(planted_texts(), min_size=BATCH, max_size=BATCH))
def test_leak_guard_alone_finds_every_planted_identifier_fast_tier(batch):
    assert _guard_misses(batch) == []


QUIET_FLAGGED_MAX = 0.10  # share of masked texts the guard may flag, all of them as phones (see below)


@pytest.mark.slow
@settings(max_examples=20, **_SETTINGS)
@given(st.lists(planted_texts(), min_size=BATCH, max_size=BATCH))
def test_leak_guard_is_quiet_on_masked_text(masker, batch):
    # Known weakness, measured here: the guard's phone groupings read runs of unrelated numbers left on one
    # line ('5355 100000 4045 86') as a phone. Such a ticket is quarantined (nothing leaks, a row is lost), so
    # the guard must flag nothing but phones on masked text, and few of those.
    masked = [r.text for r in masker.mask_texts([t for t, _ in batch])]
    found = scan_residual(masked)
    assert [k for k in found if k and set(k) != {"PHONE_NUMBER"}] == []
    assert sum(bool(k) for k in found) <= QUIET_FLAGGED_MAX * len(masked), sum(bool(k) for k in found)


def test_issue_examples_are_masked(masker):
    """The shapes that reached training before: an IBAN followed by a space and a word."""
    from pipeline.pii.checksums import iban_with_check

    kz = iban_with_check("KZ", "601KZT8741529038")
    grouped = " ".join(iban_with_check("KZ", "859ERR0UHFJMU08W")[i:i + 4] for i in range(0, 20, 4))
    texts = [f"sent to {kz} Please call back", f"{grouped} has been pending", f"{kz}\tПожалуйста",
             f"IBAN:{kz.lower()}, thanks", f"{grouped}\n{kz} KZ00 and more"]
    for t, r in zip(texts, masker.mask_texts(texts)):
        assert "<IBAN_CODE_1>" in r.text and kz not in r.text and grouped not in r.text, t
        assert scan_residual([t]) == [["IBAN_CODE"]]
        assert scan_residual([r.text]) == [[]]
