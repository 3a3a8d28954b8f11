"""Running nodes keep nothing readable on disk; trust states steer sending; panic stops a node.

Three nodes in a chain (alice - bob - carol) exchange direct and channel messages with
distinctive text, and bob carries a packet for carol while she is away. Then the raw bytes of
every store (file, WAL and shared memory, read while the stores are still open) are searched
for every text, name, key and node id involved.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from meshchat.app import NodeSettings, running_node
from meshchat.control import request
from meshchat.errors import UsageError
from meshchat.home import Home
from meshchat.identity import Identity, KdfProfile
from meshchat.node import Node
from meshchat.safety import safety_number
from meshchat.store import Store
from meshchat.store.records import MessageState, Trust
from meshchat.transports.memory import MemoryHub, MemoryTransport

NAMES = ("Alicewright", "Bobsworth", "Carolinda")
TEXTS = (
    "Quokka parade at dawn, bring the brass lantern",
    "Reply: the lantern is under the blue tarpaulin",
    "Channel news: zeppelin sighted over the marsh",
    "Carried while Carolinda was away: xylophone",
)
CHANNEL_PASS = "saffron-channel-passphrase"


@dataclass
class Peer:
    node: Node
    transport: MemoryTransport
    store: Store
    path: Path
    name: str


async def make_peer(tmp_path: Path, hub: MemoryHub, name: str) -> Peer:
    identity = Identity.generate()
    path = tmp_path / f"{name}.db"
    store = Store.open(path, key=os.urandom(32))
    transport = hub.transport(identity.public)
    node = Node(identity, name, store, [transport])
    await node.start()
    return Peer(node, transport, store, path, name)


async def befriend(a: Peer, b: Peer) -> None:
    for x, y in ((a, b), (b, a)):
        card = y.node.identity.card(y.name)
        await x.node.add_card(card)


async def wait_for(predicate: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.02)


@pytest.fixture
async def chain(tmp_path: Path) -> AsyncIterator[tuple[MemoryHub, list[Peer]]]:
    hub = MemoryHub()
    peers = [await make_peer(tmp_path, hub, n) for n in NAMES]
    yield hub, peers
    for p in peers:
        await p.node.stop()
        p.store.close()


def raw(path: Path) -> bytes:
    return b"".join(
        p.read_bytes()
        for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"))
        if p.exists()
    )


async def delivered(peer: Peer, msg_id: bytes) -> bool:
    m = await peer.node.store.call(peer.store.get_message, msg_id)
    return m is not None and m.state is MessageState.DELIVERED


async def test_no_text_name_or_key_is_readable_in_any_store(chain) -> None:  # type: ignore[no-untyped-def]
    hub, (alice, bob, carol) = chain
    await befriend(alice, carol)
    await befriend(alice, bob)
    for p in (alice, bob, carol):
        await p.node.join("#saffron", CHANNEL_PASS)
    hub.connect(alice.transport, bob.transport)
    hub.connect(bob.transport, carol.transport)

    first = await alice.node.send_text(NAMES[2], TEXTS[0])
    await wait_for(lambda: delivered(alice, first.msg_id))
    reply = await carol.node.send_text(NAMES[0], TEXTS[1])
    await wait_for(lambda: delivered(carol, reply.msg_id))
    await alice.node.send_text("#saffron", TEXTS[2])

    async def all_have_channel() -> bool:
        counts = [len(await p.node.messages("#saffron")) for p in (alice, bob, carol)]
        return counts == [1, 1, 1]

    await wait_for(all_have_channel)
    # Carol leaves; bob carries alice's next message until she is back.
    hub.disconnect(bob.transport, carol.transport)
    carried = await alice.node.send_text(NAMES[2], TEXTS[3])

    async def bob_carries() -> bool:
        return len(await bob.node.store.call(bob.store.carried, 0)) >= 1

    await wait_for(bob_carries)

    # Everything is really stored (so the search below could find it if it were in clear).
    conv = await carol.node.resolve_conversation(NAMES[0])
    assert [m.text for m in await carol.node.messages(conv)] == [TEXTS[0], TEXTS[1]]
    assert (await alice.node.contacts())[0].name in NAMES
    channel = await alice.node.store.call(alice.store.get_channel, "#saffron")
    assert channel is not None and channel.key is not None

    secrets: dict[str, bytes] = {t: t.encode() for t in (*TEXTS, *NAMES, "#saffron")}
    secrets[CHANNEL_PASS] = CHANNEL_PASS.encode()
    secrets["channel key"] = channel.key
    for p in (alice, bob, carol):
        public = p.node.identity.public
        secrets[f"{p.name} sign key"] = public.sign_public
        secrets[f"{p.name} box key"] = public.box_public
        secrets[f"{p.name} node id"] = public.node_id
        secrets[f"{p.name} node id hex"] = public.node_id.hex().encode()
        secrets[f"{p.name} seed"] = p.node.identity.private_bytes()[0]
    carried_frames = await bob.node.store.call(bob.store.carried, 0)
    secrets["carried frame"] = carried_frames[0].frame[-48:]
    for p in (alice, bob, carol):
        data = raw(p.path)
        assert len(data) > 10_000
        leaked = [name for name, value in secrets.items() if value in data]
        assert leaked == [], f"{p.name}'s store shows {leaked}"
    # Carol comes back and still gets the carried message.
    hub.connect(bob.transport, carol.transport)
    await wait_for(lambda: delivered(alice, carried.msg_id))


async def test_nothing_is_sent_to_compromised_keys(chain) -> None:  # type: ignore[no-untyped-def]
    _hub, (alice, bob, _carol) = chain
    await befriend(alice, bob)
    queued = await alice.node.send_text(NAMES[1], "queued before the key change")
    new_bob = Identity.generate()
    result = await alice.node.add_card(new_bob.card(NAMES[1]), replace_keys=True)
    assert [c.name for c in result.compromised] == [NAMES[1]]
    old = next(c for c in await alice.node.contacts() if c.trust is Trust.COMPROMISED)
    with pytest.raises(UsageError, match="compromised"):
        await alice.node.send_text(old.node_id.hex()[:8], "to the old keys")
    # By name, the new (unverified) contact is meant now.
    await alice.node.send_text(NAMES[1], "to the new keys")
    # A restart fails the message queued for the retired keys instead of sending it.
    await alice.node.stop()
    restarted = Node(alice.node.identity, alice.name, alice.store, [alice.transport])
    await restarted.start()
    alice.node = restarted
    msg = await restarted.store.call(alice.store.get_message, queued.msg_id)
    assert msg is not None and msg.state is MessageState.FAILED
    # A message from the retired keys is shown loudly.
    assert "compromised" in await restarted._name_for(old.sign_public)
    with pytest.raises(UsageError, match="your own card"):
        await restarted.add_card(restarted.identity.card("me"))


async def test_panic_over_the_control_socket_erases_and_stops(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    home.create_identity("Panicky", "pw", KdfProfile.INTERACTIVE)
    home.card.write_text(Identity.generate().card("x").to_text())
    settings = NodeSettings(lan=False)
    async with running_node(home, "pw", settings) as node:
        await node.send_text("#mesh", "something to erase")
        assert home.database.exists() and home.control_socket.exists()
        reply = await asyncio.to_thread(request, home.control_socket, {"op": "panic"})
        assert reply["ok"] is True
        assert reply["erased"][0] == str(home.keystore)
        assert node.stop_requested.is_set()
        assert not home.keystore.exists()
    leftovers = [p for p in home.secret_files() if p.exists()]
    assert leftovers == []
    assert not home.path.exists()


async def test_control_contacts_and_verify(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    home.create_identity("Verifier", "pw", KdfProfile.INTERACTIVE)
    friend = Identity.generate()
    async with running_node(home, "pw", NodeSettings(lan=False)) as node:
        await node.add_card(friend.card("Friendly"))
        path = home.control_socket
        listed = await asyncio.to_thread(request, path, {"op": "contacts"})
        (entry,) = listed["contacts"]
        assert (entry["name"], entry["trust"], entry["has_card"]) == (
            "Friendly",
            "unverified",
            True,
        )
        number = entry["safety_number"]
        assert number == safety_number(node.identity.public, friend.public)
        wrong = number[:-1] + ("0" if number[-1] != "0" else "1")
        refused = await asyncio.to_thread(
            request, path, {"op": "verify", "contact": "friendly", "safety_number": wrong}
        )
        assert refused["ok"] is False
        assert "not your safety number" in refused["error"]
        assert (await node.contacts())[0].trust is Trust.UNVERIFIED
        accepted = await asyncio.to_thread(
            request,
            path,
            {"op": "verify", "contact": "friendly", "safety_number": number.replace(" ", "")},
        )
        assert accepted["ok"] is True
        assert accepted["contact"]["trust"] == "verified"
        assert (await node.contacts())[0].trust is Trust.VERIFIED
