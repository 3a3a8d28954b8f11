"""File packets: requests for pieces and pieces, between two nodes (kind FILE).

A file packet is signed by the node's identity key (suite SIGNED) and addressed to the
other node's id. Its payload is the sender's box public key (32 bytes) then one body of
:mod:`meshchat.files.wire`; the receiver derives the sender's node id from the signing key and
that box key, so a request can only name its signer as the node to answer. The bodies hold no
secrets (chunks are sealed under the file's key, hashes are of ciphertext), which is why they
need no further encryption; relays see a root hash and chunk-sized ciphertext.

They are relayed like any packet (a small TTL), never carried for store-and-forward (the
receiver asks again), and every link sends them after its text, acks and control frames.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from meshchat.errors import PacketError, PacketReason
from meshchat.events import FileArrived
from meshchat.identity import node_id_of
from meshchat.router.actions import Action, Drop
from meshchat.wire import codec
from meshchat.wire.packet import Destination, Packet, PacketKind, Suite

if TYPE_CHECKING:
    from meshchat.engine import Engine, Output

__all__ = ["FILE_TTL", "FileGlue"]

#: Hops a file packet travels at most: a file is pulled over a path, not across the mesh.
FILE_TTL = 6
_BOX = 32


class FileGlue:
    """Builds and opens file packets for one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def send(self, peer: bytes, body: bytes, now_ms: int) -> list[Action]:
        """Send one file body to node ``peer`` (an empty list: no link to send it on)."""
        engine = self.engine
        payload = engine.identity.public.box_public + body
        packet = codec.build(
            engine.identity,
            PacketKind.FILE,
            Destination.node(peer),
            Suite.SIGNED,
            payload,
            now_ms,
            min(engine.ttl, FILE_TTL),
        )
        return [a for a in engine.router.originate(packet, now_ms) if not isinstance(a, Drop)]

    def receive(self, packet: Packet, link: str | None) -> list[Output]:
        """A file packet the router delivered to this node."""
        if packet.suite is not Suite.SIGNED or len(packet.payload) <= _BOX:
            raise PacketError(PacketReason.BAD_FIELD, "file packet: suite or size")
        peer = node_id_of(packet.origin, packet.payload[:_BOX])
        return [FileArrived(peer, packet.payload[_BOX:], link)]
