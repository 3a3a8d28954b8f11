"""A private group whose members are on two islands joined only through an MQTT broker."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from brokers import BrokerInfo
from islands import Member, befriend, start_member, stop_member, wait_for

from meshchat.gateway import channel_tag
from meshchat.group.book import group_conversation
from meshchat.identity import Identity
from meshchat.transports.base import Transport
from meshchat.transports.memory import MemoryHub
from meshchat.transports.relay import RelayConfig, RelayTransport

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:amqtt")


def relay(
    url: str,
    bridge: tuple[str, ...],
    republish_after_s: tuple[float, ...] = (0.5, 2.0),
    refresh_s: float = 0.1,
) -> Callable[[Identity], list[Transport]]:
    config = RelayConfig(
        url,
        refresh_s=refresh_s,
        reconnect_initial_s=0.05,
        reconnect_max_s=0.5,
        bridge_channels=bridge,
        republish_after_s=republish_after_s,
    )

    def make(identity: Identity) -> list[Transport]:
        return [RelayTransport(identity, config)]

    return make


async def group_texts(member: Member, group_id: bytes) -> list[str]:
    return [m.text for m in await member.node.messages(group_conversation(group_id))]


async def test_a_bridged_group_talks_across_islands_and_re_keys_there(
    tmp_path: Path, broker: BrokerInfo
) -> None:
    hub = MemoryHub()
    bridge = ("+crew",)
    alice = await start_member(tmp_path, hub, "alice", relay(broker.url, bridge, (0.5, 6.0)))
    # Bob's gateway takes up new addresses only every 2 s: later than alice's first publish
    # after a re-key, and sooner than her second.
    bob = await start_member(tmp_path, hub, "bob", relay(broker.url, bridge, refresh_s=2.0))
    carol = await start_member(tmp_path, hub, "carol")
    try:
        hub.connect(bob.mem, carol.mem)  # bob's island: bob (a gateway) and carol
        await befriend(alice, bob)
        await befriend(alice, carol)
        group = await alice.node.create_group("crew", ["bob", "carol"])
        gid = group.group_id

        async def joined() -> bool:
            return all(
                (g := m.node.engine.groups.groups.get(gid)) is not None and g.current is not None
                for m in (bob, carol)
            )

        await wait_for(joined, 20)
        relay_alice = alice.extra[0]
        assert isinstance(relay_alice, RelayTransport)
        address = alice.node.channel_ids()["+crew"]

        relay_bob = bob.extra[0]
        assert isinstance(relay_bob, RelayTransport)

        async def bridged() -> bool:
            topic = f"mc1/c/{channel_tag(address).hex()}"
            return topic in relay_alice.subscribed and topic in relay_bob.subscribed

        await wait_for(bridged)
        await carol.node.send_text("+crew", "from carol's island")

        async def alice_has_it() -> bool:
            return "from carol's island" in await group_texts(alice, gid)

        await wait_for(alice_has_it, 20)

        # Re-key (carol removed), and a message at once: it is published before bob's gateway
        # has even learnt the new address, and a broker keeps nothing for a topic nobody
        # subscribes to. Alice's gateway publishes it again a moment later; bob reads it.
        await alice.node.change_group("+crew", remove=["carol"])
        new_address = alice.node.channel_ids()["+crew"]
        assert new_address != address
        assert f"mc1/c/{channel_tag(new_address).hex()}" not in relay_bob.subscribed
        await alice.node.send_text("+crew", "right after the re-key")

        async def bob_has_it() -> bool:
            return "right after the re-key" in await group_texts(bob, gid)

        await wait_for(bob_has_it, 20)

        async def republished() -> bool:  # whichever copy bob took, a second one went out
            return relay_alice.counters.get("tx.republished", 0) >= 1

        await wait_for(republished, 10)
        assert "right after the re-key" not in await group_texts(carol, gid)

        # Both gateways still take in the old address, for members who have not yet taken
        # up the re-key and for messages of the old epoch still on the way.
        old_topic = f"mc1/c/{channel_tag(address).hex()}"
        assert old_topic in relay_alice.subscribed and old_topic in relay_bob.subscribed
    finally:
        for m in (alice, bob, carol):
            await stop_member(m)
