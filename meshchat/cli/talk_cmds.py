"""``meshchat talk``: push-to-talk from the command line, through the running node.

``talk TARGET --file AUDIO`` sends the sound of an audio file live, paced as if spoken;
``talk TARGET --seconds N`` sends N seconds of the microphone as they are spoken. Either way
the node sends it (:mod:`meshchat.node._talk`): to a contact, or to the members of a
``+group``, over direct LAN links only. A listening node plays what it hears on its sound
card, or writes it as a WAV file in its downloads folder where there is none (``talks``
lists them).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from meshchat.cli.common import emit_json, say
from meshchat.control import request
from meshchat.display import safe_line
from meshchat.errors import NodeUnreachable, UsageError
from meshchat.home import Home
from meshchat.talk.params import MAX_SECONDS

__all__ = ["add_talk_parsers", "cmd_talk", "cmd_talks"]

_NEEDS_NODE = "push-to-talk needs the running node ('meshchat run' or 'meshchat daemon')"
#: the most seconds the microphone is sent for without --seconds
DEFAULT_SECONDS = 10.0


def add_talk_parsers(sub: Any) -> None:
    """``talk`` and ``talks`` on the ``meshchat`` parser's sub-commands."""
    help_text = "push-to-talk: send live sound to a contact or +group over LAN links"
    p = sub.add_parser("talk", help=help_text, description=help_text)
    p.set_defaults(fn=cmd_talk)
    p.add_argument("to", help="contact name, node id prefix or +group")
    p.add_argument("--file", metavar="AUDIO", help="send this audio file live (for tests)")
    p.add_argument(
        "--seconds",
        type=float,
        help=f"stop after this many seconds (microphone: default {DEFAULT_SECONDS:g}, "
        f"at most {MAX_SECONDS})",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")

    help_text = "the live talks this node heard (and where their sound went)"
    p = sub.add_parser("talks", help=help_text, description=help_text)
    p.set_defaults(fn=cmd_talks)
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _ask(home: Home, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
    if not home.control_socket.exists():
        raise UsageError(_NEEDS_NODE)
    try:
        reply = request(home.control_socket, payload, timeout=timeout)
    except NodeUnreachable as exc:
        raise UsageError(_NEEDS_NODE) from exc
    if not reply.get("ok"):
        raise UsageError(str(reply.get("error", "the node refused the request")))
    return reply


def cmd_talk(args: argparse.Namespace, home: Home) -> int:
    seconds = args.seconds
    if seconds is not None and not 0 < seconds <= MAX_SECONDS:
        raise UsageError(f"--seconds is 0 to {MAX_SECONDS}")
    payload: dict[str, Any] = {"op": "talk", "to": args.to}
    if args.file is not None:
        path = Path(args.file)
        if not path.is_file():
            raise UsageError(f"{args.file}: not a file")
        payload["path"] = str(path.resolve())
    else:
        seconds = seconds or DEFAULT_SECONDS
    if seconds is not None:
        payload["seconds"] = seconds
    talk = _ask(home, payload, timeout=(seconds or MAX_SECONDS) + 30)["talk"]
    if args.json:
        emit_json(talk)
    else:
        kbit = talk["wire_bytes"] * 8 / 1000 / talk["seconds"] if talk["seconds"] else 0.0
        say(
            f"talked {talk['seconds']:.1f} s to {safe_line(args.to)} "
            f"({talk['frames']} frames to {len(talk['peers'])} device(s), "
            f"{kbit:.0f} kbit/s on the links)"
        )
    return 0


def cmd_talks(args: argparse.Namespace, home: Home) -> int:
    talks = _ask(home, {"op": "talks"}, timeout=10)["talks"]
    if args.json:
        emit_json(talks)
        return 0
    if not talks:
        say("no talk heard since the node started")
    for t in talks:
        where = t["device"] or t["wav"] or "nowhere"
        state = t["ended"] or "live"
        say(
            f"{t['sender'][:16]} {t['seconds']:.1f} s ({state}, {t['gaps']} gaps: "
            f"{t.get('recovered', 0)} recovered, "
            f"{t.get('concealed', 0) - t.get('recovered', 0)} concealed) -> "
            f"{safe_line(str(where))}"
        )
    return 0
