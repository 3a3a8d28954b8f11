"""``meshchat status [--json]``: this node at a glance, running or not.

With a node running for the home, the answer comes from it through the control socket (op
``status``): identity, each transport with its state and why it is down, links, the gateway
state, queued and carried messages. Without one, what the home tells: the identity and the
queued and carried counts when the passphrase is at hand ($MESHCHAT_PASSPHRASE or a terminal),
the store's size, and the transports the configuration would start. A transport not enabled is
listed as ``off`` with the setting that turns it on.

Names of neighbours and gateways are other people's choice: the text output passes every line
through :func:`~meshchat.cli.common.say` (escaped) and marks strangers ``~``; ``--json`` keeps
the exact values.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from meshchat.account.book import AccountBook
from meshchat.cli.common import emit_json, node_request, read_passphrase, say
from meshchat.cli.node_cmds import peer_label
from meshchat.config import Config, load
from meshchat.errors import ConfigError
from meshchat.gateway import INTERNET_TRANSPORTS
from meshchat.home import Home, passphrase_from_env
from meshchat.lookalike import lookalikes
from meshchat.node import NO_INTERNET_HINT, wall_clock_ms
from meshchat.node._sync import summary as sync_summary
from meshchat.store import Store
from meshchat.transports.ble.probe import probe

__all__ = ["OFF_HINTS", "cmd_status", "status_json"]

#: every transport meshchat has, and how to turn on one that is off
OFF_HINTS: dict[str, str] = {
    "lan": "turned off: meshchat config set lan.enabled true (or --lan)",
    "ble": "turned off: meshchat config set ble.enabled true (or --ble bleak)",
    "relay": "no relay configured: meshchat config set internet.relays mqtt://HOST:1883",
    "dht": "no DHT configured: meshchat config set internet.dht_bootstrap HOST:PORT",
}


def store_bytes(home: Home) -> int:
    """The size of the store on disk: the database and its journal files."""
    db = home.database
    total = 0
    for path in (db, *(db.with_name(db.name + s) for s in ("-wal", "-shm", "-journal"))):
        try:
            total += path.stat().st_size
        except OSError:
            continue
    return total


def _configured(config: Config) -> set[str]:
    """The transports this configuration starts (flags aside)."""
    names = set()
    if config.flag("lan.enabled"):
        names.add("lan")
    if config.flag("ble.enabled"):
        names.add("ble")
    if config.texts("internet.relays"):
        names.add("relay")
    if config.flag("internet.dht") or config.texts("internet.dht_bootstrap"):
        names.add("dht")
    return names


def _off(name: str) -> dict[str, Any]:
    return {"name": name, "up": False, "state": "off", "detail": "", "reason": OFF_HINTS[name]}


def status_json(home: Home, passphrase: str | None) -> dict[str, Any]:
    """What ``status --json`` prints: from the running node, else from the home."""
    config_info: dict[str, Any] = {"path": str(home.config), "exists": home.config.exists()}
    config: Config | None
    try:
        config = load(home.config)
    except ConfigError as exc:
        config, config_info["error"] = None, str(exc)
    base: dict[str, Any] = {
        "home": str(home.path),
        "store": {"path": str(home.database), "bytes": store_bytes(home)},
        "config": config_info,
    }
    reply = node_request(home, {"op": "status", "backlog": True}) if home.initialised else None
    if reply is not None:
        return {**base, **_running(reply)}
    return {**base, **_offline(home, config, passphrase)}


def _running(reply: dict[str, Any]) -> dict[str, Any]:
    transports = list(reply.get("transports", []))
    present = {t["name"] for t in transports}
    transports += [_off(name) for name in OFF_HINTS if name not in present]
    return {
        "daemon": {"running": True, "detail": "a node is running for this home"},
        "identity": {
            "name": reply["name"],
            "short_id": reply.get("short_id", str(reply["node_id"])[:8]),
            "node_id": reply["node_id"],
            "fingerprint": reply.get("fingerprint"),
            "account_id": reply.get("account_id", reply["node_id"]),
            "devices": reply.get("devices", 1),
        },
        "locked": False,
        "transports": transports,
        "links": reply.get("links", 0),
        "neighbours": reply.get("neighbours", []),
        "gateway": {
            "this_node": bool(reply.get("gateway")),
            "heard": reply.get("gateways", []),
            "reason": reply.get("gateway_reason"),
        },
        "queued": reply.get("queued"),
        "carried": reply.get("carried"),
        "counters": reply.get("counters", {}),
        "sync": reply.get("sync", []),
        "bridges": reply.get("bridges", []),
    }


def _ble_offline(config: Config) -> dict[str, Any]:
    """What a node started now would find: the probe's answer (bumble's controller is not
    opened here, a running node may hold it)."""
    entry = {"name": "ble", "up": False, "detail": "", "state": "stopped"}
    if config.text("ble.backend") != "bleak":
        controller = config.text("ble.controller")
        return {**entry, "reason": f"daemon not running (bumble controller {controller})"}
    found = asyncio.run(probe())
    if found.usable:
        adapter = f" ({found.adapter})" if found.adapter else ""
        return {**entry, "reason": f"daemon not running; adapter available{adapter}"}
    return {**entry, "state": found.availability.value, "reason": found.reason}


def _offline_gateway(config: Config | None) -> str | None:
    if config is None:
        return None
    if {"relay", "dht"} & _configured(config):
        return "daemon not running"
    return NO_INTERNET_HINT


def _offline(home: Home, config: Config | None, passphrase: str | None) -> dict[str, Any]:
    transports: list[dict[str, Any]] = []
    if config is not None:
        configured = _configured(config)
        for name in OFF_HINTS:
            if name == "ble" and name in configured:
                transports.append(_ble_offline(config))
            elif name in configured:
                transports.append(
                    {
                        "name": name,
                        "up": False,
                        "state": "stopped",
                        "detail": "",
                        "reason": "daemon not running",
                    }
                )
            else:
                transports.append(_off(name))
    identity: dict[str, Any] | None = None
    queued = carried = None
    if home.initialised and passphrase is not None:
        unlocked = home.unlock_all(passphrase)
        public = unlocked.identity.public
        name = unlocked.name
        if config is not None and config.text("name"):
            name = config.text("name")
        identity = {
            "name": name,
            "short_id": public.short_id,
            "node_id": public.node_id.hex(),
            "fingerprint": public.fingerprint(),
        }
        with Store.open(home.database, key=unlocked.store_key) as store:
            now = wall_clock_ms()
            queued, carried = len(store.pending_outbox(now)), len(store.carried(now))
            book = AccountBook(unlocked.identity)
            book.load(store.device_lists())
        identity["account_id"] = book.account_id.hex()
        identity["devices"] = len(book.own.devices)
    return {
        "daemon": {"running": False, "detail": "daemon not running"},
        "identity": identity,
        "locked": home.initialised and identity is None,
        "transports": transports,
        "links": 0,
        "neighbours": [],
        "gateway": {"this_node": False, "heard": [], "reason": _offline_gateway(config)},
        "queued": queued,
        "carried": carried,
        "counters": {},
        "sync": [],
        "bridges": [],
    }


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    size = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if size < 1024 or unit == "GiB":
            break
    return f"{size:.1f} {unit}"


def cmd_status(args: argparse.Namespace, home: Home) -> int:
    passphrase = passphrase_from_env()
    running = home.control_socket.exists()
    if passphrase is None and home.initialised and not running and sys.stdin.isatty():
        passphrase = read_passphrase()
    status = status_json(home, passphrase)
    if args.json:
        emit_json(status)
        return 0
    _show(status, home.config)
    return 0


def _show(status: dict[str, Any], config_path: Path) -> None:
    daemon = status["daemon"]
    say(f"node       {'running' if daemon['running'] else daemon['detail']}  ({status['home']})")
    identity = status["identity"]
    if identity is not None:
        say(f"identity   {identity['name']}  {identity['short_id']}")
        devices = identity.get("devices", 1)
        say(f"account    {str(identity.get('account_id', ''))[:16]}  {devices} device(s)")
    elif status["locked"]:
        say("identity   locked: set MESHCHAT_PASSPHRASE or run in a terminal to see it")
    else:
        say("identity   none: run 'meshchat init' (or 'meshchat run') first")
    for t in status["transports"]:
        why = t.get("reason") if t["state"] != "up" else t.get("detail")
        say(f"{t['name']:<10} {t['state']:<8} {why or ''}".rstrip())
    marks = lookalikes(
        [str(p["contact"]) for p in status["neighbours"] if p.get("contact")]
        + ([str(identity["name"])] if identity else [])
    )
    local = [p for p in status["neighbours"] if p["transport"] not in INTERNET_TRANSPORTS]
    internet = [p["transport"] for p in status["neighbours"] if p not in local]
    if daemon["running"]:
        listed = ", ".join(f"{peer_label(p, marks)} ({p['transport']})" for p in local)
        line = f"links      {len(local)} neighbour(s){': ' + listed if listed else ''}"
        if internet:
            line += f"; internet: {', '.join(internet)}"
        say(line)
        gateway = status["gateway"]
        if gateway["this_node"]:
            say("gateway    this node is a gateway to the internet")
        elif gateway["heard"]:
            heard = ", ".join(peer_label(g, marks) for g in gateway["heard"])
            say(f"gateway    through {heard}")
        else:
            say("gateway    none heard: messages stay in this mesh")
        if not gateway["this_node"] and gateway.get("reason"):
            say(f"           this node is not one: {gateway['reason']}")
        if status.get("sync"):
            say(f"sync       {sync_summary(status['sync'])} ('meshchat device sync' for each)")
        for bridge in status.get("bridges", []):
            say(f"bridge     {bridge['conversation']}: {bridge['mark']}")
    elif status["gateway"].get("reason") == NO_INTERNET_HINT:
        say(f"gateway    {NO_INTERNET_HINT}")
    if status["queued"] is not None:
        say(f"queued     {status['queued']} message(s) of ours waiting to be sent")
        say(f"carried    {status['carried']} message(s) held for others")
    say(f"store      {_size(status['store']['bytes'])}  ({status['store']['path']})")
    config = status["config"]
    if "error" in config:
        say(f"config     {config['error']}")
    else:
        say(f"config     {config_path}{'' if config['exists'] else ' (none: defaults)'}")
