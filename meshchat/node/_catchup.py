"""The node's side of the causal history: held messages released, members caught up.

The policy (when to ask, summarise, answer) is :class:`meshchat.catchup.Catchup`; the order
and the holding are the store's. This module joins them on the node's worker: after each item
(:meth:`NodeCatchup.run`, from housekeeping) it releases messages held too long, answers
history requests with our own messages, asks for the parents held messages wait for and the
heads others told us that we lack, and tells our heads after a quiet period (in groups and
private channels; on the public channel, where every node would, it only asks).
"""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING

from meshchat.catchup import Catchup
from meshchat.causal import HOLD_MS, MAX_WANTS
from meshchat.crypto.channel import PUBLIC_CHANNEL
from meshchat.engine import Output
from meshchat.errors import MeshchatError
from meshchat.events import HistoryReceived, MessageReceived
from meshchat.node._types import NodeNotice
from meshchat.store import Store
from meshchat.store.records import Message
from meshchat.target import GROUP_PREFIX

if TYPE_CHECKING:
    from meshchat.node import Node

__all__ = ["MAX_REQUESTS", "RELEASE_EVERY_MS", "NodeCatchup"]

log = logging.getLogger(__name__)

#: History requests queued between two runs; more are dropped (counted) until the next run.
MAX_REQUESTS = 64
#: How often held messages are checked for the end of their hold (it lasts minutes).
RELEASE_EVERY_MS = 1_000


class NodeCatchup:
    """Catch-up for one node's groups and joined channels (see the module docstring)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.policy = Catchup(node.options.catchup)
        self._check: set[str] = set()  # conversations that may hold messages
        self._asks: dict[str, set[bytes]] = {}  # heads told to us that we lack
        self._requests: deque[HistoryReceived] = deque()
        self._next_release = 0

    def conversation_id(self, conversation: str) -> bytes | None:
        """The group or joined channel id of a conversation we are in (None otherwise)."""
        engine = self.node.engine
        if conversation.startswith(GROUP_PREFIX):
            try:
                group_id = bytes.fromhex(conversation[len(GROUP_PREFIX) :])
            except ValueError:
                return None
            group = engine.groups.groups.get(group_id)
            return group_id if group is not None and group.current is not None else None
        for channel in engine.channels:
            if channel.name == conversation:
                return channel.channel_id
        return None

    # -- what happened (called while planning engine outputs) ------------------------------

    def received(self, event: MessageReceived, now_ms: int) -> None:
        if self.conversation_id(event.conversation) is not None:
            self._summarise_later(event.conversation, now_ms)
            self._check.add(event.conversation)

    def sent(self, conversation: str, now_ms: int) -> None:
        if self.conversation_id(conversation) is not None:
            self._summarise_later(conversation, now_ms)

    def _summarise_later(self, conversation: str, now_ms: int) -> None:
        # Everyone on the public channel would tell its heads after every burst: on a busy
        # mesh that is one more flood per node. There members only ask for what they lack.
        if conversation != PUBLIC_CHANNEL:
            self.policy.activity(conversation, now_ms)

    def requested(self, event: HistoryReceived) -> None:
        if len(self._requests) >= MAX_REQUESTS:
            self.node.count("drop.history-request")
            return
        self._requests.append(event)

    def check_all(self) -> None:
        """Look for held messages in every conversation we are in (at start)."""
        engine = self.node.engine
        self._check.update(channel.name for channel in engine.channels)
        self._check.update(
            GROUP_PREFIX + g.group_id.hex()
            for g in engine.groups.groups.values()
            if g.current is not None
        )

    # -- the work (on the worker, after each item) -----------------------------------------

    async def run(self, now_ms: int) -> None:
        """Called after every item: it touches the store only when something is due, so a
        flood of frames does not pay a store round trip per batch for it."""
        node = self.node
        store = node.store.store
        if now_ms >= self._next_release:
            self._next_release = now_ms + RELEASE_EVERY_MS
            released: list[Message] = await node.store.call(store.release_held, now_ms)
            for message in released:
                node.notify(NodeNotice("message", message=message))
        outputs: list[Output] = []
        while self._requests:
            outputs += await self._answer(self._requests.popleft(), now_ms)
        for conversation in sorted(self._check):
            if self.policy.may_ask(conversation, now_ms):
                outputs += await self._ask(conversation, now_ms)
        for conversation in self.policy.summaries_due(now_ms):
            outputs += await self._tell(conversation, now_ms)
        if outputs:
            await node.effects.run(outputs)

    async def _answer(self, event: HistoryReceived, now_ms: int) -> list[Output]:
        node = self.node
        conversation = event.conversation
        cid = self.conversation_id(conversation)
        if cid is None:
            return []
        out: list[Output] = []
        if event.heads:
            heads = event.heads
            unknown = await node.store.call(_unknown, node.store.store, conversation, heads)
            if unknown:
                asks = self._asks.setdefault(conversation, set())
                asks.update(unknown[: MAX_WANTS - len(asks)])
                self._check.add(conversation)
        allowed = self.policy.answerable(conversation, event.wants, now_ms)
        if not allowed:
            return out
        own: list[Message] = await node.store.call(
            node.store.store.own_messages, conversation, allowed
        )
        for message in own:
            out += self._resend(cid, message, now_ms)
        if own:
            node.count("history.resent")
        return out

    def _resend(self, cid: bytes, message: Message, now_ms: int) -> list[Output]:
        engine = self.node.engine
        send = (
            engine.send_group
            if message.conversation.startswith(GROUP_PREFIX)
            else engine.send_channel
        )
        try:
            return send(
                cid,
                message.msg_id,
                message.text,
                now_ms,
                parents=message.parents,
                loose=message.loose,
                sent_ms=message.created_ms,
            )
        except MeshchatError as exc:
            log.info("could not resend %s: %s", message.msg_id.hex()[:12], exc)
            return []

    async def _ask(self, conversation: str, now_ms: int) -> list[Output]:
        node = self.node
        cid = self.conversation_id(conversation)
        if cid is None:
            self._check.discard(conversation)
            self._asks.pop(conversation, None)
            return []
        store = node.store.store
        # Parents of messages shown with a gap are asked for too, while their wait is recent.
        since = now_ms - 2 * HOLD_MS
        missing: tuple[bytes, ...] = await node.store.call(
            store.missing_parents, conversation, since
        )
        asks = self._asks.get(conversation, set())
        if asks:
            asks = set(await node.store.call(_unknown, store, conversation, tuple(asks)))
        wanted = [*missing, *(a for a in asks if a not in missing)]
        if not wanted:
            self._check.discard(conversation)
            self._asks.pop(conversation, None)
            return []
        ids = self.policy.wants(conversation, wanted, now_ms)
        if not ids:
            return []
        self._asks.pop(conversation, None)  # asked once; a later summary asks again
        node.count("history.asked")
        return node.engine.send_history(cid, (), ids, now_ms)

    async def _tell(self, conversation: str, now_ms: int) -> list[Output]:
        node = self.node
        cid = self.conversation_id(conversation)
        if cid is None:
            self.policy.forget(conversation)
            return []
        heads: tuple[bytes, ...] = await node.store.call(node.store.store.heads, conversation)
        self.policy.summarised(conversation, heads, now_ms)
        if not heads:
            return []
        node.count("history.told")
        return node.engine.send_history(cid, heads, (), now_ms)

    def next_deadline(self) -> int | None:
        """When :meth:`run` next has something to do (the worker wakes for it)."""
        times = [self.policy.next_ask(c) or 0 for c in self._check]
        summary = self.policy.next_deadline()
        if summary is not None:
            times.append(summary)
        return min(times, default=None)


def _unknown(store: Store, conversation: str, ids: tuple[bytes, ...]) -> list[bytes]:
    """The ids this store neither holds nor deleted in the conversation (on the store thread)."""
    return [msg_id for msg_id in ids if not store.knows(conversation, msg_id)]
