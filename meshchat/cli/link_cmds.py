"""``meshchat device link``, ``meshchat device join CODE`` and ``meshchat init --link CODE``.

Each works against the running node of the home (through the control socket), or, when none
runs, starts the node itself for as long as the exchange lasts. The existing device shows a
one-time code and its QR code and waits; the new device looks for the device that shows it,
asks to join, and both show the confirmation string, which the person compares and confirms on
each device (``y``, or the string the other device shows). ``--confirm STRING`` answers without
asking: it confirms only when this device's string is STRING, so a script passes the string it
read on the other device; it never skips the comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from meshchat.account.book import AccountBook
from meshchat.app import running_node
from meshchat.cli.common import emit_json, node_request, open_store, read_passphrase, say, unlock
from meshchat.cli.node_cmds import add_node_arguments, node_config, settings_from
from meshchat.errors import NodeUnreachable, UsageError
from meshchat.home import Home
from meshchat.node import Node
from meshchat.node._link import control_op, devices_json
from meshchat.qr import draw_qr

__all__ = ["add_link_parsers", "join_flow", "run_join"]

Call = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]

#: how long ``device join`` looks for the device that shows the code
FIND_S = 120.0
#: how long either side waits for the other at most (a code lives ten minutes)
WAIT_S = 11 * 60.0

_ENDED = {
    "expired": "the code expired (it works for ten minutes): make a new one",
    "used": "that code was used already: make a new one",
    "withdrawn": "too many wrong attempts: the code was withdrawn; make a new one",
    "bad-mac": "the other device does not know this code: nothing was linked",
    "bad-code": "the code is not one the other device shows: nothing was linked",
    "declined": "the other device said no, or its person found the strings differ: "
    "nothing was linked",
    "mismatch": "the strings differ: nothing was linked (someone may be between the devices)",
    "bad-list": "the device list could not take it (an account has at most 8 devices, and a "
    "device is on one account): nothing was linked",
    "bad-commitment": "the exchange broke (a bad commitment): nothing was linked",
    "out-of-order": "the exchange broke: nothing was linked",
}


def add_link_parsers(dsub: Any) -> None:
    """``device list``, ``device link`` and ``device join`` under the ``device`` command."""
    p = dsub.add_parser("list", help="this account's devices")
    p.set_defaults(fn=cmd_device_list)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = dsub.add_parser(
        "revoke",
        help="take another device off this account for good (a lost or stolen one)",
        description="Sign a new device list without DEVICE and send it to every contact and "
        "every other device of the account: they stop encrypting to it, and groups this "
        "device administers are re-keyed without it. DEVICE is its name or the first hex "
        "digits of its node id (see: device list). Uses the running node, or starts one for a "
        "few seconds: what it could not deliver then is sent the next time a node runs.",
    )
    p.set_defaults(fn=cmd_device_revoke)
    p.add_argument("device", help="the device's name or node id prefix")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add_node_arguments(p)
    p = dsub.add_parser(
        "link",
        help="show a one-time code to link a new device to this account",
        description="Show a one-time code (and its QR code) for a new device; then compare "
        "the confirmation string both devices show and confirm.",
    )
    p.set_defaults(fn=cmd_device_link)
    _answer_flags(p)
    p.add_argument("--no-qr", action="store_true", help="do not draw the QR code")
    add_node_arguments(p)
    p = dsub.add_parser(
        "join",
        help="link this device to the account of the device that shows CODE",
        description="Find the device that shows CODE, ask it to link this one, then compare "
        "the confirmation string both devices show and confirm.",
    )
    p.set_defaults(fn=cmd_device_join)
    p.add_argument("code", help="the code the existing device shows")
    p.add_argument("--device-name", help="this device's name on the account (default: host name)")
    _answer_flags(p)
    add_node_arguments(p)


def _answer_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--confirm",
        metavar="STRING",
        help="do not ask: confirm only if this device's string is STRING (the string the "
        "other device shows); any other string refuses",
    )


# -- the two ways to reach a node -----------------------------------------------------------


def _remote(home: Home) -> Call:
    async def call(payload: dict[str, Any]) -> dict[str, Any]:
        reply = await asyncio.to_thread(node_request, home, payload)
        if reply is None:
            raise NodeUnreachable("the running node went away")
        return reply

    return call


def _local(node: Node) -> Call:
    async def call(payload: dict[str, Any]) -> dict[str, Any]:
        return await control_op(node, payload)

    return call


def _with_node(
    args: argparse.Namespace,
    home: Home,
    flow: Callable[[Call], Coroutine[Any, Any, int]],
    passphrase: str | None = None,
) -> int:
    """Run ``flow`` against the running node, or against one started here for it."""
    if not home.initialised:
        raise UsageError(f"no identity in {home.path}: run 'meshchat init' first")
    if node_request(home, {"op": "link_wait", "role": "new", "timeout": 0}) is not None:
        return asyncio.run(flow(_remote(home)))
    settings = settings_from(args, node_config(home))
    secret = passphrase if passphrase is not None else read_passphrase()

    async def local() -> int:
        async with running_node(home, secret, settings) as node:
            result = await flow(_local(node))
            await _linger(node)
            return result

    return asyncio.run(local())


async def _linger(node: Node, most_s: float = 10.0) -> None:
    """Give the last link parts time to be acked before the node started here stops."""
    deadline = time.monotonic() + most_s
    while time.monotonic() < deadline:
        if not any(item.is_control for item in node.engine.outbox.items()):
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(0.5)


# -- the steps --------------------------------------------------------------------------------


async def _wait(call: Call, role: str, answered: bool) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_S
    while True:
        progress = await call({"op": "link_wait", "role": role, "answered": answered})
        state = progress.get("state")
        if state in ("accepted", "linked", "ended") or (
            not answered and state == "confirming" and progress.get("string")
        ):
            return progress
        if time.monotonic() > deadline:
            return {**progress, "state": "ended", "reason": "expired"}


def _read_line() -> asyncio.Future[str]:
    """A line of standard input, read on a daemon thread (so that a person who never
    answers does not keep the process from ending)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str] = loop.create_future()

    def give(line: str) -> None:
        if not future.done():
            future.set_result(line)

    def read() -> None:
        line = sys.stdin.readline()
        with contextlib.suppress(RuntimeError):  # the loop may be closed by then
            loop.call_soon_threadsafe(give, line)

    threading.Thread(target=read, daemon=True).start()
    return future


async def _ask(call: Call, role: str, question: str, given: str | None) -> str | dict[str, Any]:
    """The person's answer (or ``given``); or the exchange, if it ended while asking (the
    other device refused, or the code expired)."""
    if given is not None:
        return given
    print(question, end="", flush=True)
    line = _read_line()
    ended = asyncio.ensure_future(_wait(call, role, answered=True))
    waiters: list[asyncio.Future[Any]] = [line, ended]
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    if line.done():
        ended.cancel()
        return line.result().strip() or "n"
    print()
    return ended.result()


def _ended(progress: dict[str, Any]) -> int:
    reason = str(progress.get("reason") or "")
    say(f"meshchat: not linked: {_ENDED.get(reason, reason or 'the exchange ended')}", err=True)
    return 1


def _peer(progress: dict[str, Any]) -> str:
    name = str(progress.get("peer_name") or "")
    short = str(progress.get("peer") or "")[:8]
    return f"{name} ({short})" if name else short


async def link_flow(call: Call, qr: bool, confirm: str | None) -> int:
    """The existing device's side."""
    offer = await call({"op": "link_start"})
    code = str(offer["code"])
    say(f"Link code: {code}")
    if qr:
        draw_qr(str(offer["qr"]), sys.stdout)
    say(f"On the new device run:  meshchat device join {code}")
    say(f"            (or, new:   meshchat init --link {code})")
    say("The code works once, for ten minutes. Waiting for the new device...")
    progress = await _wait(call, "existing", answered=False)
    if progress["state"] != "confirming":
        return _ended(progress)
    say(f"New device {_peer(progress)} asks to join this account.")
    say(f"Confirmation string: {progress['string']}")
    answer = await _ask(
        call,
        "existing",
        "Does the new device show the same string? Type y, n, or the string it shows: ",
        confirm,
    )
    if isinstance(answer, dict):
        return _ended(answer)
    progress = await call({"op": "link_confirm", "role": "existing", "answer": answer})
    if progress["state"] != "accepted":
        return _ended(progress)
    say(f"Linked: {_peer(progress)} is now a device of this account.")
    return 0


async def join_flow(call: Call, code: str, device_name: str, confirm: str | None) -> int:
    """The new device's side."""
    say("Looking for the device that shows this code...")
    deadline = time.monotonic() + FIND_S
    while True:
        request = {"op": "link_join", "code": code, "device_name": device_name}
        progress = await call(request)
        if progress["state"] != "not-found":
            break
        if time.monotonic() > deadline:
            raise UsageError(str(progress.get("error", "the device was not found")))
    say(f"Asked {_peer(progress)} to link this device.")
    progress = await _wait(call, "new", answered=False)
    if progress["state"] != "confirming":
        return _ended(progress)
    say(f"Confirmation string: {progress['string']}")
    answer = await _ask(
        call,
        "new",
        "Does the other device show the same string? Type y, n, or the string it shows: ",
        confirm,
    )
    if isinstance(answer, dict):
        return _ended(answer)
    progress = await call({"op": "link_confirm", "role": "new", "answer": answer})
    if progress["state"] == "ended":
        return _ended(progress)
    if progress["state"] != "linked":
        say("Waiting for the other device to confirm...")
        progress = await _wait(call, "new", answered=True)
    if progress["state"] != "linked":
        return _ended(progress)
    say(f"Linked: this device is now on account {str(progress['account_id'])[:16]}.")
    return 0


def cmd_device_list(args: argparse.Namespace, home: Home) -> int:
    reply = node_request(home, {"op": "link_devices"})
    if reply is None:
        unlocked = unlock(home)
        store = open_store(home, unlocked)
        try:
            book = AccountBook(unlocked.identity)
            book.load(store.device_lists())
        finally:
            store.close()
        reply = devices_json(book.own, unlocked.identity.node_id)
    if args.json:
        emit_json({k: v for k, v in reply.items() if k != "ok"})
        return 0
    say(f"account {reply['account_id']} (list version {reply['version']})")
    for device in reply["devices"]:
        mark = "  (this device)" if device["this"] else ""
        say(f"  {device['node_id'][:16]}  {device['name']}{mark}")
    if reply["revoked"]:
        say(f"  revoked: {', '.join(r[:16] for r in reply['revoked'])}")
    return 0


def cmd_device_revoke(args: argparse.Namespace, home: Home) -> int:
    replies: list[dict[str, Any]] = []

    async def flow(call: Call) -> int:
        replies.append(await call({"op": "link_revoke", "device": args.device}))
        return 0

    _with_node(args, home, flow)
    reply = replies[0]
    if args.json:
        emit_json({k: v for k, v in reply.items() if k != "ok"})
        return 0
    say(
        f"revoked: account {reply['account_id'][:16]} now has {len(reply['devices'])} "
        f"device(s) (list version {reply['version']}); contacts and your devices are told"
    )
    return 0


def cmd_device_link(args: argparse.Namespace, home: Home) -> int:
    return _with_node(args, home, lambda call: link_flow(call, not args.no_qr, args.confirm))


def cmd_device_join(args: argparse.Namespace, home: Home) -> int:
    return run_join(args, home, args.code)


def run_join(args: argparse.Namespace, home: Home, code: str, passphrase: str | None = None) -> int:
    """``device join CODE`` (also what ``init --link CODE`` runs once the identity exists)."""
    from meshchat.account.link import LinkCode

    LinkCode.parse(code)  # a mistyped code is told at once, before anything starts
    name = getattr(args, "device_name", None) or ""
    with contextlib.suppress(KeyboardInterrupt):
        return _with_node(
            args, home, lambda call: join_flow(call, code, name, args.confirm), passphrase
        )
    return 130
