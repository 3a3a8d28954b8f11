"""The bitchat gateway's direct messages (Noise XX, :mod:`meshchat.bridges.bitchat.dm`).

A private message from a bitchat peer ends at this node: it is stored in the conversation
``#bitchat:dm:<peer id>`` (marked as a bitchat DM, another network, not a meshchat contact),
from ``<nick>@bitchat:<peer id>``; what the user sends there is encrypted to that peer alone
(after a handshake when there is no session yet). Every verified bitchat peer gets its DM
conversation registered with the node's bridges (at most 1,024, the oldest dropped), so
``meshchat send '#bitchat:dm:<peer id>' TEXT`` reaches it. DMs are never carried to other
meshchat nodes; at most 20 are taken in, then one per second.
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING, Any

from meshchat.bridges._ratelimit import TokenBucket
from meshchat.bridges.marks import BITCHAT_DM_MARK, BITCHAT_DM_PREFIX, bitchat_dm_conversation
from meshchat.errors import MeshchatError, UsageError
from meshchat.node._types import NodeNotice

if TYPE_CHECKING:
    from meshchat.bridges.bitchat.announce import Announcement
    from meshchat.bridges.bitchat.mesh import Decision, DirectText
    from meshchat.node._bitchat import BitchatGateway
    from meshchat.store import Message

__all__ = ["BitchatDirect"]

log = logging.getLogger(__name__)
MAX_DM_CONVERSATIONS = 1024
LISTED = 64


def _id(*parts: bytes) -> bytes:
    return hashlib.sha256(b"\x00".join((b"meshchat bitchat", *parts))).digest()[:16]


class BitchatDirect:
    """The DM side of one :class:`~meshchat.node._bitchat.BitchatGateway`."""

    def __init__(self, gateway: BitchatGateway) -> None:
        self.gateway = gateway
        self.node = gateway.node
        self._dm_in = TokenBucket(20, 1.0)

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
        from meshchat.bridges.bitchat.mesh import Delivered, Private

        match decision:
            case Private(message=message):
                self.gateway.spawn(self.node.submit(self._take, message))
            case Delivered():
                self.gateway.count("dm_delivered")
            case _:
                pass

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
