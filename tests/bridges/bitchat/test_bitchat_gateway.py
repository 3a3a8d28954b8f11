"""Two meshchat nodes, each a bitchat gateway (``--bitchat``) to its own crowd on its own
virtual air (bumble), linked to each other by meshchat: the crowds hear each other's public
messages once each, the users' own ``#bitchat`` texts reach both crowds, a meshchat DM between
the users never reaches bitchat, and a flood from one crowd is capped before it enters
meshchat while a meshchat message still gets through.

The crowds are bitchat nodes built from the project's codec (:class:`BitchatCentral` with
:class:`BitchatMesh`), the other side of a GATT link from the gateway's peripheral.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from bumble.device import Device

from meshchat.bridges.bitchat.ble import BitchatGatt
from meshchat.bridges.bitchat.central import BitchatCentral
from meshchat.bridges.bitchat.mesh import BitchatMesh, Private
from meshchat.bridges.bitchat.peers import PublicText
from meshchat.bridges.bitchat.public import BitchatIdentity
from meshchat.bridges.marks import (
    BITCHAT_DM_MARK,
    BITCHAT_MARK,
    bitchat_dm_conversation,
    network_mark,
)
from meshchat.crypto.channel import ChannelKey
from meshchat.errors import BridgeReason
from meshchat.identity import Identity
from meshchat.node import Node
from meshchat.node._bitchat import ECHO_MARK, BitchatGateway
from meshchat.store import Store
from meshchat.transports.ble.virtual import RangedLink
from meshchat.transports.memory import MemoryHub
from meshchat.wire import codec
from meshchat.wire.packet import Destination, PacketKind, Suite
from meshchat.wire.payloads import MessageBody
from tests.transports.ble.bleak_bumble import virtual_device


async def until(check: Callable[[], bool | Awaitable[bool]], timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            result = check()
            if result if isinstance(result, bool) else await result:
                return
            await asyncio.sleep(0.02)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class Island:
    node: Node
    store: Store
    gateway: BitchatGateway
    crowd: BitchatCentral
    air: RangedLink
    heard: list[PublicText] = field(default_factory=list)

    def texts(self) -> list[str]:
        return [h.text for h in self.heard]


@pytest.fixture
async def islands(tmp_path: Path) -> AsyncIterator[tuple[Island, Island]]:
    hub = MemoryHub()
    made: list[Island] = []
    try:
        for name, person in (("alice", "carol"), ("bob", "dave")):
            identity = Identity.generate()
            store = Store.open(tmp_path / f"{name}.db", key=os.urandom(32))
            transport = hub.transport(identity.public)
            node = Node(identity, name, store, [transport])
            await node.start()
            air = RangedLink()
            gateway = BitchatGateway(node, device=virtual_device(air, f"{name}-gw"))
            crowd_device = virtual_device(air, person)
            await crowd_device.power_on()
            island = Island(node, store, gateway, None, air)  # type: ignore[arg-type]
            island.crowd = BitchatCentral(
                crowd_device,
                BitchatMesh(BitchatIdentity.generate(), person),
                on_text=island.heard.append,
                clock_ms=now_ms,
            )
            await gateway.start()
            await island.crowd.start()
            made.append(island)
        hub.connect(made[0].node.transports[0], made[1].node.transports[1 - 1])  # type: ignore[arg-type]
        for island in made:
            mesh = island.gateway.gatt.mesh  # type: ignore[union-attr]
            await until(lambda mesh=mesh: len(mesh.peers) == 1)  # type: ignore[misc]
            await until(lambda i=island: len(i.crowd.mesh.peers) == 1)  # type: ignore[misc]
        await until(lambda: all(i.node.links for i in made))
        yield made[0], made[1]
    finally:
        for island in made:
            await island.crowd.stop()
            await island.gateway.stop()
            await island.node.stop()
            island.store.close()


async def test_two_crowds_hear_each_other_once(islands: tuple[Island, Island]) -> None:
    a, b = islands
    await a.crowd.send_text("hello from carol's crowd")
    await until(lambda: any("hello from carol's crowd" in t for t in b.texts()))
    await b.crowd.send_text("hello back from dave")
    await until(lambda: any("hello back from dave" in t for t in a.texts()))
    sent = await a.node.send_text("#bitchat", "alice speaks on bitchat")
    assert sent.outgoing and sent.conversation == "#bitchat"
    await until(lambda: "alice speaks on bitchat" in a.texts())
    await until(lambda: any("alice speaks on bitchat" in t for t in b.texts()))
    await asyncio.sleep(1.0)  # time for any echo or loop to show

    assert (
        b.texts().count(f"{ECHO_MARK} ~alice (meshchat): carol@bitchat: hello from carol's crowd")
        == 1
    )
    assert a.texts().count(f"{ECHO_MARK} ~bob (meshchat): dave@bitchat: hello back from dave") == 1
    assert a.texts().count("alice speaks on bitchat") == 1  # from alice herself, unmarked
    assert b.texts().count(f"{ECHO_MARK} ~alice (meshchat): alice speaks on bitchat") == 1
    assert len(a.heard) == 2 and len(b.heard) == 2  # nothing else, nothing twice
    # in meshchat: the conversation is marked, bitchat senders named apart from contacts
    for island in (a, b):
        messages = await island.node.messages("#bitchat")
        assert BITCHAT_MARK in messages[0].text
        texts = [m.text for m in messages[1:]]
        assert len(texts) == len(set(texts)) == 3
    remote = next(m for m in await b.node.messages("#bitchat") if "carol" in m.text)
    assert remote.sender_name == "~alice" and remote.text.startswith("carol@bitchat: ")
    local = next(m for m in await a.node.messages("#bitchat") if "hello from carol" in m.text)
    carol = a.crowd.mesh.identity.peer_id
    assert local.sender_name == f"carol@bitchat:{carol.hex()}"
    # never a meshchat node id: bitchat senders get their own derived ids
    assert local.sender not in (carol, a.node.identity.node_id, b.node.identity.node_id)


async def test_a_meshchat_dm_never_reaches_bitchat(islands: tuple[Island, Island]) -> None:
    a, b = islands
    await a.node.add_card(await b.node.card())
    await b.node.add_card(await a.node.card())
    await a.node.send_text("bob", "secret between meshchat users")
    await until(
        lambda: _has(b.node, f"dm:{a.node.identity.node_id.hex()}", "secret between meshchat")
    )
    await a.node.send_text("#mesh", "meshchat's own public channel")
    await a.crowd.send_text("a marker after the dm")
    await until(lambda: any("a marker after the dm" in t for t in b.texts()))
    await asyncio.sleep(0.5)
    for island in (a, b):
        assert not any("secret" in t or "own public channel" in t for t in island.texts())


async def _has(node: Node, conversation: str, fragment: str) -> bool:
    return any(fragment in m.text for m in await node.messages(conversation))


async def test_a_bitchat_flood_is_capped_and_meshchat_still_delivers(
    islands: tuple[Island, Island],
) -> None:
    a, b = islands
    # 20 bitchat identities (as an attacker nearby can make), 10 texts each, all valid
    flooders = [BitchatMesh(BitchatIdentity.generate(), f"flood{k}") for k in range(20)]
    for mesh in flooders:
        for frame in mesh.announce(now_ms()):
            await a.crowd.broadcast(frame)
    began = time.monotonic()
    for i in range(10):
        for mesh in flooders:
            for frame in mesh.send_text(f"flood {i} from {mesh.nickname}", now_ms()):
                await a.crowd.broadcast(frame)
    started = time.monotonic()
    await a.node.send_text("#mesh", "legit message during the flood")
    await until(lambda: _has(b.node, "#mesh", "legit message during the flood"))
    latency = time.monotonic() - started
    await asyncio.sleep(1.0)
    elapsed = time.monotonic() - began
    counters = a.gateway.counters
    carried = counters.get("carried", 0)
    shown_at_b = [m for m in await b.node.messages("#bitchat") if "flood" in m.text]
    emitted = b.gateway.counters.get("emitted", 0)
    print(
        f"flood 200 from 20 peers in {elapsed:.1f} s: heard {counters.get('heard', 0)}, "
        f"carried {carried}, held back {counters.get('carry_limited', 0)}, at b "
        f"{len(shown_at_b)}, re-emitted by b {emitted}; legit latency {latency * 1000:.0f} ms"
    )
    # the total cap (20, then one per second) before the carry bucket (10, then one per 3 s)
    assert counters.get("heard", 0) <= 20 + elapsed + 1
    assert carried <= 10 + elapsed / 3 + 1 and counters.get("carry_limited", 0) > 0
    assert len(shown_at_b) == carried and emitted <= carried


async def test_a_replay_older_than_six_hours_is_refused(islands: tuple[Island, Island]) -> None:
    a, b = islands
    old = now_ms() - 6 * 3600 * 1000 - 60_000
    mesh = a.crowd.mesh
    _, frames = mesh.public("a message from long ago", old)
    for frame in frames:
        await a.crowd.broadcast(frame)
    gatt = a.gateway.gatt
    assert gatt is not None
    await until(lambda: gatt.refused[BridgeReason.STALE] >= 1)
    await asyncio.sleep(0.3)
    assert not await _has(a.node, "#bitchat", "long ago")
    assert not await _has(b.node, "#bitchat", "long ago")


def controller_of(device: Device) -> Any:
    return device.host.hci_sink.sink  # type: ignore[attr-defined]


async def test_the_gateway_is_central_too_and_relays_between_its_roles(
    islands: tuple[Island, Island],
) -> None:
    """erin is a bitchat peripheral only (as a phone can be) out of carol's range: the
    gateway dials her, and texts cross between its two roles, and to island B."""
    a, b = islands
    erin_device = virtual_device(a.air, "erin")
    a.air.set_in_range(controller_of(erin_device), controller_of(a.crowd.device), False)
    erin_heard: list[PublicText] = []
    erin = BitchatGatt(
        erin_device,
        BitchatMesh(BitchatIdentity.generate(), "erin"),
        on_text=erin_heard.append,
        clock_ms=now_ms,
    )
    await erin.start()
    try:
        central = a.gateway.central
        assert central is not None
        await until(lambda: len(central.links) == 1 and erin.centrals == 1)
        # bitchat nodes announce again from time to time: erin learns carol through the gateway
        for frame in a.crowd.mesh.announce(now_ms()):
            await a.crowd.broadcast(frame)
        await until(lambda: erin.mesh.peers.get(a.crowd.mesh.identity.peer_id) is not None)
        await until(lambda: a.crowd.mesh.peers.get(erin.mesh.identity.peer_id) is not None)
        await a.crowd.send_text("carol to everyone")
        await until(lambda: "carol to everyone" in [t.text for t in erin_heard])
        await erin.send_text("erin to everyone")
        await until(lambda: "erin to everyone" in a.texts())
        await until(lambda: any("erin@bitchat: erin to everyone" in t for t in b.texts()))
        assert [t.nickname for t in erin_heard] == ["carol"]  # carol's own signed packet
        assert [t.nickname for t in a.heard if t.text == "erin to everyone"] == ["erin"]
    finally:
        await erin.stop()


async def test_bitchat_dms_end_at_the_gateway(islands: tuple[Island, Island]) -> None:
    """carol writes to alice's gateway privately (Noise XX); alice answers from meshchat; the
    DM is its own marked conversation and reaches neither meshchat's #bitchat nor island B."""
    a, b = islands
    carol_got: list[str] = []

    def direct(decision: object) -> None:
        if isinstance(decision, Private):
            carol_got.append(decision.message.text)

    a.crowd.on_direct = direct
    gate = a.gateway.identity.peer_id
    _, frames = a.crowd.mesh.send_private(gate, "a private word for alice", now_ms())
    await a.crowd.send_frames(tuple(frames))
    conversation = bitchat_dm_conversation(a.crowd.mesh.identity.peer_id)
    await until(lambda: _has(a.node, conversation, "a private word for alice"))
    shown = await a.node.messages(conversation)
    carol = a.crowd.mesh.identity.peer_id.hex()
    assert [m.sender_name for m in shown] == [f"carol@bitchat:{carol}"]
    assert network_mark(conversation) == BITCHAT_DM_MARK
    reply = await a.node.send_text(conversation, "alice answers privately")
    assert reply.outgoing and reply.conversation == conversation
    await until(lambda: carol_got == ["alice answers privately"])
    await until(lambda: a.gateway.counters.get("dm_delivered", 0) == 1)
    await asyncio.sleep(0.5)
    for island in (a, b):
        assert not any("private" in t for t in island.texts())
        assert not await _has(island.node, "#bitchat", "private")
    assert not [c for c in await b.node.conversations() if c.name.startswith("#bitchat:dm:")]


async def test_a_meshchat_users_text_is_reemitted_unless_older_than_six_hours(
    islands: tuple[Island, Island],
) -> None:
    """A meshchat node without a bitchat radio writes in the channel #bitchat (here injected
    as its signed packet): the gateway re-emits it to its crowd, with the writer's name escaped;
    a message written more than 6 hours ago (a late delivery) is not re-emitted."""
    a, _ = islands
    writer = Identity.generate()
    channel = ChannelKey.public("#bitchat").channel_id
    old = now_ms() - 6 * 3600 * 1000 - 60_000
    for text, sent in (("written long ago", old), ("written just now", now_ms())):
        body = MessageBody(os.urandom(16), text, sent_ms=sent).encode()
        packet = codec.build(
            writer,
            PacketKind.MESSAGE,
            Destination.channel(channel),
            Suite.SIGNED,
            body,
            now_ms(),
            6,
        )
        a.node.inject(codec.encode(packet))
    await until(lambda: any("written just now" in t for t in a.texts()))
    await until(lambda: _has(a.node, "#bitchat", "written long ago"))  # shown in meshchat
    await asyncio.sleep(0.3)
    assert not any("long ago" in t for t in a.texts())
    assert a.gateway.counters.get("stale_not_emitted") == 1
    (emitted,) = [t for t in a.texts() if "just now" in t]
    assert emitted.startswith(f"{ECHO_MARK} ") and emitted.endswith(" (meshchat): written just now")
