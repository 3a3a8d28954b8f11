"""The sealed envelope of suite RATCHET: layout, padding, and a decoder that only raises
DecryptionError."""

from __future__ import annotations

import contextlib
import os

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.public import PrivateKey

from meshchat.crypto.padding import BUCKETS
from meshchat.crypto.sealed import Envelope, open_sealed, seal
from meshchat.crypto.sessions import RatchetMessage
from meshchat.errors import DecryptionError
from meshchat.identity import Identity

KEY = PrivateKey.generate()


def _envelope(text_size: int = 10, *, initial: bool = False) -> Envelope:
    who = Identity.generate().public if initial else None
    return Envelope(
        origin=os.urandom(32),
        sender=who,
        x3dh=(os.urandom(32), os.urandom(32)) if initial else None,
        message=RatchetMessage(os.urandom(32), 3, 7, os.urandom(text_size)),
        ack_token=os.urandom(16),
    )


@pytest.mark.parametrize("size", [0, 50, 300, 900, 1400])
@pytest.mark.parametrize("initial", [False, True])
def test_round_trip_and_bucketed_size(size: int, initial: bool) -> None:
    envelope = _envelope(size, initial=initial)
    payload = seal(b"\x09" * 16, envelope, bytes(KEY.public_key))
    assert len(payload) in BUCKETS
    assert payload[:16] == b"\x09" * 16
    assert open_sealed(payload, bytes(KEY)) == envelope


def test_wrong_key_and_altered_bytes_fail() -> None:
    payload = seal(b"\x00" * 16, _envelope(), bytes(KEY.public_key))
    with pytest.raises(DecryptionError):
        open_sealed(payload, bytes(PrivateKey.generate()))
    altered = bytearray(payload)
    altered[100] ^= 1
    with pytest.raises(DecryptionError):
        open_sealed(bytes(altered), bytes(KEY))
    with pytest.raises(DecryptionError):
        open_sealed(payload[:40], bytes(KEY))


def test_sender_and_key_agreement_go_together() -> None:
    env = _envelope(initial=True)
    fields = cbor2.loads(env.encode())
    fields[2] = None
    with pytest.raises(DecryptionError, match="together"):
        Envelope.decode(cbor2.dumps(fields, canonical=True))


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.none(),
            st.binary(max_size=40),
            st.integers(min_value=-(2**40), max_value=2**40),
            st.text(max_size=5),
            st.lists(st.binary(max_size=33), max_size=3),
        ),
        max_size=9,
    )
)
def test_decoder_raises_only_decryption_error(fields: list[object]) -> None:
    with contextlib.suppress(DecryptionError):
        Envelope.decode(cbor2.dumps(fields, canonical=True))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_decoder_on_raw_bytes(data: bytes) -> None:
    with contextlib.suppress(DecryptionError):
        Envelope.decode(data)


def test_a_known_public_key_opens_the_same_and_a_wrong_one_does_not() -> None:
    envelope = _envelope(40)
    payload = seal(b"\x01" * 16, envelope, bytes(KEY.public_key))
    secret = bytes(KEY)
    assert open_sealed(payload, secret, bytes(KEY.public_key)) == open_sealed(payload, secret)
    # The public key is hashed into the nonce: a wrong one cannot open the box.
    with pytest.raises(DecryptionError, match="does not open"):
        open_sealed(payload, secret, bytes(PrivateKey.generate().public_key))
    with pytest.raises(DecryptionError, match="does not open"):
        open_sealed(payload, secret, b"short")
