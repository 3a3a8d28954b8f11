"""Assembling a runnable node from a home folder and settings (used by the daemon and the UI)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from meshchat.control import ControlServer
from meshchat.home import Home
from meshchat.node import Node, NodeOptions
from meshchat.store import Store
from meshchat.transports.base import Transport

__all__ = ["NodeSettings", "running_node"]


@dataclass(frozen=True, slots=True)
class NodeSettings:
    """What a person can set on the command line for a running node."""

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
    #: channels whose messages gateways bridge to the internet (others never leave the mesh)
    bridge_channels: list[str] = field(default_factory=list)
    #: Kademlia DHT: on when a port or a bootstrap node is given
    dht_port: int | None = None
    dht_host: str = "0.0.0.0"
    dht_bootstrap: list[tuple[str, int]] = field(default_factory=list)
    dht_poll_s: float = 5.0


def build_transports(home: Home, settings: NodeSettings, node_identity: object) -> list[Transport]:
    transports: list[Transport] = []
    if settings.lan:
        from meshchat.identity import Identity
        from meshchat.transports.lan import LanTransport

        assert isinstance(node_identity, Identity)
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


def _internet_transports(home: Home, settings: NodeSettings, identity: object) -> list[Transport]:
    """The relay (MQTT) and DHT transports that make this node a gateway, if configured."""
    import hashlib

    from meshchat.identity import Identity

    transports: list[Transport] = []
    if not settings.relays and settings.dht_port is None and not settings.dht_bootstrap:
        return transports
    assert isinstance(identity, Identity)
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


@contextlib.asynccontextmanager
async def running_node(
    home: Home,
    passphrase: str,
    settings: NodeSettings,
    extra_transports: list[Transport] | None = None,
) -> AsyncIterator[Node]:
    """Unlock the identity, open the store, start transports and the control socket."""
    identity, name = home.unlock(passphrase)
    store = Store.open(home.database)
    transports = build_transports(home, settings, identity) + list(extra_transports or [])
    node = Node(identity, name, store, transports, options=settings.options)
    control = ControlServer(node, home.control_socket) if settings.control else None
    try:
        if control is not None:
            control.ensure_not_running()
        await node.start()
        if control is not None:
            # Last: a control socket that answers means the node is fully up.
            await control.start()
        yield node
    finally:
        if control is not None:
            await control.stop()
        await node.stop()
        store.close()
