"""The records my devices sync, their sync ids, and how a conflict between two versions resolves.

=============  ==================================================  ==========  ===================
record         fields (canonical CBOR array)                       ``ts``      sync id covers
=============  ==================================================  ==========  ===================
Message        ``[1, conversation, msg_id(16), sender(16),         created_ms  kind, conversation,
               sender_name, text, created_ms, state, parents,                  msg_id, sender
               loose]``
Tombstone      ``[2, conversation, msg_id(16), created_ms]``       created_ms  kind, conversation,
                                                                               msg_id
Contact        ``[3, node_id(16), sign_public(32), box_public(32), changed_ms  kind, node_id,
               name, trust, changed_ms, account_id(16), card]``                trust, changed_ms
State          ``[4, conversation, msg_id(16), created_ms,         created_ms  kind, conversation,
               state]``                                                        msg_id, state
Read           ``[5, conversation, [msg_id(16), ...], read_ms]``   read_ms     every field
=============  ==================================================  ==========  ===================

A message is one item whatever its state (its record carries the state it had when sent, for
storing it); an outgoing message is also a State item, so a change of delivery state costs a
small record, not the whole message again.

The sync id is ``blake2b-16(person "meshchat-sync-id", canonical CBOR of the covered fields)``,
computed by whoever holds the record; a peer's claim of an id is never taken for a record.
Everything a record's version depends on is covered, so a device whose copy differs holds a
different item and the two are exchanged; what is not covered (a message's text, a contact's
name) never changes for one id.

Conflicts, per kind (``resolve``):

* **Message state** (only outgoing messages change): the state further along
  ``QUEUED < SENT < FAILED < DELIVERED`` wins (the table of ``store/states.py``), so a device
  that saw the acknowledgement tells the others.
* **Tombstone vs message**: the tombstone wins. A tombstone received erases the message (and
  stays); a message received for a tombstoned id is refused, so a deletion is never synced
  back.
* **Contact trust**: the newest change wins, by the record's ``changed_ms`` (ties: the larger
  sync id, so both devices pick the same). Keys never change for a node id (it is their hash).
* **Read mark**: "on some device of mine, this conversation was read up to these messages"
  (1 to :data:`MAX_PARENTS` ids: the newest message read there and that device's newest causal
  heads). It names messages, not positions, so it means the same on every device whatever
  order each stored them in. One item per conversation: the newest ``read_ms`` wins (ties:
  the larger sync id), but every version received also moves the mark here forward (never
  back), so what two devices read concurrently is read on both.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cbor2

from meshchat.errors import PacketError, PacketReason

__all__ = [
    "CONTACT",
    "MESSAGE",
    "READ",
    "STATE",
    "STATES",
    "TOMBSTONE",
    "TRUSTS",
    "ContactRecord",
    "MessageRecord",
    "ReadRecord",
    "Record",
    "StateRecord",
    "TombstoneRecord",
    "record_from_fields",
    "sid_of",
]

MESSAGE = 1
TOMBSTONE = 2
CONTACT = 3
STATE = 4
READ = 5

ID_SIZE = 16
KEY_SIZE = 32
MAX_CONVERSATION_BYTES = 128
MAX_NAME_BYTES = 64
#: Text of a stored message: a wire message carries at most 1000 bytes; kept with some room.
MAX_TEXT_BYTES = 4000
MAX_PARENTS = 8
#: A contact card's text (``mc1:...``, at most 1024 characters of body).
MAX_CARD_TEXT = 1_100
_MAX_TIME = 2**53

#: Message states a record may carry (``store.records.MessageState`` values).
STATES = ("queued", "sent", "failed", "delivered", "received")
#: Contact trust states a record may carry (``own`` rows are never synced: device lists are).
TRUSTS = ("unverified", "verified", "compromised")
_STATE_RANK = {"queued": 0, "sent": 1, "failed": 2, "delivered": 3, "received": 0}
_PERSON = b"meshchat-sync-id"


def sid_of(covered: list[object]) -> bytes:
    """The sync id of a record whose covered fields are ``covered``."""
    data = cbor2.dumps(covered, canonical=True)
    return hashlib.blake2b(data, digest_size=ID_SIZE, person=_PERSON).digest()


def _bad(what: str) -> PacketError:
    return PacketError(PacketReason.BAD_FIELD, f"sync record: {what}")


def _id(value: object, what: str, size: int = ID_SIZE) -> bytes:
    if not isinstance(value, bytes) or len(value) != size:
        raise _bad(what)
    return value


def _text(value: object, limit: int, what: str, *, empty: bool = True) -> str:
    if not isinstance(value, str) or len(value.encode()) > limit or (not empty and not value):
        raise _bad(what)
    return value


def _time(value: object, what: str) -> int:
    if type(value) is not int or not 0 <= value < _MAX_TIME:
        raise _bad(what)
    return value


def _ids(value: object, what: str) -> tuple[bytes, ...]:
    if not isinstance(value, list) or len(value) > MAX_PARENTS:
        raise _bad(what)
    return tuple(_id(item, what) for item in value)


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """A message as stored (incoming: state ``received``; outgoing: its delivery state)."""

    conversation: str
    msg_id: bytes
    sender: bytes
    sender_name: str
    text: str
    created_ms: int
    state: str
    parents: tuple[bytes, ...] = ()
    loose: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        _text(self.conversation, MAX_CONVERSATION_BYTES, "conversation", empty=False)
        _id(self.msg_id, "msg id")
        _id(self.sender, "sender")
        _text(self.sender_name, MAX_NAME_BYTES, "sender name")
        _text(self.text, MAX_TEXT_BYTES, "text")
        _time(self.created_ms, "created_ms")
        if self.state not in STATES:
            raise _bad("state")
        every = (*self.parents, *self.loose)
        if len(every) > MAX_PARENTS or len(set(every)) != len(every) or self.msg_id in every:
            raise _bad("parents")
        for parent in every:
            _id(parent, "parent")

    @property
    def ts(self) -> int:
        return self.created_ms

    @property
    def sid(self) -> bytes:
        return sid_of([MESSAGE, self.conversation, self.msg_id, self.sender])

    @property
    def rank(self) -> int:
        """How far along its state is (``resolve`` keeps the higher)."""
        return _STATE_RANK[self.state]

    def fields(self) -> list[object]:
        return [
            MESSAGE,
            self.conversation,
            self.msg_id,
            self.sender,
            self.sender_name,
            self.text,
            self.created_ms,
            self.state,
            list(self.parents),
            list(self.loose),
        ]


@dataclass(frozen=True, slots=True)
class TombstoneRecord:
    """A deleted message: erases it wherever it arrives, and keeps it from coming back."""

    conversation: str
    msg_id: bytes
    created_ms: int

    def __post_init__(self) -> None:
        _text(self.conversation, MAX_CONVERSATION_BYTES, "conversation", empty=False)
        _id(self.msg_id, "msg id")
        _time(self.created_ms, "created_ms")

    @property
    def ts(self) -> int:
        return self.created_ms

    @property
    def sid(self) -> bytes:
        return sid_of([TOMBSTONE, self.conversation, self.msg_id])

    def fields(self) -> list[object]:
        return [TOMBSTONE, self.conversation, self.msg_id, self.created_ms]


@dataclass(frozen=True, slots=True)
class ContactRecord:
    """A contact with its trust state, as of ``changed_ms`` (when its trust last changed)."""

    node_id: bytes
    sign_public: bytes
    box_public: bytes
    name: str
    trust: str
    changed_ms: int
    account_id: bytes
    #: the signed card it was added from ('' if none): its prekey opens a session at once
    card: str = ""

    def __post_init__(self) -> None:
        _id(self.node_id, "node id")
        _id(self.account_id, "account id")
        _text(self.card, MAX_CARD_TEXT, "card")
        _id(self.sign_public, "sign key", KEY_SIZE)
        _id(self.box_public, "box key", KEY_SIZE)
        _text(self.name, MAX_NAME_BYTES, "name")
        if self.trust not in TRUSTS:
            raise _bad("trust")
        _time(self.changed_ms, "changed_ms")

    @property
    def ts(self) -> int:
        return self.changed_ms

    @property
    def sid(self) -> bytes:
        return sid_of([CONTACT, self.node_id, self.trust, self.changed_ms])

    def wins_over(self, other: ContactRecord) -> bool:
        """True when this version replaces ``other`` (newest change, then larger sync id)."""
        return (self.changed_ms, self.sid) > (other.changed_ms, other.sid)

    def fields(self) -> list[object]:
        return [
            CONTACT,
            self.node_id,
            self.sign_public,
            self.box_public,
            self.name,
            self.trust,
            self.changed_ms,
            self.account_id,
            self.card,
        ]


@dataclass(frozen=True, slots=True)
class StateRecord:
    """Where an outgoing message stands (its delivery state); the state further along wins."""

    conversation: str
    msg_id: bytes
    created_ms: int
    state: str

    def __post_init__(self) -> None:
        _text(self.conversation, MAX_CONVERSATION_BYTES, "conversation", empty=False)
        _id(self.msg_id, "msg id")
        _time(self.created_ms, "created_ms")
        if self.state not in STATES or self.state == "received":
            raise _bad("state")

    @property
    def ts(self) -> int:
        return self.created_ms

    @property
    def sid(self) -> bytes:
        return sid_of([STATE, self.conversation, self.msg_id, self.state])

    def fields(self) -> list[object]:
        return [STATE, self.conversation, self.msg_id, self.created_ms, self.state]


@dataclass(frozen=True, slots=True)
class ReadRecord:
    """A conversation read, on one of my devices, up to (and including the ancestors of) these
    messages, at ``read_ms`` by that device's clock."""

    conversation: str
    msg_ids: tuple[bytes, ...]
    read_ms: int

    def __post_init__(self) -> None:
        _text(self.conversation, MAX_CONVERSATION_BYTES, "conversation", empty=False)
        if not isinstance(self.msg_ids, tuple) or not 1 <= len(self.msg_ids) <= MAX_PARENTS:
            raise _bad("read ids")
        for msg_id in self.msg_ids:
            _id(msg_id, "read id")
        if len(set(self.msg_ids)) != len(self.msg_ids):
            raise _bad("read ids")
        _time(self.read_ms, "read_ms")

    @property
    def ts(self) -> int:
        return self.read_ms

    @property
    def sid(self) -> bytes:
        return sid_of(self.fields())

    def wins_over(self, other: ReadRecord) -> bool:
        """True when this version replaces ``other`` (newest read, then larger sync id)."""
        return (self.read_ms, self.sid) > (other.read_ms, other.sid)

    def fields(self) -> list[object]:
        return [READ, self.conversation, list(self.msg_ids), self.read_ms]


Record = MessageRecord | TombstoneRecord | ContactRecord | StateRecord | ReadRecord

#: Items in one record's CBOR (for the bounded check of a message of records).
RECORD_ITEMS = 12 + 2 * MAX_PARENTS


def record_from_fields(fields: object) -> Record:
    """The record in decoded CBOR ``fields``; raises :class:`PacketError` (BAD_FIELD)."""
    if not isinstance(fields, list) or not fields:
        raise _bad("not an array")
    kind = fields[0]
    try:
        if kind == MESSAGE and len(fields) == 10:
            _, conv, msg_id, sender, name, text, created, state, parents, loose = fields
            return MessageRecord(
                _text(conv, MAX_CONVERSATION_BYTES, "conversation"),
                _id(msg_id, "msg id"),
                _id(sender, "sender"),
                _text(name, MAX_NAME_BYTES, "sender name"),
                _text(text, MAX_TEXT_BYTES, "text"),
                _time(created, "created_ms"),
                _text(state, 16, "state"),
                _ids(parents, "parents"),
                _ids(loose, "loose parents"),
            )
        if kind == TOMBSTONE and len(fields) == 4:
            _, conv, msg_id, created = fields
            return TombstoneRecord(
                _text(conv, MAX_CONVERSATION_BYTES, "conversation"),
                _id(msg_id, "msg id"),
                _time(created, "created_ms"),
            )
        if kind == CONTACT and len(fields) == 9:
            _, node_id, sign, box, name, trust, changed, account, card = fields
            return ContactRecord(
                _id(node_id, "node id"),
                _id(sign, "sign key", KEY_SIZE),
                _id(box, "box key", KEY_SIZE),
                _text(name, MAX_NAME_BYTES, "name"),
                _text(trust, 16, "trust"),
                _time(changed, "changed_ms"),
                _id(account, "account id"),
                _text(card, MAX_CARD_TEXT, "card"),
            )
        if kind == STATE and len(fields) == 5:
            _, conv, msg_id, created, state = fields
            return StateRecord(
                _text(conv, MAX_CONVERSATION_BYTES, "conversation"),
                _id(msg_id, "msg id"),
                _time(created, "created_ms"),
                _text(state, 16, "state"),
            )
        if kind == READ and len(fields) == 4:
            _, conv, msg_ids, read = fields
            return ReadRecord(
                _text(conv, MAX_CONVERSATION_BYTES, "conversation"),
                _ids(msg_ids, "read ids"),
                _time(read, "read_ms"),
            )
    except TypeError as exc:  # an unhashable parent (a list) reaching set()
        raise _bad("malformed field") from exc
    raise _bad(f"unknown kind or length ({kind!r}, {len(fields)} fields)")
