"""A #mesh member announcing a thousand files to a real daemon.

A stranger with a LAN link to a real daemon V writes 1,200 file announcements to #mesh (each
a valid announcement of a different file, under the link's rate limit). V asks its user about
a file announced on a channel by someone it does not know; the files waiting for an answer must
stay bounded (memory, and the transfers file written on each change), and V's contact B's
direct message sent meanwhile arrives (its latency printed).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

from meshchat.control import request
from meshchat.crypto.channel import ChannelKey
from meshchat.files import FileKind, new_key, prepare_file
from meshchat.files.announce import announce_text
from meshchat.home import Home
from meshchat.identity import ContactCard, Identity
from meshchat.node import Node
from meshchat.node._files import MAX_ASKING
from meshchat.store import Store
from meshchat.store.records import MessageState
from meshchat.transports.lan import LanTransport
from meshchat.wire import codec
from meshchat.wire.packet import Destination, PacketKind, Suite
from meshchat.wire.payloads import MessageBody
from tests.node.junk_link import FirstLink
from tests.node.test_node_inbox import daemon, free_port, meshchat_cli, wait_for

MESH = Destination.channel(ChannelKey.public().channel_id)
COUNT = 1_200


def _announcements(tmp: Path, who: Identity) -> list[bytes]:
    source = tmp / "bait.bin"
    source.write_bytes(os.urandom(3000))
    frames = []
    now = time.time_ns() // 1_000_000
    for _ in range(COUNT):
        manifest, _ = prepare_file(
            source, kind=FileKind.FILE, media_type="application/octet-stream", key=new_key()
        )
        text = announce_text(manifest, who.node_id)
        body = MessageBody(os.urandom(16), text).encode()
        packet = codec.build(who, PacketKind.MESSAGE, MESH, Suite.SIGNED, body, now, 2)
        frames.append(codec.encode(packet))
    return frames


async def _flood(port: int, frames: list[bytes], who: Identity) -> None:
    lan = LanTransport(
        who, host="127.0.0.1", discovery=False, static_peers=[("127.0.0.1", port)], dial_delay=0
    )
    handler = FirstLink()
    await lan.start(handler)
    try:
        link = await asyncio.wait_for(handler.up, 30)
        for frame in frames:
            link.send(frame)
            await asyncio.sleep(1 / 180)  # under the link's 200 frames/s
    finally:
        await lan.stop()


async def test_a_thousand_channel_announcements_stay_bounded(tmp_path: Path) -> None:
    v = Home(tmp_path / "v")
    await asyncio.to_thread(meshchat_cli, v.path, "init", "--name", "V", "--kdf", "interactive")
    shown = json.loads(await asyncio.to_thread(meshchat_cli, v.path, "id", "--json"))
    port = free_port()
    store = Store.open(tmp_path / "b.db", key=os.urandom(32))
    identity = Identity.generate()
    lan = LanTransport(
        identity, host="127.0.0.1", discovery=False, static_peers=[("127.0.0.1", port)],
        dial_delay=0.0,
    )  # fmt: skip
    b = Node(identity, "b", store, [lan])
    await b.start()
    who = Identity.generate()
    frames = _announcements(tmp_path, who)
    try:
        await b.add_card(ContactCard.from_text(shown["card"]), "v")
        cli = ("contacts", "add", (await b.card()).to_text(), "--name", "b")
        await asyncio.to_thread(meshchat_cli, v.path, *cli)
        with daemon(v, port, tmp_path / "v.log"):
            await wait_for(v.control_socket.exists)
            await wait_for(lambda: len(b.links) == 1)
            flood = asyncio.create_task(_flood(port, frames, who))
            await asyncio.sleep(3.0)
            start = time.monotonic()
            message = await b.send_text("v", "hello V, it is B")

            async def delivered() -> bool:
                got = await b.store.call(b.store.store.get_message, message.msg_id)
                return got is not None and got.state is MessageState.DELIVERED

            await wait_for(delivered, timeout=20)
            latency = time.monotonic() - start
            await flood
            await asyncio.sleep(1.0)
            transfers = request(v.control_socket, {"op": "transfers"}, timeout=30)["transfers"]
            state = v.path / "transfers.json"
            size = state.stat().st_size if state.exists() else 0
        asking = [t for t in transfers if t["state"] == "asking"]
        print(f"B's message during {COUNT} announcements: {latency * 1000:.0f} ms")
        print(f"V holds {len(transfers)} transfers ({len(asking)} asking), state file {size} B")
        assert len(asking) <= MAX_ASKING
    finally:
        await b.stop()
        store.close()
