"""Suite BOX: direct messages sealed to one recipient."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshchat.crypto.box import BOX_OVERHEAD, BoxSuite
from meshchat.errors import DecryptionError
from meshchat.identity import Identity

ALICE = Identity.from_seeds(b"\x61" * 32, b"\x62" * 32)
BOB = Identity.from_seeds(b"\x71" * 32, b"\x72" * 32)
EVE = Identity.from_seeds(b"\x81" * 32, b"\x82" * 32)


def test_seal_open_round_trip() -> None:
    sealed = BoxSuite(ALICE).seal(BOB.public.box_public, b"hello bob")
    sender, plaintext = BoxSuite(BOB).open(sealed)
    assert plaintext == b"hello bob"
    assert sender == ALICE.public.box_public
    assert len(sealed) == len(b"hello bob") + BOX_OVERHEAD
    assert b"hello bob" not in sealed


def test_sealing_uses_fresh_nonces() -> None:
    box = BoxSuite(ALICE)
    a = box.seal(BOB.public.box_public, b"same")
    b = box.seal(BOB.public.box_public, b"same")
    assert a != b
    assert BoxSuite(BOB).open(a)[1] == BoxSuite(BOB).open(b)[1] == b"same"


def test_empty_plaintext_round_trip() -> None:
    sealed = BoxSuite(ALICE).seal(BOB.public.box_public, b"")
    assert len(sealed) == BOX_OVERHEAD
    assert BoxSuite(BOB).open(sealed) == (ALICE.public.box_public, b"")


def test_wrong_recipient_cannot_open() -> None:
    sealed = BoxSuite(ALICE).seal(BOB.public.box_public, b"for bob only")
    with pytest.raises(DecryptionError):
        BoxSuite(EVE).open(sealed)
    with pytest.raises(DecryptionError):
        BoxSuite(ALICE).open(sealed)  # not even the sender


def test_claimed_sender_key_is_authenticated() -> None:
    # Eve swaps in Alice's box key as the sender: the shared key changes, the box fails.
    sealed = BoxSuite(EVE).seal(BOB.public.box_public, b"i am alice")
    forged = ALICE.public.box_public + sealed[32:]
    with pytest.raises(DecryptionError):
        BoxSuite(BOB).open(forged)


@pytest.mark.parametrize("cut", [0, 1, BOX_OVERHEAD - 1])
def test_short_payload_rejected(cut: int) -> None:
    sealed = BoxSuite(ALICE).seal(BOB.public.box_public, b"x")
    with pytest.raises(DecryptionError):
        BoxSuite(BOB).open(sealed[:cut])


def test_low_order_sender_key_rejected() -> None:
    payload = b"\x00" * 32 + b"\x01" * 24 + b"\x02" * 40
    with pytest.raises(DecryptionError):
        BoxSuite(BOB).open(payload)


@settings(max_examples=200, deadline=None)
@given(plaintext=st.binary(max_size=200), data=st.data())
def test_any_single_byte_change_is_detected(plaintext: bytes, data: st.DataObject) -> None:
    sealed = BoxSuite(ALICE).seal(BOB.public.box_public, plaintext)
    pos = data.draw(st.integers(0, len(sealed) - 1))
    mask = data.draw(st.integers(1, 255))
    tampered = sealed[:pos] + bytes([sealed[pos] ^ mask]) + sealed[pos + 1 :]
    with pytest.raises(DecryptionError):
        BoxSuite(BOB).open(tampered)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_payload_raises_decryption_error(payload: bytes) -> None:
    with pytest.raises(DecryptionError):
        BoxSuite(BOB).open(payload)


def test_shared_key_cache_is_bounded_and_still_correct() -> None:
    bob = BoxSuite(BOB, cache_size=2)
    senders = [Identity.generate() for _ in range(5)]
    for _ in range(2):
        for sender in senders:
            sealed = BoxSuite(sender).seal(BOB.public.box_public, b"hi")
            assert bob.open(sealed) == (sender.public.box_public, b"hi")
            assert len(bob._boxes) <= 2
