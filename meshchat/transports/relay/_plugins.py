"""amqtt plugins for the embedded relay broker (loaded by amqtt from their dotted paths).

See :mod:`meshchat.transports.relay.broker` for the policy they enforce. This module imports
amqtt at the top, so only the broker (never a node) imports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin

from meshchat.transports.relay._config import DEFAULT_RETENTION_S

__all__ = ["MailboxPolicyPlugin", "OpenAuthPlugin"]

log = logging.getLogger(__name__)


class OpenAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]
    """Accept every client as a named client (so its persistent session queues messages)."""

    async def authenticate(self, *, session: Any) -> bool:
        session.is_anonymous = False
        return True


class MailboxPolicyPlugin(BaseTopicPlugin):  # type: ignore[misc]
    """Topic rules, per-message retention and per-mailbox quota (see the module docstring)."""

    @dataclass
    class Config:
        topic_prefix: str = "mc1"
        retention_s: int = DEFAULT_RETENTION_S
        mailbox_quota: int = 1000
        sweep_s: float = 60.0

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        cfg = self.config
        self._pattern = re.compile(rf"{re.escape(cfg.topic_prefix)}/[mc]/[0-9a-f]{{32}}")
        #: id(queued message) -> monotonic time it was queued
        self._queued_at: dict[int, float] = {}
        #: (client id, topic) -> messages queued (an upper bound; recounted when over quota)
        self._counts: dict[tuple[str, str], int] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self.dropped_quota = 0
        self.dropped_expired = 0
        self.refused_topics = 0

    async def topic_filtering(
        self, *, session: Any = None, topic: str | None = None, action: Action | None = None
    ) -> bool:
        if action is Action.RECEIVE:
            return True
        if topic is not None and self._pattern.fullmatch(topic):
            return True
        self.refused_topics += 1
        return False

    async def on_broker_post_start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_loop())

    async def on_broker_client_connected(self, *, client_id: str, client_session: Any) -> None:
        # amqtt hands the queued messages to the client now: start counting afresh.
        for key in [k for k in self._counts if k[0] == client_id]:
            del self._counts[key]

    async def on_broker_retained_message(
        self, *, client_id: str | None, retained_message: Any
    ) -> None:
        if client_id is None:
            if retained_message.data:
                # A retained topic message: not part of meshchat; keep nothing forever.
                self.context.retained_messages.pop(retained_message.topic, None)
            return
        self._queued_at[id(retained_message)] = time.monotonic()
        key = (client_id, retained_message.topic)
        self._counts[key] = self._counts.get(key, 0) + 1
        if self._counts[key] > self.config.mailbox_quota:
            session = self.context.get_session(client_id)
            if session is not None:
                self._enforce_quota(session, retained_message.topic)

    def _enforce_quota(self, session: Any, topic: str) -> None:
        queue = session.retained_messages
        items = _drain(queue)
        same = [m for m in items if m.topic == topic]
        excess = len(same) - self.config.mailbox_quota
        drop = {id(m) for m in same[:excess]} if excess > 0 else set()
        for message in items:
            if id(message) in drop:
                self._queued_at.pop(id(message), None)
                self.dropped_quota += 1
            else:
                queue.put_nowait(message)
        self._counts[(session.client_id, topic)] = len(same) - len(drop)

    def sweep(self, now: float | None = None) -> int:
        """Drop queued messages older than the retention; returns how many were dropped."""
        now = time.monotonic() if now is None else now
        horizon = now - self.config.retention_s
        live: dict[int, float] = {}
        dropped = 0
        for session in list(self.context.sessions):
            queue = session.retained_messages
            if queue.empty():
                continue
            for message in _drain(queue):
                queued = self._queued_at.get(id(message), now)
                if queued < horizon:
                    dropped += 1
                    continue
                live[id(message)] = queued
                queue.put_nowait(message)
        self._queued_at = live
        self.dropped_expired += dropped
        return dropped

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.sweep_s)
            try:
                dropped = self.sweep()
            except Exception:
                log.exception("relay sweep failed")
                continue
            if dropped:
                log.info("relay dropped %d messages past their retention", dropped)

    async def close(self) -> None:
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper


def _drain(queue: asyncio.Queue[Any]) -> list[Any]:
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items
