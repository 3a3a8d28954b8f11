"""Suite BOX: a direct message encrypted to one recipient with libsodium's ``crypto_box``.

Payload layout: ``sender_box_public(32) || nonce(24) || ciphertext`` where the ciphertext is
XSalsa20-Poly1305 under the X25519 shared key of sender and recipient. Box authentication
proves the sender holds the X25519 secret for ``sender_box_public``; the packet's Ed25519
signature binds that key to the signing key, and together they give the sender's node id.
Relays see the sender's keys but not the text (sealed sender is a later suite).

Shared keys are precomputed once per peer (``crypto_box_beforenm``) and kept in a bounded
cache, so a busy node pays for one X25519 operation per peer, not per message.
"""

from __future__ import annotations

from collections import OrderedDict

import nacl.exceptions
import nacl.utils
from nacl.public import Box, PublicKey

from meshchat.errors import DecryptionError
from meshchat.identity import Identity

__all__ = ["BOX_OVERHEAD", "BoxSuite"]

_KEY = 32
_NONCE = Box.NONCE_SIZE
BOX_OVERHEAD = _KEY + _NONCE + 16


class BoxSuite:
    """Seals and opens BOX payloads for one identity."""

    __slots__ = ("_boxes", "_cache_size", "_identity")

    def __init__(self, identity: Identity, cache_size: int = 1024) -> None:
        self._identity = identity
        self._boxes: OrderedDict[bytes, Box] = OrderedDict()
        self._cache_size = cache_size

    def _box(self, peer_box_public: bytes) -> Box:
        box = self._boxes.get(peer_box_public)
        if box is None:
            box = Box(self._identity.box_key, PublicKey(peer_box_public))
            self._boxes[peer_box_public] = box
            if len(self._boxes) > self._cache_size:
                self._boxes.popitem(last=False)
        else:
            self._boxes.move_to_end(peer_box_public)
        return box

    def seal(self, recipient_box_public: bytes, plaintext: bytes) -> bytes:
        nonce = nacl.utils.random(_NONCE)
        sealed = self._box(recipient_box_public).encrypt(plaintext, nonce)
        return self._identity.public.box_public + bytes(sealed)

    def open(self, payload: bytes) -> tuple[bytes, bytes]:
        """Return ``(sender_box_public, plaintext)``; raises :class:`DecryptionError`."""
        if len(payload) < BOX_OVERHEAD:
            raise DecryptionError("BOX payload too short")
        sender = payload[:_KEY]
        try:
            plaintext = self._box(sender).decrypt(payload[_KEY:])
        except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
            raise DecryptionError("BOX payload does not open") from exc
        return sender, plaintext
