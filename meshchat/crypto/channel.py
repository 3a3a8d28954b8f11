"""Channels: the public ``#mesh`` (signed, readable by all) and named channels with a key.

A named channel's key is derived from its name and passphrase with Argon2id (libsodium's
``crypto_pwhash``, salt = BLAKE2b of the name), so people who agree on both share the key
without any server. Its **channel id**, carried in packet destinations, is a BLAKE2b hash of the
key: relays cannot learn the channel's name or test a guessed name without the passphrase.
Payloads (suite CHANNEL) are ``nonce(24) || XSalsa20-Poly1305 ciphertext`` under the key.
The public channel's id is a hash of its name, and its messages are only signed.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass

import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.utils

from meshchat.errors import DecryptionError, UsageError

__all__ = ["PUBLIC_CHANNEL", "ChannelKey", "derive_channel_key", "normalise_channel_name"]

PUBLIC_CHANNEL = "#mesh"
_MAX_NAME = 32


def normalise_channel_name(name: str) -> str:
    """``#name`` in NFC lower case; raises :class:`UsageError` for an unusable name."""
    try:
        name.encode()
    except UnicodeEncodeError:
        raise UsageError("channel name is not valid text") from None
    name = unicodedata.normalize("NFC", name.strip()).lower()
    if not name.startswith("#"):
        name = "#" + name
    body = name[1:]
    if (
        not body
        or len(name.encode()) > _MAX_NAME
        or not all(c.isalnum() or c in "-_." for c in body)
    ):
        raise UsageError(f"bad channel name {name!r}: use letters, digits, - _ . (max {_MAX_NAME})")
    return name


@dataclass(frozen=True, slots=True)
class ChannelKey:
    """A channel's name, id and (for a private channel) its secret key."""

    name: str
    channel_id: bytes
    key: bytes | None = None

    @classmethod
    def public(cls, name: str = PUBLIC_CHANNEL) -> ChannelKey:
        name = normalise_channel_name(name)
        channel_id = hashlib.blake2b(name.encode(), digest_size=16, person=b"mc-pubchan").digest()
        return cls(name, channel_id, None)

    @classmethod
    def from_key(cls, name: str, key: bytes) -> ChannelKey:
        channel_id = hashlib.blake2b(key, digest_size=16, person=b"mc-chanid").digest()
        return cls(normalise_channel_name(name), channel_id, key)

    @property
    def private(self) -> bool:
        return self.key is not None

    def seal(self, plaintext: bytes) -> bytes:
        if self.key is None:
            raise UsageError(f"{self.name} is public; its messages are not encrypted")
        nonce = nacl.utils.random(nacl.secret.SecretBox.NONCE_SIZE)
        return bytes(nacl.secret.SecretBox(self.key).encrypt(plaintext, nonce))

    def open(self, payload: bytes) -> bytes:
        if self.key is None:
            raise DecryptionError(f"{self.name} has no key")
        try:
            return nacl.secret.SecretBox(self.key).decrypt(payload)
        except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
            raise DecryptionError("channel payload does not open") from exc


def derive_channel_key(name: str, passphrase: str) -> ChannelKey:
    """The private channel that everybody with this name and passphrase shares."""
    name = normalise_channel_name(name)
    if not passphrase:
        raise UsageError("a private channel needs a passphrase")
    try:
        secret = passphrase.encode()
    except UnicodeEncodeError:
        raise UsageError("the channel passphrase is not valid text") from None
    argon = nacl.pwhash.argon2id
    salt = hashlib.blake2b(
        name.encode(), digest_size=argon.SALTBYTES, person=b"mc-chansalt"
    ).digest()
    key = argon.kdf(
        nacl.secret.SecretBox.KEY_SIZE,
        secret,
        salt,
        argon.OPSLIMIT_INTERACTIVE,
        argon.MEMLIMIT_INTERACTIVE,
    )
    return ChannelKey.from_key(name, bytes(key))
