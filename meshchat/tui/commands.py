"""The input line's language: plain text to send, or an IRC-style ``/command``.

This module is pure: :func:`parse_line` turns one line into a command value (or ``None`` for
a blank line) and raises :class:`UsageError` with a message fit to show the user for anything
it cannot accept. The chat controller carries the commands out; keeping the grammar here lets
it be tested without a terminal or a node.

Grammar (words are split on whitespace; the last argument of ``/msg`` and ``/add`` keeps its
inner spacing). A group is written ``+name`` or ``grp:<id hex prefix>``; a group's name is
one word, so ``/group create`` takes it with or without the ``+``::

    text                       Say(text)              (to the current conversation)
    //text                     Say("/text")           (a message that starts with a slash)
    /msg <contact|peer|#chan|+group> [text]   Msg(target, text)   (alias /query, /m)
    /join #chan [passphrase]   Join(channel, passphrase)   (alias /j)
    /who                       Who()
    /id                        ShowId()
    /add <card|peer> [name]    AddContact(card, name)   (a peer: its announced name or id)
    /replace <card> [name]     AddContact(card, name, replace=True)   (accept a key change)
    /add-lookalike <card> [name]   AddContact(card, name, lookalike=True)
    /verify <contact> [confirm]   Verify(target, confirm)
    /group [list]              GroupList()            (alias /g)
    /group show <+group>       GroupShow(group)       (also /group <+group>)
    /group create <name> <contact>...    GroupCreate(name, members)
    /group add <+group> <contact>...     GroupChange("add", group, members)
    /group remove <+group> <member>...   GroupChange("remove", group, members)
    /group admin <+group> <member>...    GroupChange("admin", group, members)
    /group leave <+group>      GroupLeave(group)
    /delete [N]                Delete(back)           (N: the Nth message from the end)
    /yes                       Yes()                  (confirms the /delete just asked)
    /panic [confirm]           Panic(confirm)
    /block [name]              Block(name)            (no name: list the blocked)
    /unblock <name>            Unblock(name)
    /nick <name>               Nick(name)
    /me <action>               Me(action)
    /clear                     Clear()
    /voice <seconds>|<file>    VoiceRecord / VoiceFile   /play [N]   Play(back)   (tui/voice.py)
    /talk <seconds>|<file>     TalkLive                                           (tui/voice.py)
    /help [command]            Help(topic)            (alias /?)
    /quit                      Quit()                 (alias /exit, /q)
"""

from __future__ import annotations

from dataclasses import dataclass

from meshchat.crypto.channel import normalise_channel_name
from meshchat.errors import UsageError
from meshchat.identity import MAX_NAME_BYTES, clean_name
from meshchat.tui.devices import DEVICE_HELP, DeviceCommand, parse_device
from meshchat.tui.files import FILE_HELP, FileCommand, parse_file
from meshchat.tui.groupgrammar import (
    GroupChange,
    GroupCreate,
    GroupLeave,
    GroupList,
    GroupShow,
    group_target,
    is_group_word,
    parse_group,
)
from meshchat.tui.voice import VOICE_HELP, VoiceCommand, parse_voice
from meshchat.wire.payloads import MAX_TEXT_BYTES

__all__ = [
    "HELP_TEXT",
    "MAX_DELETE_BACK",
    "MAX_LINE_CHARS",
    "AddContact",
    "Block",
    "Clear",
    "Command",
    "Delete",
    "GroupChange",
    "GroupCreate",
    "GroupLeave",
    "GroupList",
    "GroupShow",
    "Help",
    "Join",
    "Me",
    "Msg",
    "Nick",
    "Panic",
    "Quit",
    "Say",
    "ShowId",
    "Unblock",
    "Verify",
    "Who",
    "Yes",
    "parse_line",
]

#: The longest input line accepted at all (a contact card is about 200 characters).
MAX_LINE_CHARS = 4096


@dataclass(frozen=True, slots=True)
class Say:
    """Send ``text`` to the conversation on screen."""

    text: str


@dataclass(frozen=True, slots=True)
class Msg:
    """Open the conversation with ``target`` (a contact, ``#channel`` or ``+group``); send
    ``text`` if any."""

    target: str
    text: str | None = None


@dataclass(frozen=True, slots=True)
class Join:
    """Join ``channel`` (normalised ``#name``); with a passphrase it is a private channel."""

    channel: str
    passphrase: str | None = None


@dataclass(frozen=True, slots=True)
class Who:
    """List neighbours and the peers that announced themselves."""


@dataclass(frozen=True, slots=True)
class ShowId:
    """Show our fingerprint and contact card."""


@dataclass(frozen=True, slots=True)
class AddContact:
    """Add the contact whose card is ``card``, under ``name`` (default: the card's name)."""

    card: str
    name: str | None = None
    #: accept a card that claims a known contact with other keys (the old keys become
    #: compromised)
    replace: bool = False
    #: add it even though its name looks like a contact's or ours (it stays marked)
    lookalike: bool = False


@dataclass(frozen=True, slots=True)
class Verify:
    """Show the safety number shared with ``target``; with ``confirm``, mark it verified."""

    target: str
    confirm: bool = False


@dataclass(frozen=True, slots=True)
class Delete:
    """Delete, on this device, the whole conversation on screen (``back`` None) or its
    ``back``-th message counted from the end (1: the last one). Only asks: :class:`Yes`
    deletes."""

    back: int | None = None


@dataclass(frozen=True, slots=True)
class Yes:
    """Carry out the deletion the last :class:`Delete` asked about."""


@dataclass(frozen=True, slots=True)
class Panic:
    """Erase keys and messages at once (only with ``confirm``) and leave."""

    confirm: bool = False


@dataclass(frozen=True, slots=True)
class Help:
    """Show the commands and keys, or one command's help (``topic``, its canonical name)."""

    topic: str | None = None


@dataclass(frozen=True, slots=True)
class Block:
    """Drop every message from ``name`` (a contact or announced peer) from now on; with no
    name, list the blocked."""

    name: str | None = None


@dataclass(frozen=True, slots=True)
class Unblock:
    """Stop blocking ``name``."""

    name: str


@dataclass(frozen=True, slots=True)
class Nick:
    """Use ``name`` as our display name from now on, and announce it."""

    name: str


@dataclass(frozen=True, slots=True)
class Me:
    """Send an action (``* alice waves``) to the conversation on screen."""

    action: str


@dataclass(frozen=True, slots=True)
class Clear:
    """Clear the conversation on screen (this view only: nothing is deleted)."""


@dataclass(frozen=True, slots=True)
class Quit:
    """Leave the program."""


Command = (
    Say
    | Msg
    | Join
    | Who
    | ShowId
    | AddContact
    | Verify
    | GroupList
    | GroupShow
    | GroupCreate
    | GroupChange
    | GroupLeave
    | Delete
    | Yes
    | Panic
    | Help
    | Block
    | Unblock
    | Nick
    | Me
    | Clear
    | Quit
    | DeviceCommand
    | VoiceCommand
    | FileCommand
)

HELP_TEXT = (
    """\
commands:
  /msg <name|#chan> [text]     open a conversation (and send text); a name is a contact's
                               or a neighbour's announced one (~name), or an id prefix
  /join #chan [passphrase]     join a channel; a passphrase makes it private
  /who                         list neighbours and announced peers
  /id                          show your fingerprint and contact card
  /add <card|name> [name]      add a contact from their card (mc1:...) or a neighbour
                               by the name or id it announced (unverified until /verify)
  /replace <card> [name]       accept a contact's new keys (old keys marked compromised)
  /add-lookalike <card> [name] add a card whose name looks like a contact's (marked)
  /verify <contact> [confirm]  compare safety numbers; 'confirm' once they match
  /delete [N]                  delete this conversation on this device, or its Nth
                               message from the end (1: the last); /yes confirms
  /block [name]                drop every message from them from now on, never stored or
                               shown (still relayed for others); no name: list the blocked
  /unblock <name>              stop blocking them
  /nick <name>                 a new display name, announced at once and kept
  /me <action>                 send an action: * yourname action
  /clear                       clear this conversation's view (nothing is deleted)
  /panic confirm               erase your keys and messages now, and quit
"""
    + DEVICE_HELP
    + "\n"
    + VOICE_HELP
    + "\n"
    + FILE_HELP
    + """
  /help [command]              this help, or one command's;  /quit  leave (also Ctrl-C)
  //text                       send a message that starts with '/'
private groups (+name or grp:<id>; only admins change one, and each change re-keys it):
  /group [list]                      list your groups
  /group show +group                 its members and admins
  /group create <name> <contact>...  a new group of contacts; you are its admin
  /group add +group <contact>...     add contacts
  /group remove +group <member>...   remove members: they read nothing sent after
  /group admin +group <member>...    make members admins too
  /group leave +group                leave it (your keys for it are erased)
  /msg +group [text]                 open a group's conversation (and send text)
keys: Tab/Shift-Tab switch pane, Ctrl-N/Ctrl-P next/previous conversation,
      PageUp/PageDown scroll messages, Up/Down recall input history"""
)

_ALIASES = {
    "msg": "msg",
    "m": "msg",
    "query": "msg",
    "join": "join",
    "j": "join",
    "who": "who",
    "w": "who",
    "block": "block",
    "unblock": "unblock",
    "nick": "nick",
    "me": "me",
    "clear": "clear",
    "id": "id",
    "add": "add",
    "replace": "replace",
    "add-lookalike": "add-lookalike",
    "verify": "verify",
    "group": "group",
    "g": "group",
    "device": "device",
    "voice": "voice",
    "play": "play",
    "talk": "talk",
    "file": "file",
    "accept": "accept",
    "delete": "delete",
    "del": "delete",
    "yes": "yes",
    "panic": "panic",
    "help": "help",
    "?": "help",
    "quit": "quit",
    "exit": "quit",
    "q": "quit",
}


def _split_first(text: str) -> tuple[str, str]:
    """The first whitespace-separated word of ``text`` and the rest (left-stripped)."""
    parts = text.strip().split(maxsplit=1)
    if not parts:
        return "", ""
    return parts[0], (parts[1] if len(parts) > 1 else "")


def _message_text(text: str) -> str:
    if len(text.encode()) > MAX_TEXT_BYTES:
        raise UsageError(f"message longer than {MAX_TEXT_BYTES} bytes")
    return text


def parse_line(line: str) -> Command | None:
    """Parse one input line; ``None`` for a blank line; :class:`UsageError` for a bad one."""
    if len(line) > MAX_LINE_CHARS:
        raise UsageError(f"input line longer than {MAX_LINE_CHARS} characters")
    if "\x00" in line:
        raise UsageError("the input line holds a NUL character")
    stripped = line.strip()
    if not stripped:
        return None
    if stripped.startswith("//"):
        return Say(_message_text(stripped[1:]))
    if not stripped.startswith("/"):
        return Say(_message_text(stripped))
    word, rest = _split_first(stripped[1:])
    name = _ALIASES.get(word.lower())
    if name is None:
        shown = word or "/"
        raise UsageError(f"unknown command /{shown.lstrip('/')}: try /help")
    if name == "msg":
        return _parse_msg(rest)
    if name == "join":
        return _parse_join(rest)
    if name in ("add", "replace", "add-lookalike"):
        card, label = _split_first(rest)
        if not card.lstrip("@"):
            raise UsageError(f"usage: /{name} <card> [name]")
        card = card.removeprefix("@")
        return AddContact(
            card,
            label.strip() or None,
            replace=name == "replace",
            lookalike=name == "add-lookalike",
        )
    if name == "verify":
        target, more = _split_first(rest)
        if not target or more.strip() not in ("", "confirm"):
            raise UsageError("usage: /verify <contact> [confirm]")
        return Verify(target, more.strip() == "confirm")
    if name == "group":
        return parse_group(rest)
    if name == "device":
        return parse_device(rest)
    if name in ("voice", "play", "talk"):
        return parse_voice(name, rest)
    if name in ("file", "accept"):
        return parse_file(name, rest)
    if name == "delete":
        return _parse_delete(rest)
    if name == "panic":
        if rest.strip() not in ("", "confirm"):
            raise UsageError("usage: /panic confirm")
        return Panic(rest.strip() == "confirm")
    if name == "help":
        return _parse_help(rest)
    if name == "block":
        return Block(_person(rest, "/block [name]") if rest.strip() else None)
    if name == "unblock":
        return Unblock(_person(rest, "/unblock <name>"))
    if name == "nick":
        return Nick(_nick(rest))
    if name == "me":
        if not rest.strip():
            raise UsageError("usage: /me <action>")
        return Me(_message_text(rest.strip()))
    if rest:
        raise UsageError(f"/{name} takes no arguments")
    simple: dict[str, Command] = {
        "who": Who(),
        "id": ShowId(),
        "help": Help(),
        "clear": Clear(),
        "quit": Quit(),
        "yes": Yes(),
    }
    return simple[name]


def _person(rest: str, usage: str) -> str:
    """One person's name or id prefix (bitchat's ``@name`` accepted)."""
    words = rest.split()
    if len(words) != 1 or not words[0].lstrip("@"):
        raise UsageError(f"usage: {usage}")
    return words[0].lstrip("@")


def _nick(rest: str) -> str:
    name = clean_name(rest)
    if not name:
        raise UsageError("usage: /nick <name>")
    if name.startswith(("#", "+", "@", "~")):
        raise UsageError(f"a name cannot start with {name[0]!r}")
    if len(name.encode()) > MAX_NAME_BYTES:
        raise UsageError(f"a name is at most {MAX_NAME_BYTES} bytes")
    return name


def _parse_help(rest: str) -> Help:
    word = rest.strip().lstrip("/").lower()
    if not word:
        return Help()
    topic = _ALIASES.get(word)
    if topic is None:
        raise UsageError(f"no command /{word}: /help lists them")
    return Help(topic)


#: the furthest back ``/delete N`` reaches (the screen keeps at most this many lines)
MAX_DELETE_BACK = 1000


def _parse_delete(rest: str) -> Delete:
    word = rest.strip()
    if not word:
        return Delete()
    if not word.isdecimal() or not word.isascii() or not 1 <= int(word) <= MAX_DELETE_BACK:
        raise UsageError(
            f"usage: /delete [N]: N counts messages back from the last one (1 to "
            f"{MAX_DELETE_BACK}), not {word!r}"
        )
    return Delete(int(word))


def _parse_msg(rest: str) -> Msg:
    target, text = _split_first(rest)
    if not target:
        raise UsageError("usage: /msg <contact|#channel|+group> [text]")
    if target.startswith("#"):
        target = normalise_channel_name(target)
    elif is_group_word(target):
        target = group_target(target, "/msg +group [text]")
    elif target.startswith("@") and len(target) > 1:
        target = target[1:]  # bitchat's /m @name
    text = text.strip()
    return Msg(target, _message_text(text) if text else None)


def _parse_join(rest: str) -> Join:
    channel, passphrase = _split_first(rest)
    if not channel:
        raise UsageError("usage: /join #channel [passphrase]")
    passphrase = passphrase.strip()
    return Join(normalise_channel_name(channel), passphrase or None)
