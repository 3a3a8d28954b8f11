"""Two nodes in one process joined by a real LAN link (TCP on 127.0.0.1), contacts of each
other, for the push-to-talk tests and ``bench/talk.py``."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from meshchat.identity import Identity
from meshchat.node import Node, NodeOptions
from meshchat.node._types import FileOptions
from meshchat.store import Store
from meshchat.transports.lan import LanTransport

__all__ = ["LanPair", "lan_pair"]


@dataclass
class LanPair:
    talker: Node
    listener: Node
    stores: list[Store]


async def _linked(a: Node, b: Node) -> bool:
    return any(link.transport == "lan" for link in a.links.values()) and any(
        link.transport == "lan" for link in b.links.values()
    )


@asynccontextmanager
async def lan_pair(home: Path, *, contacts: bool = True) -> AsyncIterator[LanPair]:
    """``talker`` dials ``listener`` on loopback; with ``contacts`` each adds the other's
    card. The listener writes what it hears as WAV files in ``home/listener/downloads``."""
    os.environ["MESHCHAT_NO_SOUND"] = "1"
    ids = {name: Identity.generate() for name in ("talker", "listener")}
    stores: list[Store] = []
    nodes: dict[str, Node] = {}
    first = LanTransport(ids["listener"], host="127.0.0.1", discovery=False)
    try:
        for name in ("listener", "talker"):
            folder = home / name
            folder.mkdir(parents=True, exist_ok=True)
            store = Store.open(folder / "db", key=os.urandom(32))
            stores.append(store)
            if name == "listener":
                lan = first
            else:
                port = first.listening_port
                assert port is not None
                lan = LanTransport(
                    ids[name],
                    host="127.0.0.1",
                    discovery=False,
                    static_peers=[("127.0.0.1", port)],
                    dial_delay=0.0,
                )
            files = FileOptions(downloads=str(folder / "downloads"))
            nodes[name] = Node(ids[name], name, store, [lan], options=NodeOptions(files=files))
            await nodes[name].start()
        talker, listener = nodes["talker"], nodes["listener"]
        if contacts:
            await talker.add_card(await listener.card(), "listener")
            await listener.add_card(await talker.card(), "talker")
        async with asyncio.timeout(10):
            while not await _linked(talker, listener):
                await asyncio.sleep(0.02)
        yield LanPair(talker, listener, stores)
    finally:
        for node in nodes.values():
            await node.stop()
        for store in stores:
            store.close()
