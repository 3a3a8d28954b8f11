"""Forward-secret sessions: X3DH key agreement and the Double Ratchet, per peer.

Theory of operation. The ``x3dh`` and ``doubleratchet`` packages do the cryptography; this
module fixes their parameters, drives their coroutines synchronously (:mod:`._sync`) and keeps
what meshchat needs around them.

* **Identity keys.** X3DH runs on the devices' Ed25519 signing keys (the ``x3dh`` package's
  ``ED_25519`` identity format: the key is converted to X25519 for the Diffie-Hellman steps).
  A signed prekey's signature is a plain Ed25519 signature over ``"meshchat-spk-v1\\0" ||
  public`` (see :class:`~meshchat.identity.SignedPrekey`). No one-time prekeys are used.
* **Associated data.** X3DH gives ``IK_initiator || IK_responder`` (the Ed25519 keys); we
  append ``box_initiator || box_responder``, so the 128 bytes bind both full identities (both
  node ids) into every message of the session. Each message adds one byte for its kind
  (:data:`KIND_MESSAGE`, :data:`KIND_ACK`) and the ratchet header.
* **Double Ratchet.** X25519, HKDF-SHA-256 root chain, HMAC-SHA-256 message chains, AES-256-CBC
  + HMAC-SHA-256 messages (the library's recommended set). At most :data:`MAX_SKIP` message keys
  are skipped or kept for late messages (the library raises beyond it).

A :class:`PeerRecord` holds everything about one peer: its identity, its newest verified
signed prekey, up to :data:`MAX_SESSIONS` sessions (the first is *current*, used to send; the
others still decrypt, which resolves two sides starting a session at the same time), and
bounded memories of recent ciphertexts and message ids that make retries and replays
recognisable. A record serialises to a blob (compact CBOR, not the libraries' JSON) that the
store keeps as one row; to keep a row small (:data:`BLOB_BUDGET`), at most
:data:`MAX_STORED_SKIPPED` skipped message keys are kept per peer, the older sessions' first.
"""

from __future__ import annotations

import hashlib
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field

import cbor2
from doubleratchet import (
    AuthenticationFailedException,
    DecryptionFailedException,
    DoSProtectionException,
    DoubleRatchet,
    DoubleRatchetModel,
    DuplicateMessageException,
    EncryptedMessage,
    KDFChainModel,
)
from doubleratchet import Header as RatchetHeader
from doubleratchet.recommended import HashFunction as DRHash
from doubleratchet.recommended import aead_aes_hmac, kdf_hkdf, kdf_separate_hmacs
from doubleratchet.recommended.diffie_hellman_ratchet_curve25519 import (
    DiffieHellmanRatchet as X25519Ratchet,
)
from x3dh import (
    BaseState,
    BaseStateModel,
    Bundle,
    IdentityKeyFormat,
    IdentityKeyPairModel,
    KeyAgreementException,
    SignedPreKeyPairModel,
)
from x3dh import HashFunction as X3DHHash
from x3dh import Header as X3DHHeader
from x3dh.types import SecretType

from meshchat.crypto._sync import run
from meshchat.crypto.prekeys import OwnPrekey
from meshchat.errors import DecryptionError, StoreError
from meshchat.identity import PREKEY_DOMAIN, Identity, PublicIdentity, SignedPrekey

__all__ = [
    "KIND_ACK",
    "KIND_MESSAGE",
    "MAX_SESSIONS",
    "MAX_SKIP",
    "PeerRecord",
    "RatchetMessage",
    "Session",
    "initiate",
    "respond",
]

KIND_MESSAGE = b"\x01"
KIND_ACK = b"\x02"
MAX_SKIP = 1000
MAX_SESSIONS = 3
#: received ciphertexts remembered per peer, so that a retry of one is acknowledged again
RECENT_CIPHERTEXTS = 1024
#: message ids remembered per peer, so that a message re-encrypted after its sender restarted
#: is not shown twice
RECENT_MESSAGES = 256
_DIGEST = 10
#: skipped message keys kept in a stored record, all sessions together (about 37 bytes each)
MAX_STORED_SKIPPED = 1000
#: the size a record's blob stays under (the store seals rows of up to 80 KiB)
BLOB_BUDGET = 64 * 1024
_X3DH_INFO = b"meshchat-x3dh-v1"
_MAX_COUNTER = 2**32


class _X3DH(BaseState):
    @staticmethod
    def _encode_public_key(key_format: IdentityKeyFormat, pub: bytes) -> bytes:
        # CURVE_25519 is only used for the signed prekey's signature: domain-separate it.
        if key_format is IdentityKeyFormat.CURVE_25519:
            return PREKEY_DOMAIN + pub
        return pub


class _RootKDF(kdf_hkdf.KDF):
    @staticmethod
    def _get_hash_function() -> DRHash:
        return DRHash.SHA_256

    @staticmethod
    def _get_info() -> bytes:
        return b"meshchat-dr-root"


class _ChainKDF(kdf_separate_hmacs.KDF):
    @staticmethod
    def _get_hash_function() -> DRHash:
        return DRHash.SHA_256


class _AEAD(aead_aes_hmac.AEAD):
    @staticmethod
    def _get_hash_function() -> DRHash:
        return DRHash.SHA_256

    @staticmethod
    def _get_info() -> bytes:
        return b"meshchat-dr-message"


class _Ratchet(DoubleRatchet):
    @staticmethod
    def _build_associated_data(associated_data: bytes, header: RatchetHeader) -> bytes:
        # The associated data has a fixed length (128 + 1), so plain concatenation is unique.
        return (
            associated_data
            + header.ratchet_pub
            + header.previous_sending_chain_length.to_bytes(4, "big")
            + header.sending_chain_length.to_bytes(4, "big")
        )


_CHAIN_CONSTANT = b"\x01\x02"
_DR_ARGS = (X25519Ratchet, _RootKDF, _ChainKDF, _CHAIN_CONSTANT, MAX_SKIP, MAX_SKIP, _AEAD)

_ERRORS = (
    AuthenticationFailedException,
    DecryptionFailedException,
    DoSProtectionException,
    DuplicateMessageException,
    KeyAgreementException,
    ValueError,
    TypeError,
    OverflowError,
)


@dataclass(frozen=True, slots=True)
class RatchetMessage:
    """One Double Ratchet message: its header and its ciphertext."""

    ratchet_pub: bytes
    pn: int
    n: int
    ciphertext: bytes

    def __post_init__(self) -> None:
        if not (
            isinstance(self.ratchet_pub, bytes)
            and len(self.ratchet_pub) == 32
            and type(self.pn) is int
            and type(self.n) is int
            and 0 <= self.pn < _MAX_COUNTER
            and 0 <= self.n < _MAX_COUNTER
            and isinstance(self.ciphertext, bytes)
        ):
            raise DecryptionError("malformed ratchet message")

    @classmethod
    def of(cls, message: EncryptedMessage) -> RatchetMessage:
        h = message.header
        return cls(
            h.ratchet_pub,
            h.previous_sending_chain_length,
            h.sending_chain_length,
            message.ciphertext,
        )

    def library(self) -> EncryptedMessage:
        return EncryptedMessage(RatchetHeader(self.ratchet_pub, self.pn, self.n), self.ciphertext)

    def digest(self) -> bytes:
        """A short name for this exact ciphertext (recognises retries and replays)."""
        return hashlib.blake2b(
            self.ratchet_pub
            + self.pn.to_bytes(4, "big")
            + self.n.to_bytes(4, "big")
            + self.ciphertext,
            digest_size=_DIGEST,
            person=b"mc-ratchet-ct",
        ).digest()


@dataclass(slots=True)
class Session:
    """One Double Ratchet session with a peer.

    ``x3dh`` is ``(ephemeral, signed_prekey)`` of the key agreement that began it: the initiator
    repeats it in every message until it has heard back (``confirmed``), and the responder uses
    it to recognise those messages as belonging to this session.
    """

    ratchet: _Ratchet
    ad: bytes
    initiator: bool
    x3dh: tuple[bytes, bytes]
    confirmed: bool

    def encrypt(self, plaintext: bytes, kind: bytes) -> RatchetMessage:
        return RatchetMessage.of(run(self.ratchet.encrypt_message(plaintext, self.ad + kind)))

    def decrypt(self, message: RatchetMessage, kind: bytes) -> bytes:
        """The plaintext; the state changes only on success. Raises DecryptionError."""
        try:
            with warnings.catch_warnings():
                # Heavy loss makes the library warn (and skip computing old keys); the
                # message still decrypts or fails like any other.
                warnings.simplefilter("ignore")
                plaintext = run(self.ratchet.decrypt_message(message.library(), self.ad + kind))
        except _ERRORS as exc:
            raise DecryptionError(f"ratchet message does not open ({type(exc).__name__})") from None
        self.confirmed = True
        return plaintext

    @property
    def skipped(self) -> int:
        return len(_skipped_keys(self.ratchet))

    def to_cbor(self, keep_skipped: int | None = None) -> list[object]:
        """The session as CBOR-ready lists; ``keep_skipped`` keeps only the newest keys."""
        return [
            _ratchet_to_cbor(self.ratchet, keep_skipped),
            self.ad,
            self.initiator,
            list(self.x3dh),
            self.confirmed,
        ]

    @classmethod
    def from_cbor(cls, fields: object) -> Session:
        if not (isinstance(fields, list) and len(fields) == 5):
            raise ValueError("session layout")
        state, ad, initiator, x3dh, confirmed = fields
        if not (
            isinstance(ad, bytes)
            and len(ad) == 128
            and isinstance(initiator, bool)
            and isinstance(confirmed, bool)
            and isinstance(x3dh, list)
            and len(x3dh) == 2
            and all(isinstance(k, bytes) and len(k) == 32 for k in x3dh)
        ):
            raise ValueError("session fields")
        ratchet = _Ratchet.from_model(_ratchet_from_cbor(state), *_DR_ARGS)
        return cls(ratchet, ad, initiator, (x3dh[0], x3dh[1]), confirmed)


def _chain(chain: KDFChainModel | None) -> list[object] | None:
    return None if chain is None else [chain.length, chain.key]


def _skipped_keys(ratchet: _Ratchet) -> list[tuple[bytes, int, bytes]]:
    """The ratchet's skipped message keys, oldest first, as ``(ratchet_pub, index, key)``.

    The library only exposes them through its pydantic model, which builds one object per
    key; a record is serialised after every message, so read its ordered dict directly when
    the installed version has it (it does in 1.x) and fall back to the model otherwise.
    """
    keys = getattr(ratchet, "_DoubleRatchet__skipped_message_keys", None)
    if isinstance(keys, OrderedDict):
        return [(pub, index, key) for (pub, index), key in keys.items()]
    return [(k.ratchet_pub, k.index, k.message_key) for k in ratchet.model.skipped_message_keys]


def _ratchet_to_cbor(ratchet: _Ratchet, keep_skipped: int | None) -> list[object]:
    """``[own_priv, other_pub, root, receiving, sending, previous_length, skipped]`` where a
    chain is ``[length, key]`` or null and ``skipped`` groups keys by ratchet key:
    ``[[ratchet_pub, [[index, key]...]]...]`` (oldest first)."""
    dh = getattr(ratchet, "_DoubleRatchet__diffie_hellman_ratchet", None)
    dh_model = dh.model if dh is not None else ratchet.model.diffie_hellman_ratchet
    sym = dh_model.symmetric_key_ratchet
    keys = _skipped_keys(ratchet)
    if keep_skipped is not None:
        keys = keys[max(0, len(keys) - keep_skipped) :]
    grouped: dict[bytes, list[list[object]]] = {}
    for pub, index, key in keys:
        grouped.setdefault(pub, []).append([index, key])
    return [
        dh_model.own_ratchet_priv,
        dh_model.other_ratchet_pub,
        _chain(dh_model.root_chain),
        _chain(sym.receiving_chain),
        _chain(sym.sending_chain),
        sym.previous_sending_chain_length,
        [[pub, entries] for pub, entries in grouped.items()],
    ]


def _ratchet_from_cbor(fields: object) -> DoubleRatchetModel:
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


def _x3dh_state(identity: Identity, prekey: OwnPrekey) -> _X3DH:
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
    return _X3DH.from_model(model, IdentityKeyFormat.ED_25519, X3DHHash.SHA_256, _X3DH_INFO)


def initiate(
    identity: Identity,
    own_prekey: OwnPrekey,
    peer: PublicIdentity,
    peer_prekey: SignedPrekey,
    plaintext: bytes,
    kind: bytes,
) -> tuple[Session, RatchetMessage]:
    """Start a session with ``peer`` from its signed prekey; returns it and the first message.

    Raises :class:`DecryptionError` when the prekey's signature does not verify.
    """
    state = _x3dh_state(identity, own_prekey)
    bundle = Bundle(peer.sign_public, peer_prekey.public, peer_prekey.signature, frozenset())
    appendix = identity.public.box_public + peer.box_public
    try:
        secret, ad, header = run(
            state.get_shared_secret_active(bundle, appendix, require_pre_key=False)
        )
        ratchet, first = run(
            _Ratchet.encrypt_initial_message(
                *_DR_ARGS, secret, peer_prekey.public, plaintext, ad + kind
            )
        )
    except _ERRORS as exc:
        raise DecryptionError(f"key agreement failed ({exc})") from None
    session = Session(ratchet, ad, True, (header.ephemeral_key, peer_prekey.public), False)
    return session, RatchetMessage.of(first)


def respond(
    identity: Identity,
    prekey: OwnPrekey,
    peer: PublicIdentity,
    ephemeral: bytes,
    message: RatchetMessage,
    kind: bytes,
) -> tuple[Session, bytes]:
    """Complete a key agreement ``peer`` started with our ``prekey``; returns the new session
    and the first message's plaintext. Raises :class:`DecryptionError` if it does not open."""
    state = _x3dh_state(identity, prekey)
    header = X3DHHeader(peer.sign_public, ephemeral, prekey.public, None)
    appendix = peer.box_public + identity.public.box_public
    try:
        secret, ad, _ = run(
            state.get_shared_secret_passive(header, appendix, require_pre_key=False)
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ratchet, plaintext = run(
                _Ratchet.decrypt_initial_message(
                    *_DR_ARGS, secret, prekey.private, message.library(), ad + kind
                )
            )
    except _ERRORS as exc:
        raise DecryptionError(f"initial message does not open ({type(exc).__name__})") from None
    return Session(ratchet, ad, False, (ephemeral, prekey.public), True), plaintext


@dataclass(slots=True)
class PeerRecord:
    """Everything this device keeps about one peer's sessions."""

    identity: PublicIdentity
    prekey: SignedPrekey | None = None
    sessions: list[Session] = field(default_factory=list)
    #: ciphertext digest -> creation time (in seconds) of the newest packet that carried it
    recent_cts: OrderedDict[bytes, int] = field(default_factory=OrderedDict)
    #: message ids shown to the user recently (a re-encrypted retry is not shown again)
    recent_msgs: OrderedDict[bytes, None] = field(default_factory=OrderedDict)

    @property
    def current(self) -> Session | None:
        return self.sessions[0] if self.sessions else None

    def learn_prekey(self, prekey: SignedPrekey) -> bool:
        """Keep ``prekey`` if it is signed by this peer and newer than the one we have."""
        if not prekey.verify(self.identity):
            return False
        if self.prekey is not None and prekey.created_ms <= self.prekey.created_ms:
            return False
        self.prekey = prekey
        return True

    def adopt(self, session: Session) -> None:
        """Make ``session`` current; the oldest beyond :data:`MAX_SESSIONS` is forgotten."""
        if session in self.sessions:
            self.sessions.remove(session)
        self.sessions.insert(0, session)
        del self.sessions[MAX_SESSIONS:]

    def session_for(self, ephemeral: bytes) -> Session | None:
        for session in self.sessions:
            if session.x3dh[0] == ephemeral:
                return session
        return None

    def remember_ciphertext(self, digest: bytes, created_ms: int) -> None:
        self.recent_cts[digest] = created_ms // 1000
        self.recent_cts.move_to_end(digest)
        while len(self.recent_cts) > RECENT_CIPHERTEXTS:
            self.recent_cts.popitem(last=False)

    def remember_message(self, msg_id: bytes) -> None:
        self.recent_msgs[msg_id] = None
        self.recent_msgs.move_to_end(msg_id)
        while len(self.recent_msgs) > RECENT_MESSAGES:
            self.recent_msgs.popitem(last=False)

    # -- persistence ---------------------------------------------------------------------

    def blob(self) -> bytes:
        """The record as stored. Skipped keys beyond :data:`MAX_STORED_SKIPPED` (the older
        sessions' first, then the oldest) are left out, here and in memory alike."""
        pk = self.prekey
        room = MAX_STORED_SKIPPED
        budget: list[int | None] = []
        for session in self.sessions:
            count = session.skipped
            keep = min(count, room)
            room -= keep
            budget.append(None if keep == count else keep)
        # The current session is first: give it the room first, then the older ones.
        encoded = [s.to_cbor(limit) for s, limit in zip(self.sessions, budget, strict=True)]
        for session, limit, fields in zip(self.sessions, budget, encoded, strict=True):
            if limit is not None:
                session.ratchet = _Ratchet.from_model(_ratchet_from_cbor(fields[0]), *_DR_ARGS)
        return cbor2.dumps(
            [
                1,
                self.identity.sign_public,
                self.identity.box_public,
                None if pk is None else [pk.public, pk.signature, pk.created_ms],
                encoded,
                [[d, t] for d, t in self.recent_cts.items()],
                list(self.recent_msgs),
            ],
            canonical=True,
        )

    @classmethod
    def from_blob(cls, blob: bytes) -> PeerRecord:
        """Rebuild a record; raises :class:`StoreError` if the blob is not a valid one."""
        if len(blob) > 2 * BLOB_BUDGET:
            raise StoreError("session record too large")
        try:
            version, sign, box, pk, sessions, cts, msgs = cbor2.loads(blob)
            if version != 1:
                raise ValueError("version")
            record = cls(PublicIdentity(sign, box))
            if pk is not None:
                record.prekey = SignedPrekey(*pk)
            record.sessions = [Session.from_cbor(s) for s in sessions][:MAX_SESSIONS]
            for digest, created in cts:
                if not (isinstance(digest, bytes) and type(created) is int):
                    raise ValueError("recent ciphertexts")
                record.recent_cts[digest] = created
            for msg_id in msgs:
                if not isinstance(msg_id, bytes):
                    raise ValueError("recent messages")
                record.recent_msgs[msg_id] = None
        except Exception as exc:
            raise StoreError(f"unreadable session record: {exc}") from None
        return record
