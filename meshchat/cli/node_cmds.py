"""``meshchat daemon``, ``meshchat run`` and ``meshchat peers``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
from typing import Any

from meshchat.app import NodeSettings, running_node
from meshchat.cli.common import emit_json, node_request, read_passphrase, say
from meshchat.display import SafeFormatter
from meshchat.errors import UsageError
from meshchat.home import Home
from meshchat.lookalike import lookalikes, mark
from meshchat.node import NodeOptions
from meshchat.router.flood import RouterConfig
from meshchat.wire.packet import MAX_TTL

__all__ = ["add_node_arguments", "cmd_daemon", "cmd_peers", "cmd_run", "settings_from"]


def add_node_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("network")
    group.add_argument("--no-lan", action="store_true", help="do not use the LAN transport")
    group.add_argument("--lan-host", default="0.0.0.0", help="address to listen on for TCP")
    group.add_argument("--lan-port", type=int, default=0, help="TCP port (default: any free)")
    group.add_argument(
        "--mdns-interface",
        action="append",
        metavar="ADDR",
        help="use mDNS only on the interface with this address (repeatable); "
        "127.0.0.1 keeps discovery on this machine",
    )
    group.add_argument(
        "--no-mdns", action="store_true", help="do not advertise or browse (use --peer)"
    )
    group.add_argument(
        "--advertise", action="append", metavar="ADDR", help="address to announce over mDNS"
    )
    group.add_argument(
        "--peer",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="also dial this node directly (repeatable)",
    )
    group.add_argument("--ttl", type=int, default=12, help=f"hops for our packets (max {MAX_TTL})")
    group.add_argument(
        "--ble",
        choices=["bleak", "bumble"],
        help="also use Bluetooth LE: bleak (the OS stack) or bumble (a USB dongle, see "
        "firmware-notes/)",
    )
    group.add_argument(
        "--ble-controller", default="usb:0", help="bumble controller (default usb:0)"
    )
    group.add_argument("--no-announce", action="store_true", help="do not announce our name")
    group.add_argument(
        "--link-rate",
        type=float,
        default=RouterConfig().link_rate,
        help="frames per second accepted from one neighbour (burst: twice that)",
    )
    internet = parser.add_argument_group(
        "internet gateway", "reach other meshes and offline contacts through the internet"
    )
    internet.add_argument(
        "--relay",
        action="append",
        default=[],
        metavar="URL",
        help="MQTT broker to use as a gateway, mqtt://host:1883 or mqtts://host:8883 "
        "(repeatable; the password comes from $MESHCHAT_RELAY_PASSWORD)",
    )
    internet.add_argument("--relay-tls", action="store_true", help="use TLS with mqtt:// too")
    internet.add_argument("--relay-ca", metavar="FILE", help="CA bundle to verify the broker")
    internet.add_argument("--relay-user", metavar="NAME", help="user name at the broker")
    internet.add_argument(
        "--relay-retention-days",
        type=float,
        default=7.0,
        metavar="DAYS",
        help="how long brokers keep a message for an offline contact (default 7)",
    )
    internet.add_argument(
        "--bridge-channel",
        action="append",
        default=[],
        metavar="#NAME|+GROUP",
        help="also carry this channel's or private group's messages over the internet (repeatable)",
    )
    internet.add_argument(
        "--dht-port", type=int, metavar="PORT", help="join the Kademlia DHT on this UDP port"
    )
    internet.add_argument("--dht-host", default="0.0.0.0", help="address for the DHT to use")
    internet.add_argument(
        "--dht-bootstrap",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="a DHT node to join through (repeatable)",
    )


def _peer(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise UsageError(f"--peer wants HOST:PORT, not {text!r}")
    return host.strip("[]"), int(port)


def _retention(days: float) -> int:
    if not 0 < days <= 7:
        raise UsageError("--relay-retention-days must be more than 0 and at most 7")
    return max(1, int(days * 24 * 3600))


def settings_from(args: argparse.Namespace) -> NodeSettings:
    interfaces = args.mdns_interface
    advertise = args.advertise
    if interfaces and all(a.startswith("127.") for a in interfaces) and advertise is None:
        advertise = list(interfaces)
    return NodeSettings(
        lan=not args.no_lan,
        lan_host=args.lan_host,
        lan_port=args.lan_port,
        mdns=not args.no_mdns,
        mdns_interfaces=interfaces,
        advertise=advertise,
        static_peers=[_peer(p) for p in args.peer],
        relays=list(args.relay),
        relay_tls=args.relay_tls,
        relay_ca=args.relay_ca,
        relay_user=args.relay_user,
        relay_password=os.environ.get("MESHCHAT_RELAY_PASSWORD") or None,
        relay_retention_s=_retention(args.relay_retention_days),
        bridge_channels=list(args.bridge_channel),
        dht_port=args.dht_port,
        dht_host=args.dht_host,
        dht_bootstrap=[_peer(p) for p in args.dht_bootstrap],
        ble_backend=args.ble,
        ble_controller=args.ble_controller,
        options=NodeOptions(
            ttl=max(1, min(args.ttl, MAX_TTL)),
            announce=not args.no_announce,
            router=RouterConfig(link_rate=args.link_rate, link_burst=2 * args.link_rate),
        ),
    )


def cmd_daemon(args: argparse.Namespace, home: Home) -> int:
    passphrase = read_passphrase()
    settings = settings_from(args)
    handler = logging.StreamHandler()
    # Log records may carry names and texts from other nodes: no terminal controls get out.
    handler.setFormatter(SafeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper(), logging.INFO), handlers=[handler]
    )
    asyncio.run(_daemon(home, passphrase, settings, args))
    return 0


async def _daemon(
    home: Home, passphrase: str, settings: NodeSettings, args: argparse.Namespace
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with running_node(home, passphrase, settings) as node:
        ports = [t.status().detail for t in node.transports]
        say(
            f"meshchat node {node.identity.node_id.hex()[:16]} ({node.name}) running; "
            f"{'; '.join(ports)}",
        )
        # A signal, or a request from inside (the control op "panic"), stops the daemon.
        waits = {asyncio.create_task(stop.wait()), asyncio.create_task(node.stop_requested.wait())}
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in waits:
            task.cancel()


def cmd_run(args: argparse.Namespace, home: Home) -> int:
    from meshchat.tui.app import run_tui

    return run_tui(home, settings_from(args))


def cmd_peers(args: argparse.Namespace, home: Home) -> int:
    reply = node_request(home, {"op": "peers"})
    if reply is None:
        raise UsageError("no node is running for this home: start 'meshchat daemon' or 'run'")
    if args.json:
        emit_json(
            {
                "peers": reply["peers"],
                "transports": reply["transports"],
                "gateway": reply.get("gateway", False),
                "gateways": reply.get("gateways", []),
            }
        )
        return 0
    contacts = node_request(home, {"op": "contacts"}) or {"contacts": []}
    status = node_request(home, {"op": "status"}) or {}
    known = [str(c["name"]) for c in contacts["contacts"] if c.get("trust") != "compromised"]
    marks = lookalikes([*known, str(status.get("name", ""))])
    for t in reply["transports"]:
        say(f"transport {t['name']:<6} {'up' if t['up'] else 'DOWN':<5} {t['detail']}")
    gateways = reply.get("gateways", [])
    if reply.get("gateway"):
        say("this node is a gateway to the internet")
    elif gateways:
        names = ", ".join(_who(g, marks) for g in gateways)
        say(f"gateways to the internet in this mesh: {names}")
    else:
        say("no gateway to the internet heard: messages stay in this mesh")
    if not reply["peers"]:
        say("no neighbours yet")
    for p in reply["peers"]:
        say(f"{p['transport']:<5} {p['node_id'][:16]}  {_who(p, marks):<20} {p['address']}")
    return 0


def _who(peer: dict[str, Any], marks: dict[str, str]) -> str:
    """A neighbour as ``log`` shows a sender: our name for a contact (marked if it looks like
    another), ``~announced`` for a stranger (the name is theirs to choose), or a short id."""
    if peer.get("contact"):
        name = str(peer["contact"])
        return mark(name, marks.get(name))
    if peer.get("name"):
        return f"~{peer['name']}"
    return str(peer["node_id"])[:8]
