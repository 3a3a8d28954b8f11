"""The wire forms of push-to-talk: the offer (a control blob in the sealed session) and the
live frame (the payload of a TALK packet), and sealing a frame's sound.

Offer, control blob kind :data:`KIND_TALK` (40), canonical CBOR::

    [40, talk_id(16), key(32), frame_ms]

sent like every account control blob: sealed in the pairwise forward-secret session (X3DH and
the Double Ratchet, sealed sender), retried until acked. ``key`` is drawn afresh for each talk.

Live frame, the payload of a packet of kind TALK (5), suite SIGNED, addressed to the
listener's node id, TTL 1 (never relayed), signed by the talker's identity key like every
packet. A fixed layout, :data:`HEADER_SIZE` (21) bytes then the sealed sound::

    flags(1) | talk_id(16) | seq(4, big-endian) | sealed(16 .. 16 + MAX_OPUS_BYTES)

``flags`` bit 0 is END (the talk's last frame; its sound may be empty); the other bits are 0.
``sealed`` is the Opus packet under XChaCha20-Poly1305 (IETF AEAD, libsodium) with the talk's
key, nonce ``"mc-talk-frame-v1" || seq (8 bytes, big-endian)`` (each seq is sealed once per
key) and associated data ``"mc-talk-v1" || talk_id || flags || seq``. Decoding is strict: any
other length, flag or field raises :class:`~meshchat.errors.PacketError`; opening with the
wrong key or altered bytes raises :class:`~meshchat.errors.DecryptionError`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import cbor2
import nacl.bindings
import nacl.exceptions

from meshchat.errors import DecryptionError, PacketError, PacketReason
from meshchat.talk.params import FRAME_MS, MAX_OPUS_BYTES
from meshchat.wire.cborcheck import check_cbor

__all__ = [
    "FLAG_END",
    "HEADER_SIZE",
    "KEY_SIZE",
    "KIND_TALK",
    "MAX_BODY",
    "MAX_OFFER_BYTES",
    "TAG_SIZE",
    "TALK_ID_SIZE",
    "LiveFrame",
    "TalkOffer",
    "open_sound",
    "seal_sound",
]

KIND_TALK = 40
TALK_ID_SIZE = 16
KEY_SIZE = 32
TAG_SIZE = 16
HEADER_SIZE = 1 + TALK_ID_SIZE + 4
MAX_BODY = HEADER_SIZE + TAG_SIZE + MAX_OPUS_BYTES
MAX_OFFER_BYTES = 64 + TALK_ID_SIZE + KEY_SIZE
FLAG_END = 0x01
MAX_SEQ = 2**32 - 1
_NONCE_PREFIX = b"mc-talk-frame-v1"
_AD_PREFIX = b"mc-talk-v1"


def _bad(what: str) -> PacketError:
    return PacketError(PacketReason.BAD_FIELD, f"talk: {what}")


@dataclass(frozen=True, slots=True)
class TalkOffer:
    """A talk about to start: its id, its key and its frame length."""

    talk_id: bytes
    key: bytes
    frame_ms: int = FRAME_MS

    def __post_init__(self) -> None:
        if type(self.talk_id) is not bytes or len(self.talk_id) != TALK_ID_SIZE:
            raise _bad("talk id size")
        if type(self.key) is not bytes or len(self.key) != KEY_SIZE:
            raise _bad("key size")
        if type(self.frame_ms) is not int or self.frame_ms != FRAME_MS:
            raise _bad(f"frame length {self.frame_ms!r} (only {FRAME_MS} ms)")

    @classmethod
    def new(cls) -> TalkOffer:
        return cls(os.urandom(TALK_ID_SIZE), os.urandom(KEY_SIZE))

    def encode(self) -> bytes:
        return cbor2.dumps([KIND_TALK, self.talk_id, self.key, self.frame_ms], canonical=True)

    @classmethod
    def decode(cls, blob: bytes) -> TalkOffer:
        if not isinstance(blob, bytes) or len(blob) > MAX_OFFER_BYTES:
            raise PacketError(PacketReason.OVERSIZED, "talk offer too large")
        try:
            check_cbor(blob, max_items=8, max_depth=2)
            fields = cbor2.loads(blob)
        except PacketError:
            raise
        except (cbor2.CBORDecodeError, ValueError, TypeError, RecursionError) as exc:
            raise _bad(f"offer is not CBOR ({exc})") from exc
        if not isinstance(fields, list) or len(fields) != 4 or fields[0] != KIND_TALK:
            raise _bad("offer shape")
        offer = cls(fields[1], fields[2], fields[3])
        if offer.encode() != blob:
            raise _bad("offer not canonical")
        return offer


@dataclass(frozen=True, slots=True)
class LiveFrame:
    """One live frame as sent: ``sealed`` is the Opus packet sealed by :func:`seal_sound`."""

    talk_id: bytes
    seq: int
    sealed: bytes
    end: bool = False

    def __post_init__(self) -> None:
        if type(self.talk_id) is not bytes or len(self.talk_id) != TALK_ID_SIZE:
            raise _bad("talk id size")
        if type(self.seq) is not int or not 0 <= self.seq <= MAX_SEQ:
            raise _bad("seq out of range")
        if type(self.sealed) is not bytes or not TAG_SIZE <= len(self.sealed) <= (
            TAG_SIZE + MAX_OPUS_BYTES
        ):
            raise _bad("sealed sound size")
        if type(self.end) is not bool:
            raise _bad("end flag")

    @property
    def flags(self) -> int:
        return FLAG_END if self.end else 0

    def encode(self) -> bytes:
        return bytes([self.flags]) + self.talk_id + self.seq.to_bytes(4, "big") + self.sealed

    @classmethod
    def decode(cls, body: bytes) -> LiveFrame:
        """A live frame's fields; :class:`PacketError` for anything but the one layout."""
        if not isinstance(body, bytes):
            raise _bad("not bytes")
        if not HEADER_SIZE + TAG_SIZE <= len(body) <= MAX_BODY:
            raise PacketError(PacketReason.BAD_FIELD, f"talk: frame of {len(body)} bytes")
        flags = body[0]
        if flags & ~FLAG_END:
            raise _bad(f"unknown flags {flags:#x}")
        seq = int.from_bytes(body[1 + TALK_ID_SIZE : HEADER_SIZE], "big")
        return cls(body[1 : 1 + TALK_ID_SIZE], seq, body[HEADER_SIZE:], bool(flags & FLAG_END))


def _nonce(seq: int) -> bytes:
    return _NONCE_PREFIX + seq.to_bytes(8, "big")


def _ad(talk_id: bytes, seq: int, end: bool) -> bytes:
    return _AD_PREFIX + talk_id + bytes([FLAG_END if end else 0]) + seq.to_bytes(4, "big")


def seal_sound(key: bytes, talk_id: bytes, seq: int, opus: bytes, *, end: bool = False) -> bytes:
    """The Opus packet ``opus`` of frame ``seq``, sealed under the talk's key."""
    if len(opus) > MAX_OPUS_BYTES:
        raise _bad(f"an Opus packet of {len(opus)} bytes (at most {MAX_OPUS_BYTES})")
    return bytes(
        nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
            opus, _ad(talk_id, seq, end), _nonce(seq), key
        )
    )


def open_sound(key: bytes, frame: LiveFrame) -> bytes:
    """The Opus packet of ``frame``; :class:`DecryptionError` if it does not open."""
    try:
        return bytes(
            nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
                frame.sealed, _ad(frame.talk_id, frame.seq, frame.end), _nonce(frame.seq), key
            )
        )
    except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
        raise DecryptionError(f"live frame {frame.seq} does not open") from exc
