"""Attacks on the DHT by hostile Kademlia nodes in their own process, against an honest swarm
process; after each, a sealed message between two gateways must still arrive through the DHT.

Every test prints what it measured (latency, CPU and memory of the swarm and of the gateways'
process, what the swarm stores) as one JSON line; ``docs/internet.md`` quotes them.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "relay"))

from attack_world import (
    ALICE_HOST,
    BOB_HOST,
    Measure,
    Swarm,
    attacker,
    gateway,
    read_line,
    start_swarm,
    stop,
)
from islands import Member, befriend, start_member, stop_member, texts, wait_for
from kademlia.utils import digest

from meshchat.crypto.tags import EPOCH_MS
from meshchat.identity import Identity
from meshchat.transports.dht import DhtTransport, sealed_record_key
from meshchat.transports.dht._sealed import SEALED_SLOTS
from meshchat.transports.memory import MemoryHub

#: how long a sealed message may take under attack before it counts as stopped (it takes
#: about a second without one)
ARRIVAL_S = 25.0
#: records each swarm node keeps in the store-flood test (small, so the test is quick)
MAX_STORED = 600
STORE_HOSTS = [f"127.66.1.{i}" for i in range(1, 17)]


@pytest.fixture
def swarm(request: pytest.FixtureRequest) -> Iterator[Swarm]:
    max_stored = getattr(request, "param", 4096)  # records each node keeps at most
    world = start_swarm(max_stored)
    yield world
    stop(world.proc)


@pytest.fixture
async def pair(tmp_path: Path, swarm: Swarm) -> AsyncIterator[tuple[Member, Member]]:
    """Alice and bob, contacts with current cards, each a gateway on the DHT only."""
    hub = MemoryHub()  # never connected: the DHT is the only way between them
    a = await start_member(tmp_path, hub, "alice", gateway(ALICE_HOST, swarm))
    b = await start_member(tmp_path, hub, "bob", gateway(BOB_HOST, swarm))
    try:
        await befriend(a, b)
        await joined(a, b)
        yield a, b
    finally:
        await stop_member(a)
        await stop_member(b)


def dht_of(member: Member) -> DhtTransport:
    transport = member.extra[0]
    assert isinstance(transport, DhtTransport)
    return transport


async def joined(*members: Member) -> None:
    async def check() -> bool:
        return all(dht_of(m).status().up for m in members)

    await wait_for(check, timeout=20)


async def arrives(a: Member, b: Member, text: str, timeout: float = ARRIVAL_S) -> float:
    """Send ``text`` from a to b; the seconds until b has it (raises TimeoutError if not)."""
    began = time.monotonic()
    await a.node.send_text("bob", text)

    async def there() -> bool:
        return text in await texts(b, a)

    await wait_for(there, timeout=timeout)
    return time.monotonic() - began


def tag_keys(b: Member) -> list[str]:
    """The Kademlia keys under which sealed messages created now reach bob."""
    epoch = int(time.time() * 1000) // EPOCH_MS
    tags = b.node.sealed_tags(epoch)
    return [digest(sealed_record_key(t, s)).hex() for t in tags for s in range(SEALED_SLOTS)]


async def test_baseline_a_sealed_message_crosses_the_swarm(
    swarm: Swarm, pair: tuple[Member, Member]
) -> None:
    a, b = pair
    measure = Measure(swarm)
    latency = await arrives(a, b, "no attack")
    measure.report("none", latency_s=round(latency, 2))


@pytest.mark.parametrize("swarm", [MAX_STORED], indirect=True)
async def test_a_store_flood_does_not_erase_a_waiting_sealed_message(
    tmp_path: Path, swarm: Swarm
) -> None:
    """Bob is offline; alice's message waits in the swarm. From 16 addresses, an attacker
    then stores more valid junk records than any node keeps (and forged, oversized and
    mis-filed ones under bob's real keys). Every node keeps within its bounds, and when bob
    comes back, his message is there."""
    hub = MemoryHub()
    bob_identity = Identity.generate()
    a = await start_member(tmp_path, hub, "alice", gateway(ALICE_HOST, swarm))
    b_stub = await start_member(tmp_path, hub, "bob", identity=bob_identity)
    live = [a]
    try:
        await befriend(a, b_stub)
        keys = tag_keys(b_stub)
        await stop_member(b_stub)  # bob only had to hand over his card: offline now
        await joined(a)
        await a.node.send_text("bob", "waited out a flood")

        async def stored() -> bool:
            return dht_of(a).counters.get("tx.stored", 0) >= 1

        await wait_for(stored)
        await stop_member(a)  # no retry can bring it again: only the swarm holds it
        live.remove(a)
        measure = Measure(swarm)
        flood = attacker(
            "store", "--targets", *swarm.targets, "--count", str(MAX_STORED + 100),
            "--window", "512", "--keys", *keys, "--hosts", *STORE_HOSTS,
        )  # fmt: skip
        result = await read_line(flood, timeout=120)
        stop(flood)
        await swarm.fresh_stats()
        per_node = [n["records"] for n in swarm.last["nodes"]]  # type: ignore[index, union-attr]
        measure.report("store-flood", flood=result)
        # every node keeps at most its bound, whatever was sent
        assert max(per_node) <= MAX_STORED
        b = await start_member(
            tmp_path, hub, "bob", gateway(BOB_HOST, swarm), identity=bob_identity
        )
        live.append(b)
        began = time.monotonic()

        async def there() -> bool:
            return "waited out a flood" in await texts(b, a)

        try:
            await wait_for(there, timeout=ARRIVAL_S)
        finally:
            measure.report("store-flood, bob back", latency_s=round(time.monotonic() - began, 2))
    finally:
        for m in live:
            await stop_member(m)


async def test_squatters_on_bobs_keys_do_not_stop_a_sealed_message(
    swarm: Swarm, pair: tuple[Member, Member]
) -> None:
    """Someone who saw bob's tags (they are in the clear on a mesh) stores, from four
    addresses, a valid record living 8 days in every slot of every tag at every node, before
    alice writes: her record (living 2 hours) is still kept, and found."""
    a, b = pair
    epoch = int(time.time() * 1000) // EPOCH_MS
    tags = [t.hex() for t in b.node.sealed_tags(epoch)]
    gateways = [f"{ALICE_HOST}:{dht_of(a).port}", f"{BOB_HOST}:{dht_of(b).port}"]
    squat = attacker(
        "squat", "--targets", *swarm.targets, *gateways, "--tags", *tags,
        "--hosts", *STORE_HOSTS[:4],
    )  # fmt: skip
    result = await read_line(squat)
    stop(squat)
    measure = Measure(swarm)
    latency = await arrives(a, b, "past the squatters")
    measure.report("squat", squat=result, latency_s=round(latency, 2))


async def test_garbage_answers_do_not_stop_a_sealed_message(swarm: Swarm, tmp_path: Path) -> None:
    """Twelve nodes answer every lookup with forged, oversized, mis-filed or non-bytes values
    and malformed or bogus node lists; they accept every store and keep nothing."""
    hostile = attacker("garbage", "--targets", *swarm.targets, "--sybils", "12", "--seconds", "60")
    try:
        await read_line(hostile)
        hub = MemoryHub()
        a = await start_member(tmp_path, hub, "alice", gateway(ALICE_HOST, swarm))
        b = await start_member(tmp_path, hub, "bob", gateway(BOB_HOST, swarm))
        try:
            await befriend(a, b)
            await joined(a, b)
            measure = Measure(swarm)
            latency = await arrives(a, b, "through the garbage")
            measure.report("garbage", latency_s=round(latency, 2))
        finally:
            await stop_member(a)
            await stop_member(b)
    finally:
        stop(hostile)


async def test_a_lookup_flood_does_not_stop_a_sealed_message(
    swarm: Swarm, pair: tuple[Member, Member]
) -> None:
    """One address sends thousands of lookups a second, each from a fresh node id, to every
    node of the swarm while alice writes to bob."""
    a, b = pair
    measure = Measure(swarm)
    flood = attacker(
        "flood", "--targets", *swarm.targets, "--rate", "400", "--seconds", "20",
        "--keys", *tag_keys(b),
    )  # fmt: skip
    try:
        await asyncio.sleep(3)  # the flood is on
        began = time.monotonic()
        try:
            latency = await arrives(a, b, "through the flood")
        finally:
            measure.report("lookup-flood", latency_s=round(time.monotonic() - began, 2))
    finally:
        stop(flood)
    del latency


async def test_an_eclipse_of_bobs_keys_does_not_stop_a_sealed_message(
    swarm: Swarm, pair: tuple[Member, Member]
) -> None:
    """64 nodes from two addresses take the ids next to every key bob polls; they answer
    lookups with each other and drop every store."""
    a, b = pair
    eclipse = attacker(
        "eclipse", "--targets", *swarm.targets, "--sybils", "64", "--seconds", "90",
        "--keys", *tag_keys(b),
    )  # fmt: skip
    try:
        await read_line(eclipse)
        measure = Measure(swarm)
        latency = await arrives(a, b, "around the eclipse")
        measure.report("eclipse", latency_s=round(latency, 2))
    finally:
        stop(eclipse)
