"""A conversation's history as the faces read and delete it.

Reading runs on the store's thread like every other view. Deleting runs on the worker, in
turn with the traffic (:meth:`Node.submit`), so no receive or retry of the same conversation
interleaves with it. Deleting our own outgoing messages also takes them out of the engine's
outbox (:meth:`Engine.cancel`): a message deleted while queued is never sent afterwards. The
store erases the rows and keeps tombstones, so the same message offered again by a relay,
the sender's retry or another member is not stored again. My other devices are told at once
(control blob 20, :mod:`meshchat.node._sync`). The faces are told with a ``history`` notice
naming the conversation; they re-read its order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from meshchat.node._types import NodeNotice
from meshchat.store.records import Message

if TYPE_CHECKING:
    from meshchat.node import Node

__all__ = ["ALL_MESSAGES", "delete", "history"]

#: A limit that takes every message of a conversation (the store's own cap on one query).
ALL_MESSAGES = 1_000_000


async def history(node: Node, conversation: str, limit: int) -> list[Message]:
    """The last ``limit`` shown messages of ``conversation`` in order, then the held ones."""
    store = node.store
    return await store.call(store.store.history, conversation, limit)


async def delete(node: Node, conversation: str, msg_ids: Sequence[bytes]) -> int:
    """Erase these messages of ``conversation`` (all of it when empty); how many went."""
    ids = tuple(dict.fromkeys(bytes(i) for i in msg_ids))
    return await node.submit(lambda: _delete(node, conversation, ids))


async def _delete(node: Node, conversation: str, ids: tuple[bytes, ...]) -> int:
    store = node.store
    if ids:
        own = await store.call(store.store.own_messages, conversation, ids)
        count = await store.call(store.store.delete_messages, conversation, ids)
    else:
        every = await store.call(store.store.history, conversation, ALL_MESSAGES)
        own = [m for m in every if m.outgoing]
        count = await store.call(store.store.delete_conversation, conversation)
    for message in own:
        node.engine.cancel(message.msg_id)  # nothing happens for one no longer queued
    # my other devices delete it at once too (the tombstones also travel in every sync)
    await node.effects.run(node.engine.sync.erased(conversation, ids, node.clock()))
    node.notify(NodeNotice("history", conversation=conversation))
    return count
