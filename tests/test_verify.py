"""The one verify flow: what marks a contact verified, and what changes nothing."""

from __future__ import annotations

import pytest

from meshchat.errors import UsageError
from meshchat.identity import Identity, PublicIdentity
from meshchat.safety import qr_payload, safety_number
from meshchat.store.records import Contact, Trust
from meshchat.verify import SafetyMismatch, decide

ME, THEM, MALLORY = (Identity.generate().public for _ in range(3))


def contact(who: PublicIdentity, trust: Trust = Trust.UNVERIFIED) -> Contact:
    return Contact(who.node_id, who.sign_public, who.box_public, "them", trust, 0)


def test_without_an_answer_the_number_is_only_shown() -> None:
    verdict = decide(contact(THEM), ME)
    assert verdict.number == safety_number(ME, THEM) and not verdict.mark


def test_the_right_number_typed_with_any_spacing_marks() -> None:
    number = safety_number(ME, THEM).replace(" ", "")
    assert decide(contact(THEM), ME, number=number).mark


def test_a_wrong_number_changes_nothing() -> None:
    with pytest.raises(SafetyMismatch, match="not your safety number"):
        decide(contact(THEM), ME, number=safety_number(ME, MALLORY))


def test_a_scanned_code_must_be_this_pairs() -> None:
    assert decide(contact(THEM), ME, payloads=[qr_payload(THEM, ME)]).mark
    with pytest.raises(SafetyMismatch, match="SAFETY NUMBERS DIFFER"):
        decide(contact(THEM), ME, payloads=[qr_payload(MALLORY, ME)])
    with pytest.raises(UsageError):
        decide(contact(THEM), ME, payloads=["not a code"])


def test_confirming_by_eye_marks() -> None:
    assert decide(contact(THEM), ME, confirmed=True).mark


def test_compromised_keys_are_never_verified() -> None:
    with pytest.raises(UsageError, match="COMPROMISED"):
        decide(contact(THEM, Trust.COMPROMISED), ME, confirmed=True)
