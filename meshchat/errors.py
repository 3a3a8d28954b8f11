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
    "BridgeError",
    "BridgeReason",
    "ConfigError",
    "CryptoError",
    "DecryptionError",
    "DeviceListError",
    "DeviceListReason",
    "FramingError",
    "HandshakeError",
    "IdentityError",
    "KeystoreError",
    "LinkError",
    "LinkReason",
    "MeshchatError",
    "NoSuchContact",
    "NodeUnreachable",
    "PacketError",
    "PacketReason",
    "StoreError",
    "StoreReason",
    "SyncError",
    "SyncReason",
    "TransferError",
    "TransferReason",
    "TransportError",
    "UsageError",
    "VoiceError",
    "VoiceReason",
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


class DeviceListReason(Enum):
    """Why a device list was refused or could not be made; stable names for logs and tests."""

    OTHER_ACCOUNT = "other-account"  #: a list of another account than the one held
    BAD_SIGNATURE = "bad-signature"  #: the signature does not verify
    SIGNER_NOT_ON_LIST = "signer-not-on-list"  #: signer not on the list the viewer holds
    SIGNER_NOT_LISTED = "signer-not-listed"  #: signer not on the list it signed
    REVOKED_READDED = "revoked-readded"  #: a revoked device back on a list (a replay)
    REVOKED_AND_LISTED = "revoked-and-listed"  #: a device both listed and revoked
    NOT_FROM_DEVICE = "not-from-device"  #: delivered by a device that is not on it
    BAD_FOUNDER = "bad-founder"  #: the founding device is missing or did not sign version 1
    FOREIGN_DEVICE = "foreign-device"  #: claims a device the viewer holds on another account
    TOO_MANY_DEVICES = "too-many-devices"
    TOO_MANY_REVOKED = "too-many-revoked"
    UNKNOWN_DEVICE = "unknown-device"  #: revoking a device that is not on the list
    REVOKES_SIGNER = "revokes-signer"  #: a device cannot revoke itself
    BAD_VERSION = "bad-version"
    UNSOLICITED = "unsolicited"  #: a stranger's list of an account the viewer knows nothing of
    NOT_IN_GROUP = "not-in-group"  #: a device asked to join a group its account is not in


class DeviceListError(MeshchatError):
    """A device list may not be accepted (or made): ``reason`` says why."""

    def __init__(self, reason: DeviceListReason, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"device list {reason.value}: {detail}" if detail else reason.value)


class BridgeReason(Enum):
    """Why a bridge refused something from another network (bitchat, Meshtastic)."""

    TRUNCATED = "truncated"  #: a length or field runs past the end of the frame
    OVERSIZED = "oversized"  #: larger than the bridge accepts
    UNKNOWN_VERSION = "unknown-version"
    BAD_FIELD = "bad-field"  #: a field has the wrong size or value
    TRAILING = "trailing"  #: bytes after the packet that are not valid padding
    BAD_COMPRESSION = "bad-compression"  #: the payload does not inflate to its stated size
    UNSIGNED = "unsigned"  #: a signature is required and missing
    BAD_SIGNATURE = "bad-signature"
    SENDER_MISMATCH = "sender-mismatch"  #: the sender id is not derived from the stated key
    UNKNOWN_SENDER = "unknown-sender"  #: no verified announce from this sender yet
    STALE = "stale"  #: older than the replay window
    FROM_FUTURE = "from-future"
    DUPLICATE = "duplicate"  #: already seen
    FRAGMENT = "fragment"  #: a fragment breaks the reassembly rules or bounds
    NOISE = "noise"  #: a Noise handshake or transport frame that is out of turn or fails
    WRONG_CHANNEL = "wrong-channel"  #: a Meshtastic channel hash or name that is not ours
    UNDECRYPTABLE = "undecryptable"  #: decrypts to something that is not a valid payload
    NOT_TEXT = "not-text"  #: not a text message (another port or packet type)
    RATE_LIMITED = "rate-limited"


class BridgeError(MeshchatError):
    """Something from (or for) another network was refused by a bridge.

    ``network`` is ``"bitchat"`` or ``"meshtastic"``; ``reason`` says why and ``detail`` adds
    the particulars (a field name, a length).
    """

    def __init__(self, network: str, reason: BridgeReason, detail: str = "") -> None:
        self.network = network
        self.reason = reason
        self.detail = detail
        text = f"{network}: {reason.value}"
        super().__init__(f"{text}: {detail}" if detail else text)


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


class LinkReason(Enum):
    """Why linking a device failed; stable names for logs and tests."""

    BAD_CODE = "bad-code"  #: not a link code, or mistyped
    EXPIRED = "expired"  #: the code is older than its ten minutes
    USED = "used"  #: the code was used already (one use only)
    BAD_MAC = "bad-mac"  #: the other side does not know the code's secret
    WITHDRAWN = "withdrawn"  #: too many wrong attempts: the code was withdrawn
    OUT_OF_ORDER = "out-of-order"  #: a link message that does not fit the exchange's state
    BAD_COMMITMENT = "bad-commitment"  #: the new device's nonce does not open its commitment
    BAD_LIST = "bad-list"  #: the device list offered is not one the new device can adopt
    MISMATCH = "mismatch"  #: the confirmation strings differ
    DECLINED = "declined"  #: the person (on this device or the other) said no
    NOT_FOUND = "not-found"  #: no device named by the code was heard


class LinkError(MeshchatError):
    """Linking a device failed. ``reason`` says why."""

    def __init__(self, reason: LinkReason, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(detail or reason.value)


class TransportError(MeshchatError):
    """A transport or link failed (connect, send, closed link).

    ``transport`` names the medium (``"lan"``, ``"ble"``, ``"relay"``, ...), ``link_id`` the
    link, ``address`` the peer's address and ``reason`` a stable short name for what went wrong
    (e.g. ``"handshake-failed"``), when the raiser knows them (None otherwise).
    """

    def __init__(
        self,
        message: str,
        *,
        transport: str | None = None,
        link_id: str | None = None,
        address: str | None = None,
        reason: str | None = None,
    ) -> None:
        self.transport = transport
        self.link_id = link_id
        self.address = address
        self.reason = reason
        super().__init__(message)


class StoreReason(Enum):
    """Why the store failed; stable names for logs and tests."""

    FAILED = "failed"  #: SQLite or the file system failed (disk full, locked, I/O error)
    BAD_VALUE = "bad-value"  #: an argument was refused before anything was written
    DAMAGED = "damaged"  #: stored data could not be read back (altered or damaged)
    WRONG_KEY = "wrong-key"  #: the store key is not this file's
    SCHEMA = "schema"  #: the file's schema is newer than this code, or unreadable
    CLOSED = "closed"  #: the store was already closed


class NodeUnreachable(TransportError):
    """No running node could be reached on the control socket: nothing was sent to it."""


class StoreError(MeshchatError):
    """The message store failed or holds data it cannot read.

    ``reason`` says which way; ``path`` is the database file, ``table`` the table and
    ``field`` the value concerned, when known (None otherwise).
    """

    def __init__(
        self,
        message: str,
        *,
        reason: StoreReason = StoreReason.FAILED,
        path: str | None = None,
        table: str | None = None,
        field: str | None = None,
    ) -> None:
        self.reason = reason
        self.path = path
        self.table = table
        self.field = field
        super().__init__(message)


class UsageError(MeshchatError):
    """A request from the local user cannot be carried out (unknown contact, bad argument)."""


class NoSuchContact(UsageError):
    """No contact has the name or node id prefix given (the node may then look among the
    peers that announced themselves; see :mod:`meshchat.target`)."""


class ConfigError(UsageError):
    """The configuration file (``config.toml``) cannot be used, or a value given for a key is
    refused.

    ``path`` is the file, ``key`` the dotted key concerned (``"lan.port"``) and ``line`` its
    line in the file (1-based), when known (None otherwise). The message names all three.
    """

    def __init__(
        self,
        problem: str,
        *,
        path: str | None = None,
        key: str | None = None,
        line: int | None = None,
    ) -> None:
        self.problem = problem
        self.path = path
        self.key = key
        self.line = line
        where = path or ""
        if path is not None and line is not None:
            where = f"{path}, line {line}"
        elif line is not None:
            where = f"line {line}"
        message = f"{key}: {problem}" if key else problem
        super().__init__(f"{where}: {message}" if where else message)


class SyncReason(Enum):
    """Why a history sync session with one of my own devices was cut off."""

    TOO_MANY_WANTED = "too-many-wanted"  #: the peer claimed more missing ids than a session takes
    TOO_MANY_ROUNDS = "too-many-rounds"  #: the reconciliation did not end within its round budget
    OUT_OF_ORDER = "out-of-order"  #: a message that does not fit the session (bounds, session id)
    NOT_MY_DEVICE = "not-my-device"  #: a sync blob from a sender that is not one of my devices


class SyncError(MeshchatError):
    """A sync session was cut off (``reason``); the peer is not trusted with more of it.

    The session's memory is bounded by its limits, whatever the peer sends; a new session
    (started later, on the next meeting) reconciles again from the stores.
    """

    def __init__(self, reason: SyncReason, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)


class TransferReason(Enum):
    """Why a file transfer (or a part of one) failed; stable names for logs and tests."""

    UNKNOWN_TRANSFER = "unknown-transfer"  #: no transfer has this root hash
    BAD_HASH = "bad-hash"  #: a piece does not match its hash in the tree
    BAD_KEY = "bad-key"  #: a verified chunk does not decrypt under the announced key
    NOT_WANTED = "not-wanted"  #: a piece already held, or not yet verifiable
    RATE_LIMITED = "rate-limited"  #: a peer asked for more pieces than its allowance
    TOO_LARGE = "too-large"  #: over a size, count or memory bound
    EXPIRED = "expired"  #: the transfer made no progress in time; partial data erased
    NO_SPACE = "no-space"  #: the disk is full (or a file-size limit was hit) while writing
    IO = "io"  #: another file-system failure
    CHANGED = "changed"  #: the file being served no longer matches its announcement
    BAD_NAME = "bad-name"  #: no usable file name could be made (every numbered name taken)
    BAD_MEDIA = "bad-media"  #: the file's bytes are not of its announced media type


class TransferError(MeshchatError):
    """A file transfer failed. ``reason`` says why; ``root`` is the transfer's root hash and
    ``path`` the file concerned, when known (None otherwise)."""

    def __init__(
        self,
        reason: TransferReason,
        detail: str = "",
        *,
        root: bytes | None = None,
        path: str | None = None,
    ) -> None:
        self.reason = reason
        self.detail = detail
        self.root = root
        self.path = path
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)


class VoiceReason(Enum):
    """Why a voice note could not be made, read or played; stable names for logs and tests."""

    NOT_AUDIO = "not-audio"  #: the bytes are not audio (or not an Ogg/Opus voice note)
    DAMAGED = "damaged"  #: the audio could not be decoded (cut short, altered)
    TOO_LONG = "too-long"  #: longer than a voice note may be
    TOO_LARGE = "too-large"  #: more bytes than a voice note (or its source) may have
    EMPTY = "empty"  #: no sound at all
    NO_MICROPHONE = "no-microphone"  #: nothing to record from
    NO_SOUND_CARD = "no-sound-card"  #: nothing to play on


class VoiceError(MeshchatError):
    """A voice note could not be made, read or played. ``reason`` says why."""

    def __init__(self, reason: VoiceReason, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(detail or reason.value)
