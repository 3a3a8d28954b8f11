"""``meshchat daemon``, ``meshchat run`` and ``meshchat peers``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
from dataclasses import replace
from pathlib import Path
from typing import Any

from meshchat.app import NodeSettings, running_node
from meshchat.cli.common import emit_json, node_request, read_passphrase, say
from meshchat.config import Config, check_value, find_key, host_port, load
from meshchat.display import SafeFormatter
from meshchat.errors import ConfigError, UsageError
from meshchat.files.policy import FilePolicy
from meshchat.home import Home
from meshchat.lookalike import lookalikes, mark
from meshchat.node import NodeOptions
from meshchat.node._types import FileOptions
from meshchat.router.flood import RouterConfig
from meshchat.store.history import DEFAULT_HISTORY
from meshchat.wire.packet import MAX_TTL

__all__ = [
    "add_node_arguments",
    "cmd_daemon",
    "cmd_peers",
    "cmd_run",
    "node_config",
    "peer_label",
    "settings_from",
]


def add_node_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``run`` and ``daemon``. Each overrides a key of ``config.toml`` (see
    :mod:`meshchat.config`); a flag not given leaves the file's value (None here)."""
    on_off = argparse.BooleanOptionalAction
    group = parser.add_argument_group("network", "each overrides a key of config.toml")
    parser.add_argument("--to", metavar="DIR", help="save received files in DIR (files.downloads)")
    group.add_argument("--lan", action=on_off, help="use the LAN transport (lan.enabled)")
    group.add_argument("--lan-host", help="address to listen on for TCP (lan.host)")
    group.add_argument("--lan-port", type=int, help="TCP port; 0: any free (lan.port)")
    group.add_argument(
        "--mdns-interface",
        action="append",
        metavar="ADDR",
        help="use mDNS only on the interface with this address (repeatable); "
        "127.0.0.1 keeps discovery on this machine (lan.interfaces)",
    )
    group.add_argument(
        "--mdns", action=on_off, help="advertise and browse; off: use --peer (lan.mdns)"
    )
    group.add_argument(
        "--advertise",
        action="append",
        metavar="ADDR",
        help="address to announce over mDNS (lan.advertise)",
    )
    group.add_argument(
        "--peer",
        action="append",
        metavar="HOST:PORT",
        help="also dial this node directly (repeatable; lan.peers)",
    )
    group.add_argument("--ttl", type=int, help=f"hops for our packets, max {MAX_TTL} (mesh.ttl)")
    group.add_argument(
        "--ble",
        choices=["bleak", "bumble"],
        help="the Bluetooth LE stack: bleak (the OS's, the default) or bumble (a USB dongle, "
        "see firmware-notes/); Bluetooth is on by default where an adapter is usable "
        "(ble.enabled, ble.backend)",
    )
    group.add_argument(
        "--no-ble", action="store_true", help="do not use Bluetooth LE (ble.enabled)"
    )
    group.add_argument("--ble-controller", help="bumble controller, e.g. usb:0 (ble.controller)")
    group.add_argument("--ble-max-links", type=int, help="most BLE links (ble.max_links)")
    group.add_argument("--announce", action=on_off, help="tell neighbours our name (mesh.announce)")
    group.add_argument(
        "--link-rate",
        type=float,
        help="frames per second accepted from one neighbour, burst twice that (mesh.link_rate)",
    )
    internet = parser.add_argument_group(
        "internet gateway", "reach other meshes and offline contacts through the internet"
    )
    internet.add_argument(
        "--relay",
        action="append",
        metavar="URL",
        help="MQTT broker to use as a gateway, mqtt://host:1883 or mqtts://host:8883 "
        "(repeatable; the password comes from $MESHCHAT_RELAY_PASSWORD) (internet.relays)",
    )
    internet.add_argument(
        "--relay-tls", action=on_off, help="use TLS with mqtt:// too (internet.relay_tls)"
    )
    internet.add_argument(
        "--relay-ca", metavar="FILE", help="CA bundle to verify the broker (internet.relay_ca)"
    )
    internet.add_argument(
        "--relay-user", metavar="NAME", help="user name at the broker (internet.relay_user)"
    )
    internet.add_argument(
        "--relay-retention-days",
        type=float,
        metavar="DAYS",
        help="how long brokers keep a message for an offline contact, at most 7 "
        "(retention.relay_days)",
    )
    internet.add_argument(
        "--bridge-channel",
        action="append",
        metavar="#NAME|+GROUP",
        help="also carry this channel's or private group's messages over the internet "
        "(repeatable; internet.bridges)",
    )
    internet.add_argument(
        "--dht-port",
        type=int,
        metavar="PORT",
        help="join the Kademlia DHT on this UDP port (internet.dht, internet.dht_port)",
    )
    internet.add_argument("--dht-host", help="address for the DHT to use (internet.dht_host)")
    internet.add_argument(
        "--dht-bootstrap",
        action="append",
        metavar="HOST:PORT",
        help="a DHT node to join through (repeatable; internet.dht_bootstrap)",
    )
    other = parser.add_argument_group(
        "other networks", "public, not end-to-end encrypted (see docs/bridges.md)"
    )
    other.add_argument(
        "--meshtastic",
        metavar="URL",
        help="bridge a Meshtastic channel through an MQTT broker, "
        "mqtt://[USER:PASS@]HOST:PORT/CHANNEL[?region=US], shown as #meshtastic-CHANNEL",
    )
    other.add_argument(
        "--bitchat",
        action=on_off,
        help="bridge bitchat's public chat as #bitchat over Bluetooth LE (bitchat.enabled)",
    )
    other.add_argument(
        "--bitchat-controller",
        metavar="SPEC",
        help="the bumble controller for bitchat, e.g. usb:1 (bitchat.controller)",
    )
    other.add_argument(
        "--bitchat-nickname", metavar="NAME", help="the nickname bitchat sees (bitchat.nickname)"
    )
    other.add_argument(
        "--bitchat-read-receipts",
        action=argparse.BooleanOptionalAction,
        help="send read receipts for bitchat DMs read here (bitchat.read_receipts)",
    )
    other.add_argument(
        "--meshtastic-key",
        metavar="B64",
        help="the channel's PSK in base64 (default AQ==, the public key; "
        "or $MESHCHAT_MESHTASTIC_KEY)",
    )


def _peer(flag: str, text: str) -> tuple[str, int]:
    try:
        return host_port(text)
    except UsageError as exc:
        raise UsageError(f"{flag} {exc}") from exc


def settings_from(args: argparse.Namespace, config: Config | None = None) -> NodeSettings:
    """The node's settings: each flag given, else its key in ``config`` (else the default).

    A flag's value is checked as the file's would be: a bad one is a :class:`ConfigError`
    naming the key it stands for.
    """
    config = config or Config()
    values = dict(config.values)
    given = {
        "lan.enabled": args.lan,
        "lan.host": args.lan_host,
        "lan.port": args.lan_port,
        "lan.interfaces": args.mdns_interface,
        "lan.mdns": args.mdns,
        "lan.advertise": args.advertise,
        "lan.peers": args.peer,
        "mesh.ttl": args.ttl,
        "mesh.announce": args.announce,
        "mesh.link_rate": args.link_rate,
        "ble.enabled": False if args.no_ble else (True if args.ble else None),
        "ble.backend": args.ble,
        "ble.controller": args.ble_controller,
        "ble.max_links": args.ble_max_links,
        "internet.relays": args.relay,
        "internet.relay_tls": args.relay_tls,
        "internet.relay_ca": args.relay_ca,
        "internet.relay_user": args.relay_user,
        "internet.dht": True if args.dht_port is not None else None,
        "internet.dht_port": args.dht_port,
        "internet.dht_host": args.dht_host,
        "internet.dht_bootstrap": args.dht_bootstrap,
        "internet.bridges": args.bridge_channel,
        "retention.relay_days": args.relay_retention_days,
        "files.downloads": getattr(args, "to", None),
        "bitchat.enabled": getattr(args, "bitchat", None),
        "bitchat.controller": getattr(args, "bitchat_controller", None),
        "bitchat.nickname": getattr(args, "bitchat_nickname", None),
        "bitchat.read_receipts": getattr(args, "bitchat_read_receipts", None),
    }
    for name, value in given.items():
        if value is not None:
            checked, problem = check_value(find_key(name), value)
            if problem is not None:
                raise ConfigError(f"{problem} (from the command line)", key=name)
            values[name] = checked if checked is not None else value
    c = Config(values, config.given, config.path)
    interfaces = c.texts("lan.interfaces") or None
    advertise = c.texts("lan.advertise") or None
    if interfaces and all(a.startswith("127.") for a in interfaces) and advertise is None:
        advertise = list(interfaces)
    link_rate = c.number("mesh.link_rate")
    dht_bootstrap = [_peer("--dht-bootstrap", p) for p in c.texts("internet.dht_bootstrap")]
    dht_on = c.flag("internet.dht") or bool(dht_bootstrap)
    meshtastic = getattr(args, "meshtastic", None)
    if meshtastic:
        from meshchat.bridges.meshtastic.mqtt import parse_url

        parse_url(meshtastic)  # a bad URL is a usage error now, not when the node starts
    return NodeSettings(
        name=c.text("name") or None,
        lan=c.flag("lan.enabled"),
        lan_host=c.text("lan.host"),
        lan_port=c.integer("lan.port"),
        mdns=c.flag("lan.mdns"),
        mdns_interfaces=interfaces,
        advertise=advertise,
        static_peers=[_peer("--peer", p) for p in c.texts("lan.peers")],
        relays=c.texts("internet.relays"),
        relay_tls=c.flag("internet.relay_tls"),
        relay_ca=c.text("internet.relay_ca") or None,
        relay_user=c.text("internet.relay_user") or None,
        relay_password=os.environ.get("MESHCHAT_RELAY_PASSWORD") or None,
        relay_keepalive_s=c.integer("internet.relay_keepalive"),
        relay_retry_max_s=c.number("internet.relay_retry_max"),
        relay_retention_s=max(1, int(c.number("retention.relay_days") * 24 * 3600)),
        bridge_channels=c.texts("internet.bridges"),
        meshtastic=meshtastic or None,
        meshtastic_key=getattr(args, "meshtastic_key", None)
        or os.environ.get("MESHCHAT_MESHTASTIC_KEY")
        or "AQ==",
        bitchat=c.text("bitchat.controller") if c.flag("bitchat.enabled") else None,
        bitchat_nickname=c.text("bitchat.nickname") or None,
        bitchat_read_receipts=c.flag("bitchat.read_receipts"),
        dht_port=c.integer("internet.dht_port") if dht_on else None,
        dht_host=c.text("internet.dht_host"),
        dht_bootstrap=dht_bootstrap,
        ble_backend=c.text("ble.backend") if c.flag("ble.enabled") else None,
        ble_controller=c.text("ble.controller"),
        ble_max_links=c.integer("ble.max_links"),
        options=NodeOptions(
            ttl=c.integer("mesh.ttl"),
            announce=c.flag("mesh.announce"),
            router=RouterConfig(link_rate=link_rate, link_burst=2 * link_rate),
            history=replace(
                DEFAULT_HISTORY,
                max_age_ms=max(1, int(c.number("retention.history_days") * 24 * 3600_000)),
            ),
            files=file_options(c),
        ),
    )


def file_options(c: Config) -> FileOptions:
    """The ``files.*`` keys (the downloads folder is the home's when the key is empty: the
    node's owner fills it in, see :func:`meshchat.app.running_node`)."""

    def mb(key: str) -> int:
        return int(c.number(key) * (1 << 20))

    relay = mb("files.max_relay_mb")
    policy = FilePolicy(
        ble=mb("files.max_ble_mb"),
        lan=mb("files.max_lan_mb"),
        relay=relay,
        dht=relay,
        other=relay,
        auto_accept=mb("files.auto_accept_mb"),
    )
    folder = c.text("files.downloads")
    return FileOptions(downloads=str(Path(folder).expanduser()) if folder else None, policy=policy)


def node_config(home: Home) -> Config:
    """The home's ``config.toml`` (every default when there is none)."""
    return load(home.config)


def cmd_daemon(args: argparse.Namespace, home: Home) -> int:
    config = node_config(home)
    settings = settings_from(args, config)
    passphrase = read_passphrase()
    handler = logging.StreamHandler()
    # Log records may carry names and texts from other nodes: no terminal controls get out.
    handler.setFormatter(SafeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(
        level=getattr(logging, (args.log_level or config.text("daemon.log_level")).upper()),
        handlers=[handler],
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

    config = node_config(home)
    return run_tui(home, settings_from(args, config), bell=config.flag("ui.bell"))


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
                "gateway_reason": reply.get("gateway_reason"),
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
    if reply.get("gateway_reason"):
        say(f"this node is not a gateway: {reply['gateway_reason']}")
    if reply.get("gateway"):
        say("this node is a gateway to the internet")
    elif gateways:
        names = ", ".join(peer_label(g, marks) for g in gateways)
        say(f"gateways to the internet in this mesh: {names}")
    else:
        say("no gateway to the internet heard: messages stay in this mesh")
    if not reply["peers"]:
        say("no neighbours yet")
    for p in reply["peers"]:
        say(f"{p['transport']:<5} {p['node_id'][:16]}  {peer_label(p, marks):<20} {p['address']}")
    return 0


def peer_label(peer: dict[str, Any], marks: dict[str, str]) -> str:
    """A neighbour as ``log`` shows a sender: our name for a contact (marked if it looks like
    another), ``~announced`` for a stranger (the name is theirs to choose), or a short id."""
    if peer.get("contact"):
        name = str(peer["contact"])
        return mark(name, marks.get(name))
    if peer.get("name"):
        return f"~{peer['name']}"
    return str(peer["node_id"])[:8]
