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
