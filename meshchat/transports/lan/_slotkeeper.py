"""The LAN transport's slot bookkeeping: half-open connections, and which link gives way.

The choices are :class:`~meshchat.transports.slots.SlotPolicy`'s (pure); this module holds what
they are made over (the connections in their handshake, the node's word on contacts) and the
counters that ``meshchat peers`` shows. Floods are counted, and logged only at debug level, so
that they cannot fill a log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from meshchat.identity import PublicIdentity
from meshchat.transports.base import LinkHandler, LinkJudge
from meshchat.transports.slots import PendingView, SlotPolicy, SlotView
from meshchat.transports.stream import StreamLink

__all__ = ["SlotKeeper"]

logger = logging.getLogger(__name__)


def _now() -> float:
    return asyncio.get_running_loop().time()


class SlotKeeper:
    """Applies a :class:`SlotPolicy` to one transport's links and half-open connections."""

    def __init__(self, policy: SlotPolicy) -> None:
        self.policy = policy
        self._judge: LinkJudge | None = None
        self._pending: dict[asyncio.StreamWriter, PendingView] = {}
        #: links closed to make room or because they idled
        self.evicted = 0
        #: proven links refused for want of room
        self.refused = 0
        #: half-open connections dropped to make room
        self.dropped_pending = 0
        #: handshakes that failed or timed out
        self.failed_handshakes = 0

    def use_judge(self, handler: LinkHandler) -> None:
        """Ask ``handler`` which peers are contacts, if it can tell (:class:`LinkJudge`)."""
        self._judge = handler if isinstance(handler, LinkJudge) else None

    def describe(self) -> str:
        """The counters for a status line; empty while nothing happened."""
        if not (self.evicted or self.refused or self.dropped_pending or self.failed_handshakes):
            return ""
        return (
            f"; {self.evicted} evicted, {self.refused} refused, {self.dropped_pending} "
            f"half-open dropped, {self.failed_handshakes} handshakes failed"
        )

    # -- half-open connections -------------------------------------------------------------

    def pending(self, writer: asyncio.StreamWriter, address: str) -> None:
        """A connection from ``address`` begins its handshake; drop another if over a bound."""
        victim = self.policy.pending_victim(list(self._pending.values()), address)
        if isinstance(victim, asyncio.StreamWriter) and victim in self._pending:
            view = self._pending.pop(victim)
            self.dropped_pending += 1
            logger.debug("lan: dropping a pending handshake from %s to make room", view.address)
            victim.transport.abort()
        self._pending[writer] = PendingView(writer, address, _now())

    def done(self, writer: asyncio.StreamWriter) -> None:
        """The connection's handshake ended (either way)."""
        self._pending.pop(writer, None)

    # -- links ---------------------------------------------------------------------------------

    def prefers(self, peer: PublicIdentity) -> bool:
        if self._judge is None:
            return False
        try:
            return self._judge.prefers(peer)
        except Exception:
            logger.exception("lan: the link judge failed")
            return False

    def _views(self, links: Mapping[bytes, StreamLink]) -> list[SlotView]:
        return [
            SlotView(peer_id, self.prefers(link.peer), link.since, link.last_useful)
            for peer_id, link in links.items()
        ]

    def make_room(self, links: Mapping[bytes, StreamLink], newcomer: StreamLink) -> bool:
        """Called when ``links`` is full: evict the link ``newcomer`` outranks and return True,
        or return False (the newcomer must be refused)."""
        victim = self.policy.victim(self._views(links), self.prefers(newcomer.peer), _now())
        if not isinstance(victim, bytes) or victim not in links:
            self.refused += 1
            logger.debug("lan: no room for %s (%s)", newcomer.peer.short_id, newcomer.describe())
            return False
        self.evict(links[victim], f"making room for {newcomer.peer.short_id}")
        return True

    def sweep(self, links: Mapping[bytes, StreamLink]) -> None:
        """Close idle strangers' links while the table is crowded."""
        for key in self.policy.idle(self._views(links), _now()):
            link = links.get(key) if isinstance(key, bytes) else None
            if link is not None:
                self.evict(link, "idle")

    def evict(self, link: StreamLink, why: str) -> None:
        logger.info("lan: closing link %s to %s: %s", link.link_id, link.peer.short_id, why)
        self.evicted += 1
        link.shutdown(why)
