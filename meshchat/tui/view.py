"""The view model of the chat screen: what each pane shows, as plain values.

Everything here is pure (no urwid, no node, no clock of its own), so it can be tested without a
terminal. Display text comes back as *markup*: a list of ``(attribute, text)`` pairs whose
attribute names are entries of the palette in :mod:`meshchat.tui.widgets`.

Text that came from other people passes through :mod:`meshchat.display` first: a terminal must
never receive their control characters, bidirectional overrides or invisible characters. Names
are shown on one line (:func:`~meshchat.display.safe_line`); a message's text keeps its line
breaks (:func:`printable`), and the screen indents its further lines under the sender.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING

from meshchat.crypto.channel import PUBLIC_CHANNEL
from meshchat.display import safe_line, safe_text
from meshchat.logview import gap_text, waiting_text
from meshchat.lookalike import mark
from meshchat.store.records import Conversation, Message, MessageState
from meshchat.transports.base import TransportStatus
from meshchat.tui.files import shown_text

if TYPE_CHECKING:
    from meshchat.node import LinkInfo
    from meshchat.tui.groups import GroupState

__all__ = [
    "ASCII_STATE_SYMBOLS",
    "STATE_SYMBOLS",
    "ConvEntry",
    "Markup",
    "Note",
    "clock",
    "conversation_entries",
    "entry_markup",
    "gap_markup",
    "header_markup",
    "id_text",
    "message_markup",
    "neighbour_markup",
    "note_markup",
    "printable",
    "short_id",
    "state_mark",
    "step",
    "stranger_label",
    "timeline",
    "who_text",
]

Markup = list[tuple[str, str]]

#: What an outgoing message's state looks like; incoming messages show no mark.
STATE_SYMBOLS: Mapping[MessageState, str] = {
    MessageState.QUEUED: "…",
    MessageState.SENT: "✓",
    MessageState.DELIVERED: "✓✓",
    MessageState.FAILED: "✗",
    MessageState.RECEIVED: "",
}
#: The same marks for a terminal that cannot show them (a non-UTF-8 locale).
ASCII_STATE_SYMBOLS: Mapping[MessageState, str] = {
    MessageState.QUEUED: "..",
    MessageState.SENT: "+",
    MessageState.DELIVERED: "++",
    MessageState.FAILED: "x",
    MessageState.RECEIVED: "",
}
_MARK_WIDTH = 2
_CONTINUED = "  \u21b3 "
_ASCII_CONTINUED = "  > "
_NONE: Mapping[str, str] = {}
_NONE_BY_ID: Mapping[bytes, str] = {}
_DM_PREFIX = "dm:"
_GROUP_PREFIX = "grp:"


def short_id(node_id: bytes) -> str:
    """Eight hex digits of a node id, as shown everywhere in the UI."""
    return node_id.hex()[:8]


def printable(text: str) -> str:
    """``text`` safe for a terminal, newlines kept (see :func:`meshchat.display.safe_text`)."""
    return safe_text(text)


def state_mark(state: MessageState, unicode: bool = True) -> tuple[str, str]:
    """The palette attribute and the mark for a message state, padded to two columns."""
    symbols = STATE_SYMBOLS if unicode else ASCII_STATE_SYMBOLS
    return f"state_{state.value}", symbols[state].ljust(_MARK_WIDTH)


def clock(ms: int, now_ms: int, tz: tzinfo | None = None) -> str:
    """``HH:MM`` for a time on the day of ``now_ms``, else ``MM-DD HH:MM``."""
    when = datetime.fromtimestamp(ms / 1000, tz).astimezone(tz)
    today = datetime.fromtimestamp(now_ms / 1000, tz).astimezone(tz)
    if when.date() == today.date():
        return when.strftime("%H:%M")
    return when.strftime("%m-%d %H:%M")


@dataclass(frozen=True, slots=True)
class Note:
    """A line the UI itself writes into a conversation (command output, an error)."""

    at_ms: int
    text: str
    error: bool = False


def local_ms(message: Message) -> int:
    """When this device stored the message: our clock, so the order cannot be forged."""
    return message.created_ms if message.outgoing else message.updated_ms


def timeline(messages: Sequence[Message], notes: Sequence[Note]) -> list[Message | Note]:
    """Messages in the order given (the causal order: never re-sorted here) with our notes
    among them: each note right after the last message this device had stored by the note's
    time (ties keep the message first), and never before an earlier note."""
    times = [local_ms(m) for m in messages]
    after: list[list[Note]] = [[] for _ in range(len(messages) + 1)]
    floor = 0
    for note in sorted(notes, key=lambda n: n.at_ms):
        index = next((i + 1 for i in range(len(times) - 1, -1, -1) if times[i] <= note.at_ms), 0)
        floor = max(floor, index)
        after[floor].append(note)
    items: list[Message | Note] = list(after[0])
    for message, notes_after in zip(messages, after[1:], strict=True):
        items.append(message)
        items += notes_after
    return items


def message_markup(
    message: Message,
    my_name: str,
    now_ms: int,
    *,
    tz: tzinfo | None = None,
    unicode: bool = True,
    lookalikes: Mapping[str, str] = _NONE,
    transfer: str = "",
) -> Markup:
    """One message line: time, delivery mark (outgoing only), sender and text (a file
    announcement as the file it announces, with its ``transfer`` marker).

    The first two pairs (time and mark) form the line's margin: the screen indents wrapped
    and further lines of the text past them. A sender named in ``lookalikes`` (a name that
    looks like another contact's or ours) says whom it looks like. A held message (waiting
    for an earlier one) shows what it waits for instead of its text (see
    :mod:`meshchat.logview` for why); one placed at the end for claiming an old time says
    it arrived late.
    """
    attr, symbol = state_mark(message.state, unicode)
    sender = my_name if message.outgoing else message.sender_name
    if not message.outgoing:
        sender = mark(sender, lookalikes.get(sender))
    markup: Markup = [
        ("time", clock(local_ms(message), now_ms, tz) + " "),
        (attr, symbol + " "),
        ("me" if message.outgoing else "them", safe_line(sender) or "?"),
    ]
    if message.order_ms is None:
        markup.append(("waiting", f" ({waiting_text(message.missing)})"))
        return markup
    markup.append(("text", ": " + _continued(printable(shown_text(message.text)), unicode)))
    if transfer:
        markup.append(("system", f"  [{printable(transfer)}]"))
    if message.late:
        markup.append(("late", "  (arrived late)"))
    return markup


def gap_markup(count: int) -> Markup:
    """The line before a message shown with ``count`` earlier messages missing."""
    return [("time", "      "), ("gap", "~~ "), ("gap", gap_text(count) + " ~~")]


def _continued(text: str, unicode: bool) -> str:
    """A text's further lines marked as such: a line in someone's message that reads
    "alice: ..." must not pass for a line of its own from alice."""
    return text.replace("\n", "\n" + (_CONTINUED if unicode else _ASCII_CONTINUED))


def note_markup(note: Note, now_ms: int, *, tz: tzinfo | None = None) -> Markup:
    """A note line: errors in red marked ``!!``, other notes dimmed and marked ``--``."""
    mark, attr = ("!!", "error") if note.error else ("--", "system")
    return [
        ("time", clock(note.at_ms, now_ms, tz) + " "),
        (attr, mark + " "),
        (attr, printable(note.text)),
    ]


@dataclass(frozen=True, slots=True)
class ConvEntry:
    """One line of the conversation list. ``key`` is the store's conversation name."""

    key: str
    label: str
    unread: int = 0
    #: a group this node was removed from: nothing new can be read or sent there
    removed: bool = False


def conversation_entries(
    channels: Iterable[str],
    contacts: Mapping[bytes, str],
    summaries: Iterable[Conversation],
    groups: Iterable[GroupState] = (),
    lookalikes: Mapping[str, str] = _NONE,
    announced: Mapping[bytes, str] = _NONE_BY_ID,
) -> list[ConvEntry]:
    """The conversation list: ``#mesh``, the other joined channels, groups, then direct messages.

    Channels are sorted by name, groups and direct conversations by label, so the order (and
    what Ctrl-N/Ctrl-P step through) does not jump about as messages arrive. A direct
    conversation with someone who is not a contact is listed as a stranger, ``~`` and the name
    they announced (``announced``) with a short id (``~alice (a1b2)``), else by their short
    id. Groups are ``+name``; two groups of the same name also show a short group id. A contact
    whose name looks like another's (``lookalikes``) says so.
    """
    unread = {s.name: s.unread for s in summaries}
    keys = set(unread)
    chans = sorted(set(channels) | {PUBLIC_CHANNEL}, key=lambda c: (c != PUBLIC_CHANNEL, c))
    entries = [ConvEntry(c, c, unread.get(c, 0)) for c in chans]
    states = list(groups)
    names = [g.name.casefold() for g in states]
    grouped: list[ConvEntry] = []
    for state in states:
        label = state.label
        if names.count(state.name.casefold()) > 1:
            label += f" ({state.group_id.hex()[:4]})"
        key = state.conversation
        grouped.append(ConvEntry(key, label, unread.get(key, 0), removed=not state.member))
    known = {e.key for e in grouped}
    for key in keys:
        if key.startswith(_GROUP_PREFIX) and key not in known:
            label = "+?" + key[len(_GROUP_PREFIX) : len(_GROUP_PREFIX) + 8]
            grouped.append(ConvEntry(key, label, unread.get(key, 0)))
    entries += sorted(grouped, key=lambda e: (e.label.casefold(), e.key))
    direct: dict[str, str] = {}
    for node_id, name in contacts.items():
        label = mark(name, lookalikes.get(name))
        direct[_DM_PREFIX + node_id.hex()] = safe_line(label) or short_id(node_id)
    for key in keys:
        if key.startswith(_DM_PREFIX) and key not in direct:
            direct[key] = stranger_label(key, announced)
    for key, label in sorted(direct.items(), key=lambda kv: (kv[1].casefold(), kv[0])):
        entries.append(ConvEntry(key, label, unread.get(key, 0)))
    return entries


def stranger_label(key: str, announced: Mapping[bytes, str]) -> str:
    """A direct conversation with someone who is not a contact: ``~alice (a1b2)``, else
    ``?a1b2c3d4``."""
    digits = key[len(_DM_PREFIX) :]
    try:
        name = announced.get(bytes.fromhex(digits), "")
    except ValueError:
        name = ""
    if name:
        return f"~{safe_line(name)} ({digits[:4]})"
    return "?" + digits[:8]


def entry_markup(entry: ConvEntry, current: bool) -> Markup:
    """A conversation-list line: a pointer for the open one, the unread count, and a mark on
    a group we were removed from."""
    pointer = "▸ " if current else "  "
    attr = "conv_current" if current else "conv"
    markup: Markup = [(attr, pointer + entry.label)]
    if entry.removed:
        markup.append(("dim", " (removed)"))
    if entry.unread:
        markup.append(("unread", f" ({entry.unread})"))
    return markup


def step(entries: Sequence[ConvEntry], current: str, delta: int) -> str:
    """The key ``delta`` places from ``current`` in the list, wrapping around."""
    if not entries:
        return current
    keys = [e.key for e in entries]
    index = keys.index(current) if current in keys else 0
    return keys[(index + delta) % len(keys)]


def neighbour_markup(
    info: LinkInfo,
    contacts: Mapping[bytes, str] = _NONE_BY_ID,
    lookalikes: Mapping[str, str] = _NONE,
) -> Markup:
    """A neighbours-pane line: transport, short node id, and who: a contact by our name for
    them, a stranger by ``~`` and the name they announced (theirs to choose), as ``log`` and
    ``/who`` show them."""
    medium = info.transport if info.transport in {"lan", "ble", "mem"} else "other"
    contact = contacts.get(info.node_id)
    if contact is not None:
        who = mark(contact, lookalikes.get(contact))
    else:
        who = f"~{info.name}" if info.name else "?"
    return [
        (f"medium_{medium}", f"{info.transport:<4}"),
        ("node_id", short_id(info.node_id) + " "),
        ("them", safe_line(who)),
    ]


#: At most this many characters of a transport's reason for being down, in the header.
HEADER_REASON_CHARS = 32


def header_markup(
    name: str,
    node_id: bytes,
    links: int,
    transports: Sequence[TransportStatus] = (),
    gateway: bool = False,
    *,
    queued: int | None = None,
    carried: int | None = None,
    heard: int = 0,
    sync: str = "",
) -> Markup:
    """The header: our name, short id, how many links are up, then what ``meshchat status``
    says in one line: each transport up or down (with the start of its reason), whether this
    node is a gateway to the internet (or how many gateways it heard), and how many messages
    wait in our outbox (queued) and how many of others' we carry, when known; then the history
    sync with my other devices, when there was one."""
    plural = "" if links == 1 else "s"
    markup: Markup = [
        ("header_title", " meshchat "),
        ("header", f" {safe_line(name)} "),
        ("header_dim", f"{short_id(node_id)} "),
        ("header_links" if links else "header_nolinks", f" {links} link{plural} "),
    ]
    for status in transports:
        if status.up:
            markup.append(("header_dim", f" {safe_line(status.name)} up"))
            continue
        if status.state:  # a short name for why ("ble: no adapter") says enough
            markup.append(
                ("header_nolinks", f" {safe_line(status.name)}: {safe_line(status.state)}")
            )
            continue
        why = safe_line(status.reason)
        if len(why) > HEADER_REASON_CHARS:
            why = why[: HEADER_REASON_CHARS - 1] + "…"
        text = f" {safe_line(status.name)} down" + (f" ({why})" if why else "")
        markup.append(("header_nolinks", text))
    if gateway:
        markup.append(("header_links", " gateway"))
    elif heard:
        markup.append(("header_dim", f" via {heard} gateway{'' if heard == 1 else 's'}"))
    if queued is not None:
        markup.append(("header_nolinks" if queued else "header_dim", f"  {queued} queued"))
    if carried is not None:
        markup.append(("header_dim", f" {carried} carried"))
    if sync:
        markup.append(("header_nolinks" if "left" in sync else "header_dim", f"  {sync}"))
    return markup


def who_text(
    neighbours: Sequence[LinkInfo],
    announced: Mapping[bytes, str],
    contacts: Mapping[bytes, str],
) -> str:
    """The ``/who`` report: links first, then peers known only by their announcements."""
    lines = [f"neighbours ({len(neighbours)}):"]
    if not neighbours:
        lines.append("  none yet")
    linked = set()
    for info in neighbours:
        linked.add(info.node_id)
        who = _who_name(info.node_id, info.name, contacts)
        where = safe_line(info.describe)
        lines.append(f"  {info.transport:<4} {short_id(info.node_id)}  {who}  {where}")
    others = {k: v for k, v in announced.items() if k not in linked}
    lines.append(f"announced peers further away ({len(others)}):")
    if not others:
        lines.append("  none")
    for node_id, name in sorted(others.items(), key=lambda kv: kv[1].casefold()):
        lines.append(f"  {short_id(node_id)}  {_who_name(node_id, name, contacts)}")
    return "\n".join(line.rstrip() for line in lines)


def _who_name(node_id: bytes, announced: str, contacts: Mapping[bytes, str]) -> str:
    contact = contacts.get(node_id)
    if contact is not None:
        return f"{safe_line(contact)} (contact)"
    return f"~{safe_line(announced)}" if announced else "?"


def id_text(name: str, node_id: bytes, fingerprint: str, card: str) -> str:
    """The ``/id`` report: what someone needs to add and verify us."""
    return (
        f"you are {safe_line(name)} ({short_id(node_id)})\n"
        f"node id:     {node_id.hex()}\n"
        f"fingerprint: {fingerprint}\n"
        f"card:        {card}"
    )
