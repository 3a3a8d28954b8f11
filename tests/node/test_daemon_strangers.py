"""Strangers against a real daemon: half-sent group-control blobs, and a key-agreement flood.

A real daemon V on loopback. A stranger's process-like LAN link (a throw-away identity) feeds V
sealed messages from many throw-away identities, as found on live daemons:

* 256 strangers each send part 1 of a 2-part group-control blob (in about 3 s); then V's
  contact A creates a 5-member group with V, and later re-keys it (after V restarted and a
  second wave): V must join and follow, and A must see V's update applied.
* 1,100 key agreements to the prekey in V's card (220 identities, in about 11 s); then V's
  contact C, holding that card, sends its first message: it must be delivered.

Latencies are printed (the attack, then the legitimate traffic).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

from junk_link import FirstLink
from test_node_inbox import daemon, free_port, meshchat_cli, wait_for

from meshchat.control import request
from meshchat.crypto.direct import DirectSuite
from meshchat.home import Home
from meshchat.identity import ContactCard, Identity, PublicIdentity
from meshchat.node import Node
from meshchat.store import Store
from meshchat.store.records import MessageState
from meshchat.transports.base import Link
from meshchat.transports.lan import LanTransport
from meshchat.wire import codec
from meshchat.wire.payloads import CONTROL_CHUNK_BYTES, ControlPart, MessageBody


def _stranger(tag: str, n: int) -> Identity:
    def seed(part: str) -> bytes:
        return hashlib.blake2b(f"{tag}:{n}:{part}".encode(), digest_size=32).digest()

    return Identity.from_seeds(seed("sign"), seed("box"))


@contextlib.asynccontextmanager
async def stranger_link(port: int) -> AsyncIterator[Link]:
    transport = LanTransport(
        Identity.generate(),
        host="127.0.0.1",
        discovery=False,
        static_peers=[("127.0.0.1", port)],
        dial_delay=0.0,
    )
    handler = FirstLink()
    await transport.start(handler)
    try:
        yield await asyncio.wait_for(handler.up, 30)
    finally:
        await transport.stop()


async def _send_sealed(link: Link, frames: list[bytes], per_second: float) -> float:
    start = time.monotonic()
    for i, frame in enumerate(frames):
        while not link.send(frame):
            await asyncio.sleep(0.01)
        await asyncio.sleep(max(0.0, start + (i + 1) / per_second - time.monotonic()))
    return time.monotonic() - start


def _control_parts(victim: PublicIdentity, card: ContactCard, tag: str, count: int) -> list[bytes]:
    frames = []
    now = int(time.time() * 1000)
    assert card.prekey is not None
    for n in range(count):
        suite = DirectSuite(_stranger(tag, n))
        suite.add_peer(victim, card.prekey)
        part = ControlPart(os.urandom(16), os.urandom(16), 0, 2, os.urandom(CONTROL_CHUNK_BYTES))
        packet = suite.build_message(victim, part.msg_id, part.encode(), now, 4)
        frames.append(codec.encode(packet))
    return frames


def _key_agreements(victim: PublicIdentity, card: ContactCard, count: int) -> list[bytes]:
    frames = []
    now = int(time.time() * 1000)
    assert card.prekey is not None
    for i in range(count):
        suite = DirectSuite(_stranger("ka", i % 220))  # fresh state: a new key agreement
        suite.add_peer(victim, card.prekey)
        body = MessageBody(os.urandom(16), "x").encode()
        frames.append(codec.encode(suite.build_message(victim, os.urandom(16), body, now, 4)))
    return frames


class _World:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.v = Home(tmp / "v")
        self.port = free_port()
        self.nodes: dict[str, Node] = {}
        self.stores: list[Store] = []

    async def init_victim(self) -> ContactCard:
        await asyncio.to_thread(
            meshchat_cli, self.v.path, "init", "--name", "V", "--kdf", "interactive"
        )
        shown = json.loads(await asyncio.to_thread(meshchat_cli, self.v.path, "id", "--json"))
        return ContactCard.from_text(shown["card"])

    async def node(self, name: str) -> Node:
        store = Store.open(self.tmp / f"{name}.db", key=os.urandom(32))
        self.stores.append(store)
        identity = Identity.generate()
        lan = LanTransport(
            identity,
            host="127.0.0.1",
            discovery=False,
            static_peers=[("127.0.0.1", self.port)],
            dial_delay=0.0,
        )
        node = self.nodes[name] = Node(identity, name, store, [lan])
        await node.start()
        return node

    def v_request(self, payload: dict[str, object]) -> dict[str, object]:
        return request(self.v.control_socket, payload, timeout=10)

    def v_groups(self) -> list[dict[str, object]]:
        return list(self.v_request({"op": "group", "action": "list"})["groups"])  # type: ignore[call-overload]

    async def close(self) -> None:
        for node in self.nodes.values():
            await node.stop()
        for store in self.stores:
            store.close()


async def test_half_sent_blobs_do_not_stop_a_real_daemon_from_joining_and_following(
    tmp_path: Path,
) -> None:
    world = _World(tmp_path)
    v_card = await world.init_victim()
    try:
        a = await world.node("a")
        members = [await world.node(n) for n in ("m1", "m2", "m3")]
        for other in members:
            await a.add_card(await other.card(), other.name)
            await other.add_card(await a.card(), "a")
        a_card = (await a.card()).to_text()
        await asyncio.to_thread(
            meshchat_cli, world.v.path, "contacts", "add", a_card, "--name", "a"
        )
        await a.add_card(v_card, "v")
        frames = _control_parts(v_card.identity, v_card, "first", 256)
        v_id = v_card.identity.node_id
        with daemon(world.v, world.port, tmp_path / "v.log"):
            await wait_for(world.v.control_socket.exists)
            await wait_for(lambda: len(a.links) == 1 and all(len(m.links) == 1 for m in members))
            async with stranger_link(world.port) as link:
                took = await _send_sealed(link, frames, 85)
            start = time.monotonic()
            group = await a.create_group("five", ["v", "m1", "m2", "m3"])
            await wait_for(lambda: any(g["name"] == "five" for g in world.v_groups()), timeout=30)
            joined = time.monotonic() - start
            await wait_for(lambda: group.delivery.get(v_id) == "applied")
            applied = time.monotonic() - start
        print(f"256 half blobs in {took:.1f} s; then V joined the 5-member group after")
        print(f"{joined:.2f} s, A saw it applied after {applied:.2f} s; V restarts")
        with daemon(world.v, world.port, tmp_path / "v2.log"):
            await wait_for(world.v.control_socket.exists)
            await wait_for(lambda: len(a.links) == 1, timeout=60)
            async with stranger_link(world.port) as link:
                await _send_sealed(link, _control_parts(v_card.identity, v_card, "second", 256), 85)
            start = time.monotonic()
            await a.change_group("+five", remove=["m3"])
            await wait_for(
                lambda: [g["epoch"] for g in world.v_groups() if g["name"] == "five"] == [2],
                timeout=30,
            )
            rekeyed = time.monotonic() - start
            await wait_for(lambda: group.delivery.get(v_id) == "applied")
            print(f"after a second wave, V followed the re-key in {rekeyed:.2f} s")
    finally:
        await world.close()


async def test_a_key_agreement_flood_does_not_stop_a_contacts_first_message(
    tmp_path: Path,
) -> None:
    world = _World(tmp_path)
    v_card = await world.init_victim()
    try:
        c = await world.node("c")
        c_card = (await c.card()).to_text()
        await asyncio.to_thread(
            meshchat_cli, world.v.path, "contacts", "add", c_card, "--name", "c"
        )
        await c.add_card(v_card, "v")  # the card C holds names V's prekey of today
        frames = _key_agreements(v_card.identity, v_card, 1100)
        with daemon(world.v, world.port, tmp_path / "v.log"):
            await wait_for(world.v.control_socket.exists)
            await wait_for(lambda: len(c.links) == 1)
            async with stranger_link(world.port) as link:
                took = await _send_sealed(link, frames, 190)
                start = time.monotonic()
                message = await c.send_text("v", "hello V, it is C")

                async def delivered() -> bool:
                    got = await c.store.call(c.store.store.get_message, message.msg_id)
                    return got is not None and got.state is MessageState.DELIVERED

                await wait_for(delivered, timeout=60)
                latency = time.monotonic() - start
            print(f"1,100 key agreements in {took:.1f} s; C's first message took {latency:.2f} s")
            log = json.loads(
                await asyncio.to_thread(meshchat_cli, world.v.path, "log", "c", "--json")
            )
            assert "hello V, it is C" in json.dumps(log)
    finally:
        await world.close()
