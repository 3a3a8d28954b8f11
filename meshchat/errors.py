"""The exception hierarchy of meshchat.

Every error raised on purpose by meshchat derives from :class:`MeshchatError`. Errors caused by
what a remote party sent (a malformed packet, a bad signature, a failed handshake) are kept apart
from errors in local use (a wrong passphrase, an unknown contact), so that a node can drop the
first kind and carry on, while a command-line face reports the second kind to its user.
Foreign exceptions (``cbor2``, ``nacl``, ``sqlite3``, ``OSError``) are translated at the boundary
of the module that calls the foreign library.
"""

from __future__ import annotations

from enum import Enum

__all__ = [
    "CryptoError",
    "DecryptionError",
    "FramingError",
    "HandshakeError",
    "IdentityError",
    "KeystoreError",
    "MeshchatError",
    "PacketError",
    "PacketReason",
    "StoreError",
    "TransportError",
    "UsageError",
]


class MeshchatError(Exception):
    """Root of every error meshchat raises on purpose."""


class PacketReason(Enum):
    """Why a packet was rejected; stable names used in logs, counters and tests."""

    OVERSIZED = "oversized"
    MALFORMED = "malformed"
    NOT_CANONICAL = "not-canonical"
    UNKNOWN_VERSION = "unknown-version"
    UNKNOWN_KIND = "unknown-kind"
    UNKNOWN_SUITE = "unknown-suite"
    BAD_FIELD = "bad-field"
    BAD_SIGNATURE = "bad-signature"
    TTL_TOO_HIGH = "ttl-too-high"
    FROM_FUTURE = "from-future"
    EXPIRED = "expired"


class PacketError(MeshchatError):
    """A packet (or a part of one) could not be accepted. ``reason`` says why."""

    def __init__(self, reason: PacketReason, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)


class FramingError(MeshchatError):
    """A stream or fragment framing rule was broken (oversized frame, bad fragment)."""


class CryptoError(MeshchatError):
    """A cryptographic operation failed."""


class DecryptionError(CryptoError):
    """A ciphertext did not authenticate or decrypt (wrong key, altered, or not for us)."""


class HandshakeError(MeshchatError):
    """A link handshake failed: wrong message, bad proof, or an unsupported version."""


class IdentityError(MeshchatError):
    """An identity or contact card is malformed or its signature does not verify."""


class KeystoreError(IdentityError):
    """The keystore could not be opened: missing, corrupted, or the passphrase is wrong."""


class TransportError(MeshchatError):
    """A transport or link failed (connect, send, closed link)."""


class StoreError(MeshchatError):
    """The message store failed or holds data it cannot read."""


class UsageError(MeshchatError):
    """A request from the local user cannot be carried out (unknown contact, bad argument)."""
