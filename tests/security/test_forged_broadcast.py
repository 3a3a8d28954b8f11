"""A broadcast (public channel message or announcement) with a forged signature is dropped by
the first node that sees it: never shown, never relayed, and it does not shadow the genuine
packet with the same id."""

from __future__ import annotations

from dataclasses import replace

from sealed_mesh import chain, link

from meshchat.crypto.channel import ChannelKey
from meshchat.events import MessageReceived
from meshchat.identity import Identity
from meshchat.router.actions import Drop, Transmit
from meshchat.wire import codec
from meshchat.wire.packet import Destination, PacketKind, Suite
from meshchat.wire.payloads import MessageBody

PUBLIC = ChannelKey.public()


def test_forged_broadcast_signature_dropped() -> None:
    mesh = chain("alice", "bob", "carol")
    for engine in mesh.engines.values():
        engine.join(PUBLIC)
    alice = mesh.engines["alice"].identity
    mallory = Identity.generate()
    body = MessageBody(b"\x01" * 16, "alice says: meet at the old mill").encode()
    genuine = codec.build(
        alice,
        PacketKind.MESSAGE,
        Destination.channel(PUBLIC.channel_id),
        Suite.SIGNED,
        body,
        mesh.now_ms,
        8,
    )
    # Mallory signs the same fields with her key and claims Alice's key as origin.
    forged = replace(genuine, signature=mallory.sign(codec.signed_bytes(genuine)))
    out = mesh.inject("bob", codec.encode(forged), link("bob", "alice"))
    assert [o.reason for o in out if isinstance(o, Drop)] == ["bad-signature"]
    assert not any(isinstance(o, Transmit | MessageReceived) for o in out)
    mesh.run(5_000)
    assert mesh.received("bob") == [] and mesh.received("carol") == []
    # The genuine packet, same id, still goes through everywhere.
    mesh.inject("bob", codec.encode(genuine), link("bob", "alice"))
    mesh.run(5_000)
    assert [r.text for r in mesh.received("bob")] == ["alice says: meet at the old mill"]
    assert [r.sender_key for r in mesh.received("carol")] == [alice.public.sign_public]
