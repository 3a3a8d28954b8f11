"""Device identity: keys, node id, fingerprint, contact cards and the sealed keystore.

A device has two long-term key pairs: Ed25519 for signing packets and proving itself in link
handshakes, X25519 for encrypting direct messages. Its **node id** is the first 16 bytes of
BLAKE2b over both public keys, so nobody can claim a node id without holding both keys' public
halves that hash to it. The **fingerprint** is 60 decimal digits in 12 groups of 5, derived from
the same public keys, for people to compare aloud.

A **contact card** is what people exchange to add each other: the two public keys and a display
name, signed by the Ed25519 key. Its text form is ``mc1:`` followed by unpadded base64url. A
version 2 card also carries the device's current **signed prekey** (an X25519 key signed by the
Ed25519 key, used by X3DH to start a forward-secret session); version 1 cards are still read. A
version 3 card adds the device's **account** (the account id and its device list's version),
made only by a device on an account of more than itself (see :mod:`meshchat.account`).

The **keystore** is the private keys, the display name and the message store's random key
sealed under a passphrase: Argon2id (libsodium's ``crypto_pwhash``) derives a key that opens an
XSalsa20-Poly1305 secret box (layout in :func:`seal_keystore`). This module only turns bytes
into bytes; reading and writing the file is the caller's job.
"""

from __future__ import annotations

import base64
import hashlib
import unicodedata
from dataclasses import dataclass, field
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
    "Keystore",
    "PublicIdentity",
    "SignedPrekey",
    "node_id_of",
    "open_keystore",
    "seal_keystore",
    "unseal_keystore",
]

NODE_ID_SIZE = 16
KEY_SIZE = 32
SIGNATURE_SIZE = 64
MAX_NAME_BYTES = 64
CARD_PREFIX = "mc1:"
MAX_CARD_BYTES = 512

_CARD_DOMAIN = b"meshchat-card-v1\x00"
_CARD_DOMAIN_V2 = b"meshchat-card-v2\x00"
_CARD_DOMAIN_V3 = b"meshchat-card-v3\x00"
#: What a signed prekey's signature covers, before the key: keeps the signature from being
#: taken for any other statement by the same signing key.
PREKEY_DOMAIN = b"meshchat-spk-v1\x00"
_MAX_TIME_MS = 2**53
_KEYSTORE_MAGIC = "meshchat-keystore"
#: The keystore version written; version 1 (no store key) is still read.
_KEYSTORE_VERSION = 2
#: The size of the message store's key, kept in the keystore.
STORE_KEY_SIZE = 32
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
    #: the node id, hashed on first use (a message's path asks for it dozens of times)
    _node_id: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.sign_public) != KEY_SIZE or len(self.box_public) != KEY_SIZE:
            raise IdentityError("public keys must be 32 bytes each")

    @property
    def node_id(self) -> bytes:
        node_id = self._node_id
        if node_id is None:
            node_id = node_id_of(self.sign_public, self.box_public)
            object.__setattr__(self, "_node_id", node_id)
        return node_id

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


def prekey_signed_bytes(public: bytes) -> bytes:
    """The bytes a signed prekey's Ed25519 signature covers."""
    return PREKEY_DOMAIN + public


@dataclass(frozen=True, slots=True)
class SignedPrekey:
    """A device's X25519 signed prekey as others see it (in its card and its announcements).

    ``signature`` is the device's Ed25519 signature over ``PREKEY_DOMAIN || public``;
    ``created_ms`` orders prekeys, so an older one replayed never replaces a newer one. The
    creation time is not under ``signature``: every container that carries a prekey (a card,
    an ANNOUNCE packet) is itself signed by the same key, which covers it.
    """

    public: bytes
    signature: bytes
    created_ms: int

    def __post_init__(self) -> None:
        if not (
            isinstance(self.public, bytes)
            and len(self.public) == KEY_SIZE
            and isinstance(self.signature, bytes)
            and len(self.signature) == SIGNATURE_SIZE
            and type(self.created_ms) is int
            and 0 <= self.created_ms < _MAX_TIME_MS
        ):
            raise IdentityError("signed prekey has a field of the wrong type or size")

    def verify(self, owner: PublicIdentity) -> bool:
        """True when ``owner``'s signing key signed this prekey."""
        return owner.verify(prekey_signed_bytes(self.public), self.signature)


@dataclass(frozen=True, slots=True)
class ContactCard:
    """A signed statement of a device's public keys, display name, (v2) signed prekey and
    (v3) account: ``(account_id, device list version)``."""

    identity: PublicIdentity
    name: str
    signature: bytes
    prekey: SignedPrekey | None = None
    account: tuple[bytes, int] | None = None

    @property
    def version(self) -> int:
        if self.account is not None:
            return 3
        return 1 if self.prekey is None else 2

    def _signed_bytes(self) -> bytes:
        return _card_signed_bytes(self.identity, self.name, self.prekey, self.account)

    def to_text(self) -> str:
        head = [self.identity.sign_public, self.identity.box_public, self.name]
        if self.prekey is None:
            fields: list[object] = [1, *head, self.signature]
        else:
            pk = self.prekey
            fields = [2, *head, pk.public, pk.signature, pk.created_ms, self.signature]
            if self.account is not None:
                fields[0] = 3
                fields[-1:-1] = [self.account[0], self.account[1]]
        raw = cbor2.dumps(fields, canonical=True)
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
        prekey: SignedPrekey | None = None
        account: tuple[bytes, int] | None = None
        if isinstance(fields, list) and len(fields) == 5 and fields[0] == 1:
            _, sign_public, box_public, name, signature = fields
        elif isinstance(fields, list) and len(fields) == 8 and fields[0] == 2:
            _, sign_public, box_public, name, spk_public, spk_sig, spk_created, signature = fields
            prekey = SignedPrekey(spk_public, spk_sig, spk_created)
        elif isinstance(fields, list) and len(fields) == 10 and fields[0] == 3:
            _, sign_public, box_public, name, spk_public, spk_sig, spk_created = fields[:7]
            account_id, list_version, signature = fields[7:]
            prekey = SignedPrekey(spk_public, spk_sig, spk_created)
            if (
                not isinstance(account_id, bytes)
                or len(account_id) != NODE_ID_SIZE
                or type(list_version) is not int
                or not 1 <= list_version < 2**32
            ):
                raise IdentityError("contact card has a bad account")
            account = (account_id, list_version)
        else:
            raise IdentityError("contact card has an unknown layout or version")
        if type(fields[0]) is not int:
            raise IdentityError("contact card has an unknown layout or version")
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
        card = cls(identity, name, signature, prekey, account)
        if not identity.verify(card._signed_bytes(), signature):
            raise IdentityError("contact card signature does not verify")
        if prekey is not None and not prekey.verify(identity):
            raise IdentityError("contact card prekey signature does not verify")
        return card


def _card_signed_bytes(
    identity: PublicIdentity,
    name: str,
    prekey: SignedPrekey | None = None,
    account: tuple[bytes, int] | None = None,
) -> bytes:
    head = [identity.sign_public, identity.box_public, name]
    if prekey is None:
        if account is not None:
            raise IdentityError("a card with an account also carries a signed prekey")
        return _CARD_DOMAIN + cbor2.dumps([1, *head], canonical=True)
    if account is not None:
        body = [3, *head, prekey.public, prekey.signature, prekey.created_ms, *account]
        return _CARD_DOMAIN_V3 + cbor2.dumps(body, canonical=True)
    return _CARD_DOMAIN_V2 + cbor2.dumps(
        [2, *head, prekey.public, prekey.signature, prekey.created_ms], canonical=True
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

    def card(
        self,
        name: str,
        prekey: SignedPrekey | None = None,
        account: tuple[bytes, int] | None = None,
    ) -> ContactCard:
        """This device's contact card; version 2 when a signed prekey is given, 3 when an
        account ``(account id, list version)`` is given too."""
        name = clean_name(name)
        signed = _card_signed_bytes(self._public, name, prekey, account)
        return ContactCard(self._public, name, self.sign(signed), prekey, account)

    def sign_prekey(self, public: bytes, created_ms: int) -> SignedPrekey:
        """Sign an X25519 prekey with this device's Ed25519 key."""
        return SignedPrekey(public, self.sign(prekey_signed_bytes(public)), created_ms)

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


@dataclass(frozen=True, slots=True)
class Keystore:
    """What an opened keystore holds.

    ``store_key`` is None in a version 1 keystore (made before the message store was
    encrypted); the home adds one and re-seals it as version 2 on first unlock.
    """

    identity: Identity
    name: str
    store_key: bytes | None
    version: int
    opslimit: int
    memlimit: int


def seal_keystore(
    identity: Identity,
    name: str,
    passphrase: str,
    profile: KdfProfile = KdfProfile.MODERATE,
    *,
    store_key: bytes | None = None,
    limits: tuple[int, int] | None = None,
) -> bytes:
    """Seal the identity, its display name and the store key under ``passphrase``.

    Returns the bytes of a version 2 keystore file. A random store key is made when none is
    given. ``limits`` (opslimit, memlimit) overrides ``profile``, so an old keystore can be
    re-sealed at the cost it was made with.

    Version 2 layout: canonical CBOR ``["meshchat-keystore", 2, salt(16), opslimit, memlimit,
    sealed]``; ``sealed`` is ``nonce(24) || XSalsa20-Poly1305`` under
    ``Argon2id(passphrase, salt, opslimit, memlimit)`` of the canonical CBOR
    ``[ed25519_seed(32), x25519_secret(32), name, store_key(32)]``.
    """
    opslimit, memlimit = limits if limits is not None else profile.limits()
    if store_key is None:
        store_key = nacl.utils.random(STORE_KEY_SIZE)
    if not isinstance(store_key, bytes) or len(store_key) != STORE_KEY_SIZE:
        raise KeystoreError(f"the store key must be {STORE_KEY_SIZE} bytes")
    salt = nacl.utils.random(nacl.pwhash.argon2id.SALTBYTES)
    key = _derive(passphrase, salt, opslimit, memlimit)
    sign_seed, box_secret = identity.private_bytes()
    secret = cbor2.dumps([sign_seed, box_secret, clean_name(name), store_key], canonical=True)
    sealed = bytes(nacl.secret.SecretBox(key).encrypt(secret))
    return cbor2.dumps(
        [_KEYSTORE_MAGIC, _KEYSTORE_VERSION, salt, opslimit, memlimit, sealed], canonical=True
    )


def unseal_keystore(data: bytes, passphrase: str) -> Keystore:
    """Open a sealed keystore of version 1 or 2; returns everything it holds.

    Raises :class:`KeystoreError` when the data is corrupted or the passphrase is wrong; the
    two cannot be told apart once the header parses, by design of authenticated encryption.
    """
    fields = _loads_small(data, KeystoreError, "keystore")
    if not (isinstance(fields, list) and len(fields) == 6 and fields[0] == _KEYSTORE_MAGIC):
        raise KeystoreError("not a meshchat keystore")
    _, version, salt, opslimit, memlimit, sealed = fields
    if version not in (1, _KEYSTORE_VERSION) or isinstance(version, bool):
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
    size = 3 if version == 1 else 4
    if not (
        isinstance(inner, list)
        and len(inner) == size
        and all(isinstance(x, bytes) for x in inner[:2])
        and isinstance(inner[2], str)
        and (version == 1 or (isinstance(inner[3], bytes) and len(inner[3]) == STORE_KEY_SIZE))
    ):
        raise KeystoreError("keystore contents are corrupted")
    return Keystore(
        identity=Identity.from_seeds(inner[0], inner[1]),
        name=inner[2],
        store_key=inner[3] if version != 1 else None,
        version=version,
        opslimit=opslimit,
        memlimit=memlimit,
    )


def open_keystore(data: bytes, passphrase: str) -> tuple[Identity, str]:
    """Open a sealed keystore; returns the identity and its display name.

    Raises :class:`KeystoreError` as :func:`unseal_keystore` does.
    """
    opened = unseal_keystore(data, passphrase)
    return opened.identity, opened.name
