"""The input line's language: plain text to send, or an IRC-style ``/command``.

This module is pure: :func:`parse_line` turns one line into a command value (or ``None`` for
a blank line) and raises :class:`UsageError` with a message fit to show the user for anything
it cannot accept. The chat controller carries the commands out; keeping the grammar here lets
it be tested without a terminal or a node.

Grammar (words are split on whitespace; the last argument of ``/msg`` and ``/add`` keeps its
inner spacing)::

    text                       Say(text)              (to the current conversation)
    //text                     Say("/text")           (a message that starts with a slash)
    /msg <contact|#chan> [text]   Msg(target, text)   (alias /query, /m)
    /join #chan [passphrase]   Join(channel, passphrase)   (alias /j)
    /who                       Who()
    /id                        ShowId()
    /add <card> [name]         AddContact(card, name)
    /replace <card> [name]     AddContact(card, name, replace=True)   (accept a key change)
    /verify <contact> [confirm]   Verify(target, confirm)
    /panic [confirm]           Panic(confirm)
    /help                      Help()                 (alias /?)
    /quit                      Quit()                 (alias /exit, /q)
"""

from __future__ import annotations

from dataclasses import dataclass

from meshchat.crypto.channel import normalise_channel_name
from meshchat.errors import UsageError
from meshchat.wire.payloads import MAX_TEXT_BYTES

__all__ = [
    "HELP_TEXT",
    "MAX_LINE_CHARS",
    "AddContact",
    "Command",
    "Help",
    "Join",
    "Msg",
    "Panic",
    "Quit",
    "Say",
    "ShowId",
    "Verify",
    "Who",
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
    """Open the conversation with ``target`` (a contact or ``#channel``); send ``text`` if any."""

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


@dataclass(frozen=True, slots=True)
class Verify:
    """Show the safety number shared with ``target``; with ``confirm``, mark it verified."""

    target: str
    confirm: bool = False


@dataclass(frozen=True, slots=True)
class Panic:
    """Erase keys and messages at once (only with ``confirm``) and leave."""

    confirm: bool = False


@dataclass(frozen=True, slots=True)
class Help:
    """Show the commands and keys."""


@dataclass(frozen=True, slots=True)
class Quit:
    """Leave the program."""


Command = Say | Msg | Join | Who | ShowId | AddContact | Verify | Panic | Help | Quit

HELP_TEXT = """\
commands:
  /msg <contact|#chan> [text]  open a conversation (and send text)
  /join #chan [passphrase]     join a channel; a passphrase makes it private
  /who                         list neighbours and announced peers
  /id                          show your fingerprint and contact card
  /add <card> [name]           add a contact from their card (mc1:...)
  /replace <card> [name]       accept a contact's new keys (old keys marked compromised)
  /verify <contact> [confirm]  compare safety numbers; 'confirm' once they match
  /panic confirm               erase your keys and messages now, and quit
  /help                        this help;  /quit  leave (also Ctrl-C, Ctrl-Q)
  //text                       send a message that starts with '/'
keys: Tab/Shift-Tab switch pane, Ctrl-N/Ctrl-P next/previous conversation,
      PageUp/PageDown scroll messages, Up/Down recall input history"""

_ALIASES = {
    "msg": "msg",
    "m": "msg",
    "query": "msg",
    "join": "join",
    "j": "join",
    "who": "who",
    "id": "id",
    "add": "add",
    "replace": "replace",
    "verify": "verify",
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
    if name in ("add", "replace"):
        card, label = _split_first(rest)
        if not card:
            raise UsageError(f"usage: /{name} <card> [name]")
        return AddContact(card, label.strip() or None, replace=name == "replace")
    if name == "verify":
        target, more = _split_first(rest)
        if not target or more.strip() not in ("", "confirm"):
            raise UsageError("usage: /verify <contact> [confirm]")
        return Verify(target, more.strip() == "confirm")
    if name == "panic":
        if rest.strip() not in ("", "confirm"):
            raise UsageError("usage: /panic confirm")
        return Panic(rest.strip() == "confirm")
    if rest:
        raise UsageError(f"/{name} takes no arguments")
    simple: dict[str, Command] = {"who": Who(), "id": ShowId(), "help": Help(), "quit": Quit()}
    return simple[name]


def _parse_msg(rest: str) -> Msg:
    target, text = _split_first(rest)
    if not target:
        raise UsageError("usage: /msg <contact|#channel> [text]")
    if target.startswith("#"):
        target = normalise_channel_name(target)
    text = text.strip()
    return Msg(target, _message_text(text) if text else None)


def _parse_join(rest: str) -> Join:
    channel, passphrase = _split_first(rest)
    if not channel:
        raise UsageError("usage: /join #channel [passphrase]")
    passphrase = passphrase.strip()
    return Join(normalise_channel_name(channel), passphrase or None)
