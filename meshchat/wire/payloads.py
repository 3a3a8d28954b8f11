"""The plaintext bodies carried inside packets, each a small strict CBOR array.

============  ===========================================  =================================
packet kind   body                                         where it travels
============  ===========================================  =================================
MESSAGE       ``[msg_id(16), text, sent_ms, parents,       encrypted (BOX, CHANNEL, GROUP,
              loose]`` (parents and loose: lists of        RATCHET) or signed; the older
              msg ids); older nodes send                   2-item form still decodes
              ``[msg_id(16), text]``
MESSAGE       ``[0, heads, wants]`` (lists of msg ids):    inside a group's or channel's
(history)     a history summary and request                encryption (never direct)
ACK           ``[acked_packet_id(16), msg_id(16),          signed
              acker_box_public(32)]``
ANNOUNCE      ``[box_public(32), name]`` or                signed
              ``[box_public(32), name, spk_public(32),
              spk_signature(64), spk_created_ms]``
ACK (sealed)  ``[ack_token(16)]``                          inside a RATCHET envelope
MESSAGE       ``[msg_id(16), blob_id(16), index, count,    inside a RATCHET envelope
(control)     chunk]``: one part of a control blob (a
              group roster or sender key)
============  ===========================================  =================================

``msg_id`` names a message across the retries that carry it (each retry is a new packet with a
new packet id), so the recipient shows it once and the sender matches acks to it. Every
decoder here raises :class:`PacketError` (``BAD_FIELD`` / ``MALFORMED``) and is bounded.

A sealed (suite RATCHET) direct message shows relays ``ack_hash`` in the first
:data:`ACK_TOKEN_SIZE` bytes of its payload; its ack shows the ``ack_token`` itself there
(:func:`ack_hash` links the two). The rest of both payloads is described in
:mod:`meshchat.crypto.sealed`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cbor2

from meshchat.account.wire import AccountItem
from meshchat.causal import MAX_HEADS_SHOWN, MAX_PARENTS, MAX_WANTS
from meshchat.errors import IdentityError, PacketError, PacketReason
from meshchat.identity import SignedPrekey
from meshchat.wire.cborcheck import check_cbor
from meshchat.wire.fastparse import read_message_body
from meshchat.wire.packet import MAX_PAYLOAD_SIZE, PACKET_ID_SIZE

__all__ = [
    "ACK_TOKEN_SIZE",
    "ANNOUNCE_GATEWAY",
    "MAX_NAME_BYTES",
    "MAX_SENT_MS",
    "MAX_TEXT_BYTES",
    "MSG_ID_SIZE",
    "AckBody",
    "AnnounceBody",
    "ControlPart",
    "HistoryBody",
    "MessageBody",
    "SealedAckBody",
    "ack_hash",
    "ack_hash_of",
    "decode_direct_body",
    "decode_shared_body",
]

MSG_ID_SIZE = 16
#: Longest message text in UTF-8 bytes; with crypto overhead it fits in one packet.
MAX_TEXT_BYTES = 1000
#: ANNOUNCE flag: this node is a gateway to the internet (relay or DHT).
ANNOUNCE_GATEWAY = 1
MAX_NAME_BYTES = 64
_KEY_SIZE = 32
ACK_TOKEN_SIZE = 16
#: Largest chunk of a control blob in one part, and most parts in one blob: a control blob
#: (a roster of 64 members with their prekeys) is at most 24 x 900 bytes.
CONTROL_CHUNK_BYTES = 900
MAX_CONTROL_PARTS = 24
#: Sent times are below 2**63 (a CBOR uint of at most 8 bytes that fits a signed int64).
MAX_SENT_MS = 2**63
# Most CBOR items in a message body (the array, its 5 items, up to MAX_PARENTS ids) and in a
# history body (the array, its 3 items, the heads and the wants).
_MESSAGE_ITEMS = 1 + 5 + MAX_PARENTS
_HISTORY_ITEMS = 1 + 3 + MAX_HEADS_SHOWN + MAX_WANTS


def ack_hash(token: bytes) -> bytes:
    """What a sealed message shows in clear for the ack token hidden inside it."""
    return hashlib.blake2b(token, digest_size=ACK_TOKEN_SIZE, person=b"mc-ackhash").digest()


def ack_hash_of(payload: bytes) -> bytes | None:
    """The ack hash (MESSAGE) or ack token (ACK) at the start of a RATCHET payload."""
    if len(payload) < ACK_TOKEN_SIZE:
        return None
    return payload[:ACK_TOKEN_SIZE]


def _load(data: bytes, items: int) -> list[object]:
    return _load_any(data, (items,), items + 1, 1)


def _load_any(data: bytes, counts: tuple[int, ...], max_items: int, depth: int) -> list[object]:
    """A CBOR array of one of ``counts`` items, at most ``max_items`` items in all (itself
    and everything nested), nested ``depth`` deep."""
    if len(data) > MAX_PAYLOAD_SIZE:
        raise PacketError(PacketReason.OVERSIZED, "body too large")
    check_cbor(data, max_items=max_items, max_depth=depth)
    try:
        fields = cbor2.loads(data)
    except Exception as exc:
        raise PacketError(PacketReason.MALFORMED, f"body CBOR: {exc}") from None
    if not isinstance(fields, list) or len(fields) not in counts:
        shown = " or ".join(map(str, counts))
        raise PacketError(PacketReason.BAD_FIELD, f"body is not an array of {shown}")
    return fields


def _bytes_of(value: object, size: int, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != size:
        raise PacketError(PacketReason.BAD_FIELD, what)
    return value


def _text_of(value: object, limit: int, what: str) -> str:
    if not isinstance(value, str):
        raise PacketError(PacketReason.BAD_FIELD, what)
    try:
        size = len(value.encode())
    except UnicodeEncodeError:
        raise PacketError(PacketReason.BAD_FIELD, f"{what}: not valid text") from None
    if size > limit:
        raise PacketError(PacketReason.BAD_FIELD, what)
    return value


def _ids_of(value: object, limit: int, what: str) -> tuple[bytes, ...]:
    """A tuple of at most ``limit`` distinct message ids (16 bytes each)."""
    if not value and isinstance(value, (tuple, list)):
        return ()
    if not isinstance(value, (tuple, list)) or len(value) > limit:
        raise PacketError(PacketReason.BAD_FIELD, f"{what}: not a list of at most {limit} ids")
    ids = tuple(_bytes_of(v, MSG_ID_SIZE, f"{what}: an id") for v in value)
    if len(set(ids)) != len(ids):
        raise PacketError(PacketReason.BAD_FIELD, f"{what}: an id named twice")
    return ids


def _time_of(value: object, what: str) -> int:
    if type(value) is not int or not 0 <= value < MAX_SENT_MS:
        raise PacketError(PacketReason.BAD_FIELD, what)
    return value


@dataclass(frozen=True, slots=True)
class MessageBody:
    """A text message: ``[msg_id, text, sent_ms, parents, loose]``.

    ``sent_ms`` is the sender's clock when it wrote the message (the same in every retry; 0:
    take the packet's creation time). ``parents`` name the messages it follows in its
    conversation (the sender's heads), ``loose`` the ones it refers to without waiting for
    them (files, voice): together at most :data:`~meshchat.causal.MAX_PARENTS`, distinct,
    never the message itself. The older ``[msg_id, text]`` decodes with no time and no
    parents. Lists are kept as tuples.
    """

    msg_id: bytes
    text: str
    sent_ms: int = 0
    parents: tuple[bytes, ...] = ()
    loose: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        _bytes_of(self.msg_id, MSG_ID_SIZE, "msg id")
        _text_of(self.text, MAX_TEXT_BYTES, f"text over {MAX_TEXT_BYTES} bytes")
        _time_of(self.sent_ms, "sent time")
        parents = _ids_of(self.parents, MAX_PARENTS, "parents")
        loose = _ids_of(self.loose, MAX_PARENTS, "loose parents")
        if loose:
            named = _ids_of(parents + loose, MAX_PARENTS, "parents and loose parents")
        else:
            named = parents  # already checked: at most MAX_PARENTS, distinct
        if self.msg_id in named:
            raise PacketError(PacketReason.BAD_FIELD, "a message names itself as a parent")
        object.__setattr__(self, "parents", parents)
        object.__setattr__(self, "loose", loose)

    def encode(self) -> bytes:
        fields = [self.msg_id, self.text, self.sent_ms, list(self.parents), list(self.loose)]
        return cbor2.dumps(fields, canonical=True)

    @classmethod
    def decode(cls, data: bytes) -> MessageBody:
        # The canonical five-item shape is read straight; anything else takes the general
        # path. Either way the values are checked once, by __post_init__.
        fast = read_message_body(data) if type(data) is bytes else None
        if fast is not None:
            return cls(*fast)
        fields = _load_any(data, (2, 5), _MESSAGE_ITEMS, 2)
        if len(fields) == 2:
            return cls(fields[0], fields[1])  # type: ignore[arg-type]  # checked by cls
        return cls(*fields)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class HistoryBody:
    """A history summary and request in a group or channel: ``[0, heads, wants]``.

    ``heads`` are the newest messages the sender shows in the conversation (at most
    :data:`~meshchat.causal.MAX_HEADS_SHOWN`), ``wants`` the ids it is missing (parents its
    held messages wait for, at most :data:`~meshchat.causal.MAX_WANTS`). Its first item, an
    integer, tells it from a :class:`MessageBody` (whose first item is a byte string). It is
    sent once, in the conversation's encryption, never queued or acked.
    """

    heads: tuple[bytes, ...] = ()
    wants: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        heads = _ids_of(self.heads, MAX_HEADS_SHOWN, "heads")
        wants = _ids_of(self.wants, MAX_WANTS, "wants")
        if set(heads) & set(wants):
            raise PacketError(PacketReason.BAD_FIELD, "an id both held and wanted")
        object.__setattr__(self, "heads", heads)
        object.__setattr__(self, "wants", wants)

    def encode(self) -> bytes:
        return cbor2.dumps([0, list(self.heads), list(self.wants)], canonical=True)

    @classmethod
    def decode(cls, data: bytes) -> HistoryBody:
        tag, heads, wants = _load_any(data, (3,), _HISTORY_ITEMS, 2)
        if type(tag) is not int or tag != 0:
            raise PacketError(PacketReason.BAD_FIELD, "history body tag")
        return cls(_ids_of(heads, MAX_HEADS_SHOWN, "heads"), _ids_of(wants, MAX_WANTS, "wants"))


def decode_shared_body(data: bytes) -> MessageBody | HistoryBody:
    """The body of a group or channel message: a text message, or a history summary (whose
    first item is an integer)."""
    if len(data) > MAX_PAYLOAD_SIZE:
        raise PacketError(PacketReason.OVERSIZED, "body too large")
    offsets = check_cbor(data, max_items=_HISTORY_ITEMS, max_depth=2)
    if len(offsets) > 1 and data[offsets[0]] >> 5 == 0:
        return HistoryBody.decode(data)
    return MessageBody.decode(data)


@dataclass(frozen=True, slots=True)
class ControlPart:
    """One part of a control blob sent over a pairwise sealed session (never in clear).

    Each part is a direct message of its own (its own ``msg_id``, acked and retried); parts of
    one blob share ``blob_id`` and the receiver joins them when all ``count`` have arrived.
    """

    msg_id: bytes
    blob_id: bytes
    index: int
    count: int
    chunk: bytes

    def __post_init__(self) -> None:
        _bytes_of(self.msg_id, MSG_ID_SIZE, "msg id")
        _bytes_of(self.blob_id, MSG_ID_SIZE, "blob id")
        if type(self.count) is not int or not 1 <= self.count <= MAX_CONTROL_PARTS:
            raise PacketError(PacketReason.BAD_FIELD, "control part count")
        if type(self.index) is not int or not 0 <= self.index < self.count:
            raise PacketError(PacketReason.BAD_FIELD, "control part index")
        if not isinstance(self.chunk, bytes) or not 0 < len(self.chunk) <= CONTROL_CHUNK_BYTES:
            raise PacketError(PacketReason.BAD_FIELD, "control part chunk")

    def encode(self) -> bytes:
        return cbor2.dumps(
            [self.msg_id, self.blob_id, self.index, self.count, self.chunk], canonical=True
        )

    @classmethod
    def decode(cls, data: bytes) -> ControlPart:
        msg_id, blob_id, index, count, chunk = _load(data, 5)
        if not isinstance(chunk, bytes):
            raise PacketError(PacketReason.BAD_FIELD, "control part chunk")
        return cls(
            _bytes_of(msg_id, MSG_ID_SIZE, "msg id"),
            _bytes_of(blob_id, MSG_ID_SIZE, "blob id"),
            index,  # type: ignore[arg-type]  # checked in __post_init__
            count,  # type: ignore[arg-type]
            chunk,
        )


def decode_direct_body(data: bytes) -> MessageBody | ControlPart:
    """The body of a direct message: a text message (2 or 5 items) or a control part (5),
    told apart by their second item (text or a byte string)."""
    if len(data) > MAX_PAYLOAD_SIZE:
        raise PacketError(PacketReason.OVERSIZED, "body too large")
    fast = read_message_body(data) if type(data) is bytes else None
    if fast is not None:
        return MessageBody(*fast)  # a text message's canonical shape, read straight
    offsets = check_cbor(data, max_items=_MESSAGE_ITEMS, max_depth=2)
    if len(offsets) == 6 and data[offsets[1]] >> 5 == 2:
        return ControlPart.decode(data)
    return MessageBody.decode(data)


@dataclass(frozen=True, slots=True)
class AckBody:
    """An end-to-end ack. ``acker_box_public`` with the packet's origin gives the acker's node
    id, so a relay can check that an ack really comes from the recipient of the packet it
    carries before it drops that packet."""

    acked_packet_id: bytes
    msg_id: bytes
    acker_box_public: bytes

    def __post_init__(self) -> None:
        _bytes_of(self.acked_packet_id, PACKET_ID_SIZE, "acked packet id")
        _bytes_of(self.msg_id, MSG_ID_SIZE, "msg id")
        _bytes_of(self.acker_box_public, _KEY_SIZE, "acker box key")

    def encode(self) -> bytes:
        return cbor2.dumps(
            [self.acked_packet_id, self.msg_id, self.acker_box_public], canonical=True
        )

    @classmethod
    def decode(cls, data: bytes) -> AckBody:
        packet_id, msg_id, box_public = _load(data, 3)
        return cls(
            _bytes_of(packet_id, PACKET_ID_SIZE, "acked packet id"),
            _bytes_of(msg_id, MSG_ID_SIZE, "msg id"),
            _bytes_of(box_public, _KEY_SIZE, "acker box key"),
        )


@dataclass(frozen=True, slots=True)
class SealedAckBody:
    """The part of a sealed ack only the original sender reads: the token it reveals, again.

    The token in clear already proves delivery (only the recipient found it); this body goes
    through the session's ratchet, so the sender also learns that it came from the peer, and
    the ack moves the sender's ratchet on and confirms the session.
    """

    token: bytes

    def __post_init__(self) -> None:
        _bytes_of(self.token, ACK_TOKEN_SIZE, "ack token")

    def encode(self) -> bytes:
        return cbor2.dumps([self.token], canonical=True)

    @classmethod
    def decode(cls, data: bytes) -> SealedAckBody:
        (token,) = _load(data, 1)
        return cls(_bytes_of(token, ACK_TOKEN_SIZE, "ack token"))


@dataclass(frozen=True, slots=True)
class AnnounceBody:
    """A node's box key, display name and (when it has one) its current signed prekey.

    The announcing packet is signed by the node's identity key, which covers the prekey's
    creation time; the prekey's own signature is checked by whoever stores it.
    """

    box_public: bytes
    name: str
    prekey: SignedPrekey | None = None
    #: bit field; :data:`ANNOUNCE_GATEWAY` says the node reaches the internet and hands
    #: packets for other meshes to relays. Sent (as a last item) only when not zero.
    flags: int = 0
    #: the account the device is on, when it is not an account of this one device alone
    #: (sent as the very last item, an array, only then)
    account: AccountItem | None = None

    def __post_init__(self) -> None:
        if self.account is not None and not isinstance(self.account, AccountItem):
            raise PacketError(PacketReason.BAD_FIELD, "account")
        _bytes_of(self.box_public, _KEY_SIZE, "box key")
        _text_of(self.name, MAX_NAME_BYTES, "name")
        if self.prekey is not None and not isinstance(self.prekey, SignedPrekey):
            raise PacketError(PacketReason.BAD_FIELD, "prekey")
        if type(self.flags) is not int or not 0 <= self.flags < 2**16:
            raise PacketError(PacketReason.BAD_FIELD, "flags")

    @property
    def gateway(self) -> bool:
        return bool(self.flags & ANNOUNCE_GATEWAY)

    def encode(self) -> bytes:
        fields: list[object] = [self.box_public, self.name]
        if self.prekey is not None:
            pk = self.prekey
            fields += [pk.public, pk.signature, pk.created_ms]
        if self.flags:
            fields.append(self.flags)
        if self.account is not None:
            fields.append(self.account.to_cbor())
        return cbor2.dumps(fields, canonical=True)

    @classmethod
    def decode(cls, data: bytes) -> AnnounceBody:
        if len(data) > MAX_PAYLOAD_SIZE:
            raise PacketError(PacketReason.OVERSIZED, "body too large")
        check_cbor(data, max_items=11, max_depth=2)
        try:
            fields = cbor2.loads(data)
        except Exception as exc:
            raise PacketError(PacketReason.MALFORMED, f"body CBOR: {exc}") from None
        account = None
        if isinstance(fields, list) and fields and isinstance(fields[-1], list):
            account = AccountItem.from_cbor(fields.pop())
        if isinstance(fields, list) and any(isinstance(f, list) for f in fields):
            raise PacketError(PacketReason.BAD_FIELD, "a nested array out of place")
        if not isinstance(fields, list) or len(fields) not in (2, 3, 5, 6):
            raise PacketError(PacketReason.BAD_FIELD, "body is not an array of 2, 3, 5 or 6")
        flags = 0
        if len(fields) in (3, 6):
            flags = fields.pop()
            if type(flags) is not int or flags == 0:
                raise PacketError(PacketReason.BAD_FIELD, "flags")  # zero is never sent
        box_public = _bytes_of(fields[0], _KEY_SIZE, "box key")
        name = _text_of(fields[1], MAX_NAME_BYTES, "name")
        prekey = None
        if len(fields) == 5:
            try:
                prekey = SignedPrekey(fields[2], fields[3], fields[4])
            except IdentityError:
                raise PacketError(PacketReason.BAD_FIELD, "prekey") from None
        return cls(box_public, name, prekey, flags, account)
