"""Sealed direct messages on the relay: topics derived from the recipient's rotating tags.

Theory of operation. A sealed packet (suite RATCHET) is addressed to a 16-byte *tag* that only
its sender and its recipient can compute and that changes every epoch (an hour; see
:mod:`meshchat.crypto.tags`). The relay files it under a topic derived from that tag::

    topic        = <prefix>/s/<hex BLAKE2b-16(tag, person "mc-sealed-topic")>
    envelope key = BLAKE2b-32(tag, person "mc-sealed-key")     (the DHT's sealed envelope key)

so a broker sees a topic that changes every hour and cannot be linked to a node id, and a
message published to a topic no gateway collects is dropped by the broker at once: junk aimed
at no one reaches no one, and junk aimed at one tag (a prekey tag can be computed from a
contact card) costs only the gateway collecting it.

*Collecting.* A gateway knows the tags of its own node only (the node answers
:meth:`SealedTagHost.sealed_tags`): it subscribes to them from the previous epoch to
``ahead`` epochs after the current one, so that while it is offline its persistent session at
the broker still collects what is sent to it for that long, at most ``most`` topics (nearest
epochs first). A frame read from such a topic must be a sealed packet addressed to that very
tag, or it is dropped.

*Island members* (nodes behind a gateway, which is not told their tags) are reached through
the one shared sealed topic, as before: a sending gateway publishes there too
(``RelayConfig.shared_sealed``), and a collecting gateway passes what it reads there into its
island at most ``shared_rate`` frames a second, so that a flood on the shared topic takes only
that part of the relay link's rate and delays nothing read on the gateway's own topics,
mailboxes and channels.
"""

from __future__ import annotations

import hashlib
from typing import Protocol, runtime_checkable

from meshchat.crypto.tags import EPOCH_MS, epoch_of
from meshchat.errors import PacketError
from meshchat.wire import codec
from meshchat.wire.packet import DestKind, Suite

__all__ = [
    "SealedTagHost",
    "own_sealed_topics",
    "sealed_expiry_s",
    "sealed_key",
    "sealed_tag_of",
    "sealed_topic",
]


@runtime_checkable
class SealedTagHost(Protocol):
    """What the relay asks of its node to collect sealed packets (the Node implements it)."""

    def sealed_tags(self, epoch: int) -> list[bytes]:
        """The tags under which packets created in ``epoch`` reach this node."""
        ...


def sealed_topic(prefix: str, tag: bytes) -> str:
    digest = hashlib.blake2b(tag, digest_size=16, person=b"mc-sealed-topic").hexdigest()
    return f"{prefix}/s/{digest}"


def sealed_key(tag: bytes) -> bytes:
    return hashlib.blake2b(tag, digest_size=32, person=b"mc-sealed-key").digest()


def sealed_tag_of(frame: bytes) -> bytes | None:
    """The destination tag of a sealed direct packet; None for any other frame."""
    try:
        packet = codec.parse(frame)
    except PacketError:
        return None
    if packet.suite is not Suite.RATCHET or packet.destination.kind is not DestKind.NODE:
        return None
    return packet.destination.value


def sealed_expiry_s(frame_created_ms: int) -> int:
    """When a recipient stops collecting the topic of a packet created at ``frame_created_ms``:
    it subscribes from the previous epoch on, so at the end of the epoch after the packet's."""
    return (epoch_of(frame_created_ms) + 2) * EPOCH_MS // 1000


def own_sealed_topics(
    host: SealedTagHost, prefix: str, now_ms: int, ahead: int, most: int
) -> dict[str, bytes]:
    """topic -> tag for this node's tags, previous epoch to ``ahead`` epochs on, nearest first,
    at most ``most``."""
    current = epoch_of(now_ms)
    epochs = [current, current - 1, *range(current + 1, current + ahead + 1)]
    topics: dict[str, bytes] = {}
    for epoch in epochs:
        for tag in host.sealed_tags(epoch):
            if len(topics) >= most:
                return topics
            topics.setdefault(sealed_topic(prefix, tag), tag)
    return topics
