"""Unauthenticated or plaintext packets injected into an end-to-end conversation are rejected:
nothing is shown, nothing is acknowledged, and the conversation goes on."""

from __future__ import annotations

import os

import pytest
from nacl.signing import SigningKey
from sealed_mesh import chain, link, pair_tag_to, rejected, texts, transmitted

from meshchat.crypto.box import BoxSuite
from meshchat.crypto.direct import anonymous_packet
from meshchat.crypto.padding import BUCKETS
from meshchat.crypto.sealed import Envelope, seal
from meshchat.crypto.sessions import RatchetMessage
from meshchat.events import MessageReceived
from meshchat.identity import Identity
from meshchat.wire import codec
from meshchat.wire.packet import Destination, PacketKind, Suite
from meshchat.wire.payloads import MessageBody, ack_hash


def _established():  # type: ignore[no-untyped-def]
    mesh = chain("alice", "relay", "bob")
    mesh.send_direct("alice", "bob", "hi bob")
    mesh.run(2_000)
    mesh.send_direct("bob", "alice", "hi alice")
    mesh.run(2_000)
    return mesh


def _plaintext(mesh, tag: bytes) -> bytes:  # type: ignore[no-untyped-def]
    """Signed but not encrypted, to Bob's current address for Alice."""
    body = MessageBody(os.urandom(16), "send me your password").encode()
    packet = codec.build(
        Identity.generate(),
        PacketKind.MESSAGE,
        Destination.node(tag),
        Suite.SIGNED,
        body,
        mesh.now_ms,
        4,
    )
    return codec.encode(packet)


def _forged_sealed(mesh, tag: bytes) -> bytes:  # type: ignore[no-untyped-def]
    """A well-formed sealed envelope to Bob's box key claiming to come from Alice, whose ratchet
    message Mallory had to make up."""
    key = SigningKey.generate()
    token = os.urandom(16)
    alice = mesh.engines["alice"].identity.public
    envelope = Envelope(
        origin=bytes(key.verify_key),
        sender=alice,
        x3dh=(os.urandom(32), mesh.engines["bob"].prekey(mesh.now_ms).public),
        message=RatchetMessage(os.urandom(32), 0, 0, os.urandom(64)),
        ack_token=token,
    )
    payload = seal(ack_hash(token), envelope, mesh.engines["bob"].identity.public.box_public)
    packet = anonymous_packet(
        key, PacketKind.MESSAGE, Destination.node(tag), payload, mesh.now_ms, 4
    )
    return codec.encode(packet)


def _random_sealed(mesh, tag: bytes) -> bytes:  # type: ignore[no-untyped-def]
    key = SigningKey.generate()
    packet = anonymous_packet(
        key, PacketKind.MESSAGE, Destination.node(tag), os.urandom(BUCKETS[0]), mesh.now_ms, 4
    )
    return codec.encode(packet)


def _box_claiming_alice(mesh, tag: bytes) -> bytes:  # type: ignore[no-untyped-def]
    """The older BOX suite, to Bob's node id, with Alice's box key as sender: Mallory cannot
    make the box authenticate without Alice's secret, so she uses her own and Alice's name."""
    mallory = Identity.generate()
    bob = mesh.engines["bob"].identity.public
    payload = bytearray(
        BoxSuite(mallory).seal(bob.box_public, MessageBody(os.urandom(16), "it is me").encode())
    )
    payload[:32] = mesh.engines["alice"].identity.public.box_public
    packet = codec.build(
        mallory,
        PacketKind.MESSAGE,
        Destination.node(bob.node_id),
        Suite.BOX,
        bytes(payload),
        mesh.now_ms,
        4,
    )
    return codec.encode(packet)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_plaintext, "wrong suite for a sealed address"),
        (_forged_sealed, "initial message does not open"),
        (_random_sealed, "sealed payload does not open"),
        (_box_claiming_alice, "BOX payload does not open"),
    ],
    ids=["plaintext", "forged-sealed", "random-sealed", "box-claiming-alice"],
)
def test_injected_packet_rejected(make, reason: str) -> None:  # type: ignore[no-untyped-def]
    mesh = _established()
    tag = pair_tag_to(mesh, "alice", "bob", mesh.now_ms)
    out = mesh.inject("bob", make(mesh, tag), link("bob", "relay"))
    [why] = rejected(mesh, "bob")
    assert why.startswith(reason)
    assert not any(isinstance(o, MessageReceived) for o in out)
    assert [p.kind for p in transmitted(out)].count(PacketKind.ACK) == 0
    mesh.run(5_000)
    assert texts(mesh, "bob", "alice") == ["hi bob"]
    assert [r for r in mesh.events("bob", MessageReceived) if r.text != "hi bob"] == []
    # The conversation is unharmed.
    mesh.send_direct("alice", "bob", "after the attack")
    mesh.run(2_000)
    assert texts(mesh, "bob", "alice") == ["hi bob", "after the attack"]
