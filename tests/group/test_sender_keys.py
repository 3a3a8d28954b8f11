"""Sender chains and GROUP payloads: open once, in any order, only with the sender's key."""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from meshchat.crypto.padding import BUCKETS
from meshchat.errors import DecryptionError
from meshchat.group.sender_keys import (
    MAX_SKIP,
    EpochKeys,
    SenderChain,
    open_body,
    open_header,
    seal_message,
)

SENDER = os.urandom(16)


def send(
    keys: EpochKeys, chain: SenderChain, signer: SigningKey, body: bytes
) -> tuple[bytes, bytes, SenderChain]:
    origin = bytes(SigningKey.generate().verify_key)
    payload, after = seal_message(keys, chain, signer, SENDER, origin, body)
    return origin, payload, after


def receive(
    keys: EpochKeys, chain: SenderChain, signing_public: bytes, origin: bytes, payload: bytes
) -> tuple[bytes, SenderChain]:
    header = open_header(keys, origin, payload)
    assert header.sender_node_id == SENDER
    key, after = chain.key_for(header.iteration)
    return open_body(keys, key, signing_public, origin, header, payload), after


def test_messages_open_in_any_order_and_each_only_once() -> None:
    keys = EpochKeys.generate()
    signer = SigningKey.generate()
    start = SenderChain.generate()
    chain = start
    sent = []
    for i in range(50):
        origin, payload, chain = send(keys, chain, signer, f"message {i}".encode())
        sent.append((origin, payload, f"message {i}".encode()))
        assert len(payload) in BUCKETS
    order = list(range(50))
    random.Random(7).shuffle(order)
    held = start
    public = bytes(signer.verify_key)
    for i in order:
        origin, payload, body = sent[i]
        opened, held = receive(keys, held, public, origin, payload)
        assert opened == body
    for origin, payload, _ in sent[:5]:
        with pytest.raises(DecryptionError, match="already used"):
            receive(keys, held, public, origin, payload)


def test_a_member_cannot_write_as_another() -> None:
    keys = EpochKeys.generate()
    chain = SenderChain.generate()
    real = SigningKey.generate()
    # Mallory holds the chain key (every member does) but not the sender's signing key.
    origin, payload, _ = send(keys, chain, SigningKey.generate(), b"I am Alice")
    with pytest.raises(DecryptionError, match="not signed"):
        receive(keys, chain, bytes(real.verify_key), origin, payload)


def test_payload_cannot_move_to_another_packet() -> None:
    keys = EpochKeys.generate()
    chain = SenderChain.generate()
    signer = SigningKey.generate()
    _, payload, _ = send(keys, chain, signer, b"hello")
    other_origin = bytes(SigningKey.generate().verify_key)
    with pytest.raises(DecryptionError):
        receive(keys, chain, bytes(signer.verify_key), other_origin, payload)


def test_other_epoch_keys_open_nothing() -> None:
    keys, other = EpochKeys.generate(), EpochKeys.generate()
    assert keys.address != other.address
    origin, payload, _ = send(keys, SenderChain.generate(), SigningKey.generate(), b"x")
    with pytest.raises(DecryptionError):
        open_header(other, origin, payload)


def test_a_jump_past_the_skip_window_is_refused() -> None:
    chain = SenderChain.generate()
    with pytest.raises(DecryptionError, match="too far"):
        chain.key_for(MAX_SKIP + 1)
    _key, after = chain.key_for(MAX_SKIP)
    assert len(after.skipped) == MAX_SKIP and after.iteration == MAX_SKIP + 1


def test_a_failed_open_leaves_the_chain_as_it_was() -> None:
    keys = EpochKeys.generate()
    signer = SigningKey.generate()
    chain = SenderChain.generate()
    origin, payload, _ = send(keys, chain, signer, b"x")
    tampered = payload[:-1] + bytes([payload[-1] ^ 1])
    header = open_header(keys, origin, tampered)
    key, after = chain.key_for(header.iteration)
    with pytest.raises(DecryptionError):
        open_body(keys, key, bytes(signer.verify_key), origin, header, tampered)
    # The caller keeps ``chain``, not ``after``: the real message still opens.
    opened, _ = receive(keys, chain, bytes(signer.verify_key), origin, payload)
    assert opened == b"x"
    assert after.iteration == 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.binary(min_size=32, max_size=32))
def test_arbitrary_payloads_raise_only_decryption_errors(payload: bytes, origin: bytes) -> None:
    keys = EpochKeys.from_secret(bytes(32))
    try:
        header = open_header(keys, origin, payload)
    except DecryptionError:
        return
    key, _ = SenderChain(bytes(32)).key_for(0) if header.iteration == 0 else (bytes(32), None)
    with pytest.raises(DecryptionError):
        open_body(keys, key, bytes(SigningKey(bytes(32)).verify_key), origin, header, payload)
