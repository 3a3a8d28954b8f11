"""Mailbox records: what gateways store in the Kademlia DHT, and how every reader checks them.

Kademlia values are unauthenticated: any node may store any bytes under any key. So a record
carries its own proof, and it is checked twice: by every DHT node before it stores the record
(:func:`check_record`, which needs no secret) and by the gateway that fetches it
(:func:`open_record`, which also needs the recipient's node id).

A mailbox has :data:`SLOTS` record keys. Each key names one slot of one mailbox::

    record_key = BLAKE2b-160(verify_key || slot, person "mc-dht-key")

where ``verify_key`` is the public half of an Ed25519 key pair derived from the recipient's node
id (:func:`mailbox_signer`). Whoever knows the node id can write and read that mailbox; a DHT
node that does not cannot forge a record that verifies under the key, nor read one. The slot
of a packet is its packet id's first byte modulo :data:`SLOTS`, so unrelated messages rarely
overwrite each other (a lost one is retried end to end by its sender).

Record layout (integers big-endian)::

    b"MD" || version (1) || slot (1) || expires_s (8) || verify_key (32) || signature (64)
          || envelope (see meshchat.gateway)

The signature covers ``SIGN_DOMAIN || slot || expires_s || envelope``. The envelope seals the
frame and the same ``expires_s`` under the mailbox key; :func:`open_record` insists they match.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import nacl.exceptions
from nacl.signing import SigningKey, VerifyKey

from meshchat.errors import PacketError, PacketReason
from meshchat.gateway import MAX_ENVELOPE, mailbox_key, open_envelope, seal_envelope

__all__ = [
    "MAX_RECORD",
    "MAX_RECORD_LIFETIME_S",
    "SLOTS",
    "Record",
    "build_record",
    "check_record",
    "check_record_at",
    "mailbox_signer",
    "open_record",
    "record_key",
    "seal_record",
    "slot_of",
    "unseal_record",
]

SLOTS = 8
_MAGIC = b"MD\x01"
_HEADER = len(_MAGIC) + 1 + 8 + 32 + 64
MAX_RECORD = _HEADER + MAX_ENVELOPE
#: no record may claim to live longer than this (a little over the 7-day horizon)
MAX_RECORD_LIFETIME_S = 8 * 24 * 3600
SIGN_DOMAIN = b"meshchat-dht-record-v1\x00"


def mailbox_signer(node_id: bytes) -> SigningKey:
    """The Ed25519 key that signs records for ``node_id``'s mailbox (derived; not secret to
    anyone who knows the node id)."""
    seed = hashlib.blake2b(node_id, digest_size=32, person=b"mc-mailbox-sign").digest()
    return SigningKey(seed)


def record_key(verify_key: bytes, slot: int) -> bytes:
    """The key under which a slot of a mailbox is stored (Kademlia hashes it again)."""
    return hashlib.blake2b(
        verify_key + bytes([slot]), digest_size=20, person=b"mc-dht-key"
    ).digest()


def slot_of(packet_id: bytes) -> int:
    return packet_id[0] % SLOTS


@dataclass(frozen=True, slots=True)
class Record:
    """A record whose structure, lifetime and signature were checked."""

    slot: int
    expires_s: int
    verify_key: bytes
    envelope: bytes


def build_record(node_id: bytes, slot: int, frame: bytes, expires_s: int) -> tuple[bytes, bytes]:
    """Seal ``frame`` for ``node_id``'s mailbox; returns ``(record_key, record)``."""
    return seal_record(mailbox_signer(node_id), mailbox_key(node_id), slot, frame, expires_s)


def seal_record(
    signer: SigningKey, envelope_key: bytes, slot: int, frame: bytes, expires_s: int
) -> tuple[bytes, bytes]:
    """A record signed by ``signer`` whose envelope seals ``frame`` under ``envelope_key``;
    returns ``(record_key, record)``. Mailbox and sealed records differ only in what the two
    keys are derived from, so a DHT node cannot tell them apart."""
    if not 0 <= slot < SLOTS:
        raise PacketError(PacketReason.BAD_FIELD, "slot")
    verify_key = bytes(signer.verify_key)
    envelope = seal_envelope(envelope_key, frame, expires_s)
    head = bytes([slot]) + expires_s.to_bytes(8, "big")
    signature = signer.sign(SIGN_DOMAIN + head + envelope).signature
    return record_key(verify_key, slot), _MAGIC + head + verify_key + signature + envelope


def check_record(data: object, now_s: float) -> Record:
    """Check a record without any secret: size, layout, lifetime and signature.

    Raises :class:`PacketError` (``OVERSIZED``, ``MALFORMED``, ``EXPIRED``, ``FROM_FUTURE``,
    ``BAD_SIGNATURE``). Every DHT node runs this before it stores a value.
    """
    if not isinstance(data, bytes):
        raise PacketError(PacketReason.MALFORMED, "record is not bytes")
    if len(data) > MAX_RECORD:
        raise PacketError(PacketReason.OVERSIZED, f"record {len(data)} bytes")
    if len(data) <= _HEADER or not data.startswith(_MAGIC):
        raise PacketError(PacketReason.MALFORMED, "not a meshchat record")
    slot = data[3]
    expires_s = int.from_bytes(data[4:12], "big")
    verify_key = data[12:44]
    signature = data[44:108]
    envelope = data[108:]
    if slot >= SLOTS:
        raise PacketError(PacketReason.BAD_FIELD, "slot")
    if expires_s <= now_s:
        raise PacketError(PacketReason.EXPIRED, "record expired")
    if expires_s > now_s + MAX_RECORD_LIFETIME_S:
        raise PacketError(PacketReason.FROM_FUTURE, "record lives too long")
    try:
        VerifyKey(verify_key).verify(SIGN_DOMAIN + data[3:12] + envelope, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError, ValueError):
        raise PacketError(PacketReason.BAD_SIGNATURE, "record signature") from None
    return Record(slot, expires_s, bytes(verify_key), bytes(envelope))


def check_record_at(dkey: bytes, data: object, now_s: float) -> Record:
    """:func:`check_record`, and that it is stored under its own key (Kademlia's ``dkey``
    is SHA-1 of :func:`record_key`)."""
    record = check_record(data, now_s)
    expected = hashlib.sha1(record_key(record.verify_key, record.slot)).digest()  # noqa: S324
    if dkey != expected:
        raise PacketError(PacketReason.BAD_FIELD, "record stored under another key")
    return record


def open_record(node_id: bytes, slot: int, data: object, now_s: float) -> bytes:
    """The frame in a record fetched from ``node_id``'s mailbox slot ``slot``.

    Raises :class:`PacketError` or :class:`CryptoError` for a record that is forged, for
    another mailbox or slot, oversized, expired, or whose sealed expiry disagrees.
    """
    verify_key = bytes(mailbox_signer(node_id).verify_key)
    return unseal_record(verify_key, mailbox_key(node_id), slot, data, now_s)


def unseal_record(
    verify_key: bytes, envelope_key: bytes, slot: int, data: object, now_s: float
) -> bytes:
    """The frame in a record fetched from the slot ``slot`` of the key pair ``verify_key``.

    Raises :class:`PacketError` for a record that fails :func:`check_record`, was signed by
    another key or for another slot, or whose sealed expiry disagrees with its signed one, and
    :class:`~meshchat.errors.CryptoError` for an envelope that does not open under
    ``envelope_key``.
    """
    record = check_record(data, now_s)
    if record.slot != slot or record.verify_key != verify_key:
        raise PacketError(PacketReason.BAD_FIELD, "record for another mailbox")
    frame, sealed_expiry = open_envelope(envelope_key, record.envelope)
    if sealed_expiry != record.expires_s:
        raise PacketError(PacketReason.BAD_FIELD, "record expiry does not match its envelope")
    return frame
