"""The amqtt plugin of the embedded relay broker (loaded by amqtt from its dotted path).

See :mod:`meshchat.transports.relay.broker` for the policy it enforces and
:mod:`meshchat.transports.relay._limits` for the per-client bounds. This module imports amqtt at
the top, so only the broker (never a node) imports it.

amqtt's plugin interface gives authentication, topic filtering (awaited on each PUBLISH, in the
publishing client's own loop, which is where a flood is slowed down) and events. Queueing a
message for an offline session is not a hook: the plugin puts its own function in place of the
broker instance's ``_retain_broadcast_message`` (as :class:`EmbeddedBroker` wraps its
connections), so each message is admitted or refused by the ledger before it is queued, with
no event task per queued message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

from amqtt.broker import RetainedApplicationMessage
from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin

from meshchat.transports.relay._config import DEFAULT_RETENTION_S
from meshchat.transports.relay._limits import Bucket, Ledger, Limits, Principal
from meshchat.transports.relay._tokens import TokenBook

__all__ = ["MailboxPolicyPlugin"]

log = logging.getLogger(__name__)

_INTERNAL = Principal("internal", True)
#: a publisher slowed down by more than this is refused instead (its message is dropped)
_MAX_WAIT_S = 2.0


class MailboxPolicyPlugin(BaseAuthPlugin, BaseTopicPlugin):  # type: ignore[misc]
    """Who may connect, topic rules, per-client limits, retention and per-mailbox quota."""

    @dataclass
    class Config:
        topic_prefix: str = "mc1"
        retention_s: int = DEFAULT_RETENTION_S
        sweep_s: float = 60.0
        #: token file (``name:hash`` lines); read again when it changes
        token_file: str | None = None
        #: amqtt's FileAuthPlugin checks user names and passwords (it runs beside this one)
        password_file: bool = False
        #: let clients without a token or password connect (as anonymous, with small limits)
        allow_anonymous: bool = False
        #: :class:`Limits` fields
        limits: dict[str, Any] = field(default_factory=dict)

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        cfg = self.config
        self.limits = Limits(**cfg.limits)
        self.ledger = Ledger(self.limits)
        prefix = re.escape(cfg.topic_prefix)
        self._pattern = re.compile(rf"{prefix}/[mcs]/[0-9a-f]{{32}}")
        self._tokens = TokenBook({})
        self._tokens_stamp: tuple[int, int] | None = None
        #: client id -> who it is; principal -> its publish bucket
        self._principals: dict[str, Principal] = {}
        self._buckets: dict[Principal, Bucket] = {}
        #: client id -> the topics it is subscribed to
        self._subs: dict[str, set[str]] = {}
        #: id(queued message) -> monotonic time it was queued
        self._queued_at: dict[int, float] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self.dropped_quota = 0
        self.dropped_expired = 0
        self.refused_topics = 0
        self.refused_clients = 0
        self.refused_subscriptions = 0
        self.slowed_publishes = 0
        self.refused_publishes = 0
        self.expired_sessions = 0

    # -- who connects ----------------------------------------------------------------------

    def _token_book(self) -> TokenBook:
        path = self.config.token_file
        if path is None:
            return self._tokens
        try:
            st = os.stat(path)
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        if stamp != self._tokens_stamp:
            self._tokens_stamp = stamp
            try:
                self._tokens = TokenBook.load(path)
            except Exception as exc:  # a broken file keeps the tokens read before
                log.warning("relay token file %s unreadable: %s", path, exc)
        return self._tokens

    async def authenticate(self, *, session: Any) -> bool | None:
        cfg = self.config
        session.is_anonymous = False  # amqtt queues nothing for anonymous sessions
        user = session.username
        result: bool | None
        if user and self._token_book().check(user, session.password):
            who, result = Principal(f"token:{user}", True), True
        elif user and cfg.password_file:
            who, result = Principal(f"user:{user}", True), None  # amqtt's FileAuthPlugin decides
        elif cfg.allow_anonymous:
            who, result = Principal(f"anon:{session.remote_address}", False), True
        else:
            self.refused_clients += 1
            return False
        if not await self._make_room(who, session.client_id):
            self.refused_clients += 1
            return False
        self._principals[session.client_id] = who
        return result

    async def _make_room(self, who: Principal, client_id: str) -> bool:
        """Keep ``who`` within its sessions: remove its longest-disconnected one if needed."""
        mine = [
            s
            for s in self.context.sessions
            if s.client_id != client_id and self._principals.get(s.client_id) == who
        ]
        excess = len(mine) + 1 - self.limits.sessions_for(who)
        idle = sorted(
            (s for s in mine if s.transitions.state != "connected"),
            key=lambda s: s.last_disconnect_time or 0,
        )
        if excess > len(idle):
            return False
        for session in idle[: max(0, excess)]:
            await self._remove_session(session.client_id)
        return True

    async def _remove_session(self, client_id: str) -> None:
        self.ledger.forget(client_id)
        self._subs.pop(client_id, None)
        self._principals.pop(client_id, None)
        self.expired_sessions += 1
        await self.context._broker_instance._cleanup_session(client_id)

    # -- topics, subscriptions and publish rate --------------------------------------------

    async def topic_filtering(
        self, *, session: Any = None, topic: str | None = None, action: Action | None = None
    ) -> bool:
        if action is Action.RECEIVE:
            return True
        if topic is None or not self._pattern.fullmatch(topic):
            self.refused_topics += 1
            return False
        who = self._principals.get(getattr(session, "client_id", None) or "", _INTERNAL)
        if action is Action.SUBSCRIBE:
            subs = self._subs.setdefault(session.client_id, set())
            if topic not in subs and len(subs) >= self.limits.subscriptions_for(who):
                self.refused_subscriptions += 1
                return False
            subs.add(topic)
            return True
        bucket = self._buckets.get(who)
        if bucket is None:
            bucket = self._buckets[who] = self.limits.bucket_for(who)
        wait = bucket.take(time.monotonic())
        if wait > _MAX_WAIT_S:
            bucket.level += 1.0  # a refused publish costs nothing
            self.refused_publishes += 1
            return False
        if wait > 0:
            self.slowed_publishes += 1
            await asyncio.sleep(wait)
        return True

    async def on_broker_client_unsubscribed(self, *, client_id: str, topic: str) -> None:
        self._subs.get(client_id, set()).discard(topic)

    async def on_broker_client_connected(self, *, client_id: str, client_session: Any) -> None:
        # amqtt hands the queued messages to the client now: start counting afresh.
        self.ledger.forget(client_id)
        if client_session.clean_session:
            self._subs.pop(client_id, None)

    # -- queueing for offline sessions -----------------------------------------------------

    async def on_broker_pre_start(self) -> None:
        broker = self.context._broker_instance
        broker._retain_broadcast_message = self._retain

    async def _retain(self, broadcast: dict[str, Any], qos: int, target: Any) -> None:
        """Queue a message for the offline session ``target``, if the ledger admits it."""
        source = broadcast["session"]
        who = _INTERNAL if source is None else self._principals.get(source.client_id, _INTERNAL)
        message = RetainedApplicationMessage(source, broadcast["topic"], broadcast["data"], qos)
        key = id(message)
        out = self.ledger.admit(
            target.client_id, key, who, message.topic, len(broadcast["data"] or b"")
        )
        self.dropped_quota += len(out)
        if key not in out:
            self._queued_at[key] = time.monotonic()
            target.retained_messages.put_nowait(message)
        out.discard(key)
        if out:
            queue = target.retained_messages
            for item in _drain(queue):
                if id(item) in out:
                    self._queued_at.pop(id(item), None)
                else:
                    queue.put_nowait(item)

    async def on_broker_retained_message(
        self, *, client_id: str | None, retained_message: Any
    ) -> None:
        if client_id is None and retained_message.data:
            # A retained topic message: not part of meshchat; keep nothing forever.
            self.context.retained_messages.pop(retained_message.topic, None)

    # -- retention and idle sessions -------------------------------------------------------

    async def on_broker_post_start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_loop())

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
            items = _drain(queue)
            kept = []
            for message in items:
                queued = self._queued_at.get(id(message), now)
                if queued < horizon:
                    dropped += 1
                    continue
                live[id(message)] = queued
                kept.append(message)
            if len(kept) < len(items):
                # the ledger is rebuilt from what is left (rare: a week-old backlog)
                self.ledger.forget(session.client_id)
                for message in kept:
                    source = message.source_session
                    who = _INTERNAL
                    if source is not None:
                        who = self._principals.get(source.client_id, _INTERNAL)
                    size = len(message.data or b"")
                    self.ledger.admit(session.client_id, id(message), who, message.topic, size)
            for message in kept:
                queue.put_nowait(message)
        self._queued_at = live
        self.dropped_expired += dropped
        return dropped

    async def expire_idle(self, now: float | None = None) -> int:
        """Remove anonymous sessions disconnected for longer than ``anonymous_idle_s``."""
        horizon = (time.time() if now is None else now) - self.limits.anonymous_idle_s
        idle = [
            s.client_id
            for s in list(self.context.sessions)
            if not self._principals.get(s.client_id, _INTERNAL).known
            and s.transitions.state != "connected"
            and (s.last_disconnect_time or 0) < horizon
        ]
        for client_id in idle:
            await self._remove_session(client_id)
        alive = {s.client_id for s in self.context.sessions}
        for client_id in [c for c in self._principals if c not in alive]:
            del self._principals[client_id]
            self._subs.pop(client_id, None)
        return len(idle)

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.sweep_s)
            try:
                dropped = self.sweep()
                expired = await self.expire_idle()
            except Exception:
                log.exception("relay sweep failed")
                continue
            if dropped or expired:
                log.info("relay dropped %d old messages, %d idle sessions", dropped, expired)

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
