"""bitchat receipts: DELIVERED (0x03) and READ_RECEIPT (0x02) as upstream builds them (type
byte, then the message id as UTF-8), checked against bitchat-protocol's constants and packet
codec (code we did not write), what is refused, and the ledger of owed read receipts."""

from __future__ import annotations

import pytest
from bitchat_protocol import MessageType as TheirType
from bitchat_protocol import NoisePayloadType
from bitchat_protocol import decode as their_decode
from hypothesis import given, settings
from hypothesis import strategies as st

from meshchat.bridges.bitchat.dm import DELIVERED, READ_RECEIPT
from meshchat.bridges.bitchat.mesh import BitchatMesh, Delivered, Private, Read, Send
from meshchat.bridges.bitchat.public import BitchatIdentity
from meshchat.bridges.bitchat.receipts import MAX_ID_BYTES, Receipt, Unread, decode_receipt
from meshchat.errors import BridgeError, BridgeReason

NOW = 1_800_000_000_000
UUID = "6F9619FF-8B86-D011-B42D-00C04FC964FF"


def test_type_bytes_and_bodies_are_upstreams() -> None:
    """BLENoisePayloadFactory: ``[type] + Data(messageID.utf8)``, nothing else."""
    assert DELIVERED == NoisePayloadType.DELIVERED == 0x03
    assert READ_RECEIPT == NoisePayloadType.READ_RECEIPT == 0x02
    delivered = bytes([NoisePayloadType.DELIVERED]) + UUID.encode()
    read = bytes([NoisePayloadType.READ_RECEIPT]) + "ïd-ü".encode()
    assert Receipt(DELIVERED, UUID).encode() == delivered
    assert Receipt(READ_RECEIPT, "ïd-ü").encode() == read
    assert decode_receipt(delivered[0], delivered[1:]) == Receipt(DELIVERED, UUID)
    assert decode_receipt(read[0], read[1:]) == Receipt(READ_RECEIPT, "ïd-ü")


@pytest.mark.parametrize(
    ("kind", "data", "reason"),
    [
        (DELIVERED, b"", BridgeReason.BAD_FIELD),
        (READ_RECEIPT, b"\xff\xfe", BridgeReason.BAD_FIELD),
        (DELIVERED, b"x" * (MAX_ID_BYTES + 1), BridgeReason.OVERSIZED),
        (READ_RECEIPT, b"x" * 70_000, BridgeReason.OVERSIZED),
        (0x01, b"id", BridgeReason.BAD_FIELD),
    ],
)
def test_bad_receipts_are_refused(kind: int, data: bytes, reason: BridgeReason) -> None:
    with pytest.raises(BridgeError) as refused:
        decode_receipt(kind, data)
    assert refused.value.reason is reason


@given(st.sampled_from([DELIVERED, READ_RECEIPT, 0x00, 0x04, 0xFF]), st.binary(max_size=600))
def test_decode_receipt_never_crashes(kind: int, data: bytes) -> None:
    try:
        receipt = decode_receipt(kind, data)
    except BridgeError as exc:
        assert exc.reason in (BridgeReason.BAD_FIELD, BridgeReason.OVERSIZED)
        return
    assert receipt.encode() == bytes((kind,)) + data


@given(st.text(min_size=1, max_size=80))
def test_receipts_round_trip(message_id: str) -> None:
    for kind in (DELIVERED, READ_RECEIPT):
        wire = Receipt(kind, message_id).encode()
        assert decode_receipt(wire[0], wire[1:]) == Receipt(kind, message_id)


def test_unread_hands_each_id_out_once_and_is_bounded() -> None:
    unread = Unread(per_peer=3, peers=2)
    a, b, c = b"a" * 8, b"b" * 8, b"c" * 8
    for n in range(5):
        unread.add(a, f"m{n}")
    assert unread.take(a, 2) == ["m2", "m3"]  # the oldest two of the newest three
    unread.give_back(a, ["m3"])
    assert unread.take(a, 10) == ["m3", "m4"]
    assert unread.take(a, 10) == []
    unread.add(a, "x")
    unread.add(b, "y")
    unread.add(c, "z")  # a, least recently written, is forgotten
    assert a not in unread and b in unread and len(unread) == 2


def _deliver(frames: list[bytes], to: BitchatMesh) -> list[object]:
    out: list[object] = []
    for frame in frames:
        out.extend(to.receive(frame, NOW))
    return out


def _sent(decisions: list[object]) -> list[bytes]:
    return [f for d in decisions if isinstance(d, Send) for f in d.frames]


def _pair() -> tuple[BitchatMesh, BitchatMesh, str]:
    """carol and gate with a Noise session; the id of carol's first private message."""
    carol = BitchatMesh(BitchatIdentity.generate(), "carol")
    gate = BitchatMesh(BitchatIdentity.generate(), "gate")
    _deliver(carol.announce(NOW), gate)
    _deliver(gate.announce(NOW), carol)
    message_id, frames = carol.send_private(gate.identity.peer_id, "psst", NOW)
    at_gate = _deliver(frames, gate)
    at_carol = _deliver(_sent(at_gate), carol)
    at_gate = _deliver(_sent(at_carol), gate)
    assert [d.message.message_id for d in at_gate if isinstance(d, Private)] == [message_id]
    assert _deliver(_sent(at_gate), carol) == [Delivered(gate.identity.peer_id, message_id)]
    return carol, gate, message_id


def test_our_read_receipt_decodes_with_bitchat_protocol_and_reaches_the_peer() -> None:
    carol, gate, message_id = _pair()
    frames = gate.send_read(carol.identity.peer_id, [message_id], NOW)
    assert len(frames) == 1
    theirs = their_decode(frames[0])
    assert theirs is not None
    assert theirs.type == TheirType.NOISE_ENCRYPTED
    assert theirs.sender_id == gate.identity.peer_id
    assert theirs.recipient_id == carol.identity.peer_id
    assert theirs.signature is not None and len(theirs.signature) == 64
    # carol's side of the session decrypts it to upstream's READ_RECEIPT payload
    nonce_and_ciphertext = theirs.payload
    plaintext = carol.dms.decrypt(gate.identity.peer_id, nonce_and_ciphertext)
    assert plaintext == bytes([NoisePayloadType.READ_RECEIPT]) + message_id.encode()


def test_an_upstream_built_read_receipt_is_taken() -> None:
    carol, gate, _ = _pair()
    _, reply = gate.send_private(carol.identity.peer_id, "seen?", NOW)
    got = _deliver(reply, carol)
    ours = next(d.message.message_id for d in got if isinstance(d, Private))
    # carol sends what upstream's BLENoisePayloadFactory.readReceipt builds
    upstream = bytes([NoisePayloadType.READ_RECEIPT]) + ours.encode("utf-8")
    frames = carol.send_payload(gate.identity.peer_id, upstream, NOW)
    assert _deliver(frames, gate) == [Read(carol.identity.peer_id, ours)]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (bytes([DELIVERED]), BridgeReason.BAD_FIELD),
        (bytes([DELIVERED]) + b"\xc3", BridgeReason.BAD_FIELD),
        (bytes([READ_RECEIPT]) + b"i" * 300, BridgeReason.OVERSIZED),
    ],
)
def test_a_malformed_receipt_is_a_typed_refusal(body: bytes, reason: BridgeReason) -> None:
    carol, gate, _ = _pair()
    frames = carol.send_payload(gate.identity.peer_id, body, NOW)
    with pytest.raises(BridgeError) as refused:
        _deliver(frames, gate)
    assert refused.value.reason is reason
    # the session survives: a good receipt still comes through
    frames = carol.send_payload(gate.identity.peer_id, Receipt(DELIVERED, "ok").encode(), NOW)
    assert _deliver(frames, gate) == [Delivered(carol.identity.peer_id, "ok")]


@settings(max_examples=40, deadline=None)
@given(st.sampled_from([DELIVERED, READ_RECEIPT]), st.binary(max_size=400))
def test_any_receipt_body_through_a_session_is_a_decision_or_a_typed_refusal(
    kind: int, body: bytes
) -> None:
    carol, gate, _ = _pair()
    frames = carol.send_payload(gate.identity.peer_id, bytes((kind,)) + body, NOW)
    try:
        decisions = _deliver(frames, gate)
    except BridgeError as exc:
        assert exc.reason in (BridgeReason.BAD_FIELD, BridgeReason.OVERSIZED)
        return
    expected = Delivered if kind == DELIVERED else Read
    assert decisions == [expected(carol.identity.peer_id, body.decode("utf-8"))]
