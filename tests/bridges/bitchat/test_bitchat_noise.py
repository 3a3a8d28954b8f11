"""bitchat's Noise XX: upstream's test vectors (bitchatTests/Noise/NoiseTestVectors.json,
copied unchanged into data/) replay byte for byte with the noiseprotocol package."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from meshchat.bridges.bitchat.noise import PROTOCOL_NAME, split_nonce, with_nonce, xx_connection
from meshchat.errors import BridgeError, BridgeReason

VECTORS = json.loads((Path(__file__).parent / "data" / "NoiseTestVectors.json").read_text())


def _pair(vector: dict[str, object]) -> tuple[Any, Any]:
    h = bytes.fromhex
    initiator = xx_connection(
        initiator=True,
        static_private=h(str(vector["init_static"])),
        ephemeral_private=h(str(vector["init_ephemeral"])),
        prologue=h(str(vector["init_prologue"])),
    )
    responder = xx_connection(
        initiator=False,
        static_private=h(str(vector["resp_static"])),
        ephemeral_private=h(str(vector["resp_ephemeral"])),
        prologue=h(str(vector["resp_prologue"])),
    )
    return initiator, responder


@pytest.mark.parametrize("vector", VECTORS, ids=[f"vector{i}" for i in range(len(VECTORS))])
def test_upstream_noise_vectors_replay_exactly(vector: dict[str, object]) -> None:
    assert vector["protocol_name"] == PROTOCOL_NAME.decode()
    h = bytes.fromhex
    # noiseprotocol warns when an ephemeral key is fixed: only test vectors do that
    with pytest.warns(UserWarning, match="ephemeral"):
        initiator, responder = _pair(vector)
    messages = vector["messages"]
    assert isinstance(messages, list) and len(messages) > 3
    for index, message in enumerate(messages):
        sender, receiver = (initiator, responder) if index % 2 == 0 else (responder, initiator)
        payload, expected = h(message["payload"]), h(message["ciphertext"])
        if index < 3:
            assert sender.write_message(payload) == expected
            assert receiver.read_message(expected) == payload
        else:
            assert sender.encrypt(payload) == expected
            assert receiver.decrypt(expected) == payload
        if index == 2:
            assert initiator.handshake_finished and responder.handshake_finished
            if "handshake_hash" in vector:
                assert initiator.get_handshake_hash() == h(str(vector["handshake_hash"]))
                assert responder.get_handshake_hash() == h(str(vector["handshake_hash"]))


def test_transport_frames_carry_a_4_byte_nonce() -> None:
    frame = with_nonce(258, b"c" * 20)
    assert frame[:4] == b"\x00\x00\x01\x02" and split_nonce(frame) == (258, b"c" * 20)
    with pytest.raises(BridgeError) as caught:
        split_nonce(b"\x00\x00\x00\x01" + b"short")
    assert caught.value.reason is BridgeReason.TRUNCATED
    with pytest.raises(BridgeError):
        with_nonce(2**32, b"")
