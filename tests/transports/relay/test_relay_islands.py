"""Two islands of in-process nodes joined through a real MQTT broker (amqtt and mosquitto)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from brokers import BrokerInfo, RecordingProxy, free_port
from islands import Member, befriend, delivered, start_member, stop_member, texts, wait_for

from meshchat.gateway import channel_tag, mailbox_tag
from meshchat.identity import Identity
from meshchat.transports.base import Transport
from meshchat.transports.memory import MemoryHub
from meshchat.transports.relay import RelayConfig, RelayTransport
from meshchat.transports.relay.broker import EmbeddedBroker

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:amqtt")


def relay(
    url: str, state: Path | None = None, **kw: object
) -> Callable[[Identity], list[Transport]]:
    config = RelayConfig(url, refresh_s=0.1, reconnect_initial_s=0.05, reconnect_max_s=0.5, **kw)  # type: ignore[arg-type]

    def make(identity: Identity) -> list[Transport]:
        return [RelayTransport(identity, config, state_path=state)]

    return make


def relay_of(member: Member) -> RelayTransport:
    transport = member.extra[0]
    assert isinstance(transport, RelayTransport)
    return transport


async def serving(gateway: Member, *members: Member) -> None:
    transport = relay_of(gateway)

    async def check() -> bool:
        topics = transport.subscribed
        return transport.status().up and all(
            f"mc1/m/{mailbox_tag(m.node_id).hex()}" in topics for m in members
        )

    await wait_for(check)


async def test_message_crosses_islands_and_the_ack_returns(
    tmp_path: Path, broker: BrokerInfo
) -> None:
    hub = MemoryHub()
    a = await start_member(tmp_path, hub, "alice")
    g1 = await start_member(tmp_path, hub, "g1", relay(broker.url))
    g2 = await start_member(tmp_path, hub, "g2", relay(broker.url))
    b = await start_member(tmp_path, hub, "bob")
    try:
        hub.connect(a.mem, g1.mem)
        hub.connect(g2.mem, b.mem)
        await befriend(a, b)
        await serving(g1, a)
        await serving(g2, b)

        # The gateways say so in their announces: alice, with no internet, knows hers.
        async def g1_is_a_gateway() -> bool:
            return g1.node.is_gateway

        await wait_for(g1_is_a_gateway)
        assert not a.node.is_gateway

        async def alice_knows_her_gateway() -> bool:
            return g1.node_id in a.node.gateways()

        await wait_for(alice_knows_her_gateway)
        sent = await a.node.send_text("bob", "hello from the other island")
        await delivered(a, sent.msg_id)
        assert await texts(b, a) == ["hello from the other island"]
        reply = await b.node.send_text("alice", "and back")
        await delivered(b, reply.msg_id)
        assert await texts(a, b) == ["hello from the other island", "and back"]
        # The message and bob's ack are sealed: they travel on the shared sealed topic.
        assert relay_of(g1).counters.get("tx.sealed", 0) >= 2
    finally:
        for m in (a, g1, g2, b):
            await stop_member(m)


async def test_offline_recipient_gets_the_message_when_its_gateway_reconnects(
    tmp_path: Path, broker: BrokerInfo
) -> None:
    hub = MemoryHub()
    g2_state = tmp_path / "g2-relay.json"
    a = await start_member(tmp_path, hub, "alice")
    g1 = await start_member(tmp_path, hub, "g1", relay(broker.url))
    g2 = await start_member(tmp_path, hub, "g2", relay(broker.url, g2_state))
    b = await start_member(tmp_path, hub, "bob")
    live = [a, g1, g2, b]
    try:
        hub.connect(a.mem, g1.mem)
        hub.connect(g2.mem, b.mem)
        await befriend(a, b)
        await serving(g1, a)
        await serving(g2, b)
        # Bob and his gateway go offline; the broker keeps g2's persistent session.
        for m in (g2, b):
            await stop_member(m)
            live.remove(m)
        assert g2_state.exists()
        sent = await a.node.send_text("bob", "while you were away")

        async def published() -> bool:
            return relay_of(g1).counters.get("tx.published", 0) >= 1

        await wait_for(published)
        # Alice goes offline too, so no retry can carry the message later: only the broker has it.
        await stop_member(a)
        live.remove(a)

        g2 = await start_member(tmp_path, hub, "g2", relay(broker.url, g2_state), g2.identity)
        live.append(g2)
        b = await start_member(tmp_path, hub, "bob", identity=b.identity)
        live.append(b)
        hub.connect(g2.mem, b.mem)

        async def arrived() -> bool:
            return await texts(b, a) == ["while you were away"]

        await wait_for(arrived)
        assert relay_of(g2).counters.get("rx.frames", 0) >= 1
        # Alice comes back: g1 collected bob's ack in her mailbox and hands it over.
        a = await start_member(tmp_path, hub, "alice", identity=a.identity)
        live.append(a)
        hub.connect(a.mem, g1.mem)
        await delivered(a, sent.msg_id)
    finally:
        for m in live:
            await stop_member(m)


async def test_a_packet_entering_through_two_gateways_is_delivered_once(
    tmp_path: Path, amqtt_broker: EmbeddedBroker
) -> None:
    url = f"mqtt://127.0.0.1:{amqtt_broker.addresses[0][1]}"
    hub = MemoryHub()
    a = await start_member(tmp_path, hub, "alice")
    g1 = await start_member(tmp_path, hub, "g1", relay(url))
    g2a = await start_member(tmp_path, hub, "g2a", relay(url))
    g2b = await start_member(tmp_path, hub, "g2b", relay(url))
    b = await start_member(tmp_path, hub, "bob")
    members = [a, g1, g2a, g2b, b]
    try:
        hub.connect(a.mem, g1.mem)
        hub.connect(g2a.mem, b.mem)
        hub.connect(g2b.mem, b.mem)
        await befriend(a, b)
        await serving(g1, a)
        await serving(g2a, b)
        await serving(g2b, b)
        sent = await a.node.send_text("bob", "exactly once")
        await delivered(a, sent.msg_id)
        await asyncio.sleep(0.3)
        assert await texts(b, a) == ["exactly once"]
        # Both gateways really brought it in; bob's router dropped the second copy.
        assert relay_of(g2a).counters.get("rx.frames", 0) >= 1
        assert relay_of(g2b).counters.get("rx.frames", 0) >= 1
        assert b.node.engine.router.counters.get("drop.duplicate", 0) >= 1
    finally:
        for m in members:
            await stop_member(m)


async def test_the_broker_sees_no_plaintext_and_no_node_id(
    tmp_path: Path, broker: BrokerInfo
) -> None:
    proxy = RecordingProxy(broker.port)
    await proxy.start()
    url = broker.url.replace(f":{broker.port}", f":{proxy.port}")
    hub = MemoryHub()
    bridge = {"bridge_channels": ("#secret",)}
    a = await start_member(tmp_path, hub, "alice")
    g1 = await start_member(tmp_path, hub, "g1", relay(url, **bridge))
    g2 = await start_member(tmp_path, hub, "g2", relay(url, **bridge))
    b = await start_member(tmp_path, hub, "bob")
    members = [a, g1, g2, b]
    try:
        for m in members:
            await m.node.join("#secret", "correct horse battery staple")
        hub.connect(a.mem, g1.mem)
        hub.connect(g2.mem, b.mem)
        await befriend(a, b)
        await serving(g1, a)
        await serving(g2, b)
        secret_dm = "the eagle lands at midnight"
        secret_chan = "channel plans for tuesday"
        sent = await a.node.send_text("bob", secret_dm)
        await delivered(a, sent.msg_id)
        await a.node.send_text("#secret", secret_chan)

        async def channel_arrived() -> bool:
            return [m.text for m in await b.node.messages("#secret")] == [secret_chan]

        await wait_for(channel_arrived)
    finally:
        for m in members:
            await stop_member(m)
        await proxy.stop()
    capture = bytes(proxy.received)
    # The capture is real: it holds the topics of both mailboxes and of the bridged channel.
    channel_id = a.node.channel_ids()["#secret"]
    for tag in (mailbox_tag(a.node_id), mailbox_tag(b.node_id), channel_tag(channel_id)):
        assert tag.hex().encode() in capture
    secrets: list[bytes] = [secret_dm.encode(), secret_chan.encode(), b"#secret", channel_id]
    for m in members:
        pub = m.identity.public
        secrets += [m.node_id, pub.sign_public, pub.box_public]
    for secret in list(secrets):
        secrets += [secret.hex().encode(), secret.hex().upper().encode()]
    leaked = [s for s in secrets if s in capture]
    assert leaked == []


async def test_messages_wait_in_the_outbox_while_the_broker_is_unreachable(
    tmp_path: Path, amqtt_broker: EmbeddedBroker
) -> None:
    broker_port = amqtt_broker.addresses[0][1]
    proxy_port = free_port()  # nothing listens there yet: g1's broker is "down"
    hub = MemoryHub()
    a = await start_member(tmp_path, hub, "alice")
    g1 = await start_member(tmp_path, hub, "g1", relay(f"mqtt://127.0.0.1:{proxy_port}"))
    g2 = await start_member(tmp_path, hub, "g2", relay(f"mqtt://127.0.0.1:{broker_port}"))
    b = await start_member(tmp_path, hub, "bob")
    members = [a, g1, g2, b]
    proxy = RecordingProxy(broker_port, proxy_port)
    try:
        hub.connect(a.mem, g1.mem)
        hub.connect(g2.mem, b.mem)
        await befriend(a, b)
        await serving(g2, b)
        sent = await a.node.send_text("bob", "queued while down")

        async def queued() -> bool:
            return len(relay_of(g1).outbox) >= 1

        await wait_for(queued)
        status = relay_of(g1).status()
        assert not status.up and "down" in status.detail and "outbox" in status.detail
        await asyncio.sleep(0.6)  # a few reconnect attempts fail meanwhile
        assert relay_of(g1).counters.get("connects", 0) == 0
        await proxy.start()
        await delivered(a, sent.msg_id)
        assert await texts(b, a) == ["queued while down"]
        assert relay_of(g1).status().up
        assert len(relay_of(g1).outbox) == 0
    finally:
        for m in members:
            await stop_member(m)
        await proxy.stop()
