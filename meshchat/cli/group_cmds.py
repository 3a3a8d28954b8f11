"""``meshchat group list|show|create|add|remove|admin|leave``: private groups.

Creating or changing a group sends its new keys to every member, so those commands go
through the running node (``meshchat run`` or ``meshchat daemon``). ``list`` and ``show``
read the encrypted store when no node is running.
"""

from __future__ import annotations

import argparse
from typing import Any

from meshchat.cli.common import emit_json, node_request, open_store, say, unlock
from meshchat.control import group_json
from meshchat.errors import StoreError, UsageError
from meshchat.group.book import BOOK_KEY, Group
from meshchat.home import Home
from meshchat.store import Store

__all__ = ["add_group_parser", "cmd_group", "match_groups", "stored_groups"]

_STATE_KIND = "group"


def add_group_parser(sub: Any) -> None:
    """The ``group`` command and its actions."""
    group = sub.add_parser("group", help="private groups", description="private groups")
    gsub = group.add_subparsers(dest="action", metavar="ACTION", required=True)

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = gsub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(fn=cmd_group)
        p.add_argument("--json", action="store_true", help="machine-readable output")
        return p

    action("list", "list your groups and their members")
    p = action("show", "show one group's members and admins")
    p.add_argument("group", help="+name or grp:<id prefix>")
    p = action("leave", "leave a group (your keys for it are erased; its admins re-key it)")
    p.add_argument("group", help="+name or grp:<id prefix>")
    p = action("create", "make a private group of contacts (you are its admin)")
    p.add_argument("name", help="the group's name")
    p.add_argument("members", nargs="+", help="contact names or node id prefixes")
    for name, verb in (
        ("add", "add contacts to a group (re-keys it)"),
        ("remove", "remove members from a group (re-keys it: they read nothing after)"),
        ("admin", "make members admins of a group"),
    ):
        p = action(name, verb)
        p.add_argument("group", help="+name or grp:<id prefix>")
        p.add_argument("members", nargs="+", help="contact names or node id prefixes")


def cmd_group(args: argparse.Namespace, home: Home) -> int:
    payload: dict[str, Any] = {"op": "group", "action": args.action}
    if args.action == "create":
        payload.update(name=args.name, members=args.members)
    elif args.action != "list":
        payload["group"] = args.group
        payload["members"] = getattr(args, "members", [])
    reply = node_request(home, payload)
    if reply is None:
        if args.action not in ("list", "show"):
            raise UsageError(
                "changing a group sends keys to its members: start the node first "
                "('meshchat run' or 'meshchat daemon')"
            )
        groups = _offline(home, getattr(args, "group", None))
    else:
        groups = list(reply["groups"])
    if args.json:
        emit_json({"groups": groups})
        return 0
    if not groups:
        say("no groups yet: 'meshchat group create NAME CONTACT...'")
    for g in groups:
        state = "" if g["member"] else "  (you were removed)"
        role = " admin" if g["admin"] else ""
        say(f"+{g['name']}  grp:{g['group_id'][:8]}  epoch {g['epoch']}{role}{state}")
        for m in g["members"]:
            who = "me" if m["me"] else _who(m)
            star = " (admin)" if m["admin"] else ""
            update = m.get("update", "")
            note = f"  [{update}]" if update in ("pending", "not applied") else ""
            say(f"    {m['node_id'][:8]}  {who}{star}{note}")
    return 0


def _who(member: dict[str, Any]) -> str:
    """A member as ``log`` shows a sender: a contact by name, a stranger by ``~`` and the
    name they announced, else a short id."""
    if member.get("contact"):
        return str(member["name"])
    if member.get("name"):
        return f"~{member['name']}"
    return str(member["node_id"])[:8]


def stored_groups(store: Store) -> list[Group]:
    """The groups kept in the store (readable ones), by name."""
    groups: list[Group] = []
    for key, blob in store.states(_STATE_KIND).items():
        if key == BOOK_KEY:
            continue
        try:
            groups.append(Group.load(blob))
        except StoreError:
            continue
    return sorted(groups, key=lambda g: g.name.casefold())


def match_groups(groups: list[Group], target: str) -> list[Group]:
    """The groups ``target`` (``+name`` or ``grp:<id prefix>``) names; raises if none."""
    if target.startswith("grp:"):
        prefix = target[4:].lower()
        found = [g for g in groups if prefix and g.group_id.hex().startswith(prefix)]
    else:
        wanted = target.removeprefix("+").strip().casefold()
        found = [g for g in groups if g.name.casefold() == wanted]
    if not found:
        raise UsageError(f"no group {target!r}: see 'meshchat group list'")
    return found


def _offline(home: Home, target: str | None) -> list[dict[str, Any]]:
    unlocked = unlock(home)
    me = unlocked.identity.node_id
    with open_store(home, unlocked) as store:
        names = {c.node_id: c.name for c in store.list_contacts()}
        groups = stored_groups(store)
    if target is not None:
        groups = match_groups(groups, target)
    return [group_json(g, me, names, names) for g in groups]
