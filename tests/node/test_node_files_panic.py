"""A panic during a download: the partial file and the transfers file are erased, and the node
writes neither back while it stops."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from meshchat.files.sink import PARTIAL_DIR
from meshchat.home import Home
from meshchat.node._types import FileOptions
from meshchat.panic import erase_home
from meshchat.transports.memory import MemoryHub
from tests.node.test_node_files import befriend, make_peer, wait_for


async def test_panic_mid_download_erases_the_partial_file_and_the_transfers(
    tmp_path: Path,
) -> None:
    hub = MemoryHub()
    alice = await make_peer(tmp_path, hub, "alice")
    home = Home(tmp_path / "bob")
    home.ensure()
    files = FileOptions(downloads=str(home.downloads), state=str(home.transfers))
    bob = await make_peer(tmp_path, hub, "bob", files)
    bob.node.set_eraser(lambda: erase_home(home))
    try:
        await befriend(alice, bob)
        hub.connect(alice.transport, bob.transport)
        source = tmp_path / "big.bin"
        source.write_bytes(os.urandom(1_500_000))
        await alice.node.files.send("bob", source)
        partial = home.downloads / PARTIAL_DIR

        async def under_way() -> bool:
            (t,) = await bob.node.files.transfers() or [None]
            return t is not None and t.progress is not None and t.progress.held > 100_000

        await wait_for(under_way)
        assert list(partial.glob("*.part")) and home.transfers.exists()
        report = await bob.node.panic()
        assert report.ok
        assert home.transfers in report.erased
        assert not partial.exists() and not home.transfers.exists()
        await asyncio.sleep(0.5)  # pieces still arriving write nothing back
        assert not partial.exists() and not home.transfers.exists()
        assert not home.downloads.exists()
    finally:
        for p in (alice, bob):
            await p.node.stop()
            p.store.close()
    assert not home.transfers.exists()  # nor does stopping
