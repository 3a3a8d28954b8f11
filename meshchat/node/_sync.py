"""History sync with my other devices, as the node carries it out.

The reconciliation itself is :class:`~meshchat.sync.driver.SyncDriver` over the node's store;
the engine's :class:`~meshchat.engine._sync.SyncGlue` takes sync and erasure blobs only from
my own devices and seals what goes back. This module joins them:

* **when** a sync starts: one of my devices comes into reach (its announce is heard: a node
  announces itself right after a link comes up), is added to my list, or something arrives
  from it (a carbon, a sync message); at most once per :data:`RESTART_MS` per device;
* **where** it runs: every step (the driver reads and writes the store) runs on the store's
  thread, one at a time, in the order the blobs arrived (one queue, one consumer task), and
  what it sends goes through the worker like every engine call; a large push is read a batch
  of records at a time and sent a message at a time, each once fewer than
  :data:`IN_FLIGHT_PARTS` control parts to that device are unacked (flow control by acks);
* **erasures**: a deletion here is told to my other devices at once (blob 20), and one told
  by them is applied here like a local deletion (rows erased, tombstones kept, queued
  messages cancelled); the tombstones also travel in every sync, for devices that were away;
* **progress**: :meth:`NodeSync.status` for ``meshchat device sync``, ``status`` and the UI.

A sync message that is malformed or oversteps a session's bounds is counted
(``sync.refused``) and logged; its session is dropped and the next meeting starts again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from meshchat.errors import MeshchatError
from meshchat.events import ErasedArrived, SyncArrived
from meshchat.identity import PublicIdentity
from meshchat.node._types import NodeNotice, contact_keys
from meshchat.store.records import Trust
from meshchat.sync.driver import Outcome, PeerProgress, SyncDriver

if TYPE_CHECKING:
    from meshchat.node import Node

__all__ = ["RESTART_MS", "NodeSync", "progress_json", "summary"]

log = logging.getLogger(__name__)

#: A device met again within this long does not start another session.
RESTART_MS = 30_000
#: Steps waiting at once; past it, the oldest sync messages are dropped (a new session heals).
MAX_QUEUED = 4_096
#: A push waits while this many control parts to that device are unacked (about two messages
#: of records): what a receiver's assembler holds per sender, and most of what the group book
#: keeps across a restart.
IN_FLIGHT_PARTS = 48
#: A push that finds no room for this long stops; the next session sends the rest.
PUSH_WAIT_MS = 120_000


@dataclass(frozen=True, slots=True)
class _Start:
    device: PublicIdentity


@dataclass(frozen=True, slots=True)
class _Erase:
    conversation: str
    msg_ids: tuple[bytes, ...]


_Step = _Start | SyncArrived | _Erase


def progress_json(p: PeerProgress, names: dict[bytes, str] | None = None) -> dict[str, Any]:
    """One device's sync as ``device sync --json`` and the control socket show it."""
    return {
        "device": p.peer.hex(),
        "name": (names or {}).get(p.peer, ""),
        "session": p.session.hex(),
        "started_ms": p.started_ms,
        "last_ms": p.last_ms,
        "rounds": p.rounds,
        "sent": p.sent,
        "received": p.received,
        "left": p.left,
        "done": p.done and p.error is None,
        "error": p.error,
    }


def summary(entries: list[dict[str, Any]]) -> str:
    """A few words for ``status`` and the UI header ('' when nothing synced yet)."""
    if not entries:
        return ""
    left = sum(int(e["left"]) for e in entries if not e.get("error"))
    if left:
        return f"syncing, {left:,} left"
    return "in sync" if all(e["done"] for e in entries) else "sync cut off"


class NodeSync:
    """The sync of one node with its other devices."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.driver = SyncDriver(node.store.store)
        self._met: dict[bytes, int] = {}
        self._queue: asyncio.Queue[_Step] | None = None
        self._task: asyncio.Task[None] | None = None
        self._progress: list[PeerProgress] = []

    # -- triggers (called on the loop, from the effects) -------------------------------------

    def met(self, device: PublicIdentity) -> None:
        """``device`` came into reach or sent something: sync, if it is mine and not lately."""
        node = self.node
        if not node.engine.accounts.is_own_device(device.node_id):
            return
        now = node.clock()
        last = self._met.get(device.node_id)
        if last is not None and now - last < RESTART_MS:
            return
        self._met[device.node_id] = now
        self._put(_Start(device))

    def arrived(self, event: SyncArrived) -> None:
        """Sync bytes from my device (the engine checked it is mine)."""
        self._met.setdefault(event.device.node_id, self.node.clock())
        self._put(event)

    def erased_there(self, event: ErasedArrived) -> None:
        """My device deleted messages: delete them here too."""
        self._put(_Erase(event.conversation, event.msg_ids))

    def _put(self, step: _Step) -> None:
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._task = asyncio.create_task(self._run(), name="meshchat-sync")
        if self._queue.qsize() >= MAX_QUEUED:
            self.node.count("sync.dropped")
            return
        self._queue.put_nowait(step)

    async def stop(self) -> None:
        task, self._task, self._queue = self._task, None, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- the consumer ------------------------------------------------------------------------

    async def _run(self) -> None:
        queue = self._queue
        while queue is not None:
            step = await queue.get()
            try:
                await self._step(step)
            except MeshchatError as exc:
                self.node.count("sync.refused")
                log.info("sync: %s", exc)
            except Exception:  # a bug must not stop syncing for good
                log.exception("sync step failed")
            # the driver lives on the store's thread: read its progress there
            self._progress = await self.node.store.call(self.driver.progress)

    async def _step(self, step: _Step) -> None:
        node = self.node
        store = node.store
        match step:
            case _Start(device):
                await node.submit(self._groups, device)
                out = await store.call(self.driver.start, device.node_id, node.clock())
                await self._send(device, out)
            case SyncArrived(device, data):
                outcome: Outcome = await store.call(
                    self.driver.receive, device.node_id, data, node.clock()
                )
                await self._send(device, outcome.out)
                while outcome.pushes is not None:
                    batch = await store.call(outcome.pushes.next)
                    if not batch:
                        break
                    for data in batch:
                        if not await self._room(device):
                            node.count("sync.push-stalled")
                            return
                        await self._send(device, [data])
                if outcome.applied is not None:
                    await self._applied(outcome.applied)
            case _Erase(conversation, msg_ids):
                await node.submit(self._erase, conversation, msg_ids)

    def _in_flight(self, device: PublicIdentity) -> int:
        outgoing = self.node.engine.groups.state.outgoing.values()
        return sum(1 for send in outgoing if send.recipient == device)

    async def _room(self, device: PublicIdentity) -> bool:
        """Wait until few enough control parts to ``device`` are unacked (parts to others,
        say group members who are away, do not hold sync up); False after PUSH_WAIT_MS."""
        node = self.node
        deadline = node.clock() + PUSH_WAIT_MS
        while self._in_flight(device) >= IN_FLIGHT_PARTS:
            if node.clock() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def _groups(self, device: PublicIdentity) -> None:
        """The groups this device is in, told to my ``device`` (it asks their admins to add
        it: see :mod:`meshchat.engine._groupsync`)."""
        node = self.node
        await node.effects.run(node.engine.group_sync.share(device, node.clock()))

    async def _send(self, device: PublicIdentity, datas: list[bytes]) -> None:
        if not datas:
            return
        node = self.node

        async def go() -> None:
            outputs = []
            for data in datas:
                outputs.extend(node.engine.sync.send(device, data, node.clock()))
            await node.effects.run(outputs)

        node.count("sync.sent")
        await node.submit(go)

    async def _applied(self, applied: Any) -> None:
        node = self.node
        changed = {conv for conv, _ in applied.stored} | {conv for conv, _ in applied.erased}
        changed |= set(applied.reads)  # read on my device: its unread count changed here
        if applied.erased:

            async def cancel() -> None:
                for _, msg_id in applied.erased:
                    node.engine.cancel(msg_id)  # a message erased while queued never goes

            await node.submit(cancel)
        if applied.contacts:
            await node.submit(self._contacts, tuple(applied.contacts))
        for message in applied.announced:
            node.files.message(message)  # a file my device sent or received: fetch it here
        for conversation in sorted(changed):
            node.notify(NodeNotice("history", conversation=conversation))
        if applied.stored or applied.erased or applied.contacts or applied.states or applied.reads:
            node.notify(NodeNotice("sync"))

    async def _contacts(self, node_ids: tuple[bytes, ...]) -> None:
        """Contacts my device added or re-trusted: the engine knows them now (as at start)."""
        node = self.node
        store = node.store
        for node_id in node_ids:
            contact = await store.call(store.store.get_contact, node_id)
            if contact is None:
                continue
            if contact.trust is Trust.COMPROMISED:
                node.engine.distrust(node_id)
                continue
            await node.effects.run(node.engine.add_contact(*contact_keys(contact), node.clock()))

    async def _erase(self, conversation: str, msg_ids: tuple[bytes, ...]) -> None:
        """Apply a deletion told by my device (on the worker, like a local one)."""
        node = self.node
        store = node.store
        every = await store.call(store.store.history, conversation, 1_000_000)
        wanted = set(msg_ids)
        own = [m for m in every if m.outgoing and (not wanted or m.msg_id in wanted)]
        if msg_ids:
            count = await store.call(store.store.delete_messages, conversation, msg_ids)
        else:
            count = await store.call(store.store.delete_conversation, conversation)
        for message in own:
            node.engine.cancel(message.msg_id)
        node.count("sync.erased")
        if count:
            node.notify(NodeNotice("history", conversation=conversation))

    # -- progress ----------------------------------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        """Each of my devices' latest sync, newest first (``device sync --json``)."""
        names = {d.node_id: d.name for d in self.node.engine.accounts.own.devices}
        return [progress_json(p, names) for p in self._progress]

    def left(self) -> int:
        """Items still to come from my devices, as far as this device knows."""
        return sum(p.left for p in self._progress if p.error is None)
