"""Assembling a runnable node from a home folder and settings (used by the daemon and the UI)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

from meshchat.bridges.marks import BITCHAT_CONVERSATION as BITCHAT
from meshchat.config import load, set_value
from meshchat.control import ControlServer
from meshchat.errors import ConfigError, UsageError
from meshchat.home import Home
from meshchat.identity import ContactCard, Identity, clean_name
from meshchat.node import Node, NodeOptions
from meshchat.node._meshtastic import MeshtasticGateway
from meshchat.node._types import Bridge
from meshchat.panic import erase_file, erase_home
from meshchat.store import Store
from meshchat.transports.base import Transport

__all__ = [
    "NodeSettings",
    "ble_transport",
    "forget_clear_card",
    "keep_name",
    "offline_card",
    "running_node",
]


@dataclass(frozen=True, slots=True)
class NodeSettings:
    """What a person can set in ``config.toml`` or on the command line for a running node."""

    #: the display name to use instead of the one sealed in the keystore (None: that one)
    name: str | None = None
    lan: bool = True
    lan_host: str = "0.0.0.0"
    lan_port: int = 0
    #: addresses whose interfaces mDNS uses (None: all); ["127.0.0.1"] keeps it on this host
    mdns_interfaces: list[str] | None = None
    #: addresses put in our mDNS record (None: every non-loopback address)
    advertise: list[str] | None = None
    static_peers: list[tuple[str, int]] = field(default_factory=list)
    mdns: bool = True
    control: bool = True
    options: NodeOptions = field(default_factory=NodeOptions)
    #: MQTT brokers to act as an internet gateway through (``mqtt://host:port``, ``mqtts://``)
    relays: list[str] = field(default_factory=list)
    relay_tls: bool = False
    relay_ca: str | None = None
    relay_user: str | None = None
    relay_password: str | None = None
    #: how long brokers should keep a message for an offline mailbox
    relay_retention_s: int = 7 * 24 * 3600
    #: MQTT keepalive (a broker silent for ~1.5 times this is lost) and the longest wait
    #: between attempts to reach a broker
    relay_keepalive_s: int = 30
    relay_retry_max_s: float = 60.0
    #: a Meshtastic channel to bridge (``mqtt://HOST:PORT/CHANNEL``; None: off) and its key
    meshtastic: str | None = None
    meshtastic_key: str = "AQ=="
    #: bridge bitchat's public chat through this bumble controller (None: off)
    bitchat: str | None = None
    bitchat_nickname: str | None = None
    #: answer bitchat DMs read here with read receipts
    bitchat_read_receipts: bool = True
    #: channels whose messages gateways bridge to the internet (others never leave the mesh)
    bridge_channels: list[str] = field(default_factory=list)
    #: Kademlia DHT: on when a port or a bootstrap node is given
    dht_port: int | None = None
    dht_host: str = "0.0.0.0"
    dht_bootstrap: list[tuple[str, int]] = field(default_factory=list)
    dht_poll_s: float = 5.0
    #: Bluetooth LE backend: None (off), "bleak" (the OS stack through bleak and bless) or
    #: "bumble" (Google's stack on a controller named by ``ble_controller``, e.g. usb:0)
    ble_backend: str | None = None
    ble_controller: str = "usb:0"
    ble_max_links: int = 7
    #: how long the look for a usable adapter may take, and how often it is repeated while
    #: there is none (an adapter plugged in or switched on later is then used)
    ble_probe_timeout: float = 2.0
    ble_recheck_s: float = 30.0


def build_transports(
    home: Home, settings: NodeSettings, node_identity: Identity
) -> list[Transport]:
    """The LAN and internet transports the settings ask for (BLE is opened separately)."""
    transports: list[Transport] = []
    if settings.lan:
        from meshchat.transports.lan import LanTransport

        transports.append(
            LanTransport(
                node_identity,
                host=settings.lan_host,
                port=settings.lan_port,
                interfaces=settings.mdns_interfaces,
                advertised_addresses=settings.advertise,
                static_peers=settings.static_peers,
                discovery=settings.mdns,
            )
        )
    transports += _internet_transports(home, settings, node_identity)
    return transports


def _internet_transports(home: Home, settings: NodeSettings, identity: Identity) -> list[Transport]:
    """The relay (MQTT) and DHT transports that make this node a gateway, if configured."""
    transports: list[Transport] = []
    if not settings.relays and settings.dht_port is None and not settings.dht_bootstrap:
        return transports
    for url in settings.relays:
        from meshchat.transports.relay import RelayConfig, RelayTransport

        config = RelayConfig(
            url,
            tls=settings.relay_tls,
            ca_file=settings.relay_ca,
            username=settings.relay_user,
            password=settings.relay_password,
            retention_s=settings.relay_retention_s,
            bridge_channels=tuple(settings.bridge_channels),
            keepalive_s=settings.relay_keepalive_s,
            reconnect_max_s=settings.relay_retry_max_s,
        )
        name = hashlib.blake2b(config.display.encode(), digest_size=6).hexdigest()
        state = home.path / f"relay-{name}.json"
        transports.append(RelayTransport(identity, config, state_path=state))
    if settings.dht_port is not None or settings.dht_bootstrap:
        from meshchat.transports.dht import DhtConfig, DhtTransport

        dht = DhtConfig(
            host=settings.dht_host,
            port=settings.dht_port or 0,
            bootstrap=tuple(settings.dht_bootstrap),
            retention_s=settings.relay_retention_s,
            poll_s=settings.dht_poll_s,
        )
        transports.append(DhtTransport(identity, dht))
    return transports


def ble_transport(settings: NodeSettings, identity: Identity) -> Transport:
    """Bluetooth LE on the chosen backend, started when an adapter is usable (see
    :mod:`meshchat.transports.ble.watch`); imports no Bluetooth stack until it starts."""
    from meshchat.transports.ble import BleBackend, BleTransport
    from meshchat.transports.ble.watch import (
        BleWatch,
        Check,
        bumble_opener,
        os_check,
        os_opener,
    )

    check: Check | None = None
    if settings.ble_backend == "bumble":
        opener = bumble_opener(settings.ble_controller, settings.ble_probe_timeout)
    elif settings.ble_backend == "bleak":
        opener = os_opener(settings.ble_probe_timeout)
        check = os_check(settings.ble_probe_timeout)
    else:
        raise UsageError(f"unknown BLE backend {settings.ble_backend!r}: use bleak or bumble")

    def make(backend: BleBackend) -> BleTransport:
        return BleTransport(identity, backend, max_links=settings.ble_max_links)

    return BleWatch(opener, make, recheck_s=settings.ble_recheck_s, check=check)


async def keep_name(home: Home, passphrase: str, name: str) -> str:
    """Keep ``name`` as our display name for the next runs: sealed in the keystore, and in
    ``config.toml`` too when the file sets ``name`` (it would win over the keystore). Says
    where it was kept. The key derivation runs off the event loop."""
    await asyncio.to_thread(home.rename, passphrase, name)
    where = "kept in the keystore"
    with contextlib.suppress(ConfigError):
        if load(home.config).text("name"):
            await asyncio.to_thread(set_value, home.config, "name", name)
            where += " and config.toml"
    return where


def forget_clear_card(home: Home) -> None:
    """Erase the plain-text card older versions kept in the home (``card.txt``).

    Our name and public keys are kept only inside the sealed keystore and the encrypted store
    now, so that ``panic`` leaves neither readable: a file in clear that is rewritten at each
    start leaves copies of itself in freed disk blocks that no erasure reaches.
    """
    for path in (home.card, home.card.with_suffix(".tmp")):
        with contextlib.suppress(OSError):
            erase_file(path)


async def offline_card(home: Home, passphrase: str) -> ContactCard:
    """Our contact card, from the node started once offline (no transport, no control socket).

    The card carries the node's current signed prekey (the first start makes one), so contacts
    added from it talk forward-secret from the start. Only when no node runs for this home.
    The name is the one a node started from this home would announce: ``name`` in
    ``config.toml`` when set (a file that cannot be read is left to ``run`` to report).
    """
    name = None
    with contextlib.suppress(ConfigError):
        name = load(home.config).text("name") or None
    offline = NodeSettings(name=name, lan=False, control=False)
    async with running_node(home, passphrase, offline) as node:
        return await node.card()


@contextlib.asynccontextmanager
async def running_node(
    home: Home,
    passphrase: str,
    settings: NodeSettings,
    extra_transports: list[Transport] | None = None,
) -> AsyncIterator[Node]:
    """Unlock the identity, open the store, start transports and the control socket.

    The store is opened with the store key from the keystore. ``node.panic()`` (or the control
    op ``panic``) erases this home and sets ``node.stop_requested``; the owner then leaves this
    context, and whatever closing the store wrote back is erased once more on the way out.
    """
    unlocked = home.unlock_all(passphrase)
    identity, name = unlocked.identity, unlocked.name
    if settings.name:
        name = clean_name(settings.name)
    store = Store.open(home.database, key=unlocked.store_key)
    if settings.bitchat and BITCHAT not in settings.bridge_channels:
        # bitchat's public chat crosses the relay in the public channel #bitchat
        settings = replace(settings, bridge_channels=[*settings.bridge_channels, BITCHAT])
    transports = build_transports(home, settings, identity) + list(extra_transports or [])
    if settings.ble_backend is not None:
        transports.append(ble_transport(settings, identity))
    files = settings.options.files
    files = replace(
        files, downloads=files.downloads or str(home.downloads), state=str(home.transfers)
    )
    options = replace(settings.options, files=files)
    node = Node(identity, name, store, transports, options=options)
    node.set_eraser(lambda: erase_home(home))
    control = ControlServer(node, home.control_socket) if settings.control else None
    meshtastic: MeshtasticGateway | None = None
    bitchat: Bridge | None = None
    try:
        if control is not None:
            control.ensure_not_running()
        await node.start()
        if settings.meshtastic:
            meshtastic = MeshtasticGateway(node, settings.meshtastic, settings.meshtastic_key)
            await meshtastic.start()
        if settings.bitchat:
            from meshchat.node._bitchat import BitchatGateway

            gateway = BitchatGateway(
                node,
                settings.bitchat,
                nickname=settings.bitchat_nickname,
                read_receipts=settings.bitchat_read_receipts,
            )
            await gateway.start()
            bitchat = gateway
        forget_clear_card(home)
        if control is not None:
            # Last: a control socket that answers means the node is fully up.
            await control.start()
        yield node
    finally:
        if control is not None:
            await control.stop()
        if meshtastic is not None:
            await meshtastic.stop()
        if bitchat is not None:
            await bitchat.stop()
        await node.stop()
        store.close()
        if node.panicked:
            erase_home(home)
