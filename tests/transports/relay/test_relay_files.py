"""A file from one island to another through a real MQTT broker (amqtt and mosquitto): the
announcement and every request and piece cross the broker; the file arrives byte-identical."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
from brokers import BrokerInfo
from islands import (
    Member,
    befriend,
    node_options,
    open_store,
    start_member,
    stop_member,
    wait_for,
)
from test_relay_islands import relay, serving

from meshchat.files.policy import FilePolicy
from meshchat.identity import Identity
from meshchat.node import Node
from meshchat.node._filestate import State
from meshchat.node._types import FileOptions
from meshchat.transports.memory import MemoryHub

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:amqtt")


async def start_person(tmp_path: Path, hub: MemoryHub, name: str) -> Member:
    identity = Identity.generate()
    store_path = tmp_path / f"{name}.db"
    store = open_store(store_path)
    mem = hub.transport(identity.public)
    files = FileOptions(
        downloads=str(tmp_path / name / "downloads"),
        state=str(tmp_path / name / "t.json"),
        policy=FilePolicy(auto_accept=0),  # asks: the person says yes below
    )
    options = replace(node_options(), files=files)
    node = Node(identity, name, store, [mem], options=options)
    await node.start()
    return Member(name, identity, store_path, node, store, mem)


async def test_a_file_crosses_islands_through_the_broker(
    tmp_path: Path, broker: BrokerInfo
) -> None:
    hub = MemoryHub()
    a = await start_person(tmp_path, hub, "alice")
    g1 = await start_member(tmp_path, hub, "g1", relay(broker.url))
    g2 = await start_member(tmp_path, hub, "g2", relay(broker.url))
    b = await start_person(tmp_path, hub, "bob")
    try:
        hub.connect(a.mem, g1.mem)
        hub.connect(g2.mem, b.mem)
        await befriend(a, b)
        await serving(g1, a)
        await serving(g2, b)
        data = os.urandom(150_000)
        source = tmp_path / "leaflet.pdf"
        source.write_bytes(data)
        sent = await a.node.files.send("bob", source, caption="print 50")

        async def asked() -> bool:
            return [t.state for t in await b.node.files.transfers()] == [State.ASKING]

        await wait_for(asked, 30)
        await b.node.files.accept(sent.root.hex()[:8])

        async def done() -> bool:
            return [t.state for t in await b.node.files.transfers()] == [State.DONE]

        await wait_for(done, 60)
        (got,) = await b.node.files.transfers()
        assert Path(got.path).read_bytes() == data
        assert got.manifest.caption == "print 50"
    finally:
        for m in (a, g1, g2, b):
            await stop_member(m)
