"""Suite RATCHET payloads: sealed sender, padded, with an ack token relays can check.

Wire layout of a payload (the packet's ``origin`` is a fresh Ed25519 key made for this packet
alone, so the packet signature still proves integrity to relays but names nobody)::

    MESSAGE:  ack_hash(16) || sealed
    ACK:      ack_token(16) || sealed
    sealed  = crypto_box_seal(recipient_key, inner || 0x80 || 0x00...)   # 48 bytes overhead

``crypto_box_seal`` is libsodium's anonymous sealed box (an ephemeral X25519 key and
XSalsa20-Poly1305). ``recipient_key`` is the recipient's signed prekey when the packet goes to a
prekey tag, its box key when it goes to a pair tag. The padding makes the whole payload one of
the sizes in :data:`~meshchat.crypto.padding.BUCKETS`. ``inner`` is canonical CBOR::

    [origin(32), sender, x3dh, ratchet_pub(32), pn, n, ciphertext, ack_token]

* ``origin`` repeats the packet's origin key: the envelope opens only inside the packet it was
  sealed for, so nobody can move it into a packet of their own (with a new signature).
* ``sender`` is ``[sign_public(32), box_public(32)]`` or null; ``x3dh`` is ``[ephemeral(32),
  signed_prekey(32)]`` or null. Both are present in the messages of a session's initiator
  until it has heard back (the recipient may not know the sender yet), both absent otherwise
  (the pair tag already tells the recipient who the peer is).
* ``ratchet_pub``, ``pn``, ``n``, ``ciphertext``: the Double Ratchet message. Its associated
  data binds both identities; the sender is authenticated by it, not by the packet signature.
* ``ack_token`` (16 bytes, MESSAGE only; null in an ACK): a fresh random value. The MESSAGE
  shows ``ack_hash = BLAKE2b-16(ack_token)`` in clear; the recipient's ACK reveals the token,
  which relays hash to drop the copies they carry, and which only the recipient can know.
"""

from __future__ import annotations

from dataclasses import dataclass

import cbor2
import nacl.bindings
import nacl.exceptions
from nacl.public import PrivateKey

from meshchat.crypto.padding import pad, unpad
from meshchat.crypto.sessions import RatchetMessage
from meshchat.errors import DecryptionError, IdentityError
from meshchat.identity import PublicIdentity
from meshchat.wire.cborcheck import check_cbor
from meshchat.wire.payloads import ACK_TOKEN_SIZE

__all__ = ["PREFIX_SIZE", "SEAL_OVERHEAD", "Envelope", "open_sealed", "seal"]

PREFIX_SIZE = ACK_TOKEN_SIZE
#: an ephemeral X25519 key (32) and a Poly1305 tag (16)
SEAL_OVERHEAD: int = nacl.bindings.crypto_box_SEALBYTES
_KEY = 32


def _key(value: object, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != _KEY:
        raise DecryptionError(f"sealed envelope: bad {what}")
    return value


@dataclass(frozen=True, slots=True)
class Envelope:
    """The inner, sealed part of a RATCHET payload."""

    origin: bytes
    sender: PublicIdentity | None
    x3dh: tuple[bytes, bytes] | None
    message: RatchetMessage
    ack_token: bytes | None

    def encode(self) -> bytes:
        m = self.message
        return cbor2.dumps(
            [
                self.origin,
                None if self.sender is None else [self.sender.sign_public, self.sender.box_public],
                None if self.x3dh is None else list(self.x3dh),
                m.ratchet_pub,
                m.pn,
                m.n,
                m.ciphertext,
                self.ack_token,
            ],
            canonical=True,
        )

    @classmethod
    def decode(cls, data: bytes) -> Envelope:
        try:
            check_cbor(data, max_items=16, max_depth=2)
            fields = cbor2.loads(data)
        except Exception as exc:
            raise DecryptionError(f"sealed envelope is not valid CBOR ({exc})") from None
        if not (isinstance(fields, list) and len(fields) == 8):
            raise DecryptionError("sealed envelope has the wrong layout")
        origin, sender, x3dh, ratchet_pub, pn, n, ciphertext, token = fields
        who: PublicIdentity | None = None
        if sender is not None:
            if not (isinstance(sender, list) and len(sender) == 2):
                raise DecryptionError("sealed envelope: bad sender")
            try:
                who = PublicIdentity(_key(sender[0], "sender"), _key(sender[1], "sender"))
            except IdentityError:
                raise DecryptionError("sealed envelope: bad sender") from None
        agreement: tuple[bytes, bytes] | None = None
        if x3dh is not None:
            if not (isinstance(x3dh, list) and len(x3dh) == 2):
                raise DecryptionError("sealed envelope: bad key agreement")
            agreement = (_key(x3dh[0], "ephemeral key"), _key(x3dh[1], "prekey"))
        if (who is None) != (agreement is None):
            raise DecryptionError("sealed envelope: sender and key agreement go together")
        if token is not None and (not isinstance(token, bytes) or len(token) != ACK_TOKEN_SIZE):
            raise DecryptionError("sealed envelope: bad ack token")
        return cls(
            _key(origin, "origin"),
            who,
            agreement,
            RatchetMessage(_key(ratchet_pub, "ratchet key"), pn, n, ciphertext),
            token,
        )


def seal(prefix: bytes, envelope: Envelope, recipient_key: bytes) -> bytes:
    """The payload: ``prefix`` then ``envelope`` sealed to ``recipient_key``, padded."""
    padded = pad(envelope.encode(), PREFIX_SIZE + SEAL_OVERHEAD)
    return prefix + nacl.bindings.crypto_box_seal(padded, recipient_key)


def open_sealed(payload: bytes, private_key: bytes, public_key: bytes | None = None) -> Envelope:
    """The envelope in ``payload`` (prefix skipped); raises :class:`DecryptionError`.

    ``public_key`` is the public half of ``private_key`` if the caller knows it; without it
    it is computed (one scalar multiplication, about a third of the cost of opening). A
    wrong one makes the box not open, nothing worse: libsodium hashes it into the nonce.
    """
    if len(payload) < PREFIX_SIZE + SEAL_OVERHEAD + 1:
        raise DecryptionError("sealed payload too short")
    try:
        if public_key is None:
            public_key = bytes(PrivateKey(private_key).public_key)
        padded = nacl.bindings.crypto_box_seal_open(payload[PREFIX_SIZE:], public_key, private_key)
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise DecryptionError("sealed payload does not open") from None
    return Envelope.decode(unpad(padded))
