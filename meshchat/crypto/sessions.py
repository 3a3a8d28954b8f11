"""Forward-secret sessions: X3DH key agreement and the Double Ratchet, per peer.

Theory of operation. The ``x3dh`` and ``doubleratchet`` packages do the cryptography; this
module drives their coroutines synchronously (:mod:`._sync`) and keeps what meshchat needs
around them. Their parameters, and everything that depends on how the libraries lay out their
private state, live in :mod:`._ratchet`.

* **Identity keys.** X3DH runs on the devices' Ed25519 signing keys, converted to X25519 for
  the Diffie-Hellman steps. No one-time prekeys are used.
* **Associated data.** X3DH gives ``IK_initiator || IK_responder`` (the Ed25519 keys); we
  append ``box_initiator || box_responder``, so the 128 bytes bind both full identities (both
  node ids) into every message of the session. Each message adds one byte for its kind
  (:data:`KIND_MESSAGE`, :data:`KIND_ACK`) and the ratchet header.

A :class:`PeerRecord` holds everything about one peer: its identity, its newest verified
signed prekey, up to :data:`MAX_SESSIONS` sessions (the first is *current*, used to send; the
others still decrypt, which resolves two sides starting a session at the same time), and
bounded memories of recent ciphertexts and message ids that make retries and replays
recognisable. A record serialises to a blob (compact CBOR, not the libraries' JSON) that the
store keeps as one row; to keep a row small (:data:`BLOB_BUDGET`), at most
:data:`MAX_STORED_SKIPPED` skipped message keys are kept per peer, the older sessions' first.

Cost. A record is serialised after every message, before the packet that depends on it
leaves, so serialising is on the hot path. The blob is canonical CBOR, which is the
concatenation of its parts' encodings; a record therefore keeps the encoding of each part that
rarely changes (its identity and prekey, each session until that session moves, each entry of
the recent-ciphertext and recent-message memories) and joins them, re-encoding only what
changed. The bytes are the same as encoding the whole record at once (tests check it).
"""

from __future__ import annotations

import hashlib
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field

import cbor2
from doubleratchet import EncryptedMessage
from doubleratchet import Header as RatchetHeader
from x3dh import Bundle
from x3dh import Header as X3DHHeader

from meshchat.crypto._ratchet import (
    DR_ARGS,
    ERRORS,
    MAX_SKIP,
    Ratchet,
    ratchet_from_cbor,
    ratchet_to_cbor,
    skipped_count,
    x3dh_state,
)
from meshchat.crypto._sync import run
from meshchat.crypto.prekeys import OwnPrekey
from meshchat.errors import DecryptionError, StoreError
from meshchat.identity import Identity, PublicIdentity, SignedPrekey

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
_MAX_COUNTER = 2**32


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

    ratchet: Ratchet
    ad: bytes
    initiator: bool
    x3dh: tuple[bytes, bytes]
    confirmed: bool
    #: ``(ratchet, confirmed, CBOR)`` of the last full encoding; dropped by every change
    #: made through this object, so no superseded key stays in memory through it
    _encoded: tuple[Ratchet, bool, bytes] | None = field(default=None, repr=False, compare=False)

    def encrypt(self, plaintext: bytes, kind: bytes) -> RatchetMessage:
        self._encoded = None
        return RatchetMessage.of(run(self.ratchet.encrypt_message(plaintext, self.ad + kind)))

    def decrypt(self, message: RatchetMessage, kind: bytes) -> bytes:
        """The plaintext; the state changes only on success. Raises DecryptionError."""
        self._encoded = None
        try:
            with warnings.catch_warnings():
                # Heavy loss makes the library warn (and skip computing old keys); the
                # message still decrypts or fails like any other.
                warnings.simplefilter("ignore")
                plaintext = run(self.ratchet.decrypt_message(message.library(), self.ad + kind))
        except ERRORS as exc:
            raise DecryptionError(f"ratchet message does not open ({type(exc).__name__})") from None
        self.confirmed = True
        return plaintext

    @property
    def skipped(self) -> int:
        return skipped_count(self.ratchet)

    def encode(self) -> bytes:
        """The canonical CBOR of :meth:`to_cbor` (all skipped keys), re-encoded only when the
        session changed since the last call."""
        cached = self._encoded
        if cached is not None and cached[0] is self.ratchet and cached[1] is self.confirmed:
            return cached[2]
        data = cbor2.dumps(self.to_cbor(), canonical=True)
        self._encoded = (self.ratchet, self.confirmed, data)
        return data

    def to_cbor(self, keep_skipped: int | None = None) -> list[object]:
        """The session as CBOR-ready lists; ``keep_skipped`` keeps only the newest keys."""
        return [
            ratchet_to_cbor(self.ratchet, keep_skipped),
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
        ratchet = Ratchet.from_model(ratchet_from_cbor(state), *DR_ARGS)
        return cls(ratchet, ad, initiator, (x3dh[0], x3dh[1]), confirmed)


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
    state = x3dh_state(identity, own_prekey)
    bundle = Bundle(peer.sign_public, peer_prekey.public, peer_prekey.signature, frozenset())
    appendix = identity.public.box_public + peer.box_public
    try:
        secret, ad, header = run(
            state.get_shared_secret_active(bundle, appendix, require_pre_key=False)
        )
        ratchet, first = run(
            Ratchet.encrypt_initial_message(
                *DR_ARGS, secret, peer_prekey.public, plaintext, ad + kind
            )
        )
    except ERRORS as exc:
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
    state = x3dh_state(identity, prekey)
    header = X3DHHeader(peer.sign_public, ephemeral, prekey.public, None)
    appendix = peer.box_public + identity.public.box_public
    try:
        secret, ad, _ = run(
            state.get_shared_secret_passive(header, appendix, require_pre_key=False)
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ratchet, plaintext = run(
                Ratchet.decrypt_initial_message(
                    *DR_ARGS, secret, prekey.private, message.library(), ad + kind
                )
            )
    except ERRORS as exc:
        raise DecryptionError(f"initial message does not open ({type(exc).__name__})") from None
    return Session(ratchet, ad, False, (ephemeral, prekey.public), True), plaintext


def _array_head(length: int) -> bytes:
    """The head of a CBOR array of ``length`` items (major type 4, shortest form): with it,
    the array is its items' encodings concatenated."""
    if length < 24:
        return bytes((0x80 | length,))
    if length < 0x100:
        return b"\x98" + length.to_bytes(1, "big")
    if length < 0x10000:
        return b"\x99" + length.to_bytes(2, "big")
    return b"\x9a" + length.to_bytes(4, "big")


class _CborLog:
    """Keys in order, each with its CBOR encoding, and the encodings' concatenation.

    The memories of a record gain an entry at the end and lose the oldest for every message
    received; the concatenation follows both moves with one copy instead of being joined
    again from a thousand pieces. Any other move (an entry refreshed in the middle) drops it
    until the next :meth:`joined`.
    """

    __slots__ = ("_items", "_joined")

    def __init__(self) -> None:
        self._items: OrderedDict[bytes, bytes] = OrderedDict()
        self._joined: bytes | None = b""

    def __len__(self) -> int:
        return len(self._items)

    def put(self, key: bytes, encoded: bytes) -> None:
        """Add ``key`` (or move it) to the end."""
        if self._items.pop(key, None) is not None:
            self._joined = None
        self._items[key] = encoded
        if self._joined is not None:
            self._joined += encoded

    def discard(self, key: bytes) -> None:
        if key not in self._items:
            return
        oldest = next(iter(self._items))
        encoded = self._items.pop(key)
        if self._joined is not None:
            self._joined = self._joined[len(encoded) :] if key == oldest else None

    def joined(self) -> bytes:
        if self._joined is None:
            self._joined = b"".join(self._items.values())
        return self._joined


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
    # The CBOR of each entry of the two memories above, in the same order (see blob()).
    # Change the memories only through remember_ciphertext() and remember_message().
    _cts_cbor: _CborLog = field(default_factory=_CborLog, repr=False, compare=False)
    _msgs_cbor: _CborLog = field(default_factory=_CborLog, repr=False, compare=False)
    #: ``(identity, prekey, CBOR of the fields before the sessions)``
    _head: tuple[PublicIdentity, SignedPrekey | None, bytes] | None = field(
        default=None, repr=False, compare=False
    )

    @property
    def current(self) -> Session | None:
        return self.sessions[0] if self.sessions else None

    def learn_prekey(self, prekey: SignedPrekey) -> bool:
        """Keep ``prekey`` if it is signed by this peer and newer than the one we have.

        The age is checked first: every announcement repeats the peer's current prekey, and
        one that is not newer is dropped without verifying its signature again."""
        if self.prekey is not None and prekey.created_ms <= self.prekey.created_ms:
            return False
        if not prekey.verify(self.identity):
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
        created = created_ms // 1000
        self.recent_cts[digest] = created
        self.recent_cts.move_to_end(digest)
        self._cts_cbor.put(digest, cbor2.dumps([digest, created], canonical=True))
        while len(self.recent_cts) > RECENT_CIPHERTEXTS:
            gone, _ = self.recent_cts.popitem(last=False)
            self._cts_cbor.discard(gone)

    def remember_message(self, msg_id: bytes) -> None:
        self.recent_msgs[msg_id] = None
        self.recent_msgs.move_to_end(msg_id)
        self._msgs_cbor.put(msg_id, cbor2.dumps(msg_id, canonical=True))
        while len(self.recent_msgs) > RECENT_MESSAGES:
            gone, _ = self.recent_msgs.popitem(last=False)
            self._msgs_cbor.discard(gone)

    def forget_message(self, msg_id: bytes) -> None:
        """``msg_id`` was not taken after all: a copy of it that comes again is new."""
        if self.recent_msgs.pop(msg_id, 0) is None:
            self._msgs_cbor.discard(msg_id)

    # -- persistence ---------------------------------------------------------------------

    def blob(self) -> bytes:
        """The record as stored. Skipped keys beyond :data:`MAX_STORED_SKIPPED` (the older
        sessions' first, then the oldest) are left out, here and in memory alike.

        The canonical CBOR of ``[1, sign_public, box_public, prekey, sessions, recent
        ciphertexts, recent messages]``, joined from the cached encodings of its parts.
        """
        parts = [_array_head(7), self._head_cbor(), _array_head(len(self.sessions))]
        room = MAX_STORED_SKIPPED
        # The current session is first: give it the room first, then the older ones.
        for session in self.sessions:
            count = session.skipped
            keep = min(count, room)
            room -= keep
            if keep == count:
                parts.append(session.encode())
                continue
            fields = session.to_cbor(keep)
            session.ratchet = Ratchet.from_model(ratchet_from_cbor(fields[0]), *DR_ARGS)
            parts.append(cbor2.dumps(fields, canonical=True))
        if len(self._cts_cbor) != len(self.recent_cts):  # e.g. just loaded
            self._cts_cbor = _CborLog()
            for d, t in self.recent_cts.items():
                self._cts_cbor.put(d, cbor2.dumps([d, t], canonical=True))
        if len(self._msgs_cbor) != len(self.recent_msgs):
            self._msgs_cbor = _CborLog()
            for m in self.recent_msgs:
                self._msgs_cbor.put(m, cbor2.dumps(m, canonical=True))
        parts.append(_array_head(len(self._cts_cbor)))
        parts.append(self._cts_cbor.joined())
        parts.append(_array_head(len(self._msgs_cbor)))
        parts.append(self._msgs_cbor.joined())
        return b"".join(parts)

    def _head_cbor(self) -> bytes:
        head = self._head
        if head is not None and head[0] is self.identity and head[1] is self.prekey:
            return head[2]
        pk = self.prekey
        fields = (
            1,
            self.identity.sign_public,
            self.identity.box_public,
            None if pk is None else [pk.public, pk.signature, pk.created_ms],
        )
        data = b"".join(cbor2.dumps(f, canonical=True) for f in fields)
        self._head = (self.identity, pk, data)
        return data

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
