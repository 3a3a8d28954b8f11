"""Sealed, forward-secret direct messages: the state and the steps behind suite RATCHET.

Theory of operation. :class:`DirectSuite` is the pure part of the engine that deals with
direct messages to peers who have a signed prekey (or a session with us). It owns our signed
prekeys (:mod:`.prekeys`), one :class:`~.sessions.PeerRecord` per peer, and the
:class:`~.tags.AddressBook` of tags the router answers to. Every method takes ``now_ms``; none
does I/O. Changed state is collected and handed out by :meth:`take_updates` as ``(node id,
blob)`` pairs (``None`` for our prekeys), which the engine turns into events and places before
any packet that depends on that state.

Sending a message (:meth:`build_message`). The message is encrypted **once** per message id
(with the current session, or by starting one from the peer's signed prekey) and that ratchet
message is kept as a *draft*: every retry re-sends the same ratchet ciphertext in a new packet
(new one-packet origin key, new sealed box, new ack token, the tag of its own epoch), so
retries never push the ratchet forward and a long partition cannot exhaust the skipped-key
window. While the session is *unconfirmed* (we started it and have not heard back) the
envelope also carries our identity and the X3DH header and goes to the peer's prekey tag;
afterwards it goes to the pair tag.

Receiving (:meth:`open_message`), for a packet to one of our tags:

====  ==========================================================  ===========================
step  check                                                       on failure
====  ==========================================================  ===========================
1     the tag's source gives the key: our box key or a prekey     reject "not our address"
2     the sealed box opens; the envelope names this packet's      reject "does not open",
      origin; ``ack_hash(token)`` is the hash in clear            "not bound to this packet"
3     the peer: the pair tag's peer, or the sender named in a     reject "sender does not
      first message (which must come with an X3DH header)         match", "too many unknown
                                                                  peers"
4     a ciphertext seen before: a retry (newer creation time)     reject "replayed packet",
      is acknowledged again but not shown, unless the message     "a retry of a message this
      was not taken (``withhold``); else a replay                 node did not take"
5     X3DH header: the session it began decrypts it; else a new   reject "replayed key
      key agreement with our prekey, unless the prekey's replay   agreement", "prekey no
      cache holds the ephemeral key; a stranger's only within     longer held", "too many
      the strangers' budget and rates (:mod:`.admission`)         key agreements ..."
6     no header: the current session, then the older ones         reject "no session opens
      (one that works becomes current)                            it"
====  ==========================================================  ===========================

A rejection changes no state. Acks (:meth:`open_ack`) go through steps 1-3, 5 and 6.

A first message that never got an answer is re-drafted when the recipient's prekey changes
(:meth:`DirectSuite.learn_prekey`): a session we started from an older prekey of the peer and
that was never confirmed is not used for new drafts, and the drafts made with it are dropped,
so the next retry is encrypted afresh from the new prekey (the peer may never have held the old
one, or refuses it). A late answer in the old session still opens: it stays in the record.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, replace

from nacl.signing import SigningKey

from meshchat.crypto.admission import Admission
from meshchat.crypto.prekeys import OwnPrekey, PrekeyState
from meshchat.crypto.sealed import Envelope, open_sealed, seal
from meshchat.crypto.sessions import (
    KIND_ACK,
    KIND_MESSAGE,
    PeerRecord,
    RatchetMessage,
    Session,
    initiate,
    respond,
)
from meshchat.crypto.tags import AddressBook, Source, epoch_of, pair_key, pair_tag, prekey_tag
from meshchat.errors import CryptoError, DecryptionError, StoreError
from meshchat.identity import Identity, PublicIdentity, SignedPrekey
from meshchat.wire import codec
from meshchat.wire.packet import (
    MAX_TTL,
    PACKET_ID_SIZE,
    Destination,
    Packet,
    PacketKind,
    Suite,
)
from meshchat.wire.payloads import (
    ACK_TOKEN_SIZE,
    ControlPart,
    MessageBody,
    SealedAckBody,
    ack_hash,
    decode_direct_body,
)

__all__ = ["MAX_STRANGERS", "DirectSuite", "Opened", "ReplayError", "anonymous_packet"]

#: Most peers kept that are not contacts (they started a session with us). Past it, a
#: stranger's first message is refused: each peer costs a week of tags in the address book, and
#: anyone who heard our announcement can start a session.
MAX_STRANGERS = 256
#: messages not taken whose retries are refused rather than acked (see withhold)
MAX_WITHHELD = 1024


class ReplayError(DecryptionError):
    """A packet or key agreement that was already handled came again."""


@dataclass(slots=True)
class _Draft:
    """A message's ratchet ciphertext, kept so every retry carries the same one."""

    peer: bytes
    session: Session
    message: RatchetMessage
    #: the X3DH header when the message was made before the session was confirmed
    x3dh: tuple[bytes, bytes] | None


@dataclass(frozen=True, slots=True)
class Opened:
    """A sealed packet that opened: who sent it and what it says."""

    sender: PublicIdentity
    #: the message id (None for a retry of a ciphertext already opened, whose plaintext is gone)
    msg_id: bytes | None
    #: the message text, or None when this message was already shown
    text: str | None
    #: the ack token: of the MESSAGE (to reveal in its ack), or the one an ACK confirms
    token: bytes
    #: a control part (group keys and rosters) instead of text, None when already handled
    control: ControlPart | None = None
    #: the digest of the ratchet ciphertext (names it for :meth:`DirectSuite.withhold`)
    digest: bytes = b""
    #: the whole text message (sent time, parents) when ``text`` is given
    body: MessageBody | None = None


def anonymous_packet(
    key: SigningKey,
    kind: PacketKind,
    destination: Destination,
    payload: bytes,
    now_ms: int,
    ttl: int,
    suite: Suite = Suite.RATCHET,
) -> Packet:
    """A packet signed by ``key``, a key made for this one packet (sealed sender)."""
    unsigned = Packet(
        kind=kind,
        packet_id=os.urandom(PACKET_ID_SIZE),
        origin=bytes(key.verify_key),
        destination=destination,
        created_ms=now_ms,
        ttl=max(1, min(ttl, MAX_TTL)),
        hops=0,
        suite=suite,
        payload=payload,
        signature=bytes(64),
    )
    return replace(unsigned, signature=key.sign(codec.signed_bytes(unsigned)).signature)


class DirectSuite:
    """Prekeys, sessions and addresses of one identity (see the module docstring)."""

    def __init__(self, identity: Identity, *, max_strangers: int = MAX_STRANGERS) -> None:
        self.identity = identity
        self.max_strangers = max_strangers
        self._contacts: set[bytes] = set()
        self.prekeys = PrekeyState(identity)
        self.book = AddressBook(identity.node_id)
        self.records: dict[bytes, PeerRecord] = {}
        self._box_secret = bytes(identity.box_key)
        self._pair_keys: dict[bytes, bytes] = {}
        self._dirty: dict[bytes, None] = {}
        self._prekeys_dirty = False
        self._drafts: dict[bytes, _Draft] = {}
        self._tokens: dict[bytes, bytes] = {}  # ack token -> msg id
        self._msg_tokens: dict[bytes, list[bytes]] = {}
        #: rate limits on strangers' key agreements
        self.admission = Admission()
        #: ciphertexts whose retries are not acked either (see withhold)
        self._withheld: OrderedDict[bytes, None] = OrderedDict()

    # -- state ---------------------------------------------------------------------------

    def load(self, blobs: dict[bytes, bytes]) -> list[bytes]:
        """Restore prekeys (under our own node id) and peer records; returns unreadable ids."""
        bad: list[bytes] = []
        for key, blob in blobs.items():
            try:
                if key == self.identity.node_id:
                    self.prekeys = PrekeyState.from_blob(self.identity, blob)
                    continue
                record = PeerRecord.from_blob(blob)
                if record.identity.node_id != key:
                    raise StoreError("session record under the wrong node id")
            except StoreError:
                bad.append(key)
                continue
            self.records[key] = record
            self._listen(record.identity)
        self._sync_prekey_tags()
        return bad

    def maintain(self, now_ms: int) -> None:
        """Move the address window to ``now_ms`` and rotate prekeys when due."""
        self.book.advance(now_ms)
        if self.prekeys.maintain(now_ms):
            self._prekeys_dirty = True
            self._sync_prekey_tags()

    def _sync_prekey_tags(self) -> None:
        held = {Source("prekey", k.public) for k in self.prekeys.keys}
        for key in self.prekeys.keys:
            self.book.add(Source("prekey", key.public), key.public)
        for source in self.book.sources("prekey"):
            if source not in held:
                self.book.remove(source)

    def _pair_key(self, peer: PublicIdentity) -> bytes:
        key = self._pair_keys.get(peer.node_id)
        if key is None:
            key = self._pair_keys[peer.node_id] = pair_key(self._box_secret, peer.box_public)
        return key

    def _listen(self, peer: PublicIdentity) -> None:
        self.book.add(Source("peer", peer.node_id), self._pair_key(peer))

    def _touch(self, node_id: bytes) -> None:
        self._dirty[node_id] = None

    def take_updates(self) -> list[tuple[bytes | None, bytes]]:
        """State changed since the last call: ``(peer node id, blob)`` pairs, and
        ``(None, blob)`` for our prekeys, for the store."""
        out: list[tuple[bytes | None, bytes]] = []
        if self._prekeys_dirty:
            self._prekeys_dirty = False
            out.append((None, self.prekeys.blob()))
        for node_id in self._dirty:
            record = self.records.get(node_id)
            if record is not None:
                out.append((node_id, record.blob()))
        self._dirty.clear()
        return out

    def own_prekey(self, now_ms: int) -> SignedPrekey:
        self.maintain(now_ms)
        current = self.prekeys.current
        if current is None:  # maintain() always leaves one
            raise CryptoError("no signed prekey of our own")
        return current.signed

    def add_peer(self, identity: PublicIdentity, prekey: SignedPrekey | None = None) -> None:
        """Know ``identity`` (a contact): answer to its pair tags, keep its signed prekey."""
        if identity == self.identity.public:
            return
        self._contacts.add(identity.node_id)
        record = self.records.get(identity.node_id)
        if record is None:
            record = self.records[identity.node_id] = PeerRecord(identity)
            self._touch(identity.node_id)
        self._listen(identity)
        if prekey is not None and record.learn_prekey(prekey):
            self._touch(identity.node_id)
            self._redraft(identity.node_id)

    def drop_peer(self, node_id: bytes) -> bool:
        """Stop using a peer's keys for good (a revoked device): its session, prekey and
        drafts are erased and its pair tags no longer answered. Returns whether it was held;
        the owner deletes its stored session state."""
        self._contacts.discard(node_id)
        self.book.remove(Source("peer", node_id))
        self._pair_keys.pop(node_id, None)
        self._dirty.pop(node_id, None)
        for msg_id, draft in list(self._drafts.items()):
            if draft.peer == node_id:
                del self._drafts[msg_id]
        return self.records.pop(node_id, None) is not None

    def knows(self, node_id: bytes) -> bool:
        """Whether ``node_id`` was added with :meth:`add_peer` (a contact or a group member),
        not merely a stranger who started a session with us."""
        return node_id in self._contacts

    def learn_prekey(self, identity: PublicIdentity, prekey: SignedPrekey) -> bool:
        """A prekey heard for a known peer: kept only if its owner signed it and it is newer."""
        record = self.records.get(identity.node_id)
        if record is None or record.identity != identity or not record.learn_prekey(prekey):
            return False
        self._touch(identity.node_id)
        self._redraft(identity.node_id)
        return True

    def _redraft(self, node_id: bytes) -> None:
        """The peer's prekey changed: drafts made in a session we started from an older one
        and never heard back in are dropped (their next retry is encrypted afresh)."""
        for msg_id, draft in list(self._drafts.items()):
            if draft.peer == node_id and _stale(draft.session, self.records[node_id]):
                del self._drafts[msg_id]

    def can_seal(self, recipient: PublicIdentity) -> bool:
        """Whether messages to ``recipient`` can use suite RATCHET (a session or a prekey)."""
        record = self.records.get(recipient.node_id)
        return record is not None and (record.current is not None or record.prekey is not None)

    def forget(self, msg_id: bytes) -> None:
        """The outbox is done with ``msg_id``: drop its draft and ack tokens."""
        self._drafts.pop(msg_id, None)
        for token in self._msg_tokens.pop(msg_id, []):
            self._tokens.pop(token, None)

    def withhold(self, opened: Opened) -> None:
        """``opened`` was not taken (e.g. a group control part that could not be kept): a
        retry of the same ciphertext is refused, not acked. Remembered in memory for the last
        :data:`MAX_WITHHELD` such messages."""
        if opened.digest:
            self._withheld[opened.digest] = None
            while len(self._withheld) > MAX_WITHHELD:
                self._withheld.popitem(last=False)
        record = self.records.get(opened.sender.node_id)
        if record is not None and opened.msg_id is not None:
            record.forget_message(opened.msg_id)
            self._touch(opened.sender.node_id)

    def token_owner(self, token: bytes) -> bytes | None:
        return self._tokens.get(token)

    # -- sending -------------------------------------------------------------------------

    def build_message(
        self, recipient: PublicIdentity, msg_id: bytes, body: bytes, now_ms: int, ttl: int
    ) -> Packet:
        """A new packet carrying message ``msg_id`` (its first try or a retry)."""
        self.maintain(now_ms)
        draft = self._drafts.get(msg_id)
        if draft is None:
            draft = self._draft(recipient, body)
            self._drafts[msg_id] = draft
        key = SigningKey.generate()
        token = os.urandom(ACK_TOKEN_SIZE)
        epoch = epoch_of(now_ms)
        x3dh = draft.x3dh
        envelope = Envelope(
            origin=bytes(key.verify_key),
            sender=self.identity.public if x3dh is not None else None,
            x3dh=x3dh,
            message=draft.message,
            ack_token=token,
        )
        if x3dh is not None and not draft.session.confirmed:
            destination = prekey_tag(x3dh[1], epoch)
            sealed_to = x3dh[1]
        else:
            destination = pair_tag(self._pair_key(recipient), recipient.node_id, epoch)
            sealed_to = recipient.box_public
        payload = seal(ack_hash(token), envelope, sealed_to)
        self._tokens[token] = msg_id
        self._msg_tokens.setdefault(msg_id, []).append(token)
        return anonymous_packet(
            key, PacketKind.MESSAGE, Destination.node(destination), payload, now_ms, ttl
        )

    def _draft(self, recipient: PublicIdentity, body: bytes) -> _Draft:
        self.add_peer(recipient)
        record = self.records[recipient.node_id]
        session = record.current
        if session is None or _stale(session, record):
            if record.prekey is None:
                raise DecryptionError("no session and no signed prekey for this peer")
            own = self.prekeys.current
            if own is None:
                raise CryptoError("no signed prekey of our own")
            session, message = initiate(
                self.identity, own, recipient, record.prekey, body, KIND_MESSAGE
            )
            record.adopt(session)
        else:
            message = session.encrypt(body, KIND_MESSAGE)
        self._touch(recipient.node_id)
        x3dh = session.x3dh if session.initiator and not session.confirmed else None
        return _Draft(recipient.node_id, session, message, x3dh)

    def build_ack(self, peer: PublicIdentity, token: bytes, now_ms: int, ttl: int) -> Packet:
        """The sealed ack of a message from ``peer``: reveals ``token`` in clear and again
        inside the ratchet (which authenticates it and moves the session on)."""
        record = self.records.get(peer.node_id)
        session = record.current if record is not None else None
        if session is None:
            raise DecryptionError("no session to acknowledge in")
        message = session.encrypt(SealedAckBody(token).encode(), KIND_ACK)
        self._touch(peer.node_id)
        initial = session.initiator and not session.confirmed
        key = SigningKey.generate()
        envelope = Envelope(
            origin=bytes(key.verify_key),
            sender=self.identity.public if initial else None,
            x3dh=session.x3dh if initial else None,
            message=message,
            ack_token=None,
        )
        destination = pair_tag(self._pair_key(peer), peer.node_id, epoch_of(now_ms))
        payload = seal(token, envelope, peer.box_public)
        return anonymous_packet(
            key, PacketKind.ACK, Destination.node(destination), payload, now_ms, ttl
        )

    # -- receiving -----------------------------------------------------------------------

    def _unseal(self, packet: Packet) -> tuple[Envelope, Source]:
        source = self.book.source_of(packet.destination.value)
        if source is None:
            raise DecryptionError("not one of our addresses")
        if source.kind == "prekey":
            own = self.prekeys.get(source.ref)
            if own is None:
                raise DecryptionError("prekey no longer held")
            private, public = own.private, own.public
        else:
            private, public = self._box_secret, self.identity.public.box_public
        envelope = open_sealed(packet.payload, private, public)
        if envelope.origin != packet.origin:
            raise DecryptionError("sealed envelope not bound to this packet")
        if source.kind == "prekey" and (envelope.x3dh is None or envelope.x3dh[1] != source.ref):
            raise DecryptionError("a message to a prekey address without its key agreement")
        return envelope, source

    def _record_for(self, envelope: Envelope, source: Source) -> tuple[PeerRecord, bool]:
        """The sender's record (and whether it is new, not yet kept)."""
        if source.kind == "peer":
            record = self.records.get(source.ref)
            if record is None:
                raise DecryptionError("not one of our addresses")
            if envelope.sender is not None and envelope.sender != record.identity:
                raise DecryptionError("sender does not match the address")
            return record, False
        if envelope.sender is None:  # _unseal checked the key agreement is there
            raise DecryptionError("a key agreement without its sender")
        if envelope.sender == self.identity.public:
            raise DecryptionError("a message claiming to come from ourselves")
        record = self.records.get(envelope.sender.node_id)
        if record is not None:
            return record, False
        if len(self.records.keys() - self._contacts) >= self.max_strangers:
            raise DecryptionError("too many unknown peers")
        return PeerRecord(envelope.sender), True

    def _decrypt(
        self,
        record: PeerRecord,
        envelope: Envelope,
        kind: bytes,
        packet: Packet,
        at: tuple[str | None, int],
    ) -> tuple[bytes, Session, tuple[OwnPrekey, bytes] | None]:
        """Plaintext, the session that opened it, and the key agreement to remember (our
        prekey it used and its ephemeral key); ``at`` is the link the packet came on and the
        time."""
        message = envelope.message
        if envelope.x3dh is not None:
            ephemeral, spk = envelope.x3dh
            session = record.session_for(ephemeral)
            own = self.prekeys.get(spk)
            if own is not None and self.prekeys.touch_initial(own, ephemeral, packet.created_ms):
                self._prekeys_dirty = True
            if session is not None and not session.initiator:
                return session.decrypt(message, kind), session, None
            if own is None:
                raise DecryptionError("prekey no longer held")
            if self.prekeys.seen_initial(own, ephemeral):
                raise ReplayError("replayed key agreement")
            known = record.identity.node_id in self._contacts
            if not self.prekeys.can_accept(own, known):
                raise DecryptionError("too many key agreements from strangers")
            if not known and not self.admission.admit(at[0], record.identity.node_id, at[1]):
                raise DecryptionError("key agreements from strangers too fast")
            new, plaintext = respond(self.identity, own, record.identity, ephemeral, message, kind)
            return plaintext, new, (own, ephemeral)
        for session in record.sessions:
            try:
                return session.decrypt(message, kind), session, None
            except DecryptionError:
                continue
        raise DecryptionError("no session opens it")

    def _commit(
        self,
        record: PeerRecord,
        is_new: bool,
        session: Session,
        initial: tuple[OwnPrekey, bytes] | None,
        created_ms: int,
    ) -> None:
        if is_new:
            self.records[record.identity.node_id] = record
            self._listen(record.identity)
        if initial is not None:
            own, ephemeral = initial
            known = record.identity.node_id in self._contacts
            self.prekeys.remember_initial(own, ephemeral, created_ms, known)
            self._prekeys_dirty = True
        if record.current is not session:
            record.adopt(session)
        self._touch(record.identity.node_id)

    def open_message(self, packet: Packet, now_ms: int, link: str | None = None) -> Opened:
        """Open a sealed MESSAGE to one of our tags (that came on ``link``); raises
        :class:`DecryptionError`."""
        self.maintain(now_ms)
        envelope, source = self._unseal(packet)
        token = envelope.ack_token
        if token is None or ack_hash(token) != packet.payload[:ACK_TOKEN_SIZE]:
            raise DecryptionError("ack token does not match its hash")
        record, is_new = self._record_for(envelope, source)
        digest = envelope.message.digest()
        last = record.recent_cts.get(digest)
        if last is not None:
            # Only the sender (or we) know this ciphertext: a new packet carrying it is a
            # retry, to acknowledge again; the same packet again is a replay.
            if packet.created_ms // 1000 <= last:
                raise ReplayError("stale or replayed packet")
            if digest in self._withheld:
                raise DecryptionError("a retry of a message this node did not take")
            record.remember_ciphertext(digest, packet.created_ms)
            self._touch(record.identity.node_id)
            return Opened(record.identity, None, None, token)
        plaintext, session, initial = self._decrypt(
            record, envelope, KIND_MESSAGE, packet, (link, now_ms)
        )
        # Authenticated: keep the ratchet's progress even if the body turns out malformed.
        self._commit(record, is_new, session, initial, packet.created_ms)
        try:
            body = decode_direct_body(plaintext)
        except Exception as exc:
            raise DecryptionError(f"message body: {exc}") from None
        shown = body.msg_id in record.recent_msgs
        record.remember_ciphertext(digest, packet.created_ms)
        record.remember_message(body.msg_id)
        if isinstance(body, ControlPart):
            control = None if shown else body
            return Opened(record.identity, body.msg_id, None, token, control, digest)
        if shown:
            return Opened(record.identity, body.msg_id, None, token)
        return Opened(record.identity, body.msg_id, body.text, token, body=body)

    def open_ack(self, packet: Packet, now_ms: int, link: str | None = None) -> Opened:
        """Open the sealed part of an ACK to one of our tags; raises :class:`DecryptionError`."""
        self.maintain(now_ms)
        envelope, source = self._unseal(packet)
        if envelope.ack_token is not None or source.kind != "peer":
            raise DecryptionError("not a sealed ack")
        record, is_new = self._record_for(envelope, source)
        plaintext, session, initial = self._decrypt(
            record, envelope, KIND_ACK, packet, (link, now_ms)
        )
        self._commit(record, is_new, session, initial, packet.created_ms)
        try:
            body = SealedAckBody.decode(plaintext)
        except Exception as exc:
            raise DecryptionError(f"ack body: {exc}") from None
        if body.token != packet.payload[:ACK_TOKEN_SIZE]:
            raise DecryptionError("ack token does not match the sealed one")
        return Opened(record.identity, None, None, body.token)


def _stale(session: Session, record: PeerRecord) -> bool:
    """A session we started from an older prekey of the peer, never heard back in."""
    prekey = record.prekey
    return (
        session.initiator
        and not session.confirmed
        and prekey is not None
        and session.x3dh[1] != prekey.public
    )
