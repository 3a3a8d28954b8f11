"""The chat controller: binds a running :class:`Node` to the :class:`ChatScreen`.

Theory of operation. Everything runs on the node's asyncio loop. The screen calls back
synchronously (a submitted line, Ctrl-N/Ctrl-P, Enter on a conversation); the controller
parses the line at once and runs the command as a task, so a slow store call never blocks
input. Every task goes through :meth:`ChatController._guard`, which turns a
:class:`MeshchatError` into a red line in the message pane and anything else into a logged
"internal error" line: the screen never shows a traceback.

The node's notices arrive synchronously too:

* ``message`` — for the open conversation, append the line when it goes after every line
  shown (the common case), else re-read the conversation's order from the node: a message
  released from waiting, or placed among messages already shown, lands where the causal
  order puts it. An incoming one is marked read at once; then the conversation list is
  refreshed for unread counts;
* ``history`` — messages of a conversation were deleted or released: re-read it if open;
* ``state`` — update the delivery mark of a shown message, forward only (store/states.py);
* ``links`` / ``peer`` — redraw the header and the neighbours pane;
* ``group`` — compare every group with the last state seen and write what changed (added,
  removed, members, admins; :mod:`meshchat.tui.groups`) as system lines, then refresh the
  list. Groups are listed as ``+name``; one we were removed from is marked, and sending to
  it is refused before it reaches the node.

Opening a conversation reads its messages from the store; notices for it that arrive during
that read are held and replayed afterwards, so neither a message nor a state change is lost
or shown twice (lines are keyed by message id). Gap, late and waiting markers come from
:mod:`meshchat.logview` through :mod:`meshchat.tui.view`.

``/delete`` only asks: it remembers exactly which messages (or the whole conversation) and
says what; ``/yes`` on the next line deletes them. Any other line, or opening another
conversation, forgets the question, so a stale ``/yes`` deletes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from datetime import tzinfo
from pathlib import Path
from typing import Any

from meshchat.bridges.marks import network_mark
from meshchat.crypto.channel import PUBLIC_CHANNEL
from meshchat.display import safe_line
from meshchat.errors import MeshchatError
from meshchat.events import GroupChanged
from meshchat.lookalike import lookalikes
from meshchat.node import NO_INTERNET_HINT, Node, NodeNotice
from meshchat.store.records import Message, Trust
from meshchat.store.states import advance
from meshchat.tui.actions import Actions, PendingDelete, group_id_of
from meshchat.tui.commands import (
    Command,
    Yes,
    parse_line,
)
from meshchat.tui.files import marker
from meshchat.tui.groups import (
    GroupState,
    group_changes,
    group_label,
    snapshot,
)
from meshchat.tui.header import HeaderWatch
from meshchat.tui.view import (
    ConvEntry,
    Markup,
    Note,
    conversation_entries,
    gap_markup,
    header_markup,
    message_markup,
    neighbour_markup,
    note_markup,
    short_id,
    step,
    stranger_label,
    timeline,
)
from meshchat.tui.widgets import MAX_MESSAGE_LINES, ChatScreen, MessageLine

__all__ = ["HISTORY_LIMIT", "ChatController"]

log = logging.getLogger(__name__)

#: Messages loaded when a conversation is opened.
HISTORY_LIMIT = 200
#: Notes kept per conversation (command output and errors are not stored).
NOTES_LIMIT = 100
_DM = "dm:"
_GROUP = "grp:"


class ChatController:
    """Drives one :class:`ChatScreen` for one node; :meth:`start` it, :meth:`close` it."""

    def __init__(
        self,
        node: Node,
        *,
        redraw: Callable[[], None],
        on_quit: Callable[[], None],
        tz: tzinfo | None = None,
        unicode: bool = True,
        bell: Callable[[], None] | None = None,
        keep_name: Callable[[str], Awaitable[str]] | None = None,
        header_every_s: float = 2.0,
        voice_dir: Path | None = None,
    ) -> None:
        self.node = node
        #: where voice notes made here are kept (and served from); None: none are made
        self.voice_dir = voice_dir
        #: rings the terminal's bell (on a direct message); None: silent
        self.bell = bell
        #: keeps a new display name for the next runs; says where (None: for this run only)
        self.keep_name = keep_name
        self.header = HeaderWatch(node, self.show_links, header_every_s)
        self._rung: dict[bytes, None] = {}
        self.redraw = redraw
        self.on_quit = on_quit
        self.tz = tz
        self.unicode = unicode
        self.screen = ChatScreen(self.submit, self.step, self.open_soon, on_quit)
        self.current = PUBLIC_CHANNEL
        self.entries: list[ConvEntry] = []
        self.contacts: dict[bytes, str] = {}
        self.trust: dict[bytes, Trust] = {}
        #: contact names (and ours) that look like another of them -> one they look like
        self.lookalikes: dict[str, str] = {}
        self.channels: list[str] = [PUBLIC_CHANNEL]
        #: every group as the list last showed it
        self.groups: dict[bytes, GroupState] = {}
        #: every group as the last ``group`` notice left it: what the next one is compared with
        self._seen_groups: dict[bytes, GroupState] = {}
        #: the open conversation's message lines, in the order shown
        self.lines: dict[bytes, tuple[Message, MessageLine]] = {}
        #: what the last /delete asked about, until /yes or any other line
        self.pending: PendingDelete | None = None
        self._reloading: asyncio.Task[None] | None = None
        self._reload_again = False
        self.notes: dict[str, list[Note]] = {}
        #: conversation -> the newest store row ``/clear`` took off its view
        self.cleared: dict[str, int] = {}
        self._held: list[NodeNotice] | None = None
        self._generation = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._refreshing: asyncio.Task[None] | None = None
        self._refresh_again = False
        self._unsubscribe: Callable[[], None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self.actions = Actions(self)

    # -- life cycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        self._seen_groups = self._group_states()
        self._unsubscribe = self.node.subscribe(self.on_notice)
        self.show_links()
        await self.refresh_list()
        await self.open(PUBLIC_CHANNEL)
        if self.node.gateway_reason() == NO_INTERNET_HINT:
            self.note(
                "messages reach only the people of this mesh (LAN, Bluetooth). To reach "
                "other meshes and offline contacts through the internet: " + NO_INTERNET_HINT
            )
        self.header.start()
        # Not one of the tracked tasks: it lives as long as the screen, and idle() must not
        # wait for it.
        self._watcher = asyncio.create_task(self._leave_when_node_stops())

    async def _leave_when_node_stops(self) -> None:
        """Quit when the node is asked to stop (a panic here or from another terminal)."""
        await self.node.stop_requested.wait()
        self.on_quit()

    async def close(self) -> None:
        await self.header.stop()
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
            self._watcher = None
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def idle(self) -> None:
        """Wait until every task started so far (and those they start) has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- tasks and notes -----------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(self._guard(coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        # A task cancelled before it ran (at close) never awaited ``coro``: close it quietly.
        task.add_done_callback(lambda _task: coro.close())
        return task

    async def _guard(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except MeshchatError as exc:
            self.note(str(exc), error=True)
        except Exception as exc:
            log.exception("command failed")
            self.note(f"internal error: {type(exc).__name__}: {exc}", error=True)
        finally:
            self.redraw()

    def note(self, text: str, error: bool = False, conversation: str | None = None) -> Note:
        """Write a line of our own into ``conversation`` (default: the open one)."""
        key = self.current if conversation is None else conversation
        note = Note(self.node.clock(), text, error)
        notes = self.notes.setdefault(key, [])
        notes.append(note)
        del notes[:-NOTES_LIMIT]
        if key == self.current:
            self.screen.add_message(note_markup(note, self.node.clock(), tz=self.tz))
        self.redraw()
        return note

    def forget_note(self, note: Note, conversation: str) -> None:
        """Take a note out of ``conversation`` (shown no more from its next reading)."""
        notes = self.notes.get(conversation, [])
        if note in notes:
            notes.remove(note)

    # -- input ---------------------------------------------------------------------------------

    def submit(self, line: str) -> None:
        try:
            command = parse_line(line)
        except MeshchatError as exc:
            self.note(str(exc), error=True)
            return
        if command is not None:
            if not isinstance(command, Yes):
                self.pending = None
            self.spawn(self.execute(command))

    async def execute(self, command: Command) -> None:
        """Carry out one command (see :mod:`meshchat.tui.actions`)."""
        await self.actions.execute(command)

    # -- groups ----------------------------------------------------------------------------------

    def _group_states(self) -> dict[bytes, GroupState]:
        return {g.group_id: snapshot(g) for g in self.node.groups()}

    def member_name(self, node_id: bytes) -> str:
        """A group member as the screen shows them: contact, announced name or short id."""
        name = self.contacts.get(node_id)
        if name:
            return name
        announced = self.node.announced_peers().get(node_id)
        return f"~{announced}" if announced else short_id(node_id)

    def _on_refused(self, event: GroupChanged) -> None:
        who = event.by.short_id if event.by is not None else "someone"
        group = group_label(event.name)
        self.note(
            f"{who}, who is not one of your contacts, tried to add you to {group}: refused."
            " If you know them, add their card (/add) and ask them to add you again."
        )

    def _on_groups(self) -> None:
        """A group changed: tell the user what, then refresh the list and the title."""
        states = self._group_states()
        me = self.node.identity.node_id
        for item in group_changes(self._seen_groups, states.values(), me, self.member_name):
            self.note(item.text, conversation=item.conversation)
            if item.loud and item.conversation != self.current:
                self.note(item.text)
        self._seen_groups = states
        self.request_refresh()

    # -- conversations ---------------------------------------------------------------------------

    def step(self, delta: int) -> None:
        key = step(self.entries, self.current, delta)
        if key != self.current:
            self.open_soon(key)

    def open_soon(self, key: str) -> None:
        self.spawn(self.open(key))

    async def open(self, key: str) -> None:
        """Show conversation ``key``: its messages in their causal order, with our notes."""
        if key != self.current:
            self.pending = None
        self.current = key
        self._show_title()
        self.request_refresh()
        if not await self._load(key, keep_place=False):
            return
        await self.node.mark_read(key)
        self.request_refresh()

    async def _load(self, key: str, keep_place: bool) -> bool:
        """Read ``key``'s order from the node and show it; False if another load took over.

        With ``keep_place``, a pane the user scrolled up stays on the same message.
        """
        self._generation += 1
        generation = self._generation
        self._held = []
        try:
            messages = await self.node.history(key, HISTORY_LIMIT)
            mark = self.cleared.get(key)
            if mark is not None:
                messages = [m for m in messages if m.row_id > mark]
        except BaseException:
            if generation == self._generation:
                self._held = None  # hold nothing back for a pane that failed to load
            raise
        if generation != self._generation:
            return False  # another load started meanwhile and owns the pane now
        now = self.node.clock()
        rows: list[tuple[Message | None, Markup]] = []
        for item in timeline(messages, self.notes.get(key, [])):
            if isinstance(item, Message) and item.order_ms is not None and item.missing > 0:
                rows.append((None, gap_markup(item.missing)))
            rows.append((item if isinstance(item, Message) else None, self._markup(item, now)))
        rows = rows[-MAX_MESSAGE_LINES:]
        focus = None
        focused = self.screen.focused_message() if keep_place else None
        if focused is not None:
            ids = [m.msg_id if m is not None else None for m, _ in rows]
            for msg_id, (_m, text) in self.lines.items():
                if text is focused and msg_id in ids:
                    focus = ids.index(msg_id)
        texts = self.screen.set_messages([markup for _m, markup in rows], focus)
        self.lines = {
            m.msg_id: (m, text)
            for (m, _markup), text in zip(rows, texts, strict=True)
            if m is not None
        }
        held, self._held = self._held, None
        for notice in held:
            self.on_notice(notice)
        self.redraw()
        return True

    def request_reload(self) -> None:
        """Re-read the open conversation's order soon; requests made meanwhile are merged."""
        if self._reloading is not None and not self._reloading.done():
            self._reload_again = True
            return
        self._reloading = self.spawn(self._reload_until_quiet())

    async def _reload_until_quiet(self) -> None:
        while True:
            self._reload_again = False
            await self._load(self.current, keep_place=True)
            if not self._reload_again:
                return

    def clear_view(self) -> None:
        """``/clear``: take what the open conversation shows off its view (not the store)."""
        key = self.current
        shown = [m.row_id for m in self.shown_messages()]
        self.cleared[key] = max([*shown, self.cleared.get(key, 0)])
        self.notes.pop(key, None)
        self.pending = None
        self.request_reload()

    def shown_messages(self) -> list[Message]:
        """The open conversation's messages as the pane shows them, oldest first."""
        return [message for message, _text in self.lines.values()]

    def _markup(self, item: Message | Note, now: int) -> Markup:
        if isinstance(item, Note):
            return note_markup(item, now, tz=self.tz)
        transfer = marker(self.node.files.transfer_of(item.msg_id))
        return message_markup(
            item,
            self.node.name,
            now,
            tz=self.tz,
            unicode=self.unicode,
            lookalikes=self.lookalikes,
            transfer=transfer,
        )

    def label(self, key: str) -> str:
        """How the screen names conversation ``key``."""
        for entry in self.entries:
            if entry.key == key:
                if key.startswith(_DM) and not entry.label.startswith(("?", "~")):
                    return f"{entry.label} ({key[len(_DM) : len(_DM) + 8]})"
                return entry.label
        if key.startswith(_GROUP):
            state = self.groups.get(group_id_of(key))
            return state.label if state is not None else "+?" + key[len(_GROUP) : len(_GROUP) + 8]
        if key.startswith(_DM):
            return stranger_label(key, self.node.announced_peers())
        return key

    def _trust_note(self, key: str) -> str:
        """How far the contact of a direct conversation is trusted, for the pane's title; for
        a group, its size, or that we were removed."""
        if key.startswith(_GROUP):
            state = self.groups.get(group_id_of(key))
            if state is None:
                return "  unknown group"
            if not state.member:
                return "  you were removed: nothing new can be read or sent here"
            count = len(state.members)
            return f"  private group, {count} member{'' if count == 1 else 's'}"
        if (mark := network_mark(key)) is not None:
            return f"  {mark}"
        if not key.startswith(_DM):
            return ""
        try:
            node_id = bytes.fromhex(key[len(_DM) :])
        except ValueError:
            return ""
        trust = self.trust.get(node_id)
        if trust is Trust.VERIFIED:
            return "  verified"
        if trust is Trust.COMPROMISED:
            return "  !! KEYS COMPROMISED: do not trust this conversation"
        if trust is Trust.UNVERIFIED:
            return f"  unverified: /verify {self.contacts.get(node_id, '')}"
        return f"  not a contact: /add {node_id.hex()[:8]} to keep them"

    def _show_title(self) -> None:
        label = self.label(self.current)
        self.screen.set_conversation_title(safe_line(label + self._trust_note(self.current)))
        self.screen.set_prompt(label.split(" (")[0])
        self.screen.set_conversations(self.entries, self.current)

    def request_refresh(self) -> None:
        """Refresh the conversation list soon; requests made meanwhile are merged."""
        if self._refreshing is not None and not self._refreshing.done():
            self._refresh_again = True
            return
        self._refreshing = self.spawn(self._refresh_until_quiet())

    async def _refresh_until_quiet(self) -> None:
        while True:
            self._refresh_again = False
            await self.refresh_list()
            if not self._refresh_again:
                return

    async def refresh_list(self) -> None:
        node = self.node
        summaries = await node.conversations()
        channels = await node.channels()
        contacts = await node.contacts()
        known = dict(self.contacts)
        self.contacts = {c.node_id: c.name for c in contacts}
        self.trust = {c.node_id: c.trust for c in contacts}
        active = [c.name for c in contacts if c.trust is not Trust.COMPROMISED]
        self.lookalikes = lookalikes([*active, self.node.name])
        self.channels = [c.name for c in channels]
        self.groups = self._group_states()
        # The open conversation is being read: it shows no unread count.
        summaries = [replace(s, unread=0) if s.name == self.current else s for s in summaries]
        self.entries = conversation_entries(
            self.channels,
            self.contacts,
            summaries,
            self.groups.values(),
            self.lookalikes,
            self.node.announced_peers(),
        )
        if known != self.contacts:
            self.show_links()  # a neighbour may have become a contact
        self._show_title()
        self.redraw()

    # -- notices ---------------------------------------------------------------------------------

    def on_notice(self, notice: NodeNotice) -> None:
        if notice.kind in {"links", "peer"}:
            self.show_links()
        elif notice.kind == "group":
            if notice.group is not None and notice.group.what == "refused":
                self._on_refused(notice.group)
            self._on_groups()
        elif notice.kind == "message" and notice.message is not None:
            self._on_message(notice, notice.message)
        elif notice.kind == "link" and notice.link is not None:
            self.actions.devices.on_link(notice.link)
        elif notice.kind == "talk":
            self.actions.voice.on_talk()
        elif notice.kind == "devices":
            if notice.devices is not None:
                self.actions.devices.on_devices(notice.devices)
            self.show_links()
        elif notice.kind in {"history", "transfer"}:
            if notice.conversation in (None, self.current):
                self.request_reload()
            self.request_refresh()
        elif notice.kind == "state" and notice.msg_id is not None and notice.state is not None:
            if self._held is not None:
                self._held.append(notice)
                return
            shown = self.lines.get(notice.msg_id)
            if shown is not None:
                message, text = shown
                state = advance(message.state, notice.state)
                if state is not None:
                    message = replace(message, state=state)
                    self.lines[notice.msg_id] = (message, text)
                    text.set_markup(self._markup(message, self.node.clock()))
        self.redraw()

    def _on_message(self, notice: NodeNotice, message: Message) -> None:
        if message.conversation == self.current:
            if self._held is not None:
                self._held.append(notice)
                return
            shown = self.lines.get(message.msg_id)
            if shown is not None:
                old = shown[0]
                if (old.order_ms, old.missing, old.late) != (
                    message.order_ms,
                    message.missing,
                    message.late,
                ):
                    self.request_reload()  # released, or placed anew
            elif self._goes_last(message):
                text = self.screen.add_message(self._markup(message, self.node.clock()))
                self.lines[message.msg_id] = (message, text)
            else:
                self.request_reload()
            if not message.outgoing:
                self.spawn(self._mark_read(message.conversation))
        if not message.outgoing:
            self.request_refresh()
            if message.conversation.startswith(_DM) and message.msg_id not in self._rung:
                self._rung[message.msg_id] = None  # once per message, however often notified
                while len(self._rung) > NOTES_LIMIT:
                    del self._rung[next(iter(self._rung))]
                if self.bell is not None:
                    self.bell()

    def _goes_last(self, message: Message) -> bool:
        """Whether ``message`` (not on screen yet) is shown (not held, no gap) and sorts after
        every line on screen, so appending it keeps the causal order."""
        if message.order_ms is None or message.missing:
            return False
        if not self.lines:
            return True
        last, _text = next(reversed(self.lines.values()))
        if last.order_ms is None:
            return False  # held lines stay last
        return (message.order_ms, message.msg_id) > (last.order_ms, last.msg_id)

    async def _mark_read(self, conversation: str) -> None:
        await self.node.mark_read(conversation)

    def show_links(self) -> None:
        node = self.node
        neighbours = sorted(node.neighbours(), key=lambda n: (n.transport, n.name, n.node_id))
        state = self.header.now()
        self.screen.set_header(
            header_markup(
                node.name,
                node.identity.node_id,
                len(neighbours),
                state.transports,
                state.gateway,
                queued=state.queued,
                carried=state.carried,
                heard=state.heard,
                sync=state.sync,
            )
        )
        transports: Markup = []
        for status in node.transport_status():
            mark = ("transport_up", "● ") if status.up else ("transport_down", "○ ")
            transports += [mark, ("dim", f"{status.name}  ")]
        self.screen.set_neighbours(
            [neighbour_markup(n, self.contacts, self.lookalikes) for n in neighbours], transports
        )
