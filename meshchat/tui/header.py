"""The header's live part: what ``meshchat status`` says, kept current while the chat runs.

Some of it changes without a notice from the node: a relay's broker comes back, Bluetooth
finds an adapter, messages leave the outbox, carried messages expire. :class:`HeaderWatch`
looks every ``every_s`` seconds (the queued and carried counts come from the store, off the
loop) and calls ``changed`` only when something the header shows is different, so an idle
chat costs one small store read per period and no redraw.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from meshchat.errors import MeshchatError
from meshchat.node import Node
from meshchat.node._sync import summary
from meshchat.transports.base import TransportStatus

__all__ = ["HeaderState", "HeaderWatch"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HeaderState:
    """Everything the header shows besides our name and the link count."""

    transports: tuple[TransportStatus, ...] = ()
    gateway: bool = False
    #: our messages waiting in the outbox, and other nodes' messages we carry (None: unknown)
    queued: int | None = None
    carried: int | None = None
    #: gateways heard from other nodes (when this node is not one)
    heard: int = 0
    #: history sync with my other devices, in a few words ('' before any)
    sync: str = ""


class HeaderWatch:
    """Keeps a :class:`HeaderState` of ``node`` current; ``changed()`` after each change."""

    def __init__(self, node: Node, changed: Callable[[], None], every_s: float = 2.0) -> None:
        self.node = node
        self.changed = changed
        self.every_s = every_s
        self.state = HeaderState()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="meshchat-header")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def now(self) -> HeaderState:
        """The state from what the node knows without the store (the counts kept as read)."""
        node = self.node
        # details (counts, retry timers) change all the time and the header does not show them
        transports = tuple(
            TransportStatus(t.name, t.up, "", t.reason, t.state) for t in node.transport_status()
        )
        return HeaderState(
            transports,
            node.is_gateway,
            self.state.queued,
            self.state.carried,
            len(node.gateways()),
            summary(node.sync.status()),
        )

    async def refresh(self) -> None:
        """Read everything again; ``changed()`` if the header would show something new."""
        current = self.now()
        try:
            queued, carried = await self.node.backlog()
        except MeshchatError as exc:  # a store closing under us: keep the last counts
            log.debug("backlog unreadable: %s", exc)
        else:
            current = HeaderState(
                current.transports, current.gateway, queued, carried, current.heard, current.sync
            )
        if current != self.state:
            self.state = current
            self.changed()

    async def _run(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self.every_s)
