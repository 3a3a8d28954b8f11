"""The plaintext bodies carried inside packets, each a small strict CBOR array.

============  ===========================================  =================================
packet kind   body                                         where it travels
============  ===========================================  =================================
MESSAGE       ``[msg_id(16), text]``                       encrypted (BOX, CHANNEL) or signed
ACK           ``[acked_packet_id(16), msg_id(16),          signed
              acker_box_public(32)]``
ANNOUNCE      ``[box_public(32), name]``                   signed
============  ===========================================  =================================

``msg_id`` names a message across the retries that carry it (each retry is a new packet with a
new packet id), so the recipient shows it once and the sender matches acks to it. Every
decoder here raises :class:`PacketError` (``BAD_FIELD`` / ``MALFORMED``) and is bounded.
"""

from __future__ import annotations

from dataclasses import dataclass

import cbor2

from meshchat.errors import PacketError, PacketReason
from meshchat.wire.cborcheck import check_cbor
from meshchat.wire.packet import MAX_PAYLOAD_SIZE, PACKET_ID_SIZE

__all__ = [
    "MAX_NAME_BYTES",
    "MAX_TEXT_BYTES",
    "MSG_ID_SIZE",
    "AckBody",
    "AnnounceBody",
    "MessageBody",
]

MSG_ID_SIZE = 16
#: Longest message text in UTF-8 bytes; with crypto overhead it fits in one packet.
MAX_TEXT_BYTES = 1000
MAX_NAME_BYTES = 64
_KEY_SIZE = 32


def _load(data: bytes, items: int) -> list[object]:
    if len(data) > MAX_PAYLOAD_SIZE:
        raise PacketError(PacketReason.OVERSIZED, "body too large")
    check_cbor(data, max_items=items + 1, max_depth=1)
    try:
        fields = cbor2.loads(data)
    except Exception as exc:
        raise PacketError(PacketReason.MALFORMED, f"body CBOR: {exc}") from None
    if not isinstance(fields, list) or len(fields) != items:
        raise PacketError(PacketReason.BAD_FIELD, f"body is not an array of {items}")
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


@dataclass(frozen=True, slots=True)
class MessageBody:
    msg_id: bytes
    text: str

    def __post_init__(self) -> None:
        _bytes_of(self.msg_id, MSG_ID_SIZE, "msg id")
        _text_of(self.text, MAX_TEXT_BYTES, f"text over {MAX_TEXT_BYTES} bytes")

    def encode(self) -> bytes:
        return cbor2.dumps([self.msg_id, self.text], canonical=True)

    @classmethod
    def decode(cls, data: bytes) -> MessageBody:
        msg_id, text = _load(data, 2)
        return cls(_bytes_of(msg_id, MSG_ID_SIZE, "msg id"), _text_of(text, MAX_TEXT_BYTES, "text"))


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
class AnnounceBody:
    box_public: bytes
    name: str

    def __post_init__(self) -> None:
        _bytes_of(self.box_public, _KEY_SIZE, "box key")
        _text_of(self.name, MAX_NAME_BYTES, "name")

    def encode(self) -> bytes:
        return cbor2.dumps([self.box_public, self.name], canonical=True)

    @classmethod
    def decode(cls, data: bytes) -> AnnounceBody:
        box_public, name = _load(data, 2)
        return cls(
            _bytes_of(box_public, _KEY_SIZE, "box key"), _text_of(name, MAX_NAME_BYTES, "name")
        )
