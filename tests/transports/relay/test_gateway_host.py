"""What the node offers its internet transports: local nodes, channels, carried packets."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from islands import befriend, start_member, stop_member, wait_for

from meshchat.gateway import GatewayHost
from meshchat.identity import Identity, PublicIdentity
from meshchat.transports.base import Link, LinkHandler, Transport
from meshchat.transports.memory import MemoryHub
from meshchat.wire import codec


class FakeInternetLink(Link):
    def __init__(self) -> None:
        self.link_id = "relay:test"
        self.transport = "relay"
        self.peer = PublicIdentity(bytes(32), bytes([1]) * 32)
        self.initiator = True
        self.sent: list[bytes] = []

    def send(self, frame: bytes) -> bool:
        self.sent.append(frame)
        return True

    async def close(self) -> None:
        pass


class FakeInternet(Transport):
    name = "relay"

    def __init__(self) -> None:
        self.link = FakeInternetLink()

    async def start(self, handler: LinkHandler) -> None:
        handler.link_up(self.link)

    async def stop(self) -> None:
        pass


class NeverRelay:
    """A relay policy that always stands down (as a dense neighbourhood can make it)."""

    name = "never"

    def first_copy(self, event: object) -> int | None:
        return None

    def copy_heard(self, copies: int, rssi: float | None) -> bool:
        return True

    def choose_links(self, candidates: list[str], rng: random.Random) -> list[str]:
        return []


async def test_node_reports_local_nodes_and_channels(tmp_path: Path) -> None:
    hub = MemoryHub()
    internet = FakeInternet()
    g = await start_member(tmp_path, hub, "g", lambda _: [internet])
    a = await start_member(tmp_path, hub, "a")
    c = await start_member(tmp_path, hub, "c")
    try:
        assert isinstance(g.node, GatewayHost)
        assert g.node.local_nodes(0) == []  # the internet link's peer is never local
        hub.connect(g.mem, a.mem)
        hub.connect(a.mem, c.mem)  # c is two hops away: heard by its announce

        async def both() -> bool:
            return set(g.node.local_nodes(0)) == {a.node_id, c.node_id}

        await wait_for(both)
        assert g.node.local_nodes(g.node.clock() + 60_000) == [a.node_id]  # neighbours stay
        assert "#mesh" in g.node.channel_ids()
    finally:
        for m in (g, a, c):
            await stop_member(m)


async def test_carried_packets_reach_internet_links_even_when_relaying_stands_down(
    tmp_path: Path,
) -> None:
    hub = MemoryHub()
    internet = FakeInternet()
    a = await start_member(tmp_path, hub, "a")
    g = await start_member(tmp_path, hub, "g", lambda _: [internet])
    far = await start_member(tmp_path, hub, "far")  # never linked: only its card is known
    try:
        g.node.engine.router.policy = NeverRelay()
        await befriend(a, far, sealed=False)  # the test reads the node id in the header
        hub.connect(a.mem, g.mem)
        await a.node.send_text("far", "over the internet please")

        async def offered() -> bool:
            return any(codec.parse(f).destination.value == far.node_id for f in internet.link.sent)

        await wait_for(offered)
        await asyncio.sleep(0.1)
        assert g.node.engine.router.counters.get("relay.declined", 0) >= 1
    finally:
        for m in (a, g, far):
            await stop_member(m)
    assert Identity is not None
