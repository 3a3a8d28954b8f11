"""Sealed direct messages in the DHT: records filed under the recipient's rotating tag.

Theory of operation. A sealed packet (suite RATCHET) is addressed to a 16-byte *tag* that only
its sender and its recipient can compute and that changes every epoch (an hour, taken from the
packet's creation time; see :mod:`meshchat.crypto.tags`). No gateway can tell whose packet it
is, so there is no mailbox to file it in; the tag itself is the mailbox::

    signer       = Ed25519(seed BLAKE2b-32(tag, person "mc-sealed-sign"))
    envelope key = BLAKE2b-32(tag, person "mc-sealed-key")
    slot         = packet_id[0] mod SEALED_SLOTS
    DHT key      = record_key(signer's verify key, slot)      (as for a mailbox)

The record is an ordinary :mod:`._records` record, so every DHT node checks it exactly like a
mailbox record and cannot tell the two kinds apart, and a DHT node that has not seen the tag
cannot read the envelope (the frame's header, tag and creation time included).

*Sending.* The sending gateway reads the tag and creation time from the frame's header (they
are in the clear on the mesh) and stores the record until the end of the epoch **after** the
packet's (:func:`sealed_expiry`): the recipient polls only the current and the previous epoch,
and a sender still trying later sends a retry, which carries the tag of its own epoch.

*Receiving.* Only the recipient's own node knows its tags: one per peer (pair tag) and one per
held signed prekey (prekey tag) per epoch. A node that runs a DHT transport tells it those tags
through :class:`SealedTagHost` (``Node.sealed_tags``, computed by :func:`epoch_tags`);
:class:`SealedPolls` turns them into at most ``per_round`` lookups per poll round, walking
round-robin through ``tags x 2 epochs x SEALED_SLOTS`` keys. Acks travel the same way: an ack
is addressed to the original sender's pair tag.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from nacl.signing import SigningKey

from meshchat.crypto.tags import EPOCH_MS, epoch_of
from meshchat.errors import PacketError, PacketReason, UsageError
from meshchat.transports.dht._records import record_key, seal_record, unseal_record
from meshchat.wire import codec
from meshchat.wire.packet import DestKind, Suite

if TYPE_CHECKING:
    from meshchat.crypto.direct import DirectSuite

__all__ = [
    "SEALED_SLOTS",
    "SealedPolls",
    "SealedTagHost",
    "build_sealed_record",
    "epoch_tags",
    "open_sealed_record",
    "sealed_envelope_key",
    "sealed_expiry",
    "sealed_record_key",
    "sealed_signer",
]

#: slots per tag: a tag carries one direction of one pair for one hour, so a few suffice
SEALED_SLOTS = 4


@runtime_checkable
class SealedTagHost(Protocol):
    """What the DHT transport asks of its node to collect sealed packets (Node implements it)."""

    def sealed_tags(self, epoch: int) -> list[bytes]:
        """The tags under which packets created in ``epoch`` reach this node."""
        ...


def sealed_signer(tag: bytes) -> SigningKey:
    """The Ed25519 key that signs records filed under ``tag`` (known to whoever knows it)."""
    return SigningKey(hashlib.blake2b(tag, digest_size=32, person=b"mc-sealed-sign").digest())


def sealed_envelope_key(tag: bytes) -> bytes:
    """The key that seals the envelopes of records filed under ``tag``."""
    return hashlib.blake2b(tag, digest_size=32, person=b"mc-sealed-key").digest()


def sealed_record_key(tag: bytes, slot: int) -> bytes:
    """The DHT key of slot ``slot`` of the records filed under ``tag``."""
    return record_key(bytes(sealed_signer(tag).verify_key), slot)


def sealed_expiry(created_ms: int, packet_expires_s: int, retention_s: int, now_s: float) -> int:
    """When a sealed record stops being useful: the end of the epoch after its packet's (no
    one polls older tags), never after the packet's own horizon or the retention."""
    polled_until_s = (epoch_of(created_ms) + 2) * EPOCH_MS // 1000
    return int(min(polled_until_s, packet_expires_s, now_s + retention_s))


def build_sealed_record(frame: bytes, expires_s: int) -> tuple[bytes, bytes, bytes]:
    """File a sealed frame under its destination tag; returns ``(tag, record_key, record)``.

    Raises :class:`PacketError` for a frame that is not a sealed packet to a tag.
    """
    packet = codec.parse(frame)
    if packet.suite is not Suite.RATCHET or packet.destination.kind is not DestKind.NODE:
        raise PacketError(PacketReason.BAD_FIELD, "not a sealed direct packet")
    tag = packet.destination.value
    slot = packet.packet_id[0] % SEALED_SLOTS
    key, record = seal_record(sealed_signer(tag), sealed_envelope_key(tag), slot, frame, expires_s)
    return tag, key, record


def open_sealed_record(tag: bytes, slot: int, data: object, now_s: float) -> bytes:
    """The frame in a record fetched from slot ``slot`` of ``tag``.

    Besides the checks of :func:`unseal_record`, the frame must be a sealed packet addressed to
    ``tag`` itself: whoever knows a tag can sign records for it, and must not be able to pass
    another packet off as one for this node. Raises :class:`PacketError` or
    :class:`~meshchat.errors.CryptoError`.
    """
    if not 0 <= slot < SEALED_SLOTS:
        raise PacketError(PacketReason.BAD_FIELD, "slot")
    verify_key = bytes(sealed_signer(tag).verify_key)
    frame = unseal_record(verify_key, sealed_envelope_key(tag), slot, data, now_s)
    packet = codec.parse(frame)
    if packet.suite is not Suite.RATCHET or packet.destination.value != tag:
        raise PacketError(PacketReason.BAD_FIELD, "sealed record holds another packet")
    return frame


def epoch_tags(direct: DirectSuite, epoch: int) -> list[bytes]:
    """The tags ``direct``'s node answers to in ``epoch``: a pair tag per peer it listens to and
    a prekey tag per signed prekey it holds (its address book's own derivation)."""
    return direct.book.tags_at(epoch)


class SealedPolls:
    """Which tag slots to look up in each poll round: every ``(tag, slot)`` of the current and
    the previous epoch, at most ``per_round`` per round, continuing where the last round
    stopped (so with many peers a full sweep takes several rounds instead of one long one)."""

    __slots__ = ("_cursor", "per_round")

    def __init__(self, per_round: int) -> None:
        if per_round < 1:
            raise UsageError("sealed lookups per round must be positive")
        self.per_round = per_round
        self._cursor = 0

    @staticmethod
    def epochs(now_s: float) -> tuple[int, int]:
        current = epoch_of(int(now_s * 1000))
        return current, current - 1

    def next_round(self, tags: list[bytes]) -> list[tuple[bytes, int]]:
        """The lookups of this round, from ``tags`` (current epoch first, no duplicates)."""
        keys = [(tag, slot) for tag in dict.fromkeys(tags) for slot in range(SEALED_SLOTS)]
        if len(keys) <= self.per_round:
            self._cursor = 0
            return keys
        start = self._cursor % len(keys)
        chosen = (keys + keys)[start : start + self.per_round]
        self._cursor = start + self.per_round
        return chosen
