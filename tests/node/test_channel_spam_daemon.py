"""#mesh spam against a real daemon: four stranger links write to #mesh as fast as the rate
limit lets them, and the daemon's database stays within its channel history budget (the
defaults: 512 KiB per sender, 8 MiB per channel)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from test_node_inbox import daemon, free_port, meshchat_cli, wait_for
from test_replay_daemon import _Stranger

from meshchat.control import request
from meshchat.crypto.channel import ChannelKey
from meshchat.home import Home
from meshchat.identity import Identity
from meshchat.transports.lan import LanTransport
from meshchat.wire import codec
from meshchat.wire.packet import Destination, PacketKind, Suite
from meshchat.wire.payloads import MessageBody

PER_LINK = 900  # ~0.9 MB of text per stranger: almost twice its 512 KiB budget
MESH = Destination.channel(ChannelKey.public().channel_id)


def _db_bytes(home: Home) -> int:
    return sum(p.stat().st_size for p in home.path.glob("*.db*"))


async def _spam(port: int, count: int) -> None:
    who = Identity.generate()
    stranger = _Stranger()
    lan = LanTransport(
        who, host="127.0.0.1", discovery=False, static_peers=[("127.0.0.1", port)], dial_delay=0
    )
    await lan.start(stranger)
    try:
        await wait_for(lambda: stranger.link is not None)
        for i in range(count):
            text = f"{i} " + "x" * 900
            body = MessageBody(os.urandom(16), text).encode()
            frame = codec.encode(
                codec.build(who, PacketKind.MESSAGE, MESH, Suite.SIGNED, body, _now_ms(), 2)
            )
            assert stranger.link is not None
            stranger.link.send(frame)
            await asyncio.sleep(1 / 180)  # under the link's 200 frames/s
    finally:
        await lan.stop()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def test_four_stranger_links_keep_a_daemons_database_within_budget(tmp_path: Path) -> None:
    home = Home(tmp_path / "g")
    await asyncio.to_thread(meshchat_cli, home.path, "init", "--name", "G", "--kdf", "interactive")
    port = free_port()
    with daemon(home, port, tmp_path / "g.log"):
        await wait_for(home.control_socket.exists)
        before = _db_bytes(home)
        await asyncio.gather(*(_spam(port, PER_LINK) for _ in range(4)))

        def accepted() -> int:
            status = request(home.control_socket, {"op": "status"}, timeout=10)
            return int(status["counters"].get("accepted", 0))

        await wait_for(lambda: accepted() >= 4 * PER_LINK, timeout=60)
        while_running = _db_bytes(home) - before
    after = _db_bytes(home) - before  # the daemon stopped: WAL checkpointed and removed
    print(f"database grew {while_running / 1e6:.2f} MB running, {after / 1e6:.2f} MB after stop")
    # 4 senders x 512 KiB of history (rows cost a little more on disk), not 4 MB of spam
    assert after < 3_500_000, after
    assert while_running < 8_000_000, while_running  # plus a WAL of at most ~4 MB
