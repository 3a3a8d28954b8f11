"""bitchat's public chat: our bitchat identity, signed announces and public messages, and the
replay window.

A public message (type 0x02, ``BLEService.sendMessage``) has no recipient (or the all-ones
broadcast id), a raw UTF-8 payload, TTL 7 and an Ed25519 signature under the rules of
:func:`~meshchat.bridges.bitchat.packet.signing_bytes`; upstream drops unsigned ones and those
whose signature does not verify against the signing key the sender announced
(``BLEPublicMessageHandler``), and broadcasts older than 6 hours
(``TransportConfig.syncPublicMessageMaxAgeSeconds``). Upstream has no limit on timestamps in
the future; we refuse more than 10 minutes ahead, so the replay window stays 6 hours.

:class:`ReplayWindow` remembers what was accepted inside that window (bounded in count), so a
replay is refused as DUPLICATE while it is fresh and as STALE afterwards.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from meshchat.bridges.bitchat.announce import (
    Announcement,
    check_signature,
    check_time,
    encode_announcement,
    peer_id,
)
from meshchat.bridges.bitchat.packet import (
    DEFAULT_TTL,
    NETWORK,
    BitchatPacket,
    MessageType,
    signing_bytes,
    with_compression,
)
from meshchat.errors import BridgeError, BridgeReason

__all__ = [
    "MESSAGE_MAX_AGE_MS",
    "BitchatIdentity",
    "ReplayWindow",
    "verify_message",
]

#: TransportConfig.syncPublicMessageMaxAgeSeconds (6 h): older broadcasts are refused.
MESSAGE_MAX_AGE_MS = 6 * 3600 * 1000
#: Our bound on timestamps ahead of our clock, so a replay cannot outlive the window.
MESSAGE_MAX_SKEW_MS = 10 * 60 * 1000


def _raw(public: Ed25519PrivateKey | X25519PrivateKey) -> bytes:
    return public.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class BitchatIdentity:
    """The keys meshchat shows bitchat: a Noise static X25519 key (its hash is our peer id)
    and an Ed25519 signing key. Separate from the meshchat identity on purpose."""

    noise_private: X25519PrivateKey
    signing_private: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> BitchatIdentity:
        return cls(X25519PrivateKey.generate(), Ed25519PrivateKey.generate())

    @property
    def noise_key(self) -> bytes:
        return _raw(self.noise_private)

    @property
    def signing_key(self) -> bytes:
        return _raw(self.signing_private)

    @property
    def peer_id(self) -> bytes:
        return peer_id(self.noise_key)

    def sign(self, packet: BitchatPacket) -> BitchatPacket:
        """``packet`` in its wire form (compressed per upstream's rule) with our signature."""
        ready = with_compression(packet)
        signature = self.signing_private.sign(signing_bytes(ready))
        return BitchatPacket(
            type=ready.type,
            sender_id=ready.sender_id,
            timestamp=ready.timestamp,
            payload=ready.payload,
            ttl=ready.ttl,
            recipient_id=ready.recipient_id,
            signature=signature,
            version=ready.version,
            route=ready.route,
            is_rsr=ready.is_rsr,
            wire_payload=ready.wire_payload,
        )

    def announce(
        self, nickname: str, now_ms: int, *, capabilities: int | None = None
    ) -> BitchatPacket:
        """A signed announce under ``nickname``."""
        body = Announcement(nickname, self.noise_key, self.signing_key, capabilities=capabilities)
        packet = BitchatPacket(
            type=MessageType.ANNOUNCE,
            sender_id=self.peer_id,
            timestamp=now_ms,
            payload=encode_announcement(body),
            ttl=DEFAULT_TTL,
        )
        return self.sign(packet)

    def message(self, text: str, now_ms: int) -> BitchatPacket:
        """A signed public message carrying ``text``."""
        packet = BitchatPacket(
            type=MessageType.MESSAGE,
            sender_id=self.peer_id,
            timestamp=now_ms,
            payload=text.encode("utf-8"),
            ttl=DEFAULT_TTL,
        )
        return self.sign(packet)


def verify_message(packet: BitchatPacket, signing_key: bytes, now_ms: int) -> str:
    """The text of a public message, accepted as upstream does; :class:`BridgeError`
    (NOT_TEXT, BAD_FIELD, STALE, FROM_FUTURE, UNSIGNED, BAD_SIGNATURE) otherwise.
    ``signing_key`` is the one the sender's verified announce carried."""
    if packet.type != MessageType.MESSAGE or not packet.is_broadcast:
        raise BridgeError(NETWORK, BridgeReason.NOT_TEXT, f"type {packet.type:#04x}")
    check_time(packet, now_ms, MESSAGE_MAX_AGE_MS, MESSAGE_MAX_SKEW_MS)
    check_signature(packet, signing_key)
    try:
        return packet.payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BridgeError(NETWORK, BridgeReason.BAD_FIELD, "text is not UTF-8") from exc


def message_id(packet: BitchatPacket) -> bytes:
    """A packet's identity for deduplication: what the signature covers, so a relay's lower
    TTL or a different pad does not make a copy look new."""
    return hashlib.sha256(signing_bytes(packet)).digest()[:16]


class ReplayWindow:
    """Accept each packet once within ``max_age_ms``; refuse older ones.

    Holds at most ``capacity`` ids (the oldest is forgotten first); an id forgotten early
    could be accepted twice, which costs a duplicate line, not a forgery (signatures hold).
    """

    def __init__(self, max_age_ms: int = MESSAGE_MAX_AGE_MS, capacity: int = 20_000) -> None:
        self.max_age_ms = max_age_ms
        self.capacity = capacity
        self._seen: OrderedDict[bytes, int] = OrderedDict()
        self._admitted = 0

    def __len__(self) -> int:
        return len(self._seen)

    def admit(self, packet: BitchatPacket, now_ms: int) -> None:
        """Record ``packet``; raise STALE, FROM_FUTURE or DUPLICATE instead when it is one."""
        check_time(packet, now_ms, self.max_age_ms, MESSAGE_MAX_SKEW_MS)
        self._admitted += 1
        if self._admitted % 256 == 0:  # a sweep is O(n): amortise it
            self._expire(now_ms)
        key = message_id(packet)
        if key in self._seen:
            raise BridgeError(NETWORK, BridgeReason.DUPLICATE, key.hex())
        self._seen[key] = packet.timestamp
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)

    def _expire(self, now_ms: int) -> None:
        horizon = now_ms - self.max_age_ms
        stale = [key for key, stamp in self._seen.items() if stamp < horizon]
        for key in stale:
            del self._seen[key]
