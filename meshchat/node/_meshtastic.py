"""The node's side of the Meshtastic bridge (opt-in: ``meshchat daemon --meshtastic URL``).

Texts heard on the Meshtastic channel are stored as incoming messages of the conversation
``#meshtastic-<channel>``, each sender named ``<name> !<node id>@meshtastic``; the first time
the conversation is used, a notice from "meshtastic bridge" says what it is ("other network,
channel key is public"). What the user sends to that conversation is published on the channel
from the bridge's node number (``node_number`` of our node id, so it stays the same across
restarts) and stored as our own sent message. Nothing else crosses: meshchat's other
conversations never reach the bridge, and the bridge's texts never enter the mesh.
The bridge and its limits: :mod:`meshchat.bridges.meshtastic` and ``docs/bridges.md``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from typing import TYPE_CHECKING, Any

from meshchat.errors import MeshchatError

if TYPE_CHECKING:
    from meshchat.bridges.meshtastic.bridge import Heard
    from meshchat.bridges.meshtastic.mqtt import MeshtasticMqtt
    from meshchat.node import Node
    from meshchat.store import Message

__all__ = ["MeshtasticGateway"]

log = logging.getLogger(__name__)
NOTICE_SENDER = "meshtastic bridge"


def _id(*parts: bytes) -> bytes:
    return hashlib.sha256(b"\x00".join((b"meshchat meshtastic", *parts))).digest()[:16]


class MeshtasticGateway:
    """One Meshtastic channel, shown as a conversation of ``node``."""

    def __init__(self, node: Node, url: str, key_b64: str = "AQ==") -> None:
        from meshchat.bridges.meshtastic.bridge import node_number
        from meshchat.bridges.meshtastic.mqtt import MeshtasticMqtt, parse_url

        self.node = node
        self.link: MeshtasticMqtt = MeshtasticMqtt.create(
            parse_url(url), key_b64, node_number(node.identity.node_id), node.name, self._heard
        )
        self.conversation = self.link.bridge.channel.conversation
        self.mark = self.link.bridge.channel.mark
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self.node.submit(self._notice)
        self.link.start()
        self.node.bridges[self.conversation] = self

    async def stop(self) -> None:
        self.node.bridges.pop(self.conversation, None)
        await self.link.close()
        for task in list(self._tasks):
            task.cancel()

    async def _notice(self) -> None:
        now = self.node.clock()
        store = self.node.store
        text = (
            f"Meshtastic channel {self.link.bridge.channel.name} through "
            f"{self.link.target.host}: {self.mark}. Anyone can read it and send as any name."
        )
        await store.call(
            store.store.add_incoming,
            self.conversation,
            _id(b"notice", self.conversation.encode()),
            _id(b"bridge"),
            NOTICE_SENDER,
            text,
            now,
            now,
        )

    def _heard(self, heard: Heard) -> None:
        task = asyncio.get_running_loop().create_task(self.node.submit(self._store, heard))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _store(self, heard: Heard) -> None:
        from meshchat.node._types import NodeNotice

        now = self.node.clock()
        sender = heard.sender.encode()
        name = f"{heard.name or '?'} {heard.sender}@meshtastic"
        store = self.node.store
        try:
            message = await store.call(
                store.store.add_incoming,
                self.conversation,
                _id(sender, heard.packet_id.to_bytes(4, "big")),
                _id(b"node", sender),
                name,
                heard.text,
                now,
                now,
            )
        except MeshchatError as exc:
            log.warning("meshtastic text not stored: %s", exc)
            return
        if message is not None:
            self.node.notify(NodeNotice("message", message=message))

    async def send_text(self, text: str) -> Message:
        """Publish ``text`` on the channel and store it as ours; BridgeError if refused."""
        msg_id = os.urandom(16)
        self.link.send_text(msg_id, text)
        now = self.node.clock()
        store = self.node.store
        message = await store.call(
            store.store.add_own_copy,
            self.conversation,
            msg_id,
            self.node.identity.node_id,
            self.node.name,
            text,
            now,
            now,
        )
        if message is None:  # an id of 16 random bytes is never stored already
            raise MeshchatError("the sent text could not be stored")
        return message

    def status(self) -> dict[str, Any]:
        """What ``meshchat status --json`` shows of the bridge."""
        return {
            "network": "meshtastic",
            "conversation": self.conversation,
            "mark": self.mark,
            "connected": self.link.connected.is_set(),
        }
