"""Safety numbers: the same 60 digits on both sides, different for any other pair."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshchat.errors import UsageError
from meshchat.identity import Identity
from meshchat.safety import (
    QR_PREFIX,
    SAFETY_DIGITS,
    matches_payload,
    parse_payload,
    qr_payload,
    safety_number,
)

ALICE, BOB, MALLORY = (Identity.generate().public for _ in range(3))


def test_both_sides_see_the_same_number() -> None:
    number = safety_number(ALICE, BOB)
    assert number == safety_number(BOB, ALICE)
    groups = number.split(" ")
    assert len(groups) == 12
    assert all(len(g) == 5 and g.isdigit() for g in groups)
    assert len(number.replace(" ", "")) == SAFETY_DIGITS


def test_the_number_is_made_of_both_fingerprints_halves() -> None:
    digits = safety_number(ALICE, BOB).replace(" ", "")
    halves = {ALICE.fingerprint().replace(" ", "")[:30], BOB.fingerprint().replace(" ", "")[:30]}
    assert {digits[:30], digits[30:]} == halves
    assert digits[:30] <= digits[30:]


def test_another_key_gives_another_number() -> None:
    assert safety_number(ALICE, BOB) != safety_number(ALICE, MALLORY)
    assert safety_number(ALICE, BOB) != safety_number(MALLORY, BOB)


def test_qr_payload_round_trip() -> None:
    payload = qr_payload(BOB, ALICE)
    assert payload.startswith(QR_PREFIX)
    assert parse_payload(payload) == safety_number(ALICE, BOB).replace(" ", "")
    assert matches_payload(payload, ALICE, BOB)
    assert matches_payload(" " + payload + "\n", BOB, ALICE)
    assert not matches_payload(qr_payload(MALLORY, BOB), ALICE, BOB)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mc1:AAAA", "contact card"),
        ("hello", "not a meshchat safety number"),
        (QR_PREFIX + "1" * 59, "malformed"),
        (QR_PREFIX + "1" * 59 + "x", "malformed"),
        (QR_PREFIX + "\u0661" * 60, "malformed"),  # Arabic-Indic digits are not ASCII digits
        ("x" * 1000, "not a meshchat safety number"),
    ],
)
def test_bad_payloads_are_usage_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_payload(text)


@given(st.text(max_size=120))
def test_parse_payload_never_fails_untyped(text: str) -> None:
    try:
        digits = parse_payload(text)
    except UsageError:
        return
    assert len(digits) == SAFETY_DIGITS and digits.isdigit()
