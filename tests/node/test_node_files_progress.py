"""Progress notices of a download: once a second while it runs (and one at each change of
state), not one per piece, since a face redraws (the terminal UI reloads the conversation)
at each."""

from __future__ import annotations

import os
import time
from pathlib import Path

from meshchat.node._types import NodeNotice
from meshchat.transports.memory import MemoryHub
from tests.node.test_node_files import befriend, make_peer, received, wait_for


async def test_a_download_notifies_progress_once_a_second(tmp_path: Path) -> None:
    hub = MemoryHub()
    alice = await make_peer(tmp_path, hub, "alice")
    bob = await make_peer(tmp_path, hub, "bob")
    try:
        await befriend(alice, bob)
        hub.connect(alice.transport, bob.transport)
        notices: list[float] = []

        def heard(notice: NodeNotice) -> None:
            if notice.kind == "transfer":
                notices.append(time.monotonic())

        bob.node.subscribe(heard)
        source = tmp_path / "big.bin"
        source.write_bytes(os.urandom(1_500_000))  # about a thousand pieces
        start = time.monotonic()
        await alice.node.files.send("bob", source)

        async def done() -> bool:
            return bool(await received(bob))

        await wait_for(done, timeout=60)
        seconds = time.monotonic() - start
        # the states (offered and active, done) and a progress notice each second at most
        assert len(notices) <= 4 + seconds, (len(notices), seconds)
    finally:
        for p in (alice, bob):
            await p.node.stop()
            p.store.close()
