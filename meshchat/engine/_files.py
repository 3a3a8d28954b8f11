"""File bodies between nodes: link file frames to a neighbour, signed FILE packets otherwise.

A body (a request for pieces, a piece, a "missing" answer: :mod:`meshchat.files.wire`) for a
node this node has a link to goes on that link alone as a *link file frame*: the byte
:data:`LINK_FILE_TAG` then the body, nothing else. It is authenticated by the link, not
signed: the link handshake proved the peer's identity and every frame after it is sealed
with the link's keys (in order, so a frame cannot be replayed or moved to another link), so
the receiver takes the sender to be the link's peer, and a neighbour can speak only as
itself (an internet transport's link, whose peer is a stand-in for whoever writes to the
relay, carries none). Link file frames are never relayed; they spend the link's file-frame
allowance (:meth:`~meshchat.router.flood.FloodRouter.file_bucket`) like FILE packets.

A body for a node reached only through relays is a FILE packet: signed by the node's identity
key (suite SIGNED), addressed to the other node's id. Its payload is the sender's box public
key (32 bytes) then the body; the receiver derives the sender's node id from the signing key
and that box key, so a request can only name its signer as the node to answer. Relays check
the signature, relay it with a small TTL and never carry it for store-and-forward (the
receiver asks again).

The bodies hold no secrets (chunks are sealed under the file's key, hashes are of
ciphertext), which is why they need no further encryption; relays see a root hash and
chunk-sized ciphertext. Every link sends file frames of both forms after its text, acks and
control frames.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from meshchat.errors import PacketError, PacketReason
from meshchat.events import FileArrived
from meshchat.identity import node_id_of
from meshchat.router.actions import Action, Drop, Transmit
from meshchat.wire import codec
from meshchat.wire.packet import Destination, Packet, PacketKind, Suite

if TYPE_CHECKING:
    from meshchat.engine import Engine, Output

__all__ = ["FILE_TTL", "LINK_FILE_TAG", "FileGlue", "is_file_frame"]

#: Hops a file packet travels at most: a file is pulled over a path, not across the mesh.
FILE_TTL = 6
#: First byte of a link file frame (a packet's first byte is 0x8B, a CBOR array of 11).
LINK_FILE_TAG = b"\x01"
_BOX = 32
_NO_ID = b""


#: media by speed (a link id starts with its transport's name): others rank between
_RANK = {"lan": 0, "mem": 0, "ble": 2}
#: the internet transports' one link each (gateway.INTERNET_TRANSPORTS): frames from anyone,
#: its peer a stand-in no handshake proved, so it carries no link file frame either way
_UNPROVEN = frozenset({"relay", "dht"})


def _rank(link: str) -> int:
    return _RANK.get(link.partition(":")[0], 1)


def is_file_frame(frame: bytes) -> bool:
    """Whether ``frame`` carries a file body (either form): sent after text on every link."""
    if frame[:1] == LINK_FILE_TAG:
        return len(frame) > len(LINK_FILE_TAG)  # (an empty one is dropped, like any junk)
    return len(frame) > 2 and frame[2] == PacketKind.FILE


class FileGlue:
    """Builds and opens file frames and packets for one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._peer_of: dict[str, bytes] = {}  # link -> the node id its handshake proved
        self._link_to: dict[bytes, str] = {}  # node id -> the latest link up to it

    def link_up(self, link: str, peer: bytes | None) -> None:
        if peer is not None and link.partition(":")[0] not in _UNPROVEN:
            self._peer_of[link] = peer
            self._choose(peer)

    def link_down(self, link: str) -> None:
        peer = self._peer_of.pop(link, None)
        if peer is not None:
            self._choose(peer)

    def _choose(self, peer: bytes) -> None:
        """The link that carries bodies to ``peer``: of its links, the fastest medium's
        (by the transport named in the link id), the latest among equals."""
        links = [link for link, who in self._peer_of.items() if who == peer]
        if links:
            self._link_to[peer] = min(reversed(links), key=_rank)
        else:
            self._link_to.pop(peer, None)

    def send(self, peer: bytes, body: bytes, now_ms: int) -> list[Action]:
        """Send one file body to node ``peer`` (an empty list: no link to send it on)."""
        link = self._link_to.get(peer)
        if link is not None:
            return [Transmit(LINK_FILE_TAG + body, (link,), _NO_ID)]
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

    def receive_link(self, link: str | None, frame: bytes, now_ms: int) -> list[Output]:
        """A link file frame came on ``link``: the body, from the link's peer."""
        peer = self._peer_of.get(link) if link is not None else None
        if peer is None or len(frame) <= len(LINK_FILE_TAG):
            return [Drop("bad-link-file", link)]
        bucket = self.engine.router.file_bucket(link, now_ms) if link is not None else None
        if bucket is None or not bucket.take(now_ms):
            return [Drop("rate-limited", link)]
        return [FileArrived(peer, frame[len(LINK_FILE_TAG) :], link)]

    def receive(self, packet: Packet, link: str | None) -> list[Output]:
        """A file packet the router delivered to this node."""
        if packet.suite is not Suite.SIGNED or len(packet.payload) <= _BOX:
            raise PacketError(PacketReason.BAD_FIELD, "file packet: suite or size")
        peer = node_id_of(packet.origin, packet.payload[:_BOX])
        return [FileArrived(peer, packet.payload[_BOX:], link)]
