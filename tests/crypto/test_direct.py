"""DirectSuite: the receiving checks of sealed messages, one by one, and its state handling."""

from __future__ import annotations

import os

import pytest
from nacl.signing import SigningKey

from meshchat.crypto.direct import DirectSuite, anonymous_packet
from meshchat.crypto.sealed import Envelope, seal
from meshchat.crypto.sessions import RatchetMessage
from meshchat.crypto.tags import epoch_of, pair_key, pair_tag, prekey_tag
from meshchat.errors import DecryptionError
from meshchat.identity import Identity
from meshchat.wire.packet import Destination, PacketKind
from meshchat.wire.payloads import MessageBody, ack_hash

NOW = 1_700_000_000_000


def _suites() -> tuple[DirectSuite, DirectSuite]:
    a, b = DirectSuite(Identity.generate()), DirectSuite(Identity.generate())
    for s in (a, b):
        s.maintain(NOW)
    a.add_peer(b.identity.public, b.own_prekey(NOW))
    return a, b


def _hand_made(
    to: DirectSuite,
    dest: bytes,
    *,
    sender: Identity | None,
    x3dh: tuple[bytes, bytes] | None,
    kind: PacketKind = PacketKind.MESSAGE,
    prefix: bytes | None = None,
    seal_to: bytes | None = None,
):  # type: ignore[no-untyped-def]
    key = SigningKey.generate()
    token = os.urandom(16)
    envelope = Envelope(
        bytes(key.verify_key),
        sender.public if sender else None,
        x3dh,
        RatchetMessage(os.urandom(32), 0, 0, os.urandom(48)),
        token if kind is PacketKind.MESSAGE else None,
    )
    payload = seal(
        prefix if prefix is not None else ack_hash(token),
        envelope,
        seal_to or to.identity.public.box_public,
    )
    return anonymous_packet(key, kind, Destination.node(dest), payload, NOW, 4)


def test_round_trip_and_updates_come_prekeys_first() -> None:
    a, b = _suites()
    a.take_updates()
    b.take_updates()
    body = MessageBody(b"\x01" * 16, "hi").encode()
    packet = a.build_message(b.identity.public, b"\x01" * 16, body, NOW, 4)
    opened = b.open_message(packet, NOW)
    assert opened.sender == a.identity.public and opened.text == "hi"
    updates = b.take_updates()
    assert [k for k, _ in updates] == [None, a.identity.node_id]  # the replay cache, the record
    assert b.take_updates() == []
    ack = b.build_ack(a.identity.public, opened.token, NOW, 4)
    assert a.open_ack(ack, NOW).token == opened.token
    assert a.token_owner(opened.token) == b"\x01" * 16
    a.forget(b"\x01" * 16)
    assert a.token_owner(opened.token) is None


def test_ack_hash_must_match_the_token_inside() -> None:
    a, b = _suites()
    tag = pair_tag(
        pair_key(bytes(a.identity.box_key), b.identity.public.box_public),
        b.identity.node_id,
        epoch_of(NOW),
    )
    b.add_peer(a.identity.public)
    packet = _hand_made(b, tag, sender=None, x3dh=None, prefix=os.urandom(16))
    with pytest.raises(DecryptionError, match="ack token does not match its hash"):
        b.open_message(packet, NOW)


def test_prekey_address_needs_a_key_agreement_and_a_stranger_limit_holds() -> None:
    b = DirectSuite(Identity.generate(), max_strangers=1)
    spk = b.own_prekey(NOW)
    tag = prekey_tag(spk.public, epoch_of(NOW))
    packet = _hand_made(b, tag, sender=None, x3dh=None, seal_to=spk.public)
    with pytest.raises(DecryptionError, match="without its key agreement"):
        b.open_message(packet, NOW)
    # A first message from ourselves is refused.
    packet = _hand_made(
        b, tag, sender=b.identity, x3dh=(os.urandom(32), spk.public), seal_to=spk.public
    )
    with pytest.raises(DecryptionError, match="ourselves"):
        b.open_message(packet, NOW)
    # One stranger's real first message is kept; a second stranger is refused.
    for n, (who, outcome) in enumerate(
        [(Identity.generate(), None), (Identity.generate(), "too many")]
    ):
        sender = DirectSuite(who)
        sender.add_peer(b.identity.public, spk)
        msg = sender.build_message(
            b.identity.public,
            bytes([n]) * 16,
            MessageBody(bytes([n]) * 16, "hello").encode(),
            NOW,
            4,
        )
        if outcome is None:
            assert b.open_message(msg, NOW).text == "hello"
        else:
            with pytest.raises(DecryptionError, match=outcome):
                b.open_message(msg, NOW)


def test_acks_only_to_pair_addresses_and_unknown_addresses_refused() -> None:
    a, b = _suites()
    spk = b.own_prekey(NOW)
    tag = prekey_tag(spk.public, epoch_of(NOW))
    ack = _hand_made(
        b,
        tag,
        sender=a.identity,
        x3dh=(os.urandom(32), spk.public),
        kind=PacketKind.ACK,
        seal_to=spk.public,
    )
    with pytest.raises(DecryptionError, match="not a sealed ack"):
        b.open_ack(ack, NOW)
    nowhere = _hand_made(b, os.urandom(16), sender=None, x3dh=None)
    with pytest.raises(DecryptionError, match="not one of our addresses"):
        b.open_message(nowhere, NOW)


def test_load_skips_unreadable_or_misfiled_blobs() -> None:
    a, b = _suites()
    body = MessageBody(b"\x02" * 16, "x").encode()
    b.open_message(a.build_message(b.identity.public, b"\x02" * 16, body, NOW, 4), NOW)
    blobs = {k: v for k, v in b.take_updates() if k is not None}
    prekeys = b.prekeys.blob()
    fresh = DirectSuite(b.identity)
    wrong = os.urandom(16)
    bad = fresh.load(
        {
            **blobs,
            b.identity.node_id: prekeys,
            wrong: blobs[a.identity.node_id],
            b"\x00" * 16: b"junk",
        }
    )
    assert sorted(bad) == sorted([wrong, b"\x00" * 16])
    assert a.identity.node_id in fresh.records
    assert fresh.prekeys.blob() == prekeys
    fresh.maintain(NOW)
    assert prekey_tag(b.own_prekey(NOW).public, epoch_of(NOW)) in fresh.book.tags
