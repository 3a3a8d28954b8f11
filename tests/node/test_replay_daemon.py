"""A #mesh packet replayed to a real daemon after it restarted is not flooded again.

A daemon G on loopback, a node B linked to it, and a stranger's link to G. The stranger sends a
#mesh packet; G shows it and floods it to B. G is stopped (SIGTERM) and started again, and the
stranger sends the same frame: G counts a duplicate and does not send it to B again.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from test_node_inbox import daemon, free_port, meshchat_cli, wait_for

from meshchat.control import request
from meshchat.crypto.channel import ChannelKey
from meshchat.home import Home
from meshchat.identity import Identity
from meshchat.node import Node
from meshchat.store import Store
from meshchat.transports.base import Link
from meshchat.transports.lan import LanTransport
from meshchat.wire import codec
from meshchat.wire.packet import Destination, PacketKind, Suite
from meshchat.wire.payloads import MessageBody


class _Stranger:
    """A stranger's LAN link to G that sends what it is told to."""

    def __init__(self) -> None:
        self.link: Link | None = None

    def link_up(self, link: Link) -> None:
        self.link = link

    def link_down(self, link: Link) -> None:
        if self.link is link:
            self.link = None

    def frame_received(self, link: Link, frame: bytes) -> None:
        pass


async def test_a_replay_after_the_daemon_restarts_is_not_flooded_again(tmp_path: Path) -> None:
    g_home = Home(tmp_path / "g")
    await asyncio.to_thread(
        meshchat_cli, g_home.path, "init", "--name", "G", "--kdf", "interactive"
    )
    port = free_port()
    b_id = Identity.generate()
    b_store = Store.open(tmp_path / "b.db", key=os.urandom(32))
    b_lan = LanTransport(
        b_id, host="127.0.0.1", discovery=False, static_peers=[("127.0.0.1", port)], dial_delay=0
    )
    b = Node(b_id, "b", b_store, [b_lan])
    await b.start()
    stranger = _Stranger()
    mallory = Identity.generate()
    s_lan = LanTransport(
        mallory, host="127.0.0.1", discovery=False, static_peers=[("127.0.0.1", port)], dial_delay=0
    )
    await s_lan.start(stranger)
    body = MessageBody(os.urandom(16), "replay me").encode()
    mesh = Destination.channel(ChannelKey.public().channel_id)
    frame = codec.encode(
        codec.build(mallory, PacketKind.MESSAGE, mesh, Suite.SIGNED, body, b.clock(), 4)
    )

    def g_counters() -> dict[str, int]:
        status = request(g_home.control_socket, {"op": "status"}, timeout=10)
        return dict(status["counters"])

    async def run_g_and_send(log: str) -> dict[str, int]:
        with daemon(g_home, port, tmp_path / log):
            await wait_for(lambda: stranger.link is not None and len(b.links) == 1)
            await wait_for(g_home.control_socket.exists)
            assert stranger.link is not None
            stranger.link.send(frame)
            await wait_for(
                lambda: sum(g_counters().get(k, 0) for k in ("accepted", "drop.duplicate")) >= 1
            )
            await asyncio.sleep(0.5)  # time for a relay to reach B, if G sends one
            return g_counters()

    try:
        first = await run_g_and_send("g1.log")
        assert first.get("accepted", 0) >= 1
        await wait_for(lambda: b.engine.router.counters.get("accepted", 0) >= 1)
        assert [m.text for m in await b.messages("#mesh")] == ["replay me"]
        # G's own announcements may reach B at any time; a re-flooded replay would be a duplicate.
        duplicates = b.engine.router.counters.get("drop.duplicate", 0)
        await wait_for(lambda: stranger.link is None and not b.links)
        second = await run_g_and_send("g2.log")
        assert second.get("drop.duplicate", 0) >= 1
        assert b.engine.router.counters.get("drop.duplicate", 0) == duplicates  # not re-flooded
        assert [m.text for m in await b.messages("#mesh")] == ["replay me"]
    finally:
        await s_lan.stop()
        await b.stop()
        b_store.close()
