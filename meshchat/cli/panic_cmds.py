"""``meshchat panic``: erase this home's keys, messages and card at once.

If a node is running for the home, it is told first (control op ``panic``): it erases the files
itself and stops. Then this command erases whatever is left (or everything, when no node runs).
It never asks for the passphrase. In a terminal it asks once to confirm; elsewhere it needs
``--yes``. See :mod:`meshchat.panic` for how files are erased and why that suffices.
"""

from __future__ import annotations

import argparse
import sys
import time

from meshchat.cli.common import emit_json, say
from meshchat.control import request
from meshchat.errors import TransportError, UsageError
from meshchat.home import Home
from meshchat.panic import erase_home

__all__ = ["cmd_panic"]

#: How long to wait for a running node to answer before erasing without it.
NODE_TIMEOUT_S = 5.0


def _confirmed(args: argparse.Namespace, home: Home) -> bool:
    if args.yes:
        return True
    if not sys.stdin.isatty():
        raise UsageError("panic erases everything: pass --yes when not running in a terminal")
    answer = input(f"Erase every meshchat key and message in {home.path}? Type 'erase': ")
    return answer.strip().lower() == "erase"


def cmd_panic(args: argparse.Namespace, home: Home) -> int:
    if not _confirmed(args, home):
        say("nothing erased")
        return 1
    start = time.monotonic()
    node_stopped = False
    if home.control_socket.exists():
        try:
            reply = request(home.control_socket, {"op": "panic"}, timeout=NODE_TIMEOUT_S)
            node_stopped = bool(reply.get("ok"))
        except TransportError:
            pass  # no node answers: erase it all here
    report = erase_home(home)
    seconds = time.monotonic() - start
    if args.json:
        emit_json(
            {
                "node_stopped": node_stopped,
                "erased": [str(p) for p in report.erased],
                "failed": [[str(p), why] for p, why in report.failed],
                "seconds": seconds,
            }
        )
    else:
        if node_stopped:
            say("the running node erased its files and is stopping")
        say(f"erased {home.path} in {seconds:.2f} s")
        for path, why in report.failed:
            say(f"!! could not erase {path}: {why}", err=True)
    return 0 if report.ok else 1
