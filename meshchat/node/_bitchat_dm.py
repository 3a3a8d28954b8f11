"""The bitchat gateway's direct messages (Noise XX, :mod:`meshchat.bridges.bitchat.dm`).

A private message from a bitchat peer ends at this node: it is stored in the conversation
``#bitchat:dm:<peer id>`` (marked as a bitchat DM, another network, not a meshchat contact),
from ``<nick>@bitchat:<peer id>``; what the user sends there is encrypted to that peer alone
(after a handshake when there is no session yet). Every verified bitchat peer gets its DM
conversation registered with the node's bridges (at most 1,024, the oldest dropped), so
``meshchat send '#bitchat:dm:<peer id>' TEXT`` reaches it. DMs are never carried to other
meshchat nodes; at most 20 are taken in, then one per second.

Receipts (:mod:`meshchat.bridges.bitchat.receipts`): a DELIVERED or READ_RECEIPT from a peer
marks our stored message to *that peer* ``DELIVERED`` (the state meshchat's own DMs reach;
the store has no "read" state, so a read receipt is counted as ``dm_read`` and otherwise
proves delivery only). The stored id of a DM is derived from the peer id and the bitchat
message id, so a receipt from one peer cannot name a message sent to another; a receipt that
names nothing of ours is counted (``dm_receipt_unmatched``). At most 64 receipts are taken
in, then four per second. When the user reads the conversation (the node's ``read`` notice:
the UI opened it, or a message arrived while it was open), each private message received since
is answered with one READ_RECEIPT: at most 20, then one per second (the rest wait for the next
read); owed receipts are remembered in memory only (64 per peer, 64 peers). None are sent
with ``bitchat.read_receipts`` off.
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING, Any

from meshchat.bridges._ratelimit import TokenBucket
from meshchat.bridges.bitchat.receipts import Unread
from meshchat.bridges.marks import BITCHAT_DM_MARK, BITCHAT_DM_PREFIX, bitchat_dm_conversation
from meshchat.errors import MeshchatError, UsageError
from meshchat.node._types import NodeNotice
from meshchat.store.records import MessageState

if TYPE_CHECKING:
    from meshchat.bridges.bitchat.announce import Announcement
    from meshchat.bridges.bitchat.mesh import Decision, DirectText
    from meshchat.node._bitchat import BitchatGateway
    from meshchat.store import Message, Store

__all__ = ["BitchatDirect"]

log = logging.getLogger(__name__)
MAX_DM_CONVERSATIONS = 1024
LISTED = 64
#: read receipts sent per read, at most (the rest wait for the next)
READ_BATCH = 64


def _id(*parts: bytes) -> bytes:
    return hashlib.sha256(b"\x00".join((b"meshchat bitchat", *parts))).digest()[:16]


class BitchatDirect:
    """The DM side of one :class:`~meshchat.node._bitchat.BitchatGateway`."""

    def __init__(self, gateway: BitchatGateway, *, read_receipts: bool = True) -> None:
        self.gateway = gateway
        #: whether reading a conversation sends read receipts (``bitchat.read_receipts``)
        self.read_receipts = read_receipts
        self.node = gateway.node
        self._dm_in = TokenBucket(20, 1.0)
        self._receipts_in = TokenBucket(64, 0.25)
        self._read_out = TokenBucket(20, 1.0)
        #: received DMs owed a read receipt
        self.unread = Unread()

    def _names(self) -> list[str]:
        return [n for n in self.node.bridges if n.startswith(BITCHAT_DM_PREFIX)]

    def forget(self) -> None:
        """Unregister every DM conversation (the gateway stops)."""
        for name in self._names():
            del self.node.bridges[name]

    def listed(self) -> list[dict[str, Any]]:
        """The most recent DM conversations, for ``meshchat status --json``."""
        return [
            {
                "conversation": name,
                "peer_id": name[len(BITCHAT_DM_PREFIX) :],
                "nickname": self.node.bridges[name].status()["nickname"],
            }
            for name in self._names()[-LISTED:]
        ]

    def peer(self, announcement: Announcement) -> None:
        """A verified bitchat peer: its DM conversation can be written to."""
        name = bitchat_dm_conversation(announcement.peer_id)
        self.node.bridges[name] = _Direct(self, announcement.peer_id, announcement.nickname)
        dms = [n for n in self.node.bridges if n.startswith(BITCHAT_DM_PREFIX)]
        for old in dms[: max(0, len(dms) - MAX_DM_CONVERSATIONS)]:
            del self.node.bridges[old]

    def decision(self, decision: Decision) -> None:
        from meshchat.bridges.bitchat.mesh import Delivered, Private, Read

        match decision:
            case Private(message=message):
                self.gateway.spawn(self.node.submit(self._take, message))
            case Delivered(peer_id=peer, message_id=message_id):
                self._receipt(peer, message_id, read=False)
            case Read(peer_id=peer, message_id=message_id):
                self._receipt(peer, message_id, read=True)
            case _:
                pass

    def _receipt(self, peer: bytes, message_id: str, *, read: bool) -> None:
        if not self._receipts_in.take(self.node.clock() / 1000):
            self.gateway.count("dm_receipt_limited")
            return
        self.gateway.spawn(self.node.submit(self._apply_receipt, peer, message_id, read))

    async def _apply_receipt(self, peer: bytes, message_id: str, read: bool) -> None:
        node = self.node
        msg_id = _id(b"dm", peer, message_id.encode())
        store = node.store
        try:
            changed = await store.call(
                _delivered, store.store, msg_id, bitchat_dm_conversation(peer), node.clock()
            )
        except MeshchatError as exc:
            log.warning("bitchat receipt not applied: %s", exc)
            return
        if changed is None:
            self.gateway.count("dm_receipt_unmatched")
            return
        self.gateway.count("dm_read" if read else "dm_delivered")
        if changed:
            node.notify(NodeNotice("state", msg_id=msg_id, state=MessageState.DELIVERED))

    def on_read(self, conversation: str) -> None:
        """The node's ``read`` notice: answer a bitchat DM conversation with read receipts."""
        if not self.read_receipts or not conversation.startswith(BITCHAT_DM_PREFIX):
            return
        try:
            peer = bytes.fromhex(conversation[len(BITCHAT_DM_PREFIX) :])
        except ValueError:
            return
        if bitchat_dm_conversation(peer) == conversation and peer in self.unread:
            self.gateway.spawn(self.read(peer))

    async def read(self, peer: bytes) -> None:
        """The user read ``peer``'s conversation: a read receipt for each private message
        received since (once each, within the rate; the rest stay owed)."""
        gatt = self.gateway.gatt
        if gatt is None:
            return
        now = self.node.clock()
        owed = self.unread.take(peer, READ_BATCH)
        allowed = 0
        while allowed < len(owed) and self._read_out.take(now / 1000):
            allowed += 1
        if allowed < len(owed):
            self.unread.give_back(peer, owed[allowed:])
            self.gateway.count("read_limited")
        if not allowed:
            return
        try:
            frames = gatt.mesh.send_read(peer, owed[:allowed], int(now))
        except MeshchatError as exc:  # the peer was forgotten, or too much waits for it
            log.warning("bitchat read receipts not sent: %s", exc)
            self.gateway.count("read_failed")
            return
        await gatt.send_frames(tuple(frames))
        for _ in range(allowed):
            self.gateway.count("read_sent")

    async def _take(self, direct: DirectText) -> None:
        node = self.node
        now = node.clock()
        if not self._dm_in.take(now / 1000):
            self.gateway.count("dm_limited")
            return
        conversation = bitchat_dm_conversation(direct.peer_id)
        if conversation not in node.bridges:
            node.bridges[conversation] = _Direct(self, direct.peer_id, direct.nickname)
        store = node.store
        name = f"{direct.nickname}@bitchat:{direct.peer_id.hex()}"
        try:
            message = await store.call(
                store.store.add_incoming,
                conversation,
                _id(b"dm", direct.peer_id, direct.message_id.encode()),
                _id(b"peer", direct.peer_id),
                name,
                direct.text,
                min(direct.timestamp, now),
                now,
            )
        except MeshchatError as exc:
            log.warning("bitchat DM not stored: %s", exc)
            return
        if message is not None:
            self.gateway.count("dm_received")
            if self.read_receipts:
                self.unread.add(direct.peer_id, direct.message_id)
            node.notify(NodeNotice("message", message=message))

    async def send_direct(self, peer: bytes, text: str) -> Message:
        """Encrypt ``text`` to one bitchat peer (a handshake first if there is no session yet)
        and store it as ours in that peer's DM conversation."""
        gatt = self.gateway.gatt
        if gatt is None:
            raise UsageError("the bitchat bridge is not running")
        node = self.node
        now = node.clock()
        message_id, frames = gatt.mesh.send_private(peer, text, int(now))
        await gatt.send_frames(tuple(frames))
        store = node.store
        message = await store.call(
            store.store.add_own_copy,
            bitchat_dm_conversation(peer),
            _id(b"dm", peer, message_id.encode()),
            node.identity.node_id,
            node.name,
            text,
            now,
            now,
        )
        if message is None:
            raise MeshchatError("the sent text could not be stored")
        self.gateway.count("dm_sent")
        return message


def _delivered(store: Store, msg_id: bytes, conversation: str, now: int) -> bool | None:
    """Mark our message ``msg_id`` in ``conversation`` delivered: whether its state changed,
    None when no outgoing message of ours there has that id."""
    message = store.get_message(msg_id)
    if message is None or not message.outgoing or message.conversation != conversation:
        return None
    return store.set_state(msg_id, MessageState.DELIVERED, now)


class _Direct:
    """One bitchat peer's DM conversation, as the node's bridges hold it."""

    def __init__(self, gateway: BitchatDirect, peer: bytes, nickname: str) -> None:
        self.gateway = gateway
        self.peer = peer
        self.nickname = nickname

    async def send_text(self, text: str) -> Message:
        return await self.gateway.send_direct(self.peer, text)

    def status(self) -> dict[str, Any]:
        return {
            "network": "bitchat-dm",
            "conversation": bitchat_dm_conversation(self.peer),
            "mark": BITCHAT_DM_MARK,
            "nickname": self.nickname,
        }

    async def stop(self) -> None:
        """Stopped with the gateway."""
