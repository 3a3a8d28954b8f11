"""The gateway policy: what a node with an internet transport hands to the internet, and how.

A node that reaches the internet is a *gateway* for its island of the mesh. Its internet
transports (``relay`` over MQTT, ``dht`` over Kademlia) each present themselves to the node as
one :class:`~meshchat.transports.base.Link`, so the unchanged flood router treats the internet
like any neighbour: duplicate suppression, TTL and the per-link rate limit apply, and a packet
that enters the island through two gateways is delivered once. This module holds the pure part
that both transports share:

* **Where a frame goes** (:func:`route`). A packet for a node goes to that node's *mailbox*,
  unless the node was heard on a local link recently (then the local flood reaches it); a
  channel packet goes to the channel's topic only if the user opted in to bridge that channel;
  everything else (announces, broadcasts) stays in the mesh.
* **Names the relay sees.** A mailbox is named by a *tag*, a keyed BLAKE2b hash of the node id
  under a fixed label, never the node id itself. A bridged channel is named by a hash of its
  channel id the same way.
* **Envelopes.** What the relay stores is the whole meshchat frame sealed (XSalsa20-Poly1305)
  under a key derived from the recipient's node id (or the channel id) with another label, and
  padded to a multiple of :data:`PAD_BUCKET` bytes. The relay therefore sees neither the
  packet header (recipient, sender key, packet id) nor the payload, and only a coarse size.
  Anyone who already knows the recipient's node id can compute the tag and the key; a relay
  that does not cannot turn a tag back into a node id. ``docs/internet.md`` discusses what this
  does and does not hide.

Inner envelope layout (all integers big-endian)::

    expires_s (8) || frame_len (2) || frame || zero padding to a multiple of PAD_BUCKET

Outer envelope: ``b"MC" || version (1) || nonce (24) || secretbox ciphertext``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Protocol, runtime_checkable

import nacl.exceptions
import nacl.secret
import nacl.utils

from meshchat.errors import DecryptionError, PacketError, PacketReason
from meshchat.wire import codec
from meshchat.wire.packet import MAX_AGE_MS, MAX_PACKET_SIZE, DestKind, Suite

__all__ = [
    "ENVELOPE_OVERHEAD",
    "INTERNET_TRANSPORTS",
    "MAX_BATCH_ENVELOPE",
    "MAX_BATCH_FRAMES",
    "MAX_ENVELOPE",
    "PAD_BUCKET",
    "SEALED_TOPIC_ID",
    "GatewayHost",
    "Route",
    "RouteKind",
    "channel_key",
    "channel_tag",
    "mailbox_key",
    "mailbox_tag",
    "open_batch",
    "open_envelope",
    "route",
    "seal_batch",
    "seal_envelope",
]

#: the ``Link.transport`` names of internet transports; their links never make a node "local"
INTERNET_TRANSPORTS = frozenset({"relay", "dht"})

PAD_BUCKET = 256
_MAGIC = b"MC\x01"
_NONCE = nacl.secret.SecretBox.NONCE_SIZE
_MAC = nacl.secret.SecretBox.MACBYTES
_INNER_HEADER = 10
_MAX_INNER = -(-(_INNER_HEADER + MAX_PACKET_SIZE) // PAD_BUCKET) * PAD_BUCKET
#: bytes an envelope adds to the padded inner part
ENVELOPE_OVERHEAD = len(_MAGIC) + _NONCE + _MAC
#: the largest envelope of one frame; larger ones are rejected unread
MAX_ENVELOPE = ENVELOPE_OVERHEAD + _MAX_INNER
#: most frames, and most bytes, in one envelope of several frames (relay only)
MAX_BATCH_FRAMES = 16
_MAX_BATCH_INNER = 16 * 1024
MAX_BATCH_ENVELOPE = ENVELOPE_OVERHEAD + _MAX_BATCH_INNER

_TAG_SIZE = 16


def _derive(value: bytes, person: bytes, size: int) -> bytes:
    return hashlib.blake2b(value, digest_size=size, person=person).digest()


def mailbox_tag(node_id: bytes) -> bytes:
    """The 16-byte public name of a node's mailbox (what topics and DHT keys are made of)."""
    return _derive(node_id, b"mc-mailbox-tag", _TAG_SIZE)


def mailbox_key(node_id: bytes) -> bytes:
    """The 32-byte key that seals envelopes for a node's mailbox."""
    return _derive(node_id, b"mc-mailbox-key", nacl.secret.SecretBox.KEY_SIZE)


#: The pseudo-channel under which gateways exchange sealed direct messages (suite RATCHET).
#: Its topic and envelope key are public by design: what it carries is already sealed,
#: padded and addressed by tags that only sender and recipient can link.
SEALED_TOPIC_ID = hashlib.blake2b(b"meshchat sealed direct messages", digest_size=16).digest()


def channel_tag(channel_id: bytes) -> bytes:
    """The 16-byte public name of a bridged channel's topic."""
    return _derive(channel_id, b"mc-channel-tag", _TAG_SIZE)


def channel_key(channel_id: bytes) -> bytes:
    """The 32-byte key that seals envelopes on a bridged channel's topic."""
    return _derive(channel_id, b"mc-channel-key", nacl.secret.SecretBox.KEY_SIZE)


def seal_envelope(key: bytes, frame: bytes, expires_s: int) -> bytes:
    """Seal ``frame`` (a meshchat frame) with its expiry, padded, under ``key``."""
    return seal_batch(key, [frame], expires_s)


def seal_batch(key: bytes, frames: Sequence[bytes], expires_s: int) -> bytes:
    """Seal several frames for one topic in one envelope (a relay gateway coalesces a burst).

    Inner layout: ``expires_s(8) || (length(2) || frame)* || zeros``; a frame is never empty,
    so the zero padding ends the list.
    """
    if not 1 <= len(frames) <= MAX_BATCH_FRAMES:
        raise PacketError(PacketReason.BAD_FIELD, "envelope frame count")
    if not 0 <= expires_s < 2**63:
        raise PacketError(PacketReason.BAD_FIELD, "envelope expiry")
    parts = [expires_s.to_bytes(8, "big")]
    for frame in frames:
        if not 0 < len(frame) <= MAX_PACKET_SIZE:
            raise PacketError(PacketReason.OVERSIZED, f"{len(frame)} > {MAX_PACKET_SIZE} bytes")
        parts += [len(frame).to_bytes(2, "big"), frame]
    inner = b"".join(parts)
    inner += bytes(-len(inner) % PAD_BUCKET)
    if len(inner) > _MAX_BATCH_INNER:
        raise PacketError(PacketReason.OVERSIZED, "envelope batch too large")
    nonce = nacl.utils.random(_NONCE)
    return _MAGIC + bytes(nacl.secret.SecretBox(key).encrypt(inner, nonce))


def open_envelope(key: bytes, envelope: bytes) -> tuple[bytes, int]:
    """Return ``(frame, expires_s)`` from an envelope of one frame sealed under ``key``.

    Raises :class:`PacketError` for an envelope of the wrong size or layout and
    :class:`DecryptionError` for one that does not authenticate under ``key``. The frame
    itself is not parsed here: the router does that, as for any link.
    """
    if len(envelope) > MAX_ENVELOPE:
        raise PacketError(PacketReason.OVERSIZED, f"envelope {len(envelope)} bytes")
    frames, expires_s = open_batch(key, envelope)
    if len(frames) != 1:
        raise PacketError(PacketReason.MALFORMED, "envelope of several frames")
    return frames[0], expires_s


def open_batch(key: bytes, envelope: bytes) -> tuple[list[bytes], int]:
    """Return ``(frames, expires_s)`` from an envelope of one or more frames (bounded)."""
    if len(envelope) > MAX_BATCH_ENVELOPE:
        raise PacketError(PacketReason.OVERSIZED, f"envelope {len(envelope)} bytes")
    if len(envelope) < ENVELOPE_OVERHEAD + PAD_BUCKET or not envelope.startswith(_MAGIC):
        raise PacketError(PacketReason.MALFORMED, "not a meshchat envelope")
    try:
        inner = nacl.secret.SecretBox(key).decrypt(envelope[len(_MAGIC) :])
    except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
        raise DecryptionError("envelope does not open under this key") from exc
    if len(inner) % PAD_BUCKET:
        raise PacketError(PacketReason.MALFORMED, "envelope padding")
    expires_s = int.from_bytes(inner[:8], "big")
    frames: list[bytes] = []
    pos = 8
    while pos + 2 <= len(inner):
        length = int.from_bytes(inner[pos : pos + 2], "big")
        if length == 0:
            break
        end = pos + 2 + length
        if length > MAX_PACKET_SIZE or end > len(inner) or len(frames) >= MAX_BATCH_FRAMES:
            raise PacketError(PacketReason.MALFORMED, "envelope frame length or count")
        frames.append(bytes(inner[pos + 2 : end]))
        pos = end
    if not frames or any(inner[pos:]):
        raise PacketError(PacketReason.MALFORMED, "envelope length or padding")
    return frames, expires_s


@runtime_checkable
class GatewayHost(Protocol):
    """What an internet transport asks of the node that started it (implemented by Node)."""

    def local_nodes(self, since_ms: int) -> list[bytes]:
        """Node ids heard on local (non-internet) links at or after ``since_ms``."""
        ...

    def bridge_ids(self, names: frozenset[str]) -> set[bytes]:
        """The ids to bridge for the channels and groups named (lower case): a channel's id;
        every address of a group this node still holds keys for (its current epoch's, and
        the earlier ones kept for messages still on the way)."""
        ...


class RouteKind(Enum):
    MAILBOX = "mailbox"
    CHANNEL = "channel"
    #: a sealed direct message: on the relay, the shared topic (SEALED_TOPIC_ID); on the DHT,
    #: filed under its own destination tag (meshchat/transports/dht/_sealed.py)
    SEALED = "sealed"


@dataclass(frozen=True, slots=True)
class Route:
    """Where a frame leaves for the internet: a mailbox or a bridged channel."""

    kind: RouteKind
    #: the node id (mailbox) or channel id (channel) the frame is for
    target: bytes
    packet_id: bytes
    #: when the packet stops being accepted anywhere (its creation time plus the horizon)
    expires_ms: int

    @property
    def tag(self) -> bytes:
        return (
            mailbox_tag(self.target) if self.kind is RouteKind.MAILBOX else channel_tag(self.target)
        )

    @property
    def key(self) -> bytes:
        return (
            mailbox_key(self.target) if self.kind is RouteKind.MAILBOX else channel_key(self.target)
        )


def route(frame: bytes, local: set[bytes] | frozenset[bytes], bridged: set[bytes]) -> Route | None:
    """Where ``frame`` should go on the internet, or None if it stays in the mesh.

    ``local`` holds the node ids heard on local links recently (those are reached by the local
    flood), ``bridged`` the channel ids the user opted in to bridge. A frame that does not parse
    stays (returns None): the router never hands one out, so this is only defence in depth.
    """
    try:
        packet = codec.parse(frame)
    except PacketError:
        return None
    dest = packet.destination
    expires_ms = packet.created_ms + MAX_AGE_MS
    if dest.kind is DestKind.NODE and packet.suite is Suite.RATCHET:
        # A sealed direct message is addressed by a rotating tag that only the two people
        # can compute: no gateway can tell whose mailbox it belongs in, or whether the
        # recipient is local. On the relay it goes to the one shared topic for sealed
        # messages, which every gateway collects and floods into its island, where only the
        # recipient's node recognises the tag; on the DHT it is filed under the tag itself,
        # which only the recipient's node polls.
        return Route(RouteKind.SEALED, SEALED_TOPIC_ID, packet.packet_id, expires_ms)
    if dest.kind is DestKind.NODE and dest.value not in local:
        return Route(RouteKind.MAILBOX, dest.value, packet.packet_id, expires_ms)
    if dest.kind is DestKind.CHANNEL and dest.value in bridged:
        return Route(RouteKind.CHANNEL, dest.value, packet.packet_id, expires_ms)
    return None
