"""Sealed mail on the relay under topics derived from the recipient's tags, and what junk on the
shared sealed topic can still cost a gateway (amqtt and mosquitto, real brokers)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import aiomqtt
import pytest
from brokers import BrokerInfo, RecordingProxy
from islands import befriend, delivered, start_member, stop_member, texts, wait_for
from test_relay_attacks import SHARED, junk_frames
from test_relay_islands import relay, relay_of

from meshchat.gateway import SEALED_TOPIC_ID, channel_key, seal_batch
from meshchat.transports.memory import MemoryHub
from meshchat.transports.relay._sealed import sealed_topic

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


async def publish_junk(broker: BrokerInfo, topics: list[str], envelopes: int) -> None:
    """``envelopes`` envelopes of 16 junk sealed frames (well-formed, signed, for no one) on
    each topic, sealed with the shared topic's public key."""
    user, _, password = broker.credentials.partition(":")
    frames = junk_frames(16 * envelopes * len(topics))
    expires = int(time.time()) + 3600
    async with aiomqtt.Client(
        "127.0.0.1", broker.port, username=user or None, password=password or None
    ) as client:
        for i in range(envelopes * len(topics)):
            topic = topics[i % len(topics)]
            batch = frames[16 * i : 16 * i + 16]
            await client.publish(
                topic, seal_batch(channel_key(SEALED_TOPIC_ID), batch, expires), qos=1
            )


async def test_sealed_mail_to_a_gateway_travels_under_its_tag_and_junk_reaches_no_one(
    tmp_path: Path, broker: BrokerInfo
) -> None:
    proxy = RecordingProxy(broker.port)
    await proxy.start()
    url = broker.url.replace(f":{broker.port}", f":{proxy.port}")
    hub = MemoryHub()
    alice = await start_member(tmp_path, hub, "alice", relay(url))
    bob = await start_member(tmp_path, hub, "bob", relay(url))
    try:
        await befriend(alice, bob)

        async def collecting() -> bool:
            own = relay_of(bob)._own_topics
            return bool(own) and set(own) <= relay_of(bob).subscribed

        await wait_for(collecting)
        sent = await alice.node.send_text("bob", "under my tag")
        await delivered(alice, sent.msg_id)
        assert await texts(bob, alice) == ["under my tag"]
        # It went under a topic of bob's own tags (and the ack under one of alice's).
        published = bytes(proxy.received)
        assert any(t.encode() in published for t in relay_of(bob)._own_topics)
        assert any(t.encode() in published for t in relay_of(alice)._own_topics)

        # Junk: 40 envelopes of 16 frames on the shared topic and on a tag nobody has.
        taken = relay_of(bob).counters.get("rx.frames", 0)
        nobody = sealed_topic("mc1", os.urandom(16))
        await publish_junk(broker, [SHARED, nobody], 40)
        await asyncio.sleep(1.0)
        junk_in = relay_of(bob).counters.get("rx.frames", 0) - taken
        print(f"\n  {broker.kind}: {junk_in} of 1,280 junk frames taken into bob's island")
        # at most the shared topic's budget (a burst of 100, 50 a second); none from the
        # tag nobody has (the broker had no subscriber for it)
        assert junk_in <= 100 + 50 * 3
        assert relay_of(bob).counters.get("rx.island-over-budget", 0) >= 640 - junk_in - 20
        # bob's own mail still arrives at once
        again = await alice.node.send_text("bob", "after the junk")
        await delivered(alice, again.msg_id)
    finally:
        for member in (alice, bob):
            await stop_member(member)
        await proxy.stop()
