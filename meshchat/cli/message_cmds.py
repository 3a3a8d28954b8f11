"""``meshchat send`` and ``meshchat log``: through the running node, or the store directly.

Without a running node both open the encrypted store, so they ask for the passphrase
($MESHCHAT_PASSPHRASE or the terminal); a message queued that way is sent at the next start.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from meshchat.bridges.marks import network_mark
from meshchat.causal import split_heads
from meshchat.cli.common import (
    emit_json,
    node_request,
    open_store,
    say,
    unlock,
)
from meshchat.cli.group_cmds import stored_groups
from meshchat.cli.history_cmds import log_lines
from meshchat.control import history_json, message_json
from meshchat.errors import NoSuchContact, UsageError
from meshchat.files.announce import is_announcement
from meshchat.home import Home
from meshchat.store import Store, Trust
from meshchat.target import conversation_of, resolve_target
from meshchat.wire.packet import MAX_AGE_MS
from meshchat.wire.payloads import MAX_TEXT_BYTES

__all__ = ["cmd_log", "cmd_send"]


def cmd_send(args: argparse.Namespace, home: Home) -> int:
    text = " ".join(args.text)
    if not args.text or args.text == ["-"]:
        # Arguments are visible to every local user (ps, /proc/PID/cmdline); stdin is not.
        if sys.stdin.isatty():
            say("type the message, then Ctrl-D on a line of its own", err=True)
        text = sys.stdin.read().rstrip("\n")
    if not text:
        raise UsageError("nothing to send")
    if len(text.encode()) > MAX_TEXT_BYTES:
        raise UsageError(f"message longer than {MAX_TEXT_BYTES} bytes")
    reply = node_request(home, {"op": "send", "to": args.to, "text": text})
    message: dict[str, Any] = (
        reply["message"] if reply is not None else _queue_offline(home, args.to, text)
    )
    if args.json:
        emit_json(message)
    else:
        say(f"{message['state']} {message['msg_id'][:12]} -> {message['conversation']}")
    return 0


def _queue_offline(home: Home, target: str, text: str) -> dict[str, Any]:
    """No node is running: store the message in the outbox for the next node start."""
    me = unlock(home)
    now = int(time.time() * 1000)
    with open_store(home, me) as store:
        try:
            to = resolve_target(target, store, stored_groups(store))
        except NoSuchContact as exc:
            raise NoSuchContact(
                f"{exc}; a neighbour's announced name is known only to a running node "
                "('meshchat run' or 'meshchat daemon')"
            ) from exc
        parents, loose = split_heads(store.head_messages(to.conversation), is_announcement)
        message = store.add_outgoing(
            to.conversation,
            os.urandom(16),
            to.destination,
            me.identity.node_id,
            me.name,
            text,
            now,
            now + MAX_AGE_MS,
            parents=parents,
            loose=loose,
        )
    return message_json(message)


def _ask(home: Home, op: str) -> dict[str, Any]:
    reply = node_request(home, {"op": op})
    if reply is None:
        raise UsageError("the running node stopped")
    return reply


def _conversation(store: Store, target: str) -> str:
    if target.startswith("#") or target.startswith("dm:"):
        return target.lower()
    return conversation_of(target, store, stored_groups(store))


def cmd_log(args: argparse.Namespace, home: Home) -> int:
    ask = {"op": "log", "conversation": args.target, "limit": args.limit, "read": args.read}
    reply = node_request(home, ask)
    if reply is not None:
        conversation = str(reply["conversation"])
        messages = list(reply["messages"])
        names = [str(c["name"]) for c in _ask(home, "contacts")["contacts"]]
        names.append(str(_ask(home, "status")["name"]))
    else:
        unlocked = unlock(home)  # one passphrase, one key derivation
        with open_store(home, unlocked) as store:
            conversation = _conversation(store, args.target)
            shown = store.history(conversation, args.limit)
            sent = store.deliveries(m.msg_id for m in shown if m.outgoing)
            messages = history_json(shown, sent)
            names = [c.name for c in store.list_contacts() if c.trust is not Trust.COMPROMISED]
            if args.read:  # read here, and on my other devices at the next sync
                store.mark_read(conversation, int(time.time() * 1000))
        names.append(unlocked.name)
    mark = network_mark(conversation)
    if args.json:
        out: dict[str, object] = {"conversation": conversation, "messages": messages}
        if mark is not None:
            out["network"] = mark
        emit_json(out)
        return 0
    if mark is not None:
        say(f"{conversation}: {mark}")
    for line in log_lines(messages, names):
        say(line)
    return 0
