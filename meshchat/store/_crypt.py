"""Field encryption for the store: sealed rows and keyed lookup tags.

Theory of operation
-------------------
The store is opened with a random 32-byte **store key** that lives only inside the sealed
keystore. Two subkeys are derived from it with keyed BLAKE2b, one per purpose:

* the **sealing key** encrypts each row's private values (a CBOR array) with
  XChaCha20-Poly1305 (libsodium's IETF AEAD) under a fresh random 24-byte nonce. The plaintext
  is ``len(u32, big-endian) || CBOR || zero padding`` up to a multiple of :data:`PAD_TO`
  bytes, so a ciphertext's size tells the length of a message only to within that many bytes.
  The associated data names the table and the row's lookup tags, so a sealed value moved into
  another row, or another table, no longer opens: :meth:`StoreCipher.open` raises
  :class:`StoreError` exactly as for a wrong key or a flipped bit.
* the **index key** makes **tags**: ``BLAKE2b-128(domain || 0x00 || value, key=index key)``.
  SQLite looks rows up by tag (a contact by node id, a message by conversation) without ever
  seeing the value. Each column has its own domain, so equal values in two columns (a node id
  as a contact and as a message sender) give unrelated tags and rows cannot be joined across
  tables by someone who reads the file.

A sealed value is ``nonce(24) || ciphertext || tag(16)``. A **key check** (a sealed constant
kept in the ``meta`` table) tells a wrong key apart from a damaged row at open time.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import cbor2
import nacl.bindings as sodium
import nacl.exceptions
import nacl.utils

from meshchat.errors import StoreError, StoreReason

__all__ = ["KEY_SIZE", "PAD_TO", "TAG_SIZE", "StoreCipher"]

#: The size of a store key.
KEY_SIZE = 32
#: The size of a lookup tag.
TAG_SIZE = 16
#: Sealed plaintexts are padded to a multiple of this many bytes.
PAD_TO = 64

_NONCE = sodium.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
_MAC = sodium.crypto_aead_xchacha20poly1305_ietf_ABYTES
_LEN = 4
#: The largest plaintext a row may hold (a carried frame of 64 KiB plus its fields).
_MAX_PLAIN = 80 * 1024
_AD_PREFIX = b"meshchat-store-v2\x00"
_CHECK_AD = b"key-check"
_CHECK_VALUE = ["meshchat store key check"]


def _subkey(key: bytes, purpose: bytes) -> bytes:
    return hashlib.blake2b(purpose, key=key, digest_size=KEY_SIZE, person=b"mc-store-kdf").digest()


DAMAGED = StoreReason.DAMAGED


class StoreCipher:
    """Seals and opens one store's rows, and makes its lookup tags."""

    __slots__ = ("_index", "_seal")

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes) or len(key) != KEY_SIZE:
            raise StoreError(
                f"the store key must be {KEY_SIZE} bytes", reason=StoreReason.BAD_VALUE
            )
        self._seal = _subkey(key, b"seal")
        self._index = _subkey(key, b"index")

    def __repr__(self) -> str:
        return "<StoreCipher>"

    # -- tags --------------------------------------------------------------------------------

    def tag(self, domain: str, value: bytes | str) -> bytes:
        """The lookup tag of ``value`` in the column called ``domain``."""
        raw = value.encode("utf-8") if isinstance(value, str) else value
        return hashlib.blake2b(
            domain.encode() + b"\x00" + raw, key=self._index, digest_size=TAG_SIZE
        ).digest()

    # -- sealing -----------------------------------------------------------------------------

    @staticmethod
    def _ad(table: str, parts: tuple[bytes, ...]) -> bytes:
        out = bytearray(_AD_PREFIX + table.encode() + b"\x00")
        for part in parts:
            out += len(part).to_bytes(2, "big") + part
        return bytes(out)

    def seal(self, table: str, binding: tuple[bytes, ...], fields: list[Any]) -> bytes:
        """Encrypt ``fields`` for the row of ``table`` whose lookup tags are ``binding``."""
        body = cbor2.dumps(fields, canonical=True)
        plain = len(body).to_bytes(_LEN, "big") + body
        plain += bytes(-len(plain) % PAD_TO)
        if len(plain) > _MAX_PLAIN:
            raise StoreError("row too large to store", reason=StoreReason.BAD_VALUE)
        nonce = nacl.utils.random(_NONCE)
        sealed = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
            plain, self._ad(table, binding), nonce, self._seal
        )
        return nonce + bytes(sealed)

    def open(self, table: str, binding: tuple[bytes, ...], sealed: object) -> list[Any]:
        """Decrypt a value made by :meth:`seal`; :class:`StoreError` if it does not open."""
        if not isinstance(sealed, bytes) or not (
            _NONCE + _MAC + PAD_TO <= len(sealed) <= _NONCE + _MAC + _MAX_PLAIN
        ):
            raise StoreError(f"a sealed value in {table} is malformed", reason=DAMAGED, table=table)
        try:
            plain = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
                sealed[_NONCE:], self._ad(table, binding), sealed[:_NONCE], self._seal
            )
        except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
            raise StoreError(
                f"a row of {table} does not open: wrong store key, or the file was altered",
                reason=DAMAGED,
                table=table,
            ) from exc
        size = int.from_bytes(plain[:_LEN], "big")
        if size > len(plain) - _LEN:
            raise StoreError(
                f"a sealed value in {table} has a bad length", reason=DAMAGED, table=table
            )
        try:
            fields = cbor2.loads(plain[_LEN : _LEN + size])
        except Exception as exc:
            raise StoreError(
                f"a sealed value in {table} is not readable", reason=DAMAGED, table=table
            ) from exc
        if not isinstance(fields, list):
            raise StoreError(
                f"a sealed value in {table} has the wrong shape", reason=DAMAGED, table=table
            )
        return fields

    # -- the key check -------------------------------------------------------------------------

    def key_check(self) -> bytes:
        """A fresh sealed constant that only this key opens (kept in the ``meta`` table)."""
        return self.seal(_CHECK_AD.decode(), (), list(_CHECK_VALUE))

    def matches(self, check: bytes) -> bool:
        """True when ``check`` was made by :meth:`key_check` under this same key."""
        try:
            opened = self.open(_CHECK_AD.decode(), (), check)
        except StoreError:
            return False
        return len(opened) == 1 and hmac.compare_digest(
            str(opened[0]).encode(), _CHECK_VALUE[0].encode()
        )
