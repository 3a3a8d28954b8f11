"""What the chat screen's commands do: the actions behind ``/msg``, ``/add``, ``/group`` ...

:class:`Actions` carries out one parsed :class:`~meshchat.tui.commands.Command` for a
:class:`~meshchat.tui.controller.ChatController`: it asks the node, then tells the controller
what to show (a note, another conversation, a refreshed list). Errors are raised as
:class:`~meshchat.errors.UsageError` with hints in this screen's words; the controller's
guard turns them into red lines.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from meshchat.display import safe_line
from meshchat.errors import UsageError
from meshchat.group.book import Group, group_conversation
from meshchat.identity import CARD_PREFIX, ContactCard, clean_name
from meshchat.logview import SHORT_ID, plural
from meshchat.lookalike import LOOKALIKE_MARK, LookalikeError, check_new_name, mark
from meshchat.store.records import Message, Trust
from meshchat.store.trust import KeyChangeError
from meshchat.tui.commands import (
    HELP_TEXT,
    AddContact,
    Block,
    Clear,
    Command,
    Delete,
    GroupChange,
    GroupCreate,
    GroupLeave,
    GroupList,
    GroupShow,
    Help,
    Join,
    Me,
    Msg,
    Nick,
    Panic,
    Quit,
    Say,
    ShowId,
    Unblock,
    Verify,
    Who,
    Yes,
)
from meshchat.tui.devices import DeviceActions, DeviceCommand
from meshchat.tui.files import FileActions, FileCommand
from meshchat.tui.groups import group_label, group_text, groups_text, snapshot
from meshchat.tui.helptext import help_for
from meshchat.tui.view import Note, clock, id_text, short_id, who_text
from meshchat.tui.voice import VoiceActions, VoiceCommand

if TYPE_CHECKING:
    from meshchat.tui.controller import ChatController

__all__ = ["EXCERPT", "Actions", "PendingDelete", "group_id_of", "screen_words"]

_DM = "dm:"
_GROUP = "grp:"
#: characters of a message's text quoted when asking whether to delete it
EXCERPT = 40


@dataclass(frozen=True, slots=True)
class PendingDelete:
    """What a ``/delete`` asked about: these messages of ``conversation`` (all when
    ``msg_ids`` is empty); ``what`` says it in words (quoting the message: the question is
    taken off the screen once the message is deleted)."""

    conversation: str
    msg_ids: tuple[bytes, ...]
    what: str
    question: Note | None = None


class Actions:
    """The commands of one chat screen."""

    def __init__(self, controller: ChatController) -> None:
        self.ctl = controller
        self.node = controller.node
        self.devices = DeviceActions(controller)
        self.voice = VoiceActions(controller, self)
        self.files = FileActions(controller, self)

    async def execute(self, command: Command) -> None:
        node = self.node
        if isinstance(command, Say):
            self._check_can_send(self.ctl.current)
            await node.send_text(self._send_target(self.ctl.current), command.text)
        elif isinstance(command, Msg):
            await self._msg(command)
        elif isinstance(command, Join):
            channel = await node.join(command.channel, command.passphrase)
            await self.ctl.refresh_list()
            await self.ctl.open(channel.name)
            kind = "private channel, key from the passphrase" if channel.key else "public channel"
            self.ctl.note(f"joined {channel.name} ({kind})")
        elif isinstance(command, Who):
            announced = node.announced_peers()
            marks = self.ctl.lookalikes
            contacts = {n: mark(name, marks.get(name)) for n, name in self.ctl.contacts.items()}
            self.ctl.note(who_text(node.neighbours(), announced, contacts))
        elif isinstance(command, ShowId):
            public = node.identity.public
            card = (await node.card()).to_text()
            self.ctl.note(id_text(node.name, public.node_id, public.fingerprint(), card))
        elif isinstance(command, AddContact):
            await self._add_contact(command)
        elif isinstance(command, Verify):
            await self._verify(command)
        elif isinstance(command, GroupList):
            states = [snapshot(g) for g in node.groups()]
            self.ctl.note(groups_text(states, node.identity.node_id))
        elif isinstance(command, GroupShow):
            state = snapshot(self._find_group(command.group))
            self.ctl.note(group_text(state, node.identity.node_id, self.ctl.member_name))
        elif isinstance(command, GroupCreate):
            await self._group_create(command)
        elif isinstance(command, GroupLeave):
            await self._group_leave(command)
        elif isinstance(command, GroupChange):
            await self._group_change(command)
        elif isinstance(command, Delete):
            self._ask_delete(command)
        elif isinstance(command, Yes):
            await self._delete()
        elif isinstance(command, Panic):
            if not command.confirm:
                self.ctl.note(
                    "/panic confirm erases your keys, contacts and messages on this device at "
                    "once and quits. There is no undo.",
                    error=True,
                )
                return
            await node.panic()
            self.ctl.on_quit()
        elif isinstance(command, Help):
            self.ctl.note(HELP_TEXT if command.topic is None else help_for(command.topic))
        elif isinstance(command, Block | Unblock | Nick | Me | Clear):
            await self._habit(command)
        elif isinstance(command, Quit):
            self.ctl.on_quit()
        elif isinstance(command, DeviceCommand):
            await self.devices.execute(command)
        elif isinstance(command, VoiceCommand):
            await self.voice.execute(command)
        elif isinstance(command, FileCommand):
            await self.files.execute(command)

    async def _habit(self, command: Block | Unblock | Nick | Me | Clear) -> None:
        """``/block``, ``/unblock``, ``/nick``, ``/me`` and ``/clear``."""
        node = self.node
        if isinstance(command, Block):
            if command.name is None:
                blocked = node.blocked()
                lines = [f"  {safe_line(n)} ({k.hex()[:8]})" for k, n in blocked.items()]
                self.ctl.note("\n".join(["blocked:", *lines]) if lines else "nobody is blocked")
                return
            key, name = await node.block(command.name)
            self.ctl.note(
                f"blocked {safe_line(name)} ({key.hex()[:8]}): their messages are dropped "
                f"before they are stored, and never shown (/unblock {safe_line(name)})"
            )
        elif isinstance(command, Unblock):
            key, name = await node.unblock(command.name)
            self.ctl.note(f"unblocked {safe_line(name)} ({key.hex()[:8]})")
        elif isinstance(command, Nick):
            await node.rename(command.name)
            self.ctl.show_links()  # the header shows our name
            kept = "for this run only"
            if self.ctl.keep_name is not None:
                kept = await self.ctl.keep_name(command.name)
            self.ctl.note(
                f"you are now {safe_line(command.name)} to your neighbours (announced now; {kept})"
            )
        elif isinstance(command, Me):
            self._check_can_send(self.ctl.current)
            text = f"* {node.name} {command.action}"
            await node.send_text(self._send_target(self.ctl.current), text)
        else:
            self.ctl.clear_view()

    def _describe(self, message: Message) -> str:
        """A message in words, for the question before deleting it."""
        when = clock(message.created_ms, self.node.clock(), self.ctl.tz)
        ident = message.msg_id.hex()[:SHORT_ID]
        if message.outgoing:
            who = "your message"
        else:
            who = f"the message from {safe_line(message.sender_name) or '?'}"
        if message.order_ms is None:
            return f"{who} still waiting for earlier ones ({when}, id {ident})"
        text = safe_line(message.text)
        if len(text) > EXCERPT:
            text = text[: EXCERPT - 3] + "..."
        return f'{who} "{text}" ({when}, id {ident})'

    def _ask_delete(self, command: Delete) -> None:
        key = self.ctl.current
        label = self.ctl.label(key)
        if command.back is None:
            what = f"the whole conversation {label}"
            pending = PendingDelete(key, (), what)
        else:
            shown = self.ctl.shown_messages()
            if command.back > len(shown):
                count = plural(len(shown), "message")
                raise UsageError(f"/delete {command.back}: {label} shows {count}")
            message = shown[-command.back]
            pending = PendingDelete(key, (message.msg_id,), self._describe(message))
        question = self.ctl.note(
            f"Delete {pending.what} on this device? It cannot be undone, and it is not "
            "stored again if it is offered again. /yes deletes it; anything else keeps it.",
            error=True,
        )
        self.ctl.pending = replace(pending, question=question)

    async def _delete(self) -> None:
        pending, self.ctl.pending = self.ctl.pending, None
        if pending is None or pending.conversation != self.ctl.current:
            raise UsageError("nothing to confirm: /delete first")
        count = await self.node.delete(pending.conversation, pending.msg_ids)
        if pending.question is not None:
            self.ctl.forget_note(pending.question, pending.conversation)
        ids = ", id " + pending.msg_ids[0].hex()[:SHORT_ID] if len(pending.msg_ids) == 1 else ""
        self.ctl.note(f"deleted {plural(count, 'message')}{ids}")
        self.ctl.request_reload()
        await self.ctl.refresh_list()

    @staticmethod
    def _send_target(conversation: str) -> str:
        """What :meth:`Node.send_text` takes for a conversation: a channel, or a node id."""
        return conversation[len(_DM) :] if conversation.startswith(_DM) else conversation

    async def _msg(self, command: Msg) -> None:
        if command.target.startswith(("+", _GROUP)):
            key = snapshot(self._find_group(command.target)).conversation
        else:
            key = await self.node.resolve_conversation(command.target)
        if key.startswith("#") and key not in self.ctl.channels:
            raise UsageError(f"not in {key}: /join {key} first")
        await self.ctl.open(key)
        if command.text is not None:
            self._check_can_send(key)
            await self.node.send_text(self._send_target(key), command.text)
            if all(entry.key != key for entry in self.ctl.entries):
                await self.ctl.refresh_list()  # a neighbour's first conversation: list it

    def _find_group(self, target: str) -> Group:
        """:meth:`Node.find_group`, its hint worded for this screen.

        A name shared by a group we were removed from and one we are in means the latter:
        after a removal, the old group stays listed (its history can still be read).
        """
        try:
            return self.node.find_group(target)
        except UsageError as exc:
            if target.startswith("+"):
                wanted = target[1:].strip().casefold()
                live = [
                    g
                    for g in self.node.groups()
                    if g.name.casefold() == wanted and g.current is not None
                ]
                if len(live) == 1:
                    return live[0]
            raise UsageError(screen_words(str(exc))) from None

    def _check_can_send(self, key: str) -> None:
        """Refuse at once to write to a group we were removed from, saying why."""
        if not key.startswith(_GROUP):
            return
        state = self.ctl.groups.get(group_id_of(key))
        if state is not None and not state.member:
            raise UsageError(
                f"you were removed from {state.label}: nothing can be sent to it any more"
            )

    async def _group_create(self, command: GroupCreate) -> None:
        try:
            group = await self.node.create_group(command.name, list(command.members))
        except UsageError as exc:
            raise UsageError(screen_words(str(exc))) from None
        await self.ctl.refresh_list()
        await self.ctl.open(snapshot(group).conversation)

    async def _group_change(self, command: GroupChange) -> None:
        group = self._find_group(command.group)
        label = group_label(group.name)
        if group.current is None:
            raise UsageError(f"you were removed from {label}: you cannot change it")
        if self.node.identity.node_id not in group.roster.admins:
            raise UsageError(f"only an admin of {label} can change it: see /group show {label}")
        members = list(command.members)
        target = group_conversation(group.group_id)  # the very group found above
        try:
            if command.action == "add":
                await self.node.change_group(target, add=members)
            elif command.action == "remove":
                await self.node.change_group(target, remove=members)
            else:
                await self.node.change_group(target, admin=members)
        except UsageError as exc:
            raise UsageError(screen_words(str(exc))) from None
        await self.ctl.refresh_list()

    async def _group_leave(self, command: GroupLeave) -> None:
        group = self._find_group(command.group)
        if group.current is None:
            raise UsageError(f"you are not in {group_label(group.name)} any more")
        try:
            await self.node.leave_group(group_conversation(group.group_id))
        except UsageError as exc:
            raise UsageError(screen_words(str(exc))) from None
        await self.ctl.refresh_list()

    async def _check_name(self, name: str, node_id: bytes, command: AddContact) -> str | None:
        """Refuse a new contact's name that looks like a contact's or ours (unless
        ``/add-lookalike``); the name it looks like, if allowed."""
        node = self.node
        contacts = await node.contacts()
        others = [node.name]
        others += [
            c.name for c in contacts if c.node_id != node_id and c.trust is not Trust.COMPROMISED
        ]
        try:
            return check_new_name(name, others, allow=command.lookalike)
        except LookalikeError as exc:
            raise UsageError(
                f"{safe_line(exc.name)!r} looks like {safe_line(exc.like)!r} but is spelt with "
                "other characters: someone may be posing as them. Nothing was added. If you are "
                "sure, /add-lookalike it (the name stays marked), or /add it under another name."
            ) from exc

    async def _add_peer(self, command: AddContact) -> None:
        """``/add NAME``: a neighbour who announced itself, added from its signed announce."""
        node = self.node
        event = await node.announced_peer(command.card)
        node_id = event.identity.node_id
        name = clean_name(command.name) if command.name else clean_name(event.name)
        if not name:
            raise UsageError(f"that peer announced no name: /add {node_id.hex()[:8]} <name>")
        like = await self._check_name(name, node_id, command)
        try:
            # by its full id: the very key checked above, whatever was announced meanwhile
            await node.add_from_peer(node_id.hex(), name, replace_keys=command.replace)
        except KeyChangeError as exc:
            self.ctl.note(
                f"{safe_line(str(exc))}. If you are sure these are their new keys (ask them in "
                f"person), /replace {node_id.hex()[:8]}; the old keys will be marked compromised.",
                error=True,
            )
            return
        await self._added(name, node_id, like)

    async def _added(self, name: str, node_id: bytes, like: str | None) -> None:
        await self.ctl.refresh_list()
        shown = safe_line(name)
        self.ctl.note(
            f"added {shown} ({short_id(node_id)}), unverified. Compare safety numbers with "
            f"them in person (or scan their QR code): /verify {shown}. /msg {shown} to talk."
        )
        if like is not None:
            self.ctl.note(
                f"{shown} {LOOKALIKE_MARK} {safe_line(like)}: marked so wherever it is shown"
            )

    async def _add_contact(self, command: AddContact) -> None:
        node = self.node
        if not command.card.startswith(CARD_PREFIX):
            await self._add_peer(command)
            return
        card = ContactCard.from_text(command.card)
        if card.identity == node.identity.public:
            raise UsageError("that is your own card")
        name = clean_name(command.name) if command.name else card.name
        if not name:
            raise UsageError("the card has no name: /add <card> <name>")
        like = await self._check_name(name, card.identity.node_id, command)
        try:
            await node.add_card(card, name, replace_keys=command.replace)
        except KeyChangeError as exc:
            self.ctl.note(
                f"{exc}. If you are sure these are their new keys (ask them in person), "
                f"/replace the card; the old keys will be marked compromised.",
                error=True,
            )
            return
        await self._added(name, card.identity.node_id, like)

    async def _verify(self, command: Verify) -> None:
        verdict = await self.node.verify(command.target, confirmed=command.confirm)
        contact, number = verdict.contact, verdict.number
        if not verdict.mark:
            self.ctl.note(
                f"safety number with {contact.name}: {number}\n"
                f"Compare it with the one on their screen, in person or over a channel you "
                f"trust. If every digit matches: /verify {contact.name} confirm"
            )
            return
        await self.ctl.refresh_list()
        self.ctl.note(f"{contact.name} is verified ({number})")


def screen_words(message: str) -> str:
    """A node error's hint in this screen's words (``/group list``, not the command line's)."""
    for hint in ("`meshchat group list`", "'meshchat group list'"):
        message = message.replace(hint, "/group list")
    return message


def group_id_of(key: str) -> bytes:
    """The group id in a group's conversation name (empty for a malformed one)."""
    try:
        return bytes.fromhex(key[len(_GROUP) :])
    except ValueError:
        return b""
