"""A valid signature over altered content: whoever alters a packet must sign it again with a key
of their own, and then it no longer speaks for the original sender."""

from __future__ import annotations

from dataclasses import replace

from nacl.signing import SigningKey
from sealed_mesh import chain, link, rejected, texts, transmitted

from meshchat.crypto.channel import ChannelKey
from meshchat.crypto.direct import anonymous_packet
from meshchat.identity import Identity
from meshchat.router.actions import Drop
from meshchat.wire import codec
from meshchat.wire.packet import Destination, PacketKind, Suite
from meshchat.wire.payloads import MessageBody

PUBLIC = ChannelKey.public()


def test_altered_broadcast_fails_or_changes_its_author() -> None:
    mesh = chain("alice", "bob")
    mesh.engines["bob"].join(PUBLIC)
    alice = mesh.engines["alice"].identity
    body = MessageBody(b"\x02" * 16, "the bridge is safe").encode()
    genuine = codec.build(
        alice,
        PacketKind.MESSAGE,
        Destination.channel(PUBLIC.channel_id),
        Suite.SIGNED,
        body,
        mesh.now_ms,
        8,
    )
    altered_body = MessageBody(b"\x02" * 16, "the bridge is down").encode()
    # Altered, signature kept: does not verify.
    altered = replace(genuine, payload=altered_body)
    out = mesh.inject("bob", codec.encode(altered), link("bob", "alice"))
    assert [o.reason for o in out if isinstance(o, Drop)] == ["bad-signature"]
    # Altered and signed again by Mallory: valid, but it is Mallory's message, not Alice's.
    mallory = Identity.generate()
    resigned = codec.build(
        mallory,
        PacketKind.MESSAGE,
        Destination.channel(PUBLIC.channel_id),
        Suite.SIGNED,
        altered_body,
        mesh.now_ms,
        8,
    )
    mesh.inject("bob", codec.encode(resigned), link("bob", "alice"))
    [got] = mesh.received("bob")
    assert got.sender_key == mallory.public.sign_public != alice.public.sign_public


def test_altered_sealed_message_with_a_fresh_signature_is_rejected() -> None:
    mesh = chain("alice", "relay", "bob")
    mesh.send_direct("alice", "bob", "hello")
    mesh.run(2_000)
    # The relay alters Alice's next message in flight and signs it with a key of its own (an
    # origin key is made per packet, so any key "looks" valid to other relays).
    held: list[bytes] = []

    def intercept(node: str, lk: str, frame: bytes) -> bool:
        if node == "bob":
            held.append(frame)
            return False
        return True

    mesh.filter = intercept
    mesh.send_direct("alice", "bob", "transfer 5 coins")
    mesh.run(1_000)
    mesh.filter = None
    [frame] = [f for f in held if codec.parse(f).kind is PacketKind.MESSAGE]
    packet = codec.parse(frame)
    for flip in (40, len(packet.payload) - 1, 5):  # inside the box, its tag, the ack hash
        payload = bytearray(packet.payload)
        payload[flip] ^= 0x01
        forged = anonymous_packet(
            SigningKey.generate(),
            packet.kind,
            packet.destination,
            bytes(payload),
            packet.created_ms,
            8,
        )
        out = mesh.inject("bob", codec.encode(forged), link("bob", "relay"))
        assert [p.kind for p in transmitted(out)].count(PacketKind.ACK) == 0
    # The untouched payload under a new signature is refused as well: the envelope names the
    # packet's original origin key.
    moved = anonymous_packet(
        SigningKey.generate(), packet.kind, packet.destination, packet.payload, packet.created_ms, 8
    )
    out = mesh.inject("bob", codec.encode(moved), link("bob", "relay"))
    assert [p.kind for p in transmitted(out)].count(PacketKind.ACK) == 0
    assert rejected(mesh, "bob") == [
        "sealed payload does not open",
        "sealed payload does not open",
        "sealed envelope not bound to this packet",  # the ack hash changed, the box opened
        "sealed envelope not bound to this packet",
    ]
    assert texts(mesh, "bob", "alice") == ["hello"]
    # The genuine packet still arrives and opens.
    mesh.inject("bob", frame, link("bob", "relay"))
    assert texts(mesh, "bob", "alice") == ["hello", "transfer 5 coins"]
