"""Device identity: keys, node id, fingerprint, contact cards and the sealed keystore.

A device has two long-term key pairs: Ed25519 for signing packets and proving itself in link
handshakes, X25519 for encrypting direct messages. Its **node id** is the first 16 bytes of
BLAKE2b over both public keys, so nobody can claim a node id without holding both keys' public
halves that hash to it. The **fingerprint** is 60 decimal digits in 12 groups of 5, derived from
the same public keys, for people to compare aloud.

A **contact card** is what people exchange to add each other: the two public keys and a display
name, signed by the Ed25519 key. Its text form is ``mc1:`` followed by unpadded base64url.

The **keystore** is the private keys sealed under a passphrase: Argon2id (libsodium's
``crypto_pwhash``) derives a key that opens an XSalsa20-Poly1305 secret box. This module only
turns bytes into bytes; reading and writing the file is the caller's job.
"""

from __future__ import annotations

import base64
import hashlib
import unicodedata
from dataclasses import dataclass
from enum import Enum
from typing import Any

import cbor2
import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.utils
from nacl.public import PrivateKey, PublicKey
from nacl.signing import SigningKey, VerifyKey

from meshchat.errors import IdentityError, KeystoreError

__all__ = [
    "CARD_PREFIX",
    "NODE_ID_SIZE",
    "ContactCard",
    "Identity",
    "KdfProfile",
    "PublicIdentity",
    "node_id_of",
    "open_keystore",
    "seal_keystore",
]

NODE_ID_SIZE = 16
KEY_SIZE = 32
SIGNATURE_SIZE = 64
MAX_NAME_BYTES = 64
CARD_PREFIX = "mc1:"
MAX_CARD_BYTES = 512

_CARD_DOMAIN = b"meshchat-card-v1\x00"
_KEYSTORE_MAGIC = "meshchat-keystore"
_KEYSTORE_VERSION = 1
MAX_KEYSTORE_BYTES = 4096


def node_id_of(sign_public: bytes, box_public: bytes) -> bytes:
    """The 16-byte node id of a device with these two public keys."""
    return hashlib.blake2b(
        sign_public + box_public, digest_size=NODE_ID_SIZE, person=b"meshchat-nodeid"
    ).digest()


def clean_name(name: str) -> str:
    """A display name normalised (NFC, control characters removed) and bounded in size."""
    text = unicodedata.normalize("NFC", name)
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C").strip()
    if len(text.encode()) > MAX_NAME_BYTES:
        raise IdentityError(f"name longer than {MAX_NAME_BYTES} bytes")
    return text


@dataclass(frozen=True, slots=True)
class PublicIdentity:
    """The public half of a device identity."""

    sign_public: bytes
    box_public: bytes

    def __post_init__(self) -> None:
        if len(self.sign_public) != KEY_SIZE or len(self.box_public) != KEY_SIZE:
            raise IdentityError("public keys must be 32 bytes each")

    @property
    def node_id(self) -> bytes:
        return node_id_of(self.sign_public, self.box_public)

    @property
    def short_id(self) -> str:
        """Eight hex digits of the node id, for compact display."""
        return self.node_id.hex()[:8]

    def fingerprint(self) -> str:
        """Twelve groups of five digits that two people can compare aloud.

        Each group is a 40-bit big-endian slice of a SHA-512 chain over the public keys, taken
        modulo 100000 (the same construction as Signal's safety numbers, over one identity).
        """
        digest = self.sign_public + self.box_public
        for _ in range(1024):
            digest = hashlib.sha512(b"meshchat-fingerprint" + digest).digest()
        groups = [int.from_bytes(digest[i * 5 : i * 5 + 5], "big") % 100000 for i in range(12)]
        return " ".join(f"{g:05d}" for g in groups)

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True when ``signature`` is this identity's Ed25519 signature of ``message``."""
        try:
            VerifyKey(self.sign_public).verify(message, signature)
        except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
            return False
        return True


@dataclass(frozen=True, slots=True)
class ContactCard:
    """A signed statement of a device's public keys and chosen display name."""

    identity: PublicIdentity
    name: str
    signature: bytes

    def _signed_bytes(self) -> bytes:
        return _card_signed_bytes(self.identity, self.name)

    def to_text(self) -> str:
        raw = cbor2.dumps(
            [1, self.identity.sign_public, self.identity.box_public, self.name, self.signature],
            canonical=True,
        )
        return CARD_PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    @classmethod
    def from_text(cls, text: str) -> ContactCard:
        """Parse and verify a contact card; raises :class:`IdentityError` on anything wrong."""
        text = text.strip()
        if not text.startswith(CARD_PREFIX):
            raise IdentityError(f"a contact card starts with {CARD_PREFIX!r}")
        body = text[len(CARD_PREFIX) :]
        if len(body) > MAX_CARD_BYTES * 2:
            raise IdentityError("contact card too long")
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (ValueError, TypeError) as exc:
            raise IdentityError("contact card is not valid base64url") from exc
        fields = _loads_small(raw, IdentityError, "contact card")
        if not (isinstance(fields, list) and len(fields) == 5 and fields[0] == 1):
            raise IdentityError("contact card has an unknown layout or version")
        _, sign_public, box_public, name, signature = fields
        if not (
            isinstance(sign_public, bytes)
            and isinstance(box_public, bytes)
            and isinstance(name, str)
            and isinstance(signature, bytes)
            and len(signature) == SIGNATURE_SIZE
        ):
            raise IdentityError("contact card has a field of the wrong type or size")
        identity = PublicIdentity(sign_public, box_public)
        if clean_name(name) != name:
            raise IdentityError("contact card name is not in normal form")
        card = cls(identity, name, signature)
        if not identity.verify(card._signed_bytes(), signature):
            raise IdentityError("contact card signature does not verify")
        return card


def _card_signed_bytes(identity: PublicIdentity, name: str) -> bytes:
    return _CARD_DOMAIN + cbor2.dumps(
        [1, identity.sign_public, identity.box_public, name], canonical=True
    )


def _loads_small(raw: bytes, error: type[Exception], what: str) -> Any:
    from meshchat.wire.cborcheck import check_cbor  # local: wire depends on identity

    if len(raw) > MAX_KEYSTORE_BYTES:
        raise error(f"{what} too long")
    try:
        check_cbor(raw, max_items=16, max_depth=2)
        return cbor2.loads(raw)
    except Exception as exc:
        raise error(f"{what} is not valid CBOR") from exc


class Identity:
    """A device's private identity: both key pairs. Never serialised except into a keystore."""

    __slots__ = ("_box", "_public", "_signing")

    def __init__(self, signing_key: SigningKey, box_key: PrivateKey) -> None:
        self._signing = signing_key
        self._box = box_key
        self._public = PublicIdentity(bytes(signing_key.verify_key), bytes(box_key.public_key))

    @classmethod
    def generate(cls) -> Identity:
        return cls(SigningKey.generate(), PrivateKey.generate())

    @classmethod
    def from_seeds(cls, sign_seed: bytes, box_secret: bytes) -> Identity:
        if len(sign_seed) != KEY_SIZE or len(box_secret) != KEY_SIZE:
            raise IdentityError("private key material must be 32 bytes each")
        return cls(SigningKey(sign_seed), PrivateKey(box_secret))

    @property
    def public(self) -> PublicIdentity:
        return self._public

    @property
    def node_id(self) -> bytes:
        return self._public.node_id

    @property
    def box_key(self) -> PrivateKey:
        return self._box

    def box_public_key(self) -> PublicKey:
        return self._box.public_key

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""
        return self._signing.sign(message).signature

    def card(self, name: str) -> ContactCard:
        name = clean_name(name)
        return ContactCard(self._public, name, self.sign(_card_signed_bytes(self._public, name)))

    def private_bytes(self) -> tuple[bytes, bytes]:
        return bytes(self._signing), bytes(self._box)


class KdfProfile(Enum):
    """Argon2id cost settings from libsodium, recorded in the keystore so they can be raised."""

    INTERACTIVE = "interactive"
    MODERATE = "moderate"
    SENSITIVE = "sensitive"

    def limits(self) -> tuple[int, int]:
        argon = nacl.pwhash.argon2id
        return {
            KdfProfile.INTERACTIVE: (argon.OPSLIMIT_INTERACTIVE, argon.MEMLIMIT_INTERACTIVE),
            KdfProfile.MODERATE: (argon.OPSLIMIT_MODERATE, argon.MEMLIMIT_MODERATE),
            KdfProfile.SENSITIVE: (argon.OPSLIMIT_SENSITIVE, argon.MEMLIMIT_SENSITIVE),
        }[self]


def _derive(passphrase: str, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    argon = nacl.pwhash.argon2id
    try:
        secret = passphrase.encode()
    except UnicodeEncodeError:
        raise KeystoreError("the passphrase is not valid text") from None
    return bytes(argon.kdf(nacl.secret.SecretBox.KEY_SIZE, secret, salt, opslimit, memlimit))


def seal_keystore(
    identity: Identity, name: str, passphrase: str, profile: KdfProfile = KdfProfile.MODERATE
) -> bytes:
    """Seal the identity and its display name under ``passphrase``; returns the file's bytes."""
    opslimit, memlimit = profile.limits()
    salt = nacl.utils.random(nacl.pwhash.argon2id.SALTBYTES)
    key = _derive(passphrase, salt, opslimit, memlimit)
    sign_seed, box_secret = identity.private_bytes()
    secret = cbor2.dumps([sign_seed, box_secret, clean_name(name)], canonical=True)
    sealed = bytes(nacl.secret.SecretBox(key).encrypt(secret))
    return cbor2.dumps(
        [_KEYSTORE_MAGIC, _KEYSTORE_VERSION, salt, opslimit, memlimit, sealed], canonical=True
    )


def open_keystore(data: bytes, passphrase: str) -> tuple[Identity, str]:
    """Open a sealed keystore; returns the identity and its display name.

    Raises :class:`KeystoreError` when the data is corrupted or the passphrase is wrong; the
    two cannot be told apart once the header parses, by design of authenticated encryption.
    """
    fields = _loads_small(data, KeystoreError, "keystore")
    if not (isinstance(fields, list) and len(fields) == 6 and fields[0] == _KEYSTORE_MAGIC):
        raise KeystoreError("not a meshchat keystore")
    _, version, salt, opslimit, memlimit, sealed = fields
    if version != _KEYSTORE_VERSION:
        raise KeystoreError(f"unsupported keystore version {version!r}")
    argon = nacl.pwhash.argon2id
    if not (
        isinstance(salt, bytes)
        and len(salt) == argon.SALTBYTES
        and isinstance(opslimit, int)
        and argon.OPSLIMIT_MIN <= opslimit <= argon.OPSLIMIT_SENSITIVE * 4
        and isinstance(memlimit, int)
        and argon.MEMLIMIT_MIN <= memlimit <= argon.MEMLIMIT_SENSITIVE
        and isinstance(sealed, bytes)
    ):
        raise KeystoreError("keystore header is corrupted")
    key = _derive(passphrase, salt, opslimit, memlimit)
    try:
        secret = nacl.secret.SecretBox(key).decrypt(sealed)
    except nacl.exceptions.CryptoError as exc:
        raise KeystoreError("wrong passphrase or corrupted keystore") from exc
    inner = _loads_small(secret, KeystoreError, "keystore contents")
    if not (
        isinstance(inner, list)
        and len(inner) == 3
        and all(isinstance(x, bytes) for x in inner[:2])
        and isinstance(inner[2], str)
    ):
        raise KeystoreError("keystore contents are corrupted")
    return Identity.from_seeds(inner[0], inner[1]), inner[2]
