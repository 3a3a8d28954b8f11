"""The ratchet libraries as meshchat drives them: parameters, fast paths and state layout.

Theory of operation. The ``x3dh`` and ``doubleratchet`` packages do the cryptography. This
module is the only one that knows more of them than their public API: it subclasses them to fix
their parameters (:class:`X3DHState`, :class:`Ratchet`, the KDFs and the AEAD), replaces their
Diffie-Hellman ratchet by one on libsodium (:class:`X25519Ratchet`), and reads and rebuilds
their state (:func:`ratchet_to_cbor`, :func:`ratchet_from_cbor`). Should a new version of the
libraries lay their objects out differently, this is the one module to change.

* **Identity keys.** X3DH runs on the devices' Ed25519 signing keys (the ``x3dh`` package's
  ``ED_25519`` identity format). A signed prekey's signature is a plain Ed25519 signature over
  ``"meshchat-spk-v1\\0" || public`` (:class:`~meshchat.identity.SignedPrekey`).
* **Double Ratchet.** X25519, HKDF-SHA-256 root chain, HMAC-SHA-256 message chains, AES-256-CBC
  + HMAC-SHA-256 messages (the library's recommended set). At most :data:`MAX_SKIP` message keys
  are skipped or kept for late messages (the library raises beyond it). The KDFs and the
  message AEAD are the library's ``recommended`` ones with these parameters, written here on
  the standard library's HMAC (same bytes, tested against the library's own): its versions
  compare the message tag with ``!=`` rather than in constant time, and build several
  ``cryptography`` objects per message.
* **Reading state fast.** A record is serialised after every message, so ratchet state is read
  from the library's objects directly (its private, name-mangled attributes) rather than
  through its pydantic models, with the models as a fallback should their layout change. The
  Diffie-Hellman ratchet uses X25519 from libsodium (the library's own Curve25519 class goes
  through ``cryptography``, which builds a key object, and so computes a public key, for every
  exchange); it remembers the public key of its current private key (under a hash of the
  private key, so no secret is kept beyond the state itself), and copies itself cheaply, since
  the library copies it before every decryption to roll back on failure.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
from collections import OrderedDict
from typing import Any, TypeVar

import nacl.bindings
import nacl.exceptions
import nacl.utils
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from doubleratchet import (
    AEAD,
    KDF,
    AuthenticationFailedException,
    DecryptionFailedException,
    DoSProtectionException,
    DoubleRatchet,
    DoubleRatchetModel,
    DuplicateMessageException,
    KDFChain,
    KDFChainModel,
)
from doubleratchet import DiffieHellmanRatchet as DiffieHellmanRatchetBase
from doubleratchet import Header as RatchetHeader
from doubleratchet.symmetric_key_ratchet import SymmetricKeyRatchet
from x3dh import (
    BaseState,
    BaseStateModel,
    IdentityKeyFormat,
    IdentityKeyPairModel,
    KeyAgreementException,
    SignedPreKeyPairModel,
)
from x3dh import HashFunction as X3DHHash
from x3dh.types import SecretType

from meshchat.crypto.prekeys import OwnPrekey
from meshchat.identity import PREKEY_DOMAIN, Identity

__all__ = [
    "DR_ARGS",
    "DR_DH",
    "ERRORS",
    "MAX_SKIP",
    "Ratchet",
    "X3DHState",
    "X25519Ratchet",
    "dh_state_fast",
    "dh_state_model",
    "ratchet_from_cbor",
    "ratchet_to_cbor",
    "skipped_count",
    "x3dh_state",
]

MAX_SKIP = 1000
_X3DH_INFO = b"meshchat-x3dh-v1"


class X3DHState(BaseState):
    @staticmethod
    def _encode_public_key(key_format: IdentityKeyFormat, pub: bytes) -> bytes:
        # CURVE_25519 is only used for the signed prekey's signature: domain-separate it.
        if key_format is IdentityKeyFormat.CURVE_25519:
            return PREKEY_DOMAIN + pub
        return pub


_HASH = "sha256"
_HASH_SIZE = 32
_AES_BLOCK = 16
_ROOT_INFO = b"meshchat-dr-root"
_MESSAGE_INFO = b"meshchat-dr-message"
_ZERO_SALT = bytes(_HASH_SIZE)


def _hkdf(salt: bytes, key_material: bytes, info: bytes, length: int) -> bytes:
    """HKDF-SHA-256 (RFC 5869) on the standard library's HMAC."""
    prk = hmac.digest(salt, key_material, _HASH)
    out = b""
    block = b""
    counter = 1
    while len(out) < length:
        block = hmac.digest(prk, block + info + bytes((counter,)), _HASH)
        out += block
        counter += 1
    return out[:length]


class _RootKDF(KDF):
    """The library's ``recommended.kdf_hkdf`` with SHA-256 and our info string: HKDF with the
    root key as salt and the Diffie-Hellman output as key material."""

    @staticmethod
    async def derive(key: bytes, data: bytes, length: int) -> bytes:
        return _hkdf(key, data, _ROOT_INFO, length)


class _ChainKDF(KDF):
    """The library's ``recommended.kdf_separate_hmacs`` with SHA-256: one HMAC of the chain
    key per byte of the data, concatenated."""

    @staticmethod
    async def derive(key: bytes, data: bytes, length: int) -> bytes:
        if length != len(data) * _HASH_SIZE:
            raise ValueError("the chain KDF gives one hash length per byte of data")
        return b"".join(hmac.digest(key, data[i : i + 1], _HASH) for i in range(len(data)))


class _AEAD(AEAD):
    """The library's ``recommended.aead_aes_hmac`` with SHA-256 and our info string: HKDF
    (zero salt) of the message key gives an AES-256 key, an HMAC key and a CBC IV; the
    message is AES-256-CBC with PKCS#7 padding, then HMAC-SHA-256 over the associated data
    and the ciphertext, appended. Same bytes as the library's, but the tag is compared in
    constant time (the library compares it with ``!=``), and no ``cryptography`` objects are
    built for the key derivation and the MAC."""

    @staticmethod
    def _keys(key: bytes) -> tuple[bytes, bytes, bytes]:
        okm = _hkdf(_ZERO_SALT, key, _MESSAGE_INFO, 80)
        return okm[:32], okm[32:64], okm[64:]

    @staticmethod
    async def encrypt(plaintext: bytes, key: bytes, associated_data: bytes) -> bytes:
        enc_key, auth_key, iv = _AEAD._keys(key)
        fill = _AES_BLOCK - len(plaintext) % _AES_BLOCK
        encryptor = Cipher(algorithms.AES(enc_key), modes.CBC(iv)).encryptor()
        ciphertext = encryptor.update(plaintext + bytes((fill,)) * fill) + encryptor.finalize()
        return ciphertext + hmac.digest(auth_key, associated_data + ciphertext, _HASH)

    @staticmethod
    async def decrypt(ciphertext: bytes, key: bytes, associated_data: bytes) -> bytes:
        enc_key, auth_key, iv = _AEAD._keys(key)
        tag, body = ciphertext[-_HASH_SIZE:], ciphertext[:-_HASH_SIZE]
        expected = hmac.digest(auth_key, associated_data + body, _HASH)
        if len(ciphertext) < _HASH_SIZE or not hmac.compare_digest(expected, tag):
            raise AuthenticationFailedException("Authentication tags do not match.")
        if not body or len(body) % _AES_BLOCK:
            raise DecryptionFailedException("Decryption failed.")
        decryptor = Cipher(algorithms.AES(enc_key), modes.CBC(iv)).decryptor()
        padded = decryptor.update(body) + decryptor.finalize()
        fill = padded[-1]
        if not 1 <= fill <= _AES_BLOCK or padded[-fill:] != bytes((fill,)) * fill:
            raise DecryptionFailedException("Plaintext padded incorrectly.")
        return padded[:-fill]


class Ratchet(DoubleRatchet):
    @staticmethod
    def _build_associated_data(associated_data: bytes, header: RatchetHeader) -> bytes:
        # The associated data has a fixed length (128 + 1), so plain concatenation is unique.
        return (
            associated_data
            + header.ratchet_pub
            + header.previous_sending_chain_length.to_bytes(4, "big")
            + header.sending_chain_length.to_bytes(4, "big")
        )


_LEAVES = frozenset({bytes, int, bool, str, type(None)})
_PARTS = (KDFChain, SymmetricKeyRatchet)
_T = TypeVar("_T")


def _clone(obj: _T, memo: dict[int, Any]) -> _T:
    """A deep copy of a ratchet part. Its attributes are bytes, ints, classes, tuples of
    those (shared: they are immutable) or further parts (copied the same way); anything else
    goes through :func:`copy.deepcopy`."""
    new = object.__new__(type(obj))
    memo[id(obj)] = new
    state = vars(obj).copy()
    for name, value in state.items():
        kind = type(value)
        if kind in _LEAVES or isinstance(value, type):
            continue
        if kind is tuple and all(type(v) in _LEAVES for v in value):
            continue
        if isinstance(value, _PARTS):
            state[name] = _clone(value, memo)
        else:
            state[name] = copy.deepcopy(value, memo)
    vars(new).update(state)
    return new


class X25519Ratchet(DiffieHellmanRatchetBase):
    """The Diffie-Hellman ratchet over X25519, computed by libsodium.

    Same keys and results as the library's ``recommended`` Curve25519 ratchet (raw 32-byte
    private keys, RFC 7748 X25519), so stored states read either way.
    """

    #: ``(BLAKE2b of the private key, public key)`` of the last public key derived
    _pub: tuple[bytes, bytes] | None = None

    @staticmethod
    def _generate_priv() -> bytes:
        # What crypto_box_keypair does: 32 random bytes (X25519 clamps them when used).
        return nacl.utils.random(32)

    def _derive_pub(self, priv: bytes) -> bytes:  # type: ignore[override]
        # Called for every message sent: the header repeats the current ratchet key.
        mark = hashlib.blake2b(priv, digest_size=16, person=b"mc-dr-pubcache").digest()
        cached = self._pub
        if cached is not None and cached[0] == mark:
            return cached[1]
        pub = nacl.bindings.crypto_scalarmult_base(priv)
        self._pub = (mark, pub)
        return pub

    @staticmethod
    def _perform_diffie_hellman(own_priv: bytes, other_pub: bytes) -> bytes:
        try:
            return nacl.bindings.crypto_scalarmult(own_priv, other_pub)
        except nacl.exceptions.CryptoError as exc:
            # libsodium refuses an all-zero result (a low-order public key), as OpenSSL does.
            raise ValueError(f"X25519 failed ({exc})") from None

    def __deepcopy__(self, memo: dict[int, Any]) -> X25519Ratchet:
        # The library deep-copies the ratchet before every decryption (to keep the state
        # unchanged on failure); the generic deepcopy of its object graph cost more than
        # the cryptography.
        return _clone(self, memo)


_CHAIN_CONSTANT = b"\x01\x02"
DR_ARGS = (X25519Ratchet, _RootKDF, _ChainKDF, _CHAIN_CONSTANT, MAX_SKIP, MAX_SKIP, _AEAD)

ERRORS = (
    AuthenticationFailedException,
    DecryptionFailedException,
    DoSProtectionException,
    DuplicateMessageException,
    KeyAgreementException,
    ValueError,
    TypeError,
    OverflowError,
)


def _chain(chain: KDFChainModel | None) -> list[object] | None:
    return None if chain is None else [chain.length, chain.key]


# The library's private attributes (name-mangled) read by the fast paths below. Its models
# give the same values but validate and copy them; a record is serialised after every
# message. Each fast path falls back to the models if the attributes are not there.
DR_DH = "_DoubleRatchet__diffie_hellman_ratchet"
_DR_SKIPPED = "_DoubleRatchet__skipped_message_keys"
_DH = "_DiffieHellmanRatchet__"
_SYM = "_SymmetricKeyRatchet__"


def skipped_dict(ratchet: Ratchet) -> OrderedDict[tuple[bytes, int], bytes] | None:
    keys = getattr(ratchet, _DR_SKIPPED, None)
    return keys if isinstance(keys, OrderedDict) else None


def _skipped_keys(ratchet: Ratchet) -> list[tuple[bytes, int, bytes]]:
    """The ratchet's skipped message keys, oldest first, as ``(ratchet_pub, index, key)``.

    The library only exposes them through its pydantic model, which builds one object per
    key; read its ordered dict directly when the installed version has it (it does in 1.x)
    and fall back to the model otherwise.
    """
    keys = skipped_dict(ratchet)
    if keys is not None:
        return [(pub, index, key) for (pub, index), key in keys.items()]
    return [(k.ratchet_pub, k.index, k.message_key) for k in ratchet.model.skipped_message_keys]


def _fast_chain(chain: object) -> list[object] | None:
    if chain is None:
        return None
    state = vars(chain)
    return [state["_KDFChain__length"], state["_KDFChain__key"]]


def dh_state_fast(ratchet: Ratchet) -> list[object] | None:
    """The first six fields of :func:`ratchet_to_cbor` from the library's objects, or None
    if they are not laid out as expected."""
    try:
        dh = vars(vars(ratchet)[DR_DH])
        sym = vars(dh[_DH + "symmetric_key_ratchet"])
        fields = [
            dh[_DH + "own_ratchet_priv"],
            dh[_DH + "other_ratchet_pub"],
            _fast_chain(dh[_DH + "root_chain"]),
            _fast_chain(sym[_SYM + "receiving_chain"]),
            _fast_chain(sym[_SYM + "sending_chain"]),
            sym[_SYM + "previous_sending_chain_length"],
        ]
    except (KeyError, TypeError):
        return None
    return fields


def dh_state_model(ratchet: Ratchet) -> list[object]:
    """The same fields as :func:`dh_state_fast`, through the library's pydantic models."""
    dh_model = ratchet.model.diffie_hellman_ratchet
    sym = dh_model.symmetric_key_ratchet
    return [
        dh_model.own_ratchet_priv,
        dh_model.other_ratchet_pub,
        _chain(dh_model.root_chain),
        _chain(sym.receiving_chain),
        _chain(sym.sending_chain),
        sym.previous_sending_chain_length,
    ]


def ratchet_to_cbor(ratchet: Ratchet, keep_skipped: int | None) -> list[object]:
    """``[own_priv, other_pub, root, receiving, sending, previous_length, skipped]`` where a
    chain is ``[length, key]`` or null and ``skipped`` groups keys by ratchet key:
    ``[[ratchet_pub, [[index, key]...]]...]`` (oldest first)."""
    state = dh_state_fast(ratchet)
    if state is None:
        state = dh_state_model(ratchet)
    keys = _skipped_keys(ratchet)
    if keep_skipped is not None:
        keys = keys[max(0, len(keys) - keep_skipped) :]
    grouped: dict[bytes, list[list[object]]] = {}
    for pub, index, key in keys:
        grouped.setdefault(pub, []).append([index, key])
    state.append([[pub, entries] for pub, entries in grouped.items()])
    return state


def ratchet_from_cbor(fields: object) -> DoubleRatchetModel:
    def chain(value: object) -> dict[str, object] | None:
        if value is None:
            return None
        if not (isinstance(value, list) and len(value) == 2):
            raise ValueError("chain")
        return {"length": value[0], "key": value[1]}

    if not (isinstance(fields, list) and len(fields) == 7):
        raise ValueError("ratchet layout")
    own, other, root, receiving, sending, previous, skipped = fields
    if not isinstance(skipped, list):
        raise ValueError("skipped keys")
    keys = [
        {"ratchet_pub": pub, "index": index, "message_key": key}
        for pub, entries in skipped
        for index, key in entries
    ]
    for value in (own, other, *(k["ratchet_pub"] for k in keys), *(k["message_key"] for k in keys)):
        if not isinstance(value, bytes):
            raise ValueError("ratchet keys")
    return DoubleRatchetModel.model_validate(
        {
            "diffie_hellman_ratchet": {
                "own_ratchet_priv": own,
                "other_ratchet_pub": other,
                "root_chain": chain(root),
                "symmetric_key_ratchet": {
                    "receiving_chain": chain(receiving),
                    "sending_chain": chain(sending),
                    "previous_sending_chain_length": previous,
                },
            },
            "skipped_message_keys": keys,
        }
    )


def skipped_count(ratchet: Ratchet) -> int:
    """How many skipped message keys ``ratchet`` holds."""
    keys = skipped_dict(ratchet)
    if keys is not None:
        return len(keys)
    return len(ratchet.model.skipped_message_keys)


def x3dh_state(identity: Identity, prekey: OwnPrekey) -> X3DHState:
    seed = identity.private_bytes()[0]
    model = BaseStateModel(
        identity_key=IdentityKeyPairModel(secret=seed, secret_type=SecretType.SEED),
        signed_pre_key=SignedPreKeyPairModel(
            priv=prekey.private,
            sig=prekey.signed.signature,
            timestamp=prekey.signed.created_ms // 1000,
        ),
        old_signed_pre_key=None,
        pre_keys=frozenset(),
    )
    return X3DHState.from_model(model, IdentityKeyFormat.ED_25519, X3DHHash.SHA_256, _X3DH_INFO)
