"""How ``meshchat log`` shows a conversation's history, and ``meshchat delete``.

``log`` prints the messages in their causal order (the store's, never re-sorted here), each
line ``time id <sender> text``, with the markers of :mod:`meshchat.logview`: a line
``-- 2 earlier messages missing --`` before a message shown with a gap, ``(arrived late)``
after one placed at the end for claiming an old time, and, for a held message, what it waits
for instead of its text. The ids are the first hex digits of each message id: what
``meshchat delete`` takes.

``delete`` erases messages on this device only (nobody else is told): through the running
node when there is one (control op ``delete``; it also stops sending our own queued ones),
else in the store directly. It shows what it is about to erase and asks (y/N) on a terminal;
a script passes ``--yes``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from meshchat.cli.common import (
    confirm,
    emit_json,
    format_time,
    node_request,
    open_store,
    say,
    unlock,
)
from meshchat.cli.group_cmds import stored_groups
from meshchat.control import ALL_MESSAGES, history_json
from meshchat.errors import UsageError
from meshchat.files.announce import shown_text
from meshchat.home import Home
from meshchat.logview import SHORT_ID, gap_text, pick, plural, waiting_text
from meshchat.lookalike import marked
from meshchat.target import conversation_of

__all__ = ["EXCERPT", "cmd_delete", "log_lines"]

#: Characters of a message's text shown when asking whether to delete it.
EXCERPT = 60
_MARGIN = " " * 19  # under the time column


def log_lines(messages: Sequence[dict[str, Any]], names: Sequence[str]) -> list[str]:
    """The lines ``meshchat log`` prints for these messages (as :func:`history_json` gives
    them). Not yet made safe: :func:`~meshchat.cli.common.say` does that per line."""
    lines = []
    shown: dict[str, str] = {}  # sender name -> as shown (compared with ``names`` once)

    def who(m: dict[str, Any]) -> str:
        # A stranger's name carries its ``~``; a contact whose name looks like another
        # contact's (or ours) says so.
        if m["outgoing"]:
            return "me"
        name = str(m["sender_name"])
        if name not in shown:
            shown[name] = marked(name, names)
        return shown[name]

    for m in messages:
        if m.get("history") == "held":
            body = f"({waiting_text(int(m.get('missing', 0)))})"
        else:
            if "gap" in m.get("markers", ()):
                lines.append(f"{_MARGIN} -- {gap_text(int(m['missing']))} --")
            state = f" [{m['state']}{_on_devices(m)}]" if m["outgoing"] else ""
            late = " (arrived late)" if m.get("late") else ""
            body = f"{shown_text(str(m['text']))}{state}{late}"
        short = str(m["msg_id"])[:SHORT_ID]
        lines.append(f"{format_time(m['created_ms'])} {short} <{who(m)}> {body}")
    return lines


def _on_devices(m: dict[str, Any]) -> str:
    """How many of the recipient's devices have an own message, when it went to several."""
    devices = m.get("devices") or []
    if len(devices) < 2:
        return ""
    have = sum(1 for d in devices if d.get("state") == "delivered")
    return f", {have} of {len(devices)} devices"


def _describe(m: dict[str, Any]) -> str:
    who = "me" if m["outgoing"] else str(m["sender_name"])
    if m.get("history") == "held":
        text = f"({waiting_text(int(m.get('missing', 0)))})"
    else:
        text = shown_text(str(m["text"]))
        text = text if len(text) <= EXCERPT else text[: EXCERPT - 3] + "..."
    return f"  {str(m['msg_id'])[:SHORT_ID]} {format_time(m['created_ms'])} <{who}> {text}"


def _ask(
    args: argparse.Namespace, conversation: str, picked: list[dict[str, Any]], count: int
) -> bool:
    if args.msg_ids:
        if not args.yes:  # what is about to go, before the question (not in --json output)
            for m in picked:
                say(_describe(m))
        question = f"Delete {'this message' if count == 1 else f'these {count} messages'}"
    else:
        question = f"Delete the whole conversation {conversation} ({plural(count, 'message')})"
    return confirm(question + " on this device? It cannot be undone.", args.yes)


def _nothing(conversation: str) -> int:
    say(f"no messages in {conversation}: nothing deleted")
    return 0


def cmd_delete(args: argparse.Namespace, home: Home) -> int:
    prefixes = [str(p) for p in args.msg_ids]
    ask = {"op": "delete", "conversation": args.conversation, "msg_ids": prefixes}
    reply = node_request(home, {**ask, "dry_run": True})
    if reply is not None:
        conversation = str(reply["conversation"])
        picked = list(reply["messages"])
        if not reply["count"]:
            return _nothing(conversation)
        if not _ask(args, conversation, picked, int(reply["count"])):
            say("nothing deleted")
            return 1
        exact = [str(m["msg_id"]) for m in picked]
        done = node_request(home, {**ask, "conversation": conversation, "msg_ids": exact})
        if done is None:
            raise UsageError("the running node stopped: nothing was deleted")
        deleted = int(done["deleted"])
    else:
        with open_store(home, unlock(home)) as store:
            conversation = conversation_of(args.conversation, store, stored_groups(store))
            every = store.history(conversation, ALL_MESSAGES)
            chosen = {m.msg_id for m in pick(every, prefixes)}
            picked = [m for m in history_json(every) if bytes.fromhex(m["msg_id"]) in chosen]
            if not every:
                return _nothing(conversation)
            if not _ask(args, conversation, picked, len(chosen) if prefixes else len(every)):
                say("nothing deleted")
                return 1
            if prefixes:
                deleted = store.delete_messages(conversation, list(chosen))
            else:
                deleted = store.delete_conversation(conversation)
    ids = [str(m["msg_id"]) for m in picked]
    if args.json:
        emit_json({"conversation": conversation, "deleted": deleted, "msg_ids": ids})
    elif prefixes:
        shown = ", ".join(i[:SHORT_ID] for i in ids)
        say(f"deleted {plural(deleted, 'message')} from {conversation}: {shown}")
    else:
        say(f"deleted {conversation}: {plural(deleted, 'message')}")
    return 0
