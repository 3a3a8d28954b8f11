"""Helpers shared by the command modules: passphrases, the store, printing, the running node."""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
from datetime import UTC, datetime
from typing import Any

from meshchat.control import request
from meshchat.display import safe_line
from meshchat.errors import NodeUnreachable, UsageError
from meshchat.home import Home, Unlocked, passphrase_from_env
from meshchat.identity import ContactCard
from meshchat.store import Store
from meshchat.verify import SafetyMismatch

__all__ = [
    "card_of",
    "confirm",
    "emit_json",
    "format_time",
    "node_request",
    "open_store",
    "read_passphrase",
    "say",
    "unlock",
]


def read_passphrase(prompt: str = "Passphrase: ", confirm: bool = False) -> str:
    """The passphrase from $MESHCHAT_PASSPHRASE, or asked on the terminal."""
    env = passphrase_from_env()
    if env is not None:
        return env
    if not sys.stdin.isatty():
        raise UsageError("no passphrase: set MESHCHAT_PASSPHRASE or run in a terminal")
    first = getpass.getpass(prompt)
    if confirm and getpass.getpass("Again: ") != first:
        raise UsageError("the passphrases differ")
    if not first:
        raise UsageError("an empty passphrase is not allowed")
    return first


def confirm(question: str, yes: bool) -> bool:
    """True if ``--yes`` was given or the user answers yes on the terminal.

    Without a terminal and without ``--yes`` this raises :class:`UsageError`: a script must
    say what it wants.
    """
    if yes:
        return True
    if not sys.stdin.isatty():
        raise UsageError("not confirmed: pass --yes when not running in a terminal")
    answer = input(f"{safe_line(question)} [y/N] ")
    return answer.strip().lower() in {"y", "yes"}


def card_of(home: Home) -> ContactCard:
    """Our own contact card: from the running node, else from the node started offline.

    Nothing about us is kept in clear in the home, so without a running node this asks the
    passphrase ($MESHCHAT_PASSPHRASE or the terminal).
    """
    if not home.initialised:
        raise UsageError(f"no identity in {home.path}: run 'meshchat init' first")
    reply = node_request(home, {"op": "card"})
    if reply is not None:
        return ContactCard.from_text(str(reply["card"]))
    from meshchat.app import offline_card

    return asyncio.run(offline_card(home, read_passphrase()))


def unlock(home: Home) -> Unlocked:
    """Open the keystore with the passphrase ($MESHCHAT_PASSPHRASE or asked)."""
    if not home.initialised:
        raise UsageError(f"no identity in {home.path}: run 'meshchat init' first")
    return home.unlock_all(read_passphrase())


def open_store(home: Home, unlocked: Unlocked | None = None) -> Store:
    """The encrypted store, opened with the key from the keystore (asks the passphrase)."""
    if unlocked is None:
        unlocked = unlock(home)
    return Store.open(home.database, key=unlocked.store_key)


def node_request(home: Home, payload: dict[str, Any]) -> dict[str, Any] | None:
    """Ask the running node; None when no node is running for this home.

    None only when nothing was sent (no socket, or no node took the connection): the caller
    may then do the work offline. When the request went out but no reply came back, the node
    may have carried it out, so :class:`TransportError` propagates: doing it offline as well
    could, for instance, queue a message twice.
    """
    if not home.control_socket.exists():
        return None
    try:
        reply = request(home.control_socket, payload)
    except NodeUnreachable:
        return None
    if not reply.get("ok"):
        error = str(reply.get("error", "the node refused the request"))
        if reply.get("kind") == SafetyMismatch.__name__:
            raise SafetyMismatch(error)
        raise UsageError(error)
    return reply


def say(line: str = "", *, err: bool = False) -> None:
    """Print one line for a human (standard error with ``err``).

    Every plain-text line goes through here: names and texts other people chose cannot move
    the cursor, erase the ``~`` that marks a stranger or start a forged line (see
    :mod:`meshchat.display`). ``--json`` output (:func:`emit_json`) keeps exact values.
    """
    print(safe_line(line), file=sys.stderr if err else sys.stdout, flush=True)


def emit_json(value: object) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def format_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")
