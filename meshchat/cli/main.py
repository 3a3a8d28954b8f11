"""The ``meshchat`` command: argument parsing and one clear line for every error."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from meshchat import __version__
from meshchat.cli.common import say
from meshchat.cli.config_cmds import add_config_parser
from meshchat.cli.contacts_cmds import (
    cmd_contacts_add,
    cmd_contacts_distrust,
    cmd_contacts_list,
    cmd_contacts_share,
    cmd_join,
)
from meshchat.cli.file_cmds import add_file_parsers
from meshchat.cli.group_cmds import add_group_parser
from meshchat.cli.history_cmds import cmd_delete
from meshchat.cli.identity_cmds import cmd_id, cmd_init
from meshchat.cli.link_cmds import add_link_parsers
from meshchat.cli.message_cmds import cmd_log, cmd_send
from meshchat.cli.node_cmds import add_node_arguments, cmd_daemon, cmd_peers, cmd_run
from meshchat.cli.panic_cmds import cmd_panic
from meshchat.cli.relay_cmds import add_relay_arguments, cmd_relay
from meshchat.cli.status_cmds import cmd_status
from meshchat.cli.sync_cmds import add_sync_parser
from meshchat.cli.talk_cmds import add_talk_parsers
from meshchat.cli.trust_cmds import cmd_verify
from meshchat.cli.voice_cmds import add_voice_parsers
from meshchat.errors import MeshchatError
from meshchat.home import Home
from meshchat.identity import KdfProfile

__all__ = ["build_parser", "main"]

Command = Callable[[argparse.Namespace, Home], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meshchat",
        description="End-to-end encrypted chat over the LAN and Bluetooth, no servers needed.",
    )
    parser.add_argument("--version", action="version", version=f"meshchat {__version__}")
    parser.add_argument(
        "--home", help="folder for keys and messages (default: $MESHCHAT_HOME or the user data dir)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, fn: Command, help_text: str, json: bool = False) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(fn=fn)
        if json:
            p.add_argument("--json", action="store_true", help="machine-readable output")
        return p

    p = add("init", cmd_init, "create this device's identity", json=True)
    p.add_argument("--name", help="display name others see")
    p.add_argument(
        "--kdf",
        choices=[k.value for k in KdfProfile],
        default=KdfProfile.MODERATE.value,
        help="Argon2id cost for the keystore passphrase",
    )
    p.add_argument(
        "--link",
        metavar="CODE",
        help="then link this new device to the account of the device that shows CODE "
        "(as 'meshchat device join CODE')",
    )
    p.add_argument("--device-name", help="with --link: this device's name (default: host name)")
    p.add_argument("--confirm", metavar="STRING", help="with --link: as for 'meshchat device join'")
    add_node_arguments(p)
    p = add("id", cmd_id, "show your fingerprint and contact card", json=True)
    p.add_argument("--qr", action="store_true", help="also draw the card as a QR code")

    contacts = sub.add_parser("contacts", help="manage contacts")
    csub = contacts.add_subparsers(dest="contacts_command", metavar="ACTION", required=True)
    p = csub.add_parser("add", help="add a contact from their card, or a neighbour by name")
    p.set_defaults(fn=cmd_contacts_add)
    p.add_argument("card", nargs="?", help="the contact card text (mc1:...)")
    p.add_argument(
        "--from-peer",
        metavar="PEER",
        help="add a peer that announced itself (its name or node id prefix) from the keys it "
        "announced; needs the running node",
    )
    p.add_argument("--name", help="your name for them")
    p.add_argument(
        "--replace",
        action="store_true",
        help="accept new keys for a known person: the old contact is marked compromised",
    )
    p.add_argument(
        "--allow-lookalike",
        action="store_true",
        help="add it even though its name looks like a contact's or yours (it stays marked)",
    )
    p.add_argument("--json", action="store_true")
    p = csub.add_parser("list", help="list contacts with their verification state")
    p.set_defaults(fn=cmd_contacts_list)
    p.add_argument("--json", action="store_true")
    p = csub.add_parser("share", help="print a contact's signed card, to pass on")
    p.set_defaults(fn=cmd_contacts_share)
    p.add_argument("contact", help="contact name or node id prefix")
    p.add_argument("--qr", action="store_true", help="also draw the card as a QR code")
    p.add_argument("--json", action="store_true")
    p = csub.add_parser("distrust", help="mark a contact's keys as compromised")
    p.set_defaults(fn=cmd_contacts_distrust)
    p.add_argument("contact", help="contact name or node id prefix")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    p = add(
        "verify",
        cmd_verify,
        "compare your safety number with a contact and mark them verified",
        json=True,
    )
    p.add_argument("contact", help="contact name or node id prefix")
    p.add_argument("--yes", action="store_true", help="the numbers match: do not ask")
    p.add_argument("--scan", metavar="FILE", help="an image of their safety QR code to compare")
    p.add_argument("--payload", metavar="TEXT", help="the text of their safety QR code")
    p.add_argument("--no-qr", action="store_true", help="do not draw the QR code")

    p = add("send", cmd_send, "send a message to a contact, #channel or +group", json=True)
    p.add_argument("to", help="contact name, node id prefix, #channel or +group")
    p.add_argument(
        "text",
        nargs="*",
        help="the message; omitted or '-': read from standard input, which other users of "
        "this machine cannot see (they can see arguments, with ps)",
    )

    p = add(
        "log",
        cmd_log,
        "show a conversation in its causal order, with message ids, delivery states and "
        "markers (missing, late, waiting)",
        json=True,
    )
    p.add_argument("target", help="contact name, node id prefix, #channel or +group")
    p.add_argument("--limit", type=int, default=200)
    p.add_argument(
        "--read",
        action="store_true",
        help="also mark the conversation read (on my other devices too, at their next sync)",
    )

    p = add(
        "delete",
        cmd_delete,
        "delete messages, or a whole conversation, on this device (they are not stored again)",
        json=True,
    )
    p.add_argument("conversation", help="contact name, node id prefix, #channel or +group")
    p.add_argument(
        "msg_ids",
        nargs="*",
        metavar="MSG_ID",
        help="message ids or their first hex digits, as 'meshchat log' shows them "
        "(none: the whole conversation)",
    )
    p.add_argument("--yes", action="store_true", help="do not ask (needed without a terminal)")

    add_file_parsers(sub)
    add_voice_parsers(sub)
    add_talk_parsers(sub)

    p = add("join", cmd_join, "join a channel (#mesh is joined already)")
    p.add_argument("channel")
    p.add_argument("--private", action="store_true", help="ask for the channel's passphrase")

    add_group_parser(sub)

    device = sub.add_parser("device", help="this account's devices: link a new one")
    dsub = device.add_subparsers(dest="device_command", metavar="ACTION", required=True)
    add_link_parsers(dsub)
    add_sync_parser(dsub)

    p = add("run", cmd_run, "chat in the terminal UI (the default)")
    add_node_arguments(p)
    p = add("daemon", cmd_daemon, "run a headless node that relays and stores messages")
    add_node_arguments(p)
    p.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="what to log (daemon.log_level; default info)",
    )
    add("peers", cmd_peers, "list neighbours of the running node", json=True)
    add(
        "status",
        cmd_status,
        "identity, transports and why any is down, links, gateway, queued messages, store",
        json=True,
    )
    p = add("panic", cmd_panic, "erase this device's keys and messages at once", json=True)
    p.add_argument("--yes", action="store_true", help="do not ask (needed without a terminal)")
    add_config_parser(sub)
    p = add("relay", cmd_relay, "run an MQTT relay (broker) that gateways meet through")
    add_relay_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args([*(argv if argv is not None else sys.argv[1:]), "run"])
    home = Home.resolve(args.home)
    try:
        result: int = args.fn(args, home)
    except MeshchatError as exc:
        say(f"meshchat: error: {exc}", err=True)
        return 1
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        say(f"meshchat: error: {exc.strerror or exc}", err=True)
        return 1
    return result


if __name__ == "__main__":
    sys.exit(main())
