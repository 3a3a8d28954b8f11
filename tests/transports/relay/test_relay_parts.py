"""Relay settings, the outbox, the expiry each publish carries, and the embedded broker's mailbox
policy."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest
from brokers import Mosquitto, free_port

from meshchat.errors import TransportError, UsageError
from meshchat.gateway import mailbox_key, mailbox_tag, open_batch
from meshchat.identity import Identity
from meshchat.node import Node, NodeOptions
from meshchat.store import Store
from meshchat.transports.base import Link
from meshchat.transports.relay import (
    Outbox,
    Publish,
    RelayConfig,
    RelayTransport,
    client_id_for,
    parse_relay_url,
    token_hash,
)
from meshchat.transports.relay.broker import BrokerSettings, EmbeddedBroker
from meshchat.wire import Destination, PacketKind, Suite, build, encode
from meshchat.wire.packet import MAX_AGE_MS

TOPIC = "mc1/m/" + "ab" * 16
TOKEN = "a-token-the-operator-handed-out"


def test_parse_relay_url() -> None:
    assert parse_relay_url("mqtt://example.org") == ("example.org", 1883, False, None, None)
    assert parse_relay_url("mqtts://u:p%40ss@h:9000") == ("h", 9000, True, "u", "p@ss")
    assert parse_relay_url("mqtt://[::1]:1884")[:2] == ("::1", 1884)
    for bad in ("http://h", "mqtt://", "mqtt://h/path", "mqtt://h:99999", "h:1883"):
        with pytest.raises(UsageError):
            parse_relay_url(bad)


def test_config_display_hides_credentials_and_tls_flag_applies() -> None:
    config = RelayConfig("mqtt://user:secret@h:1883", tls=True)
    assert config.display == "mqtts://h:1883"
    assert config.credentials == ("user", "secret")
    assert RelayConfig("mqtt://h", username="x", password="y").credentials == ("x", "y")
    with pytest.raises(UsageError):
        RelayConfig("mqtt://h", protocol="4")
    with pytest.raises(UsageError):
        RelayConfig("mqtt://h", topic_prefix="a/#")


def test_client_id_is_stable_secret_derived_and_per_broker() -> None:
    secret = bytes(32)
    one = client_id_for(secret, RelayConfig("mqtt://h:1"))
    assert one == client_id_for(secret, RelayConfig("mqtt://h:1"))
    assert one != client_id_for(secret, RelayConfig("mqtt://h:2"))
    assert one != client_id_for(bytes([1]) * 32, RelayConfig("mqtt://h:1"))
    node_id = Identity.generate().node_id
    assert node_id.hex() not in one


def test_outbox_keeps_order_requeues_in_flight_and_is_bounded() -> None:
    box = Outbox(limit=3)
    items = [Publish(f"t{i}", b"x", expires_s=100) for i in range(4)]
    for item in items:
        box.add(item)
    assert len(box) == 3 and box.dropped == 1  # the oldest waiting one went
    first = box.take(0)
    second = box.take(0)
    assert (first, second) == (items[1], items[2])
    box.done(first)  # type: ignore[arg-type]
    assert box.requeue_inflight() == 1
    assert box.take(0) is items[2] and box.take(0) is items[3]
    box.retry(items[3])
    assert box.take(0) is items[3]
    box.add(Publish("old", b"x", expires_s=5))
    assert box.take(10) is None and box.expired == 1


def test_broker_settings_are_checked() -> None:
    with pytest.raises(TransportError):
        BrokerSettings(binds=())
    with pytest.raises(TransportError):
        BrokerSettings(mailbox_quota=0)
    with pytest.raises(TransportError):
        BrokerSettings(certfile="x")


@pytest.fixture
async def small_broker(tmp_path: Path) -> AsyncIterator[EmbeddedBroker]:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"gw:{token_hash(TOKEN)}\n")
    settings = BrokerSettings(port=0, mailbox_quota=5, sweep_s=3600, token_file=str(tokens))
    broker = EmbeddedBroker(settings)
    await broker.start()
    yield broker
    await broker.stop()


def client(broker: EmbeddedBroker, name: str) -> aiomqtt.Client:
    port = broker.addresses[0][1]
    return aiomqtt.Client(
        "127.0.0.1", port, identifier=name, clean_session=False, username="gw", password=TOKEN
    )


async def collect(c: aiomqtt.Client, quiet: float = 0.5) -> list[bytes]:
    got: list[bytes] = []
    try:
        async with asyncio.timeout(quiet):
            async for message in c.messages:
                assert isinstance(message.payload, bytes)
                got.append(message.payload)
    except TimeoutError:
        pass
    return got


async def test_quota_keeps_the_newest_messages_per_mailbox(small_broker: EmbeddedBroker) -> None:
    async with client(small_broker, "gateway") as c:
        await c.subscribe(TOPIC, qos=1)
    async with client(small_broker, "sender") as s:
        for i in range(12):
            await s.publish(TOPIC, f"m{i:02d}".encode(), qos=1)
    await asyncio.sleep(0.2)
    policy = small_broker.policy
    assert policy is not None and policy.dropped_quota == 7
    async with client(small_broker, "gateway") as c:
        got = await collect(c)
    assert got == [f"m{i:02d}".encode() for i in range(7, 12)]


async def test_retention_sweep_drops_old_queued_messages(small_broker: EmbeddedBroker) -> None:
    async with client(small_broker, "gateway") as c:
        await c.subscribe(TOPIC, qos=1)
    async with client(small_broker, "sender") as s:
        await s.publish(TOPIC, b"old", qos=1)
    await asyncio.sleep(0.2)
    policy = small_broker.policy
    assert policy is not None
    assert policy.sweep() == 0  # not old yet
    assert policy.sweep(time.monotonic() + 8 * 24 * 3600) == 1
    async with client(small_broker, "gateway") as c:
        assert await collect(c) == []


async def test_policy_refuses_foreign_topics_and_wildcards(small_broker: EmbeddedBroker) -> None:
    async with client(small_broker, "snoop") as c:
        (code,) = await c.subscribe("mc1/#", qos=1)
        assert getattr(code, "value", code) == 0x80  # refused
        await c.subscribe("other/topic", qos=1)
        await c.publish("other/topic", b"x", qos=1)
        assert await collect(c, 0.3) == []
    policy = small_broker.policy
    assert policy is not None and policy.refused_topics >= 3


async def test_no_retained_message_is_kept(small_broker: EmbeddedBroker) -> None:
    async with client(small_broker, "p") as s:
        await s.publish(TOPIC, b"keep me", qos=1, retain=True)
    await asyncio.sleep(0.2)
    async with client(small_broker, "late") as c:
        await c.subscribe(TOPIC, qos=1)
        assert await collect(c, 0.3) == []


class _Quiet:
    """A link handler that ignores everything (the test reads the broker directly)."""

    def link_up(self, link: Link) -> None:
        pass

    def link_down(self, link: Link) -> None:
        pass

    def frame_received(self, link: Link, frame: bytes) -> None:
        pass


async def test_every_publish_carries_the_message_expiry(mosquitto: Mosquitto) -> None:
    """The expiry properties are shared between publishes, yet each publish carries its own
    expiry: mosquitto (MQTT 5) passes the remaining interval on to the subscriber."""
    sender, recipient = Identity.generate(), Identity.generate()
    url = f"mqtt://127.0.0.1:{mosquitto.port}"
    transport = RelayTransport(Identity.generate(), RelayConfig(url, retention_s=600))
    topic = f"mc1/m/{mailbox_tag(recipient.node_id).hex()}"
    now_ms = int(time.time() * 1000)
    # The third packet is old enough to expire in 200 s, before the retention (600 s) is over.
    created = [now_ms, now_ms, now_ms - (MAX_AGE_MS - 200_000), now_ms]
    frames = [
        encode(
            build(
                sender,
                PacketKind.MESSAGE,
                Destination.node(recipient.node_id),
                Suite.BOX,
                bytes([i]) * 80,
                at,
                8,
            )
        )
        for i, at in enumerate(created)
    ]
    async with aiomqtt.Client(
        "127.0.0.1", mosquitto.port, identifier="watch", protocol=aiomqtt.ProtocolVersion.V5
    ) as watch:
        await watch.subscribe(topic, qos=1)
        await transport.start(_Quiet())
        try:
            async with asyncio.timeout(10):
                while not transport.status().up:
                    await asyncio.sleep(0.02)
            for frame in frames:
                assert transport.offer(frame)
            expiries: list[int] = []  # one per frame
            async with asyncio.timeout(10):
                async for message in watch.messages:
                    expiry = getattr(message.properties, "MessageExpiryInterval", None)
                    assert isinstance(expiry, int)
                    assert isinstance(message.payload, bytes)
                    carried, _ = open_batch(mailbox_key(recipient.node_id), message.payload)
                    expiries.extend([expiry] * len(carried))
                    if len(expiries) == len(frames):
                        break
        finally:
            await transport.stop()
    # The first two share an envelope; the one that expires sooner travels alone.
    assert [590 <= e <= 600 for e in expiries] == [True, True, False, True]
    assert 190 <= expiries[2] <= 200
    assert len(transport.session._expiry_properties) <= 3  # shared, not one per publish


async def test_a_channel_bridged_a_moment_ago_leaves_at_once(tmp_path: Path) -> None:
    """The first packet to a just-joined bridged channel goes out without waiting for the
    periodic refresh (here an hour away). No broker listens: the outbox keeps it."""
    identity = Identity.generate()
    url = f"mqtt://127.0.0.1:{free_port()}"
    config = RelayConfig(url, bridge_channels=("#team",), refresh_s=3600)
    relay = RelayTransport(identity, config)
    store = Store.open(tmp_path / "g.db", key=bytes(32))
    node = Node(identity, "g", store, [relay], options=NodeOptions(announce=False))
    await node.start()
    try:
        await node.join("#team", "correct horse")
        await node.send_text("#team", "first words")
        async with asyncio.timeout(5):
            while relay.counters.get("tx.channel", 0) < 1:
                await asyncio.sleep(0.02)
        assert relay.counters.get("tx.stays-local", 0) == 0
        assert len(relay.outbox) == 1
    finally:
        await node.stop()
        store.close()


def test_frames_for_one_topic_are_taken_together_within_limits() -> None:
    outbox = Outbox(limit=100)
    for i in range(5):
        outbox.add(Publish("a", b"", 100, frame=bytes([i + 1]) * 10, key=bytes(32)))
    outbox.add(Publish("b", b"", 100, frame=b"x", key=bytes(32)))
    outbox.add(Publish("a", b"", 100, frame=b"y", key=bytes(32)))
    outbox.add(Publish("a", b"", 900, frame=b"z", key=bytes(32)))
    run = outbox.take_run(0, most=3, budget=10_000)
    assert [p.frame[0] for p in run] == [1, 2, 3]  # at most 3
    run = outbox.take_run(0, most=16, budget=15)
    assert [p.frame[0] for p in run] == [4]  # the byte budget
    assert [p.frame for p in outbox.take_run(0, 16, 10_000)] == [bytes([5]) * 10]
    assert [p.topic for p in outbox.take_run(0, 16, 10_000)] == ["b"]  # another topic
    assert [p.frame for p in outbox.take_run(0, 16, 10_000)] == [b"y"]  # expiry too far
    assert [p.frame for p in outbox.take_run(0, 16, 10_000)] == [b"z"]
    assert outbox.take_run(0, 16, 10_000) == []
