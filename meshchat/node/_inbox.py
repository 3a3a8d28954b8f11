"""The node's inbox and the worker that empties it.

Theory of operation. Transports call the node's :class:`~meshchat.transports.base.LinkHandler`
methods from their own tasks; the node never runs engine code there. Each call becomes a typed
item (:class:`LinkUp`, :class:`LinkDown`, :class:`FrameIn`) in a bounded :class:`Inbox`; user
commands become :class:`Command` items in the same inbox, so they are serialised with the
traffic. A single :class:`Worker` task takes the items in order: it feeds the engine, then has
the effects of its outputs carried out (:mod:`meshchat.node._effects`): every store write
committed before any transmission.

Frames queued together form one batch: the engine takes them one after the other and their
writes share one commit (one disk sync), after which their transmissions go out. Any other item
ends a batch and is handled on its own, after the timers and housekeeping that follow every
item or batch, so effects keep the order of the inbox.

Fairness. Each link has its own lane in the inbox, and the lanes are served round robin
(:class:`Inbox`): one link writing junk as fast as it can fills only its own lane, and loses
only its own frames, while the frames (messages, acks) of every other link still get their turn.
Frames beyond the bounds are dropped (counted) rather than buffered without bound; the senders'
retries and store-and-forward recover them. Link changes and commands are never dropped. A link
whose frames were dropped is also asked to hold its reading until its lane is half empty
(:meth:`~meshchat.transports.base.Link.hold_reading`): a TCP peer that floods is then slowed by
TCP's flow control, and costs the node little more than the frames it takes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from meshchat.engine._files import is_file_frame
from meshchat.node._effects import Plan
from meshchat.node._types import HOUSEKEEPING_S, MAX_BATCH
from meshchat.router.actions import Drop
from meshchat.transports.base import Link

if TYPE_CHECKING:
    from meshchat.node import Node

__all__ = ["Command", "FrameIn", "Inbox", "Item", "LinkDown", "LinkUp", "Worker"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LinkUp:
    link: Link


@dataclass(frozen=True, slots=True)
class LinkDown:
    link: Link


@dataclass(frozen=True, slots=True)
class FrameIn:
    """A received frame; ``link`` is None for a frame an internet transport injected."""

    link: Link | None
    frame: bytes


@dataclass(frozen=True, slots=True)
class Command:
    """A user command: ``run`` is awaited on the worker, its result set on ``future``."""

    run: Callable[[], Awaitable[Any]]
    future: asyncio.Future[Any]


Item = LinkUp | LinkDown | FrameIn | Command


#: the lane of frames injected without a link, and the lane of user commands (link ids never
#: start with a NUL)
INJECTED = "\x00injected"
COMMANDS = "\x00commands"
#: appended to a link's id: the lane of its file frames (served in turn with its other lane)
FILES = "\x00files"


class Inbox:
    """Per-link lanes served round robin, bounded per link and overall.

    Each link's items (its link-up, frames and link-down, in the order the transport reported
    them) queue in the link's own lane; user commands queue in a lane of their own. The worker
    takes one item from each lane in turn, so a frame of one link waits behind at most one item
    of every other busy lane, never behind a flood. A lane holds at most ``link_size`` frames
    and all lanes together ``size``: a frame beyond its lane's bound is dropped; when the inbox
    is full, a frame is dropped from the longest lane (the arriving one if that lane is the
    longest), so only the link that floods loses frames. Link changes and commands are never
    dropped. A link that lost a frame, or whose frame came while the inbox was full, is asked
    to hold its reading (:meth:`Link.hold_reading`) until its lane is down to half, so a flood
    from one link or spread over many waits in the senders' transports (TCP's flow control)
    instead of being read, opened and dropped: at most one frame lost per hold.
    """

    def __init__(self, size: int, link_size: int, count: Callable[[str], None]) -> None:
        self._lanes: dict[str, deque[Item]] = {}
        #: keys of the lanes holding items, in turn order (the next lane to serve first)
        self._turns: deque[str] = deque()
        self._size = size
        self._link_size = link_size
        self._frames = 0
        self._count = count
        self._ready = asyncio.Event()
        #: lanes whose link holds its reading until they have room again (see :meth:`room`)
        self._waiters: dict[str, asyncio.Future[None]] = {}
        self._below: dict[str, int] = {}  # the length at which each waiter is done

    def __len__(self) -> int:
        return sum(len(lane) for lane in self._lanes.values())

    def put(self, item: Item) -> bool:
        """Queue ``item`` in its lane; False if it was dropped (see the class for when)."""
        full = False
        if isinstance(item, Command):
            key = COMMANDS
        elif isinstance(item, FrameIn):
            key = self.lane_of(item)
            if not self._room_for_frame(key):
                self._count("drop.inbox-full")
                self._hold(key, item)
                return False
            self._frames += 1
            full = self._frames >= self._size
        else:
            key = item.link.link_id
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = deque()
            self._turns.append(key)
        lane.append(item)
        self._ready.set()
        if isinstance(item, FrameIn) and full:
            self._hold(key, item)  # in, but the inbox is full: read on after this lane's turns
        return True

    @staticmethod
    def lane_of(item: FrameIn) -> str:
        """The lane of a frame: its link's, or for a file frame its link's file lane (so a
        text behind a burst of pieces waits for one of them, not all)."""
        if item.link is None:
            return INJECTED
        return item.link.link_id + FILES if is_file_frame(item.frame) else item.link.link_id

    def room(self, key: str, below: int | None = None) -> asyncio.Future[None]:
        """Done once lane ``key`` is down to ``below`` frames (half its bound unless given): a
        link whose frames were dropped holds its reading until then (see
        :meth:`Link.hold_reading`)."""
        lane = self._lanes.get(key)
        below = self._link_size // 2 if below is None else below
        waiter = self._waiters.get(key)
        if waiter is None or waiter.done():
            waiter = asyncio.get_running_loop().create_future()
            if lane is not None and len(lane) > below:
                self._waiters[key] = waiter
                self._below[key] = below
            else:
                waiter.set_result(None)
        return waiter

    def _room_for_frame(self, key: str) -> bool:
        """Whether a frame for lane ``key`` gets in, dropping another lane's newest frame
        when the inbox is full and that lane is longer."""
        lane = self._lanes.get(key)
        length = len(lane) if lane is not None else 0
        if length >= self._link_size:
            return False
        if self._frames < self._size:
            return True
        longest = max(self._lanes, key=lambda k: len(self._lanes[k]))
        victim = self._lanes[longest]
        if len(victim) <= length or not isinstance(victim[-1], FrameIn):
            return False
        dropped = victim.pop()
        self._frames -= 1
        self._count("drop.inbox-full")
        if isinstance(dropped, FrameIn):
            self._hold(longest, dropped)
        return True

    def _hold(self, key: str, dropped: FrameIn) -> None:
        """A frame of lane ``key`` was dropped: its link is read again once the lane is down
        to half (of its bound, or of its length if shorter: a flood spread over many links
        fills the inbox before any lane), so a link that floods is slowed down by its own
        transport's flow control instead of being read and dropped."""
        if dropped.link is not None:
            lane = self._lanes.get(key)
            below = min(self._link_size, len(lane) if lane is not None else 0) // 2
            dropped.link.hold_reading(self.room(key, below))

    def take(self) -> Item | None:
        """The next item (the head of the lane whose turn it is), or None when empty."""
        turns = self._turns
        if not turns:
            self._ready.clear()
            return None
        key = turns[0]
        lane = self._lanes[key]
        item = lane.popleft()
        turns.rotate(-1)
        if key in self._waiters and len(lane) <= self._below[key]:
            del self._below[key]
            waiter = self._waiters.pop(key)
            if not waiter.done():
                waiter.set_result(None)
        if not lane:
            turns.pop()
            del self._lanes[key]
        if isinstance(item, FrameIn):
            self._frames -= 1
        return item

    async def wait(self, timeout: float) -> None:
        """Wait until an item is queued, at most ``timeout`` seconds (then :meth:`take` it)."""
        if self._turns:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._ready.wait()


class Worker:
    """The node's one worker task: items in, engine outputs carried out, timers run."""

    def __init__(self, node: Node) -> None:
        self.node = node

    async def run(self) -> None:
        node = self.node
        held: Item | None = None  # taken from the inbox, not handled yet
        while True:
            now = node.clock()
            deadline = min(
                (
                    t
                    for t in (node.engine.next_deadline(), node.catchup.next_deadline())
                    if t is not None
                ),
                default=None,
            )
            wait = HOUSEKEEPING_S
            if deadline is not None:
                wait = max(0.0, min(wait, (deadline - now) / 1000))
            item, held = held, None
            if item is None:
                await node.inbox.wait(wait)
                item = node.inbox.take()
            try:
                if item is not None:
                    held = await self.handle(item)
                await node.effects.run(node.engine.tick(node.clock()))
                await node.housekeeping()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("node worker error (continuing)")

    async def handle(self, item: Item) -> Item | None:
        """Handle ``item``; if it is a frame, with the frames queued right behind it.

        Consecutive frames (at most :data:`MAX_BATCH`) form one batch: the engine takes each in
        turn, and the store writes of the whole batch go to disk in one commit (one disk sync
        instead of one per frame) before any of the batch's transmissions or notices, which
        then follow in the engine's order. Any other item ends the batch and is returned, to
        be handled after the timers and housekeeping that follow every item or batch; so does
        a file frame once the batch holds another frame (a text, an ack), which then leaves
        without waiting for the pieces taken after it.
        """
        node = self.node
        match item:
            case LinkUp(link):
                await node.on_link_up(link)
                return None
            case LinkDown(link):
                await node.on_link_down(link)
                return None
            case Command(run, future):
                try:
                    result = await run()
                except Exception as exc:
                    if not future.done():
                        future.set_exception(exc)
                else:
                    if not future.done():
                        future.set_result(result)
                return None
            case FrameIn():
                pass
        plan = Plan()
        taken = 0
        after: Item | None = None
        frame: Item | None = item
        urgent = False  # a frame other than a file frame is in the batch
        while isinstance(frame, FrameIn):
            if is_file_frame(frame.frame):
                if urgent:  # the batch's text leaves now, not after the pieces behind it
                    after = frame
                    break
            else:
                urgent = True
            came_on = frame.link
            link_id = came_on.link_id if came_on is not None else None
            try:
                if link_id is None or link_id in node.links:  # not from a link gone meanwhile
                    out = node.engine.receive(link_id, frame.frame, node.clock())
                    if came_on is not None and not any(isinstance(o, Drop) for o in out):
                        came_on.credit()  # a new, valid packet: links that bring them are kept
                    node.effects.plan(plan, out)
            except Exception:
                log.exception("receiving a frame failed (continuing)")
            taken += 1
            if taken >= MAX_BATCH:
                break
            frame = node.inbox.take()
            if not isinstance(frame, FrameIn):
                after = frame
        try:
            await node.effects.carry_out(plan)
        except Exception:
            # the batch's transmissions are lost (as when one frame's commit failed), but the
            # item taken after it is still handled: a user command must get its answer
            log.exception("storing received frames failed (continuing)")
        return after
