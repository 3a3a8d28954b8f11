"""Carbons: a copy of a direct message for this person's other devices (control blob 18).

When this device sends a direct message to a contact, each of the person's other devices
(:meth:`~meshchat.account.book.AccountBook.own_devices`) gets a :class:`Carbon` of it: the same
message body (id, text, sent time, parents), the contact's account and the device that sent
it, sealed in the pairwise session like any account control blob, retried until acked and
carried store-and-forward by the mesh while that device is offline. The device stores it as
this person's own sent message in ``dm:<peer account>``, under the same id, so every device
of the person shows the conversation the same way. A carbon of a *received* message
(``direction`` 1) says "I received this from ``sender``"; it is optional (history sync brings
received messages too) and stored as received.

Wire: canonical CBOR ``[18, peer_account(16), direction(0 sent / 1 received), sender(16),
body]`` where ``body`` is the encoded :class:`~meshchat.wire.payloads.MessageBody`, at most
:data:`MAX_CARBON_BYTES` in all. Who may send one is checked by the receiver's account glue:
only a device on this account's own list (a carbon is the sender's word about its own
conversation, so a stranger could otherwise plant messages in it).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import cbor2

from meshchat.errors import PacketError, PacketReason
from meshchat.wire.cborcheck import check_cbor
from meshchat.wire.packet import MAX_PAYLOAD_SIZE
from meshchat.wire.payloads import MessageBody

__all__ = ["KIND_CARBON", "MAX_CARBON_BYTES", "Carbon", "Direction"]

KIND_CARBON = 18
_ID = 16
#: a carbon: the kind, two ids, the direction and a message body (itself at most a payload)
MAX_CARBON_BYTES = 64 + MAX_PAYLOAD_SIZE


class Direction(enum.IntEnum):
    """Whether the message copied was sent or received by the device that made the carbon."""

    SENT = 0
    RECEIVED = 1


def _bad(what: str) -> PacketError:
    return PacketError(PacketReason.BAD_FIELD, f"carbon: {what}")


def _id(value: object, what: str) -> bytes:
    if type(value) is not bytes or len(value) != _ID:
        raise _bad(f"{what} is not {_ID} bytes")
    return value


@dataclass(frozen=True, slots=True)
class Carbon:
    """A copy of one direct message for another device of the same person."""

    #: the account of the contact the conversation is with (``dm:<peer_account>``)
    peer_account: bytes
    direction: Direction
    #: the node id of the device that sent the message (one of mine for ``SENT``)
    sender: bytes
    body: MessageBody

    def __post_init__(self) -> None:
        _id(self.peer_account, "peer account")
        _id(self.sender, "sender")
        if not isinstance(self.direction, Direction):
            raise _bad("direction")
        if not isinstance(self.body, MessageBody):
            raise _bad("body")

    @property
    def conversation(self) -> str:
        return "dm:" + self.peer_account.hex()

    def encode(self) -> bytes:
        data = cbor2.dumps(
            [KIND_CARBON, self.peer_account, int(self.direction), self.sender, self.body.encode()],
            canonical=True,
        )
        if len(data) > MAX_CARBON_BYTES:
            raise PacketError(PacketReason.OVERSIZED, "carbon too large")
        return data

    @classmethod
    def decode(cls, data: bytes) -> Carbon:
        """Strict and bounded: raises :class:`PacketError` for anything but a canonical
        carbon of at most :data:`MAX_CARBON_BYTES`."""
        if type(data) is not bytes:
            raise _bad("not bytes")
        if len(data) > MAX_CARBON_BYTES:
            raise PacketError(PacketReason.OVERSIZED, "carbon too large")
        check_cbor(data, max_items=6, max_depth=1)
        try:
            fields = cbor2.loads(data)
        except Exception as exc:
            raise PacketError(PacketReason.MALFORMED, f"carbon CBOR: {exc}") from exc
        if not isinstance(fields, list) or len(fields) != 5 or fields[0] != KIND_CARBON:
            raise _bad("not an array of 5 of kind 18")
        if type(fields[0]) is not int:
            raise _bad("kind")
        _, peer, direction, sender, body = fields
        if type(direction) is not int or direction not in (0, 1):
            raise _bad("direction")
        if type(body) is not bytes:
            raise _bad("body is not bytes")
        return cls(
            _id(peer, "peer account"), Direction(direction), _id(sender, "sender"),
            MessageBody.decode(body),
        )  # fmt: skip
