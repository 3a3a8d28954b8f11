"""bitchat's announce (type 0x01): who a peer is, as a TLV list in a signed packet.

Upstream ``AnnouncementPacket`` (``bitchat/Protocols/Packets.swift``, Android
``model/IdentityAnnouncement.kt``): each TLV is ``type(1) length(1) value``:

====  ======================  =====================================================
0x01  nickname                UTF-8, at most 255 bytes (required)
0x02  Noise static key        X25519 public key, 32 bytes (required)
0x03  signing key             Ed25519 public key, 32 bytes (required)
0x04  direct neighbours       8-byte peer ids, a multiple of 8 (at most 10 sent)
0x05  capabilities            a little-endian bit set, minimal, at most 8 bytes
0x06  bridge geohash          UTF-8, at most 12 bytes
====  ======================  =====================================================

Unknown TLV types are skipped (upstream is forward compatible); a TLV that runs past the end,
a repeated type, or a known field of the wrong size is refused. A peer's id is the first 8
bytes of SHA-256 of its Noise key (``PeerID(publicKey:)``), and an announce whose sender id is
not that is dropped (``BLEAnnouncePreflightPolicy``); the signature is checked against the
Ed25519 key inside the same announce, so it only proves self-consistency: keeping the first
signing key seen for a peer id (upstream's TOFU pinning) is the caller's job.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from meshchat.bridges.bitchat.packet import (
    ID_SIZE,
    NETWORK,
    BitchatPacket,
    MessageType,
    signing_bytes,
)
from meshchat.errors import BridgeError, BridgeReason

__all__ = [
    "ANNOUNCE_MAX_AGE_MS",
    "MAX_FUTURE_SKEW_MS",
    "Announcement",
    "check_signature",
    "decode_announcement",
    "encode_announcement",
    "peer_id",
    "verify_announce",
]

KEY_SIZE = 32
#: BLEPacketFreshnessPolicy.defaultMaxAgeSeconds: announces older than 15 minutes are stale.
ANNOUNCE_MAX_AGE_MS = 900_000
#: Android's AnnouncementIdentityValidator allows 10 minutes of clock skew either way.
MAX_FUTURE_SKEW_MS = 600_000
MAX_NEIGHBOURS = 10

T_NICKNAME = 0x01
T_NOISE_KEY = 0x02
T_SIGNING_KEY = 0x03
T_NEIGHBOURS = 0x04
T_CAPABILITIES = 0x05
T_GEOHASH = 0x06


def _bad(reason: BridgeReason, detail: str) -> BridgeError:
    return BridgeError(NETWORK, reason, detail)


def peer_id(noise_key: bytes) -> bytes:
    """A bitchat peer id: the first 8 bytes of SHA-256 of the Noise static public key."""
    return hashlib.sha256(noise_key).digest()[:ID_SIZE]


@dataclass(frozen=True, slots=True)
class Announcement:
    """The decoded TLVs of an announce."""

    nickname: str
    noise_key: bytes
    signing_key: bytes
    neighbours: tuple[bytes, ...] = ()
    capabilities: int | None = None
    geohash: str | None = None
    unknown: tuple[int, ...] = field(default=())  #: TLV types skipped

    def __post_init__(self) -> None:
        if len(self.nickname.encode("utf-8")) > 0xFF:
            raise _bad(BridgeReason.BAD_FIELD, "nickname longer than 255 bytes")
        if len(self.noise_key) != KEY_SIZE or len(self.signing_key) != KEY_SIZE:
            raise _bad(BridgeReason.BAD_FIELD, "keys are 32 bytes")
        if len(self.neighbours) > 0xFF // ID_SIZE or any(
            len(n) != ID_SIZE for n in self.neighbours
        ):
            raise _bad(BridgeReason.BAD_FIELD, "neighbours are 8-byte ids")
        if self.capabilities is not None and not 0 <= self.capabilities < 2**64:
            raise _bad(BridgeReason.BAD_FIELD, "capabilities are 64 bits")
        if self.geohash is not None and len(self.geohash.encode("utf-8")) > 12:
            raise _bad(BridgeReason.BAD_FIELD, "geohash longer than 12 bytes")

    @property
    def peer_id(self) -> bytes:
        return peer_id(self.noise_key)


def _capability_bytes(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append(value & 0xFF)
        value >>= 8
        if not value:
            return bytes(out)


def encode_announcement(announcement: Announcement) -> bytes:
    """The TLV bytes, in upstream's order; at most 10 neighbours are sent."""
    fields: list[tuple[int, bytes]] = [
        (T_NICKNAME, announcement.nickname.encode("utf-8")),
        (T_NOISE_KEY, announcement.noise_key),
        (T_SIGNING_KEY, announcement.signing_key),
    ]
    if announcement.neighbours:
        fields.append((T_NEIGHBOURS, b"".join(announcement.neighbours[:MAX_NEIGHBOURS])))
    if announcement.capabilities is not None:
        fields.append((T_CAPABILITIES, _capability_bytes(announcement.capabilities)))
    if announcement.geohash:
        fields.append((T_GEOHASH, announcement.geohash.encode("utf-8")))
    return b"".join(bytes((kind, len(value))) + value for kind, value in fields)


def _text(value: bytes, what: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _bad(BridgeReason.BAD_FIELD, f"{what} is not UTF-8") from exc


def decode_announcement(data: bytes) -> Announcement:
    """Parse announce TLVs. Raises :class:`BridgeError` (TRUNCATED, BAD_FIELD)."""
    values: dict[int, bytes] = {}
    unknown: list[int] = []
    at = 0
    while at < len(data):
        if at + 2 > len(data):
            raise _bad(BridgeReason.TRUNCATED, "a TLV header runs past the end")
        kind, length = data[at], data[at + 1]
        at += 2
        if at + length > len(data):
            raise _bad(BridgeReason.TRUNCATED, f"TLV {kind:#04x} runs past the end")
        value = data[at : at + length]
        at += length
        if not T_NICKNAME <= kind <= T_GEOHASH:
            unknown.append(kind)
            continue
        if kind in values:
            raise _bad(BridgeReason.BAD_FIELD, f"TLV {kind:#04x} repeated")
        values[kind] = value
    for kind, name in (
        (T_NICKNAME, "nickname"),
        (T_NOISE_KEY, "noise key"),
        (T_SIGNING_KEY, "signing key"),
    ):
        if kind not in values:
            raise _bad(BridgeReason.BAD_FIELD, f"no {name}")
    neighbours_raw = values.get(T_NEIGHBOURS, b"")
    if len(neighbours_raw) % ID_SIZE:
        raise _bad(BridgeReason.BAD_FIELD, "neighbours not a multiple of 8 bytes")
    caps_raw = values.get(T_CAPABILITIES)
    if caps_raw is not None and (
        not 1 <= len(caps_raw) <= 8 or (len(caps_raw) > 1 and caps_raw[-1] == 0)
    ):
        raise _bad(BridgeReason.BAD_FIELD, "capabilities not a minimal 1-8 byte value")
    geohash = values.get(T_GEOHASH)
    return Announcement(
        nickname=_text(values[T_NICKNAME], "nickname"),
        noise_key=values[T_NOISE_KEY],
        signing_key=values[T_SIGNING_KEY],
        neighbours=tuple(
            neighbours_raw[i : i + ID_SIZE] for i in range(0, len(neighbours_raw), ID_SIZE)
        ),
        capabilities=None if caps_raw is None else int.from_bytes(caps_raw, "little"),
        geohash=None if geohash is None else _text(geohash, "geohash"),
        unknown=tuple(unknown),
    )


def check_signature(packet: BitchatPacket, signing_key: bytes) -> None:
    """Raise :class:`BridgeError` (UNSIGNED, BAD_SIGNATURE) unless ``packet`` carries an
    Ed25519 signature by ``signing_key`` over :func:`signing_bytes`."""
    if packet.signature is None:
        raise _bad(BridgeReason.UNSIGNED, f"type {packet.type:#04x} must be signed")
    try:
        Ed25519PublicKey.from_public_bytes(signing_key).verify(
            packet.signature, signing_bytes(packet)
        )
    except (InvalidSignature, ValueError) as exc:
        raise _bad(BridgeReason.BAD_SIGNATURE, f"from {packet.sender_id.hex()}") from exc


def check_time(
    packet: BitchatPacket, now_ms: int, max_age_ms: int, skew_ms: int = MAX_FUTURE_SKEW_MS
) -> None:
    """Raise STALE when older than ``max_age_ms``, FROM_FUTURE when ahead by over ``skew_ms``."""
    if packet.timestamp < now_ms - max_age_ms:
        raise _bad(BridgeReason.STALE, f"{(now_ms - packet.timestamp) // 1000} s old")
    if packet.timestamp > now_ms + skew_ms:
        raise _bad(BridgeReason.FROM_FUTURE, f"{(packet.timestamp - now_ms) // 1000} s ahead")


def verify_announce(packet: BitchatPacket, now_ms: int) -> Announcement:
    """Accept an announce as upstream does: well-formed TLVs, sender id = SHA-256(Noise key)[:8],
    fresh (15 minutes old at most), and signed by the Ed25519 key it carries."""
    if packet.type != MessageType.ANNOUNCE:
        raise _bad(BridgeReason.BAD_FIELD, f"type {packet.type:#04x} is not an announce")
    announcement = decode_announcement(packet.payload)
    if announcement.peer_id != packet.sender_id:
        raise _bad(
            BridgeReason.SENDER_MISMATCH,
            f"sender {packet.sender_id.hex()} is not {announcement.peer_id.hex()}",
        )
    check_time(packet, now_ms, ANNOUNCE_MAX_AGE_MS)
    check_signature(packet, announcement.signing_key)
    return announcement
