"""bitchat DMs: the private-message TLVs against bitchat-protocol (an independent codec), Noise
XX sessions between two meshes (handshake, either side first, both at once), the explicit
nonce and its replay window, and what is refused."""

from __future__ import annotations

import os

import pytest
from bitchat_protocol.tlv import decode_private_message, encode_private_message
from bitchat_protocol.types import PrivateMessagePacket
from hypothesis import given
from hypothesis import strategies as st

from meshchat.bridges.bitchat.announce import peer_id
from meshchat.bridges.bitchat.dm import (
    DmSessions,
    decode_private,
    encode_private,
)
from meshchat.bridges.bitchat.mesh import BitchatMesh, Delivered, Private, Relay, Send
from meshchat.bridges.bitchat.packet import MessageType, decode
from meshchat.bridges.bitchat.public import BitchatIdentity
from meshchat.errors import BridgeError, BridgeReason

NOW = 1_800_000_000_000


def test_private_message_tlvs_match_bitchat_protocol() -> None:
    ours = encode_private("6F9619FF-8B86-D011-B42D-00C04FC964FF", "hello, ünïcode")
    theirs = decode_private_message(ours)
    assert theirs == PrivateMessagePacket("6F9619FF-8B86-D011-B42D-00C04FC964FF", "hello, ünïcode")
    back = encode_private_message(PrivateMessagePacket("id-1", "from bitchat-protocol"))
    assert decode_private(back) == ("id-1", "from bitchat-protocol")
    with pytest.raises(BridgeError) as over:
        encode_private("id", "x" * 256)
    assert over.value.reason is BridgeReason.OVERSIZED


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x00\x02id", BridgeReason.BAD_FIELD),  # no content
        (b"\x00\x05id", BridgeReason.TRUNCATED),
        (b"\x00", BridgeReason.TRUNCATED),
        (b"\x07\x00\x00\x00\x01\x00", BridgeReason.BAD_FIELD),  # unknown TLV
        (b"\x00\x01\xff\x01\x00", BridgeReason.BAD_FIELD),  # not UTF-8
    ],
)
def test_bad_private_messages_are_refused(data: bytes, reason: BridgeReason) -> None:
    with pytest.raises(BridgeError) as refused:
        decode_private(data)
    assert refused.value.reason is reason


@given(st.binary(max_size=600))
def test_decode_private_never_crashes(data: bytes) -> None:
    try:
        message_id, content = decode_private(data)
    except BridgeError:
        return
    assert decode_private(encode_private(message_id, content)) == (message_id, content)


def _keys() -> tuple[bytes, bytes]:
    identity = BitchatIdentity.generate()
    raw = identity.noise_private.private_bytes_raw()
    return raw, identity.peer_id


def test_sessions_handshake_and_replay_window() -> None:
    (a_key, a_id), (b_key, b_id) = _keys(), _keys()
    a, b = DmSessions(a_key, a_id), DmSessions(b_key, b_id)
    first = a.start(b_id)
    second, done = b.handshake(a_id, first)
    assert second is not None and not done
    third, done = a.handshake(b_id, second)
    assert third is not None and done
    reply, done = b.handshake(a_id, third)
    assert reply is None and done
    frames = [a.encrypt(b_id, f"m{i}".encode()) for i in range(3)]
    assert b.decrypt(a_id, frames[2]) == b"m2"  # out of order is fine
    assert b.decrypt(a_id, frames[0]) == b"m0"
    with pytest.raises(BridgeError) as replay:
        b.decrypt(a_id, frames[2])
    assert replay.value.reason is BridgeReason.DUPLICATE
    tampered = frames[1][:-1] + bytes([frames[1][-1] ^ 1])
    with pytest.raises(BridgeError) as bad:
        b.decrypt(a_id, tampered)
    assert bad.value.reason is BridgeReason.NOISE
    assert b.decrypt(a_id, frames[1]) == b"m1"
    assert a.decrypt(b_id, b.encrypt(a_id, b"back")) == b"back"


def test_a_static_key_that_is_not_the_peer_id_is_refused() -> None:
    (a_key, a_id), (b_key, b_id) = _keys(), _keys()
    liar = os.urandom(8)  # b claims another peer id than its key's
    a, b = DmSessions(a_key, a_id), DmSessions(b_key, b_id)
    second, _ = b.handshake(a_id, a.start(liar))
    assert second is not None
    with pytest.raises(BridgeError) as refused:
        a.handshake(liar, second)
    assert refused.value.reason is BridgeReason.SENDER_MISMATCH
    assert not a.established(liar) and peer_id(os.urandom(32)) != liar


def test_garbage_and_out_of_turn_handshakes_are_refused() -> None:
    (a_key, a_id), (_, b_id) = _keys(), _keys()
    a = DmSessions(a_key, a_id)
    with pytest.raises(BridgeError) as turn:
        a.handshake(b_id, os.urandom(96))  # a second message with no session
    assert turn.value.reason is BridgeReason.NOISE
    a.start(b_id)
    with pytest.raises(BridgeError) as garbage:
        a.handshake(b_id, os.urandom(96))
    assert garbage.value.reason is BridgeReason.NOISE
    with pytest.raises(BridgeError):
        a.encrypt(b_id, b"no session")


def test_both_starting_at_once_settles_on_the_lower_peer_id() -> None:
    (a_key, a_id), (b_key, b_id) = _keys(), _keys()
    a, b = DmSessions(a_key, a_id), DmSessions(b_key, b_id)
    from_a, from_b = a.start(b_id), b.start(a_id)
    low, high = (a, b) if a_id < b_id else (b, a)
    low_id, high_id = (a_id, b_id) if a_id < b_id else (b_id, a_id)
    first_of_low = from_a if low is a else from_b
    first_of_high = from_b if low is a else from_a
    assert low.handshake(high_id, first_of_high) == (None, False)  # low keeps its own
    second, _ = high.handshake(low_id, first_of_low)  # high answers low's
    assert second is not None
    third, done = low.handshake(high_id, second)
    assert done and third is not None
    assert high.handshake(low_id, third) == (None, True)


def _deliver(frames: list[bytes], to: BitchatMesh) -> list[object]:
    out: list[object] = []
    for frame in frames:
        out.extend(to.receive(frame, NOW))
    return out


def _sent(decisions: list[object]) -> list[bytes]:
    return [f for d in decisions if isinstance(d, Send) for f in d.frames]


def test_two_meshes_exchange_a_private_message() -> None:
    carol = BitchatMesh(BitchatIdentity.generate(), "carol")
    gate = BitchatMesh(BitchatIdentity.generate(), "gate")
    _deliver(carol.announce(NOW), gate)
    _deliver(gate.announce(NOW), carol)
    message_id, frames = carol.send_private(gate.identity.peer_id, "psst", NOW)
    assert [decode(f).type for f in frames] == [MessageType.NOISE_HANDSHAKE]
    assert all(len(f) in (256, 512) for f in frames)  # padded, as upstream pads Noise frames
    at_gate = _deliver(frames, gate)
    assert not any(isinstance(d, Relay) for d in at_gate)  # addressed to gate: not relayed
    at_carol = _deliver(_sent(at_gate), carol)  # handshake 3 and the queued message
    at_gate = _deliver(_sent(at_carol), gate)
    privates = [d.message for d in at_gate if isinstance(d, Private)]
    assert [(p.text, p.nickname, p.message_id) for p in privates] == [("psst", "carol", message_id)]
    acks = _deliver(_sent(at_gate), carol)
    assert acks == [Delivered(gate.identity.peer_id, message_id)]
    # established: the reply goes at once
    _, reply = gate.send_private(carol.identity.peer_id, "heard you", NOW)
    got = [d.message.text for d in _deliver(reply, carol) if isinstance(d, Private)]
    assert got == ["heard you"]
    with pytest.raises(BridgeError) as unknown:
        gate.send_private(os.urandom(8), "to nobody", NOW)
    assert unknown.value.reason is BridgeReason.UNKNOWN_SENDER
