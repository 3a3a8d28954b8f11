"""bitchat delivery and read receipts, as pure code: the two Noise payloads that acknowledge a
private message, and the bounded list of received messages still owed a read receipt.

Theory of operation
-------------------
Upstream builds both receipts in one place (iOS
``bitchat/Services/BLE/BLENoisePayloadFactory.swift``: ``delivered(messageID:)`` and
``readReceipt(originalMessageID:)``, the type bytes in
``bitchat/Protocols/BitchatProtocol.swift`` ``NoisePayloadType``; Android
``mesh/MessageHandler.kt`` ``sendDeliveryAck`` and ``BluetoothMeshService.sendReadReceipt``):
a Noise transport plaintext whose first byte is ``0x03`` (DELIVERED: the message reached the
device) or ``0x02`` (READ_RECEIPT: the user saw it), followed by the acknowledged private
message's id as UTF-8 and nothing else (no length, no reader, no timestamp; the reader is the
Noise peer that sent it). Both clients decode the rest of the plaintext as the id.

We refuse, as :class:`BridgeError`, a receipt whose id is empty (BAD_FIELD), not UTF-8
(BAD_FIELD) or longer than 255 bytes (OVERSIZED: a private message's id is one TLV field, at
most 255 bytes, so a longer id cannot name anything we sent).

:class:`Unread` remembers, per bitchat peer, the ids of private messages received and not yet
acknowledged as read; :meth:`Unread.take` hands them out once each (the oldest first), so each
message gets at most one read receipt. Bounded: 64 ids per peer (the oldest dropped) and 64
peers (the least recently written dropped).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from meshchat.bridges.bitchat.dm import DELIVERED, READ_RECEIPT
from meshchat.bridges.bitchat.packet import NETWORK
from meshchat.errors import BridgeError, BridgeReason

__all__ = [
    "DELIVERED",
    "MAX_ID_BYTES",
    "READ_RECEIPT",
    "Receipt",
    "Unread",
    "decode_receipt",
]

#: a private message id is one TLV field: at most 255 bytes (upstream's limit)
MAX_ID_BYTES = 255
UNREAD_PER_PEER = 64
UNREAD_PEERS = 64


@dataclass(frozen=True, slots=True)
class Receipt:
    """A delivery (``kind`` DELIVERED) or read (READ_RECEIPT) receipt for ``message_id``."""

    kind: int
    message_id: str

    def __post_init__(self) -> None:
        if self.kind not in (DELIVERED, READ_RECEIPT):
            raise BridgeError(NETWORK, BridgeReason.BAD_FIELD, f"receipt type {self.kind:#04x}")
        size = len(self.message_id.encode("utf-8", "surrogatepass"))
        if size == 0:
            raise BridgeError(NETWORK, BridgeReason.BAD_FIELD, "a receipt without a message id")
        if size > MAX_ID_BYTES:
            raise BridgeError(NETWORK, BridgeReason.OVERSIZED, f"a receipt id of {size} bytes")

    def encode(self) -> bytes:
        """The Noise plaintext: the type byte, then the id as UTF-8."""
        try:
            body = self.message_id.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise BridgeError(NETWORK, BridgeReason.BAD_FIELD, "a receipt id is not UTF-8") from exc
        return bytes((self.kind,)) + body


def decode_receipt(kind: int, data: bytes) -> Receipt:
    """The receipt of type ``kind`` whose body (after the type byte) is ``data``; BridgeError
    (BAD_FIELD, OVERSIZED) when it is not one."""
    if len(data) > MAX_ID_BYTES:
        raise BridgeError(NETWORK, BridgeReason.OVERSIZED, f"a receipt of {len(data)} bytes")
    try:
        message_id = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BridgeError(NETWORK, BridgeReason.BAD_FIELD, "a receipt id is not UTF-8") from exc
    return Receipt(kind, message_id)


class Unread:
    """Ids of received private messages owed a read receipt, per bitchat peer (bounded)."""

    def __init__(self, per_peer: int = UNREAD_PER_PEER, peers: int = UNREAD_PEERS) -> None:
        self.per_peer = per_peer
        self.peers = peers
        self._ids: OrderedDict[bytes, OrderedDict[str, None]] = OrderedDict()

    def __len__(self) -> int:
        return sum(len(ids) for ids in self._ids.values())

    def __contains__(self, peer: object) -> bool:
        return peer in self._ids

    def add(self, peer: bytes, message_id: str) -> None:
        """``message_id`` from ``peer`` was received (stored for the first time)."""
        ids = self._ids.pop(peer, None) or OrderedDict()
        ids[message_id] = None
        while len(ids) > self.per_peer:
            ids.popitem(last=False)
        self._ids[peer] = ids
        while len(self._ids) > self.peers:
            self._ids.popitem(last=False)

    def take(self, peer: bytes, limit: int) -> list[str]:
        """At most ``limit`` of ``peer``'s ids, the oldest first; each is handed out once."""
        ids = self._ids.get(peer)
        if ids is None:
            return []
        out = [ids.popitem(last=False)[0] for _ in range(min(limit, len(ids)))]
        if not ids:
            del self._ids[peer]
        return out

    def give_back(self, peer: bytes, message_ids: list[str]) -> None:
        """Ids taken but not sent (no session, a refusal): owed again, before newer ones."""
        ids = self._ids.pop(peer, None) or OrderedDict()
        merged: OrderedDict[str, None] = OrderedDict((i, None) for i in message_ids)
        merged.update(ids)
        while len(merged) > self.per_peer:
            merged.popitem(last=False)
        self._ids[peer] = merged
        while len(self._ids) > self.peers:
            self._ids.popitem(last=False)
