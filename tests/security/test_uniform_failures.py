"""Uniform failures: a sealed packet to one of our addresses that does not open behaves, on the
wire, exactly like a packet to an address that is nobody's: relayed and carried the same way,
never acknowledged. Only the local log (MessageRejected) tells them apart."""

from __future__ import annotations

import os

from nacl.signing import SigningKey
from sealed_mesh import chain, link, pair_tag_to, rejected

from meshchat.crypto.direct import anonymous_packet
from meshchat.crypto.padding import BUCKETS
from meshchat.events import MessageRejected, PrekeysUpdated, SessionUpdated
from meshchat.router.actions import Carry, Transmit
from meshchat.wire import codec
from meshchat.wire.packet import Destination, PacketKind


def _junk(mesh, tag: bytes) -> bytes:  # type: ignore[no-untyped-def]
    packet = anonymous_packet(
        SigningKey.generate(),
        PacketKind.MESSAGE,
        Destination.node(tag),
        os.urandom(BUCKETS[1]),
        mesh.now_ms,
        8,
    )
    return codec.encode(packet)


def _wire(outputs: list[object]) -> list[str]:
    """What a node does that others can observe (or that shapes it): everything but its log
    and its own state."""
    local = (MessageRejected, SessionUpdated, PrekeysUpdated)
    return [type(o).__name__ for o in outputs if not isinstance(o, local)]


def test_packet_for_us_that_fails_looks_like_a_packet_for_nobody() -> None:
    mesh = chain("alice", "relay", "bob", "carol")
    mesh.send_direct("alice", "bob", "hi")
    mesh.run(2_000)
    ours = _junk(mesh, pair_tag_to(mesh, "alice", "bob", mesh.now_ms))
    nobodys = _junk(mesh, os.urandom(16))
    assert codec.parse(ours).destination.value in mesh.engines["bob"].direct.book.tags

    start = len(mesh.outputs["bob"])
    out_ours = mesh.inject("bob", ours, link("bob", "relay"))
    out_nobodys = mesh.inject("bob", nobodys, link("bob", "relay"))
    assert _wire(out_ours) == _wire(out_nobodys)
    assert [type(o) for o in out_ours if isinstance(o, Carry)] == [Carry]
    assert rejected(mesh, "bob") == ["sealed payload does not open"]

    mesh.run(5_000)
    relayed = [
        codec.parse(o.frame).packet_id
        for o in mesh.outputs["bob"]
        if isinstance(o, Transmit) and o.links == (link("bob", "carol"),)
    ]
    ids = {codec.parse(ours).packet_id, codec.parse(nobodys).packet_id}
    assert ids <= set(relayed)  # both went on to carol, the same way
    # No ack for either: nothing Bob sent after them is an ACK.
    acks = [
        o
        for o in mesh.outputs["bob"][start:]
        if isinstance(o, Transmit) and codec.parse(o.frame).kind is PacketKind.ACK
    ]
    assert acks == []
    # Both stay carried by Bob as undelivered packets do, until they expire.
    assert mesh.engines["bob"].router.carried_count >= 2


def test_packet_for_us_that_opens_is_still_relayed_like_any_other() -> None:
    mesh = chain("alice", "relay", "bob", "carol")
    mesh.send_direct("alice", "bob", "hi")
    mesh.run(2_000)
    msg_frames = [
        o.frame
        for o in mesh.outputs["bob"]
        if isinstance(o, Transmit) and codec.parse(o.frame).kind is PacketKind.MESSAGE
    ]
    # Bob passed Alice's message on to carol although it was his: the flood does not stop at
    # the recipient, so where it stops does not tell who the recipient is.
    assert len(msg_frames) == 1
    assert mesh.received("carol") == []
