"""Strangers asking a real daemon for every chunk of a file sent in a direct conversation.

A real daemon V on loopback sends a 1 MB file to its contact B. Eight strangers (throw-away
identities, each with its own LAN link to V) who learnt the file's root (a relay sees roots)
ask V for every chunk of it, over and over, for 3 s. Only the conversation's people (B, and
my other devices) may be served a file of a direct conversation or a group: the strangers get
nothing, and B's direct message sent during the flood arrives (its latency is printed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

from meshchat.control import request
from meshchat.engine._files import LINK_FILE_TAG
from meshchat.files.manifest import DEFAULT_CHUNK_SIZE
from meshchat.files.wire import Request
from meshchat.home import Home
from meshchat.identity import ContactCard, Identity
from meshchat.node import Node
from meshchat.store import Store
from meshchat.store.records import MessageState
from meshchat.transports.base import Link
from meshchat.transports.lan import LanTransport
from tests.node.test_node_inbox import daemon, free_port, meshchat_cli, wait_for

SIZE = 1_000_000


class _Counting:
    """A stranger's link handler: counts the file frames that come back."""

    def __init__(self) -> None:
        self.up: asyncio.Future[Link] = asyncio.get_running_loop().create_future()
        self.file_frames = 0

    def link_up(self, link: Link) -> None:
        if not self.up.done():
            self.up.set_result(link)

    def link_down(self, link: Link) -> None:
        pass

    def frame_received(self, link: Link, frame: bytes) -> None:
        if frame[:1] == LINK_FILE_TAG:
            self.file_frames += 1


@contextlib.asynccontextmanager
async def _stranger(port: int) -> AsyncIterator[tuple[Link, _Counting]]:
    transport = LanTransport(
        Identity.generate(), host="127.0.0.1", discovery=False,
        static_peers=[("127.0.0.1", port)], dial_delay=0.0,
    )  # fmt: skip
    handler = _Counting()
    await transport.start(handler)
    try:
        yield await asyncio.wait_for(handler.up, 30), handler
    finally:
        await transport.stop()


async def _ask_everything(port: int, root: bytes, seconds: float) -> int:
    chunks = -(-SIZE // DEFAULT_CHUNK_SIZE)
    bodies = [
        LINK_FILE_TAG + Request(root, 0, tuple(range(s, min(s + 32, chunks)))).encode()
        for s in range(0, chunks, 32)
    ]
    async with _stranger(port) as (link, handler):
        end = time.monotonic() + seconds
        i = 0
        while time.monotonic() < end:
            link.send(bodies[i % len(bodies)])
            i += 1
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.3)  # what V answered in flight
        return handler.file_frames


async def test_strangers_asking_for_a_direct_file_are_not_served(tmp_path: Path) -> None:
    v = Home(tmp_path / "v")
    await asyncio.to_thread(meshchat_cli, v.path, "init", "--name", "V", "--kdf", "interactive")
    shown = json.loads(await asyncio.to_thread(meshchat_cli, v.path, "id", "--json"))
    v_card = ContactCard.from_text(shown["card"])
    port = free_port()
    store = Store.open(tmp_path / "b.db", key=os.urandom(32))
    identity = Identity.generate()
    lan = LanTransport(
        identity, host="127.0.0.1", discovery=False, static_peers=[("127.0.0.1", port)],
        dial_delay=0.0,
    )  # fmt: skip
    b = Node(identity, "b", store, [lan])
    await b.start()
    source = tmp_path / "wanted.bin"
    source.write_bytes(os.urandom(SIZE))
    try:
        await b.add_card(v_card, "v")
        cli = ("contacts", "add", (await b.card()).to_text(), "--name", "b")
        await asyncio.to_thread(meshchat_cli, v.path, *cli)
        with daemon(v, port, tmp_path / "v.log"):
            await wait_for(v.control_socket.exists)
            await wait_for(lambda: len(b.links) == 1)
            op = {"op": "send_file", "to": "b", "path": str(source)}
            sent = request(v.control_socket, op, timeout=30)["transfer"]
            root = bytes.fromhex(sent["root"])
            flood = asyncio.gather(*(_ask_everything(port, root, 3.0) for _ in range(8)))
            await asyncio.sleep(1.0)
            start = time.monotonic()
            message = await b.send_text("v", "hello V, it is B")

            async def delivered() -> bool:
                got = await b.store.call(b.store.store.get_message, message.msg_id)
                return got is not None and got.state is MessageState.DELIVERED

            await wait_for(delivered, timeout=20)
            latency = time.monotonic() - start
            served = await flood
            status = request(v.control_socket, {"op": "status"}, timeout=10)
            counters = status.get("counters", {})
        print(f"B's message during the flood: {latency * 1000:.0f} ms")
        print(f"file frames sent to the 8 strangers: {served}; V counted {counters}")
        assert sum(served) == 0, f"V served strangers {sum(served)} pieces"
        assert counters.get("files.drop.not-allowed", 0) > 0
    finally:
        await b.stop()
        store.close()
