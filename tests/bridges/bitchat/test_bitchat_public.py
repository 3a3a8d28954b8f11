"""bitchat announces and public messages: the sender-id check, signatures under upstream's
rules, freshness, and the replay window."""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshchat.bridges.bitchat.announce import (
    Announcement,
    decode_announcement,
    encode_announcement,
    verify_announce,
)
from meshchat.bridges.bitchat.packet import BitchatPacket, MessageType, decode, encode
from meshchat.bridges.bitchat.public import BitchatIdentity, ReplayWindow, verify_message
from meshchat.errors import BridgeError, BridgeReason

NOW = 1_800_000_000_000
HOUR = 3600 * 1000


def _reason(call: object) -> BridgeReason:
    with pytest.raises(BridgeError) as caught:
        call()  # type: ignore[operator]
    return caught.value.reason


def test_announce_round_trips_and_verifies() -> None:
    me = BitchatIdentity.generate()
    packet = decode(encode(me.announce("alice", NOW, capabilities=0x0105)))
    assert packet.sender_id == hashlib.sha256(me.noise_key).digest()[:8]
    announcement = verify_announce(packet, NOW + 1000)
    assert announcement.nickname == "alice"
    assert announcement.signing_key == me.signing_key
    assert announcement.capabilities == 0x0105


def test_announce_whose_sender_id_is_not_its_noise_key_is_refused() -> None:
    me, other = BitchatIdentity.generate(), BitchatIdentity.generate()
    body = encode_announcement(Announcement("mallory", me.noise_key, other.signing_key))
    forged = other.sign(
        BitchatPacket(
            type=MessageType.ANNOUNCE, sender_id=other.peer_id, timestamp=NOW, payload=body
        )
    )
    assert _reason(lambda: verify_announce(forged, NOW)) is BridgeReason.SENDER_MISMATCH


def test_announce_unsigned_badly_signed_or_stale_is_refused() -> None:
    me = BitchatIdentity.generate()
    good = me.announce("bob", NOW)
    assert (
        _reason(lambda: verify_announce(replace(good, signature=None), NOW))
        is BridgeReason.UNSIGNED
    )
    flipped = replace(good, signature=bytes([good.signature[0] ^ 1]) + good.signature[1:])  # type: ignore[index]
    assert _reason(lambda: verify_announce(flipped, NOW)) is BridgeReason.BAD_SIGNATURE
    # the TTL is not signed: a relayed copy still verifies
    verify_announce(replace(good, ttl=2), NOW)
    assert _reason(lambda: verify_announce(good, NOW + 16 * 60 * 1000)) is BridgeReason.STALE
    assert _reason(lambda: verify_announce(good, NOW - 11 * 60 * 1000)) is BridgeReason.FROM_FUTURE


@pytest.mark.parametrize(
    ("tlvs", "reason"),
    [
        (b"\x01\x03bob\x02\x20" + b"k" * 31, BridgeReason.TRUNCATED),
        (b"\x01\x03bob\x02", BridgeReason.TRUNCATED),
        (b"\x01\x03bob\x02\x20" + b"k" * 32, BridgeReason.BAD_FIELD),  # no signing key
        (
            b"\x01\x03bob\x01\x03bob\x02\x20" + b"k" * 32 + b"\x03\x20" + b"s" * 32,
            BridgeReason.BAD_FIELD,
        ),
        (b"\x01\x03bob\x02\x10" + b"k" * 16 + b"\x03\x20" + b"s" * 32, BridgeReason.BAD_FIELD),
        (b"\x01\x02\xff\xfe\x02\x20" + b"k" * 32 + b"\x03\x20" + b"s" * 32, BridgeReason.BAD_FIELD),
        (
            b"\x01\x03bob\x02\x20" + b"k" * 32 + b"\x03\x20" + b"s" * 32 + b"\x04\x07" + b"n" * 7,
            BridgeReason.BAD_FIELD,
        ),
        (
            b"\x01\x03bob\x02\x20" + b"k" * 32 + b"\x03\x20" + b"s" * 32 + b"\x05\x02\x01\x00",
            BridgeReason.BAD_FIELD,
        ),
    ],
)
def test_bad_announce_tlvs(tlvs: bytes, reason: BridgeReason) -> None:
    assert _reason(lambda: decode_announcement(tlvs)) is reason


def test_unknown_tlvs_are_skipped_for_forward_compatibility() -> None:
    body = b"\x01\x03bob\x02\x20" + b"k" * 32 + b"\x03\x20" + b"s" * 32 + b"\x09\x02zz"
    announcement = decode_announcement(body)
    assert announcement.nickname == "bob" and announcement.unknown == (9,)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_announce_decoder_never_fails_untyped(data: bytes) -> None:
    with contextlib.suppress(BridgeError):
        decode_announcement(data)


@pytest.mark.parametrize("text", ["hi there", "long compressible text " * 8, "é" * 120])
def test_public_message_signed_and_verified(text: str) -> None:
    me = BitchatIdentity.generate()
    packet = decode(encode(me.message(text, NOW)))
    assert packet.recipient_id is None and packet.ttl == 7
    assert verify_message(packet, me.signing_key, NOW) == text
    assert verify_message(replace(packet, ttl=1), me.signing_key, NOW) == text


def test_public_message_rules() -> None:
    me, other = BitchatIdentity.generate(), BitchatIdentity.generate()
    good = me.message("hello", NOW)
    checks = [
        (replace(good, signature=None), BridgeReason.UNSIGNED),
        (replace(good, payload=b"hellO"), BridgeReason.BAD_SIGNATURE),
        (replace(good, timestamp=NOW + 1), BridgeReason.BAD_SIGNATURE),
        (replace(good, type=MessageType.LEAVE), BridgeReason.NOT_TEXT),
        (replace(good, recipient_id=b"\x01" * 8), BridgeReason.NOT_TEXT),
    ]
    for packet, reason in checks:
        assert _reason(lambda p=packet: verify_message(p, me.signing_key, NOW)) is reason
    assert (
        _reason(lambda: verify_message(good, other.signing_key, NOW)) is BridgeReason.BAD_SIGNATURE
    )
    assert (
        _reason(lambda: verify_message(good, me.signing_key, NOW + 6 * HOUR + 1))
        is BridgeReason.STALE
    )
    assert verify_message(good, me.signing_key, NOW + 6 * HOUR) == "hello"
    bad_utf8 = me.sign(
        BitchatPacket(type=2, sender_id=me.peer_id, timestamp=NOW, payload=b"\xff\xfe")
    )
    assert _reason(lambda: verify_message(bad_utf8, me.signing_key, NOW)) is BridgeReason.BAD_FIELD


def test_replay_window_refuses_replays_then_old_packets() -> None:
    me = BitchatIdentity.generate()
    window = ReplayWindow(capacity=100)
    packet = me.message("once", NOW)
    window.admit(packet, NOW)
    assert _reason(lambda: window.admit(replace(packet, ttl=3), NOW + 1)) is BridgeReason.DUPLICATE
    old = me.message("from yesterday", NOW - 7 * HOUR)
    assert _reason(lambda: window.admit(old, NOW)) is BridgeReason.STALE
    for i in range(300):
        window.admit(me.message(f"m{i}", NOW + i), NOW + i)
    assert len(window) == 100


def test_peers_pin_the_first_signing_key_and_gate_messages() -> None:
    from meshchat.bridges.bitchat.peers import MARK, BitchatPeers

    assert "not end-to-end encrypted" in MARK and "other network" in MARK
    peers = BitchatPeers(capacity=2)
    alice = BitchatIdentity.generate()
    message = alice.message("hello bridge", NOW)
    assert _reason(lambda: peers.accept_message(message, NOW)) is BridgeReason.UNKNOWN_SENDER
    peers.accept_announce(alice.announce("alice", NOW), NOW)
    heard = peers.accept_message(message, NOW)
    assert (heard.nickname, heard.text) == ("alice", "hello bridge")
    assert _reason(lambda: peers.accept_message(message, NOW)) is BridgeReason.DUPLICATE
    # mallory copies alice's Noise key (so the peer id) with her own signing key
    mallory = BitchatIdentity(alice.noise_private, BitchatIdentity.generate().signing_private)
    copied = mallory.announce("alice", NOW + 1)
    assert _reason(lambda: peers.accept_announce(copied, NOW + 1)) is BridgeReason.SENDER_MISMATCH
    forged = mallory.message("send me money", NOW + 2)
    assert _reason(lambda: peers.accept_message(forged, NOW + 2)) is BridgeReason.BAD_SIGNATURE
    for _ in range(3):
        peers.accept_announce(BitchatIdentity.generate().announce("x", NOW), NOW)
    assert len(peers) == 2
