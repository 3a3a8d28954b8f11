"""Group keys: the epoch's address and header key, and one sender chain per member (suite GROUP).

Theory of operation. Each roster epoch has a random 32-byte **epoch secret**, made by the
admin who signed the roster and sent to each member over their pairwise sealed session. From
it, keyed BLAKE2b derives the group's **address** for that epoch (the channel id its packets
carry: it changes at every re-key, so captures from two epochs do not link) and a **header key**
every member shares.

Each member, on adopting an epoch, makes a **sender chain** (a random chain key) and an Ed25519
**sender signing key**, and sends both to every other member over their pairwise sessions: the
scheme of Signal's sender keys. Message *i* of a chain is encrypted under
``mk_i = BLAKE2b(key=ck_i, "mc-gsk-msg")``, and the chain moves on with
``ck_{i+1} = BLAKE2b(key=ck_i, "mc-gsk-chain")``; a used message key is deleted, so a key taken
from a device today does not open earlier messages of its chains. A member who is removed gets
no secret for the next epoch and no sender chain of it.

Payload layout (the packet's origin is a key made for that one packet, as in suite RATCHET, so
relays learn no sender)::

    nonce(24) || header_ct(36) || body_ct
    header    = sender_node_id(16) || iteration(4, big-endian)
    header_ct = XChaCha20-Poly1305(header_key, nonce, header, ad=origin)
    body_ct   = XChaCha20-Poly1305(mk_i, nonce, pad(signature(64) || body),
                                   ad=origin || nonce || header_ct)
    signature = Ed25519(sender signing key, domain || address || origin || header || body)

The signature is what stops one member from writing as another: every member can derive the
message keys of every chain, but only the chain's owner holds its signing key. Padding makes
the whole payload one of the sizes in :data:`~meshchat.crypto.padding.BUCKETS`.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import nacl.bindings
import nacl.exceptions
from nacl.signing import SigningKey, VerifyKey

from meshchat.crypto.padding import pad, unpad
from meshchat.errors import DecryptionError, PacketError, PacketReason
from meshchat.wire.packet import MAX_PAYLOAD_SIZE

__all__ = [
    "HEADER_SIZE",
    "MAX_SKIP",
    "EpochKeys",
    "GroupHeader",
    "SenderChain",
    "open_body",
    "open_header",
    "seal_message",
]

SECRET_SIZE = 32
ADDRESS_SIZE = 16
_NONCE = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
_TAG = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_ABYTES
_NODE_ID = 16
HEADER_SIZE = _NODE_ID + 4
_HEADER_CT = HEADER_SIZE + _TAG
_SIGNATURE = 64
_PREFIX = _NONCE + _HEADER_CT
_MIN_PAYLOAD = _PREFIX + _TAG + _SIGNATURE + 1
#: How far past the next expected message a received iteration may jump (messages lost on
#: the way), and how many skipped message keys a chain keeps for late arrivals.
MAX_SKIP = 500
_SIG_DOMAIN = b"meshchat-group-msg-v1\x00"
_MAX_ITERATION = 2**32 - 1


def _kdf(key: bytes, person: bytes, size: int = 32) -> bytes:
    return hashlib.blake2b(b"", key=key, person=person, digest_size=size).digest()


def _encrypt(plaintext: bytes, ad: bytes, nonce: bytes, key: bytes) -> bytes:
    return nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, ad, nonce, key)


def _decrypt(ciphertext: bytes, ad: bytes, nonce: bytes, key: bytes) -> bytes:
    try:
        return nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(ciphertext, ad, nonce, key)
    except nacl.exceptions.CryptoError:
        raise DecryptionError("group message does not open") from None


@dataclass(frozen=True, slots=True)
class EpochKeys:
    """What an epoch secret gives every member: the group address and the header key."""

    secret: bytes
    address: bytes
    header_key: bytes

    @classmethod
    def from_secret(cls, secret: bytes) -> EpochKeys:
        if len(secret) != SECRET_SIZE:
            raise DecryptionError("epoch secret must be 32 bytes")
        return cls(
            secret,
            _kdf(secret, b"mc-grp-address", ADDRESS_SIZE),
            _kdf(secret, b"mc-grp-header"),
        )

    @classmethod
    def generate(cls) -> EpochKeys:
        return cls.from_secret(os.urandom(SECRET_SIZE))


@dataclass(frozen=True, slots=True)
class SenderChain:
    """One member's chain in one epoch, as held by a node: the chain key of the next
    iteration, and the message keys of iterations skipped over (for late arrivals)."""

    chain_key: bytes
    iteration: int = 0
    skipped: tuple[tuple[int, bytes], ...] = ()

    @classmethod
    def generate(cls) -> SenderChain:
        return cls(os.urandom(32))

    def next(self) -> tuple[int, bytes, SenderChain]:
        """(sender) The iteration and message key to use now, and the chain after it."""
        if self.iteration >= _MAX_ITERATION:
            raise DecryptionError("sender chain exhausted")
        key = _kdf(self.chain_key, b"mc-gsk-msg")
        return (
            self.iteration,
            key,
            SenderChain(_kdf(self.chain_key, b"mc-gsk-chain"), self.iteration + 1),
        )

    def key_for(self, iteration: int) -> tuple[bytes, SenderChain]:
        """(receiver) The message key of ``iteration`` and the chain once it is used.

        The chain itself is not changed: the caller keeps the new one only if the message
        opens. Raises :class:`DecryptionError` for a key already used (a replay) or too far
        ahead.
        """
        for index, key in self.skipped:
            if index == iteration:
                rest = tuple(s for s in self.skipped if s[0] != iteration)
                return key, SenderChain(self.chain_key, self.iteration, rest)
        if iteration < self.iteration:
            raise DecryptionError("group message key already used")
        if iteration - self.iteration > MAX_SKIP:
            raise DecryptionError("group message too far ahead of its chain")
        chain_key = self.chain_key
        skipped = list(self.skipped)
        for index in range(self.iteration, iteration):
            skipped.append((index, _kdf(chain_key, b"mc-gsk-msg")))
            chain_key = _kdf(chain_key, b"mc-gsk-chain")
        key = _kdf(chain_key, b"mc-gsk-msg")
        return key, SenderChain(
            _kdf(chain_key, b"mc-gsk-chain"), iteration + 1, tuple(skipped[-MAX_SKIP:])
        )


@dataclass(frozen=True, slots=True)
class GroupHeader:
    """Who sent a group message and which key of their chain it uses."""

    sender_node_id: bytes
    iteration: int

    def encode(self) -> bytes:
        return self.sender_node_id + self.iteration.to_bytes(4, "big")


def seal_message(
    keys: EpochKeys,
    chain: SenderChain,
    signer: SigningKey,
    sender_node_id: bytes,
    origin: bytes,
    body: bytes,
) -> tuple[bytes, SenderChain]:
    """A suite GROUP payload carrying ``body``, and the sender's chain after it."""
    iteration, message_key, after = chain.next()
    header = GroupHeader(sender_node_id, iteration).encode()
    nonce = os.urandom(_NONCE)
    header_ct = _encrypt(header, origin, nonce, keys.header_key)
    signature = signer.sign(_SIG_DOMAIN + keys.address + origin + header + body).signature
    inner = pad(signature + body, _PREFIX + _TAG)
    body_ct = _encrypt(inner, origin + nonce + header_ct, nonce, message_key)
    payload = nonce + header_ct + body_ct
    if len(payload) > MAX_PAYLOAD_SIZE:
        raise PacketError(PacketReason.OVERSIZED, f"group payload of {len(payload)} bytes")
    return payload, after


def open_header(keys: EpochKeys, origin: bytes, payload: bytes) -> GroupHeader:
    """The header of a GROUP payload; raises :class:`DecryptionError`."""
    if not _MIN_PAYLOAD <= len(payload) <= MAX_PAYLOAD_SIZE:
        raise DecryptionError("group payload size")
    header = _decrypt(payload[_NONCE:_PREFIX], origin, payload[:_NONCE], keys.header_key)
    return GroupHeader(header[:_NODE_ID], int.from_bytes(header[_NODE_ID:], "big"))


def open_body(
    keys: EpochKeys,
    message_key: bytes,
    sign_public: bytes,
    origin: bytes,
    header: GroupHeader,
    payload: bytes,
) -> bytes:
    """The body of a GROUP payload whose header opened; checks the sender's signature."""
    nonce = payload[:_NONCE]
    inner = unpad(_decrypt(payload[_PREFIX:], origin + payload[:_PREFIX], nonce, message_key))
    if len(inner) < _SIGNATURE:
        raise DecryptionError("group message too short")
    signature, body = inner[:_SIGNATURE], inner[_SIGNATURE:]
    try:
        VerifyKey(sign_public).verify(
            _SIG_DOMAIN + keys.address + origin + header.encode() + body, signature
        )
    except (nacl.exceptions.BadSignatureError, ValueError):
        raise DecryptionError("group message not signed by its sender") from None
    return body
