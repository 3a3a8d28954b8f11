"""A stranger on the internet against a relay: real brokers (``meshchat relay`` and mosquitto
with docs/mosquitto.conf), real gateway daemons, a real MQTT client as the attacker.

Each test prints what it measured (``-s`` shows it): whether the real message arrived, how long
it took, and the broker's CPU seconds during the attack.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import aiomqtt
import pytest
from attackers import Daemon, Relay, cpu_seconds, eventually

from meshchat.crypto.tags import epoch_of, prekey_tag
from meshchat.gateway import SEALED_TOPIC_ID, channel_key, channel_tag, seal_batch
from meshchat.identity import ContactCard, Identity
from meshchat.wire import Destination, PacketKind, Suite, build, encode

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SHARED = f"mc1/c/{channel_tag(SEALED_TOPIC_ID).hex()}"


def sealed_topic_of(tag: bytes) -> str:
    from meshchat.transports.relay._sealed import sealed_topic

    return sealed_topic("mc1", tag)


def bobs_prekey_topic(card: str) -> str:
    """What anyone holding bob's card can compute: the topic of his prekey tag, this hour."""
    prekey = ContactCard.from_text(card).prekey
    assert prekey is not None
    return sealed_topic_of(prekey_tag(prekey.public, epoch_of(int(time.time() * 1000))))


def junk_frames(count: int) -> list[bytes]:
    """Well-formed, signed sealed packets to random tags: they open, parse and verify, and
    are for no one."""
    who = Identity.generate()
    now = int(time.time() * 1000)
    return [
        encode(
            build(
                who,
                PacketKind.MESSAGE,
                Destination.node(os.urandom(16)),
                Suite.RATCHET,
                os.urandom(400),
                now,
                8,
            )
        )
        for _ in range(count)
    ]


async def flood(
    relay: Relay,
    who: str,
    topics: list[str],
    count: int,
    size: int,
    *,
    seconds: float,
    frames_per_envelope: int = 0,
    rate: float = 0.0,
    started: threading.Event | None = None,
) -> int:
    """Publish ``count`` junk messages (of ``size`` bytes, or envelopes of junk frames) to
    each topic, QoS 1, within ``seconds``; returns how many the broker acknowledged."""
    user, password = (None, None) if who == "anonymous" else ("mallory", relay.mallory_token)
    sent = 0
    frames = junk_frames(frames_per_envelope * count * len(topics)) if frames_per_envelope else []
    expires = int(time.time()) + 3600
    try:
        async with (
            asyncio.timeout(seconds),
            aiomqtt.Client(
                "127.0.0.1",
                relay.port,
                identifier=f"junk-{os.urandom(4).hex()}",
                username=user,
                password=password,
                max_inflight_messages=100,
                timeout=5,
            ) as client,
        ):
            client.pending_calls_threshold = 200
            if started is not None:
                started.set()
            window = asyncio.Semaphore(100)

            async def one(topic: str, i: int) -> None:
                nonlocal sent
                if frames:
                    at = i * frames_per_envelope
                    picked = frames[at : at + frames_per_envelope]
                    payload = seal_batch(channel_key(SEALED_TOPIC_ID), picked, expires)
                else:
                    payload = os.urandom(size)
                async with window:
                    await client.publish(topic, payload, qos=1)
                    sent += 1

            tasks = []
            for i in range(count):
                tasks += [
                    asyncio.create_task(one(topic, i * len(topics) + j))
                    for j, topic in enumerate(topics)
                ]
                if rate:
                    await asyncio.sleep(1 / rate)
            await asyncio.gather(*tasks)
    except (aiomqtt.MqttError, TimeoutError) as exc:
        print(f"  attacker ({who}): {type(exc).__name__}: {exc}")
    if started is not None:
        started.set()
    return sent


def in_background(work: Callable[[], int]) -> tuple[threading.Thread, list[float]]:
    """Run ``work`` in a thread; the list gets its result and the monotonic time it ended."""
    result: list[float] = []

    def run() -> None:
        result.append(work())
        result.append(time.monotonic())

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def pair(tmp_path: Path) -> tuple[Daemon, Daemon, str]:
    alice, bob = Daemon(tmp_path, "alice"), Daemon(tmp_path, "bob")
    card_a, card_b = alice.init(), bob.init()
    assert alice.cli("contacts", "add", card_b).returncode == 0
    assert bob.cli("contacts", "add", card_a).returncode == 0
    return alice, bob, card_b


def message_state(daemon: Daemon, peer: str, msg_id: str) -> str:
    for m in daemon.cli_json("log", peer)["messages"]:
        if m["msg_id"] == msg_id:
            return str(m["state"])
    return ""


#: (broker, attacker): "anonymous" on a relay whose operator opted in to anonymous clients,
#: "mallory" holding a token of her own
CASES = [("amqtt", "anonymous"), ("amqtt", "mallory"), ("mosquitto", "anonymous")]
CASES += [("mosquitto", "mallory")]
FLOOD_CASES = [("amqtt", "anonymous"), ("amqtt", "mallory"), ("mosquitto", "mallory")]


@pytest.mark.parametrize(("kind", "attacker"), CASES)
def test_queued_mail_survives_a_junk_flood(tmp_path: Path, kind: str, attacker: str) -> None:
    """Item 1: bob offline, alice queues a sealed message for him and goes offline; a
    stranger publishes 1,200 junk envelopes of 600 B to each sealed topic it can name (the
    shared one and bob's prekey topic, computed from his card); bob comes back."""
    relay = Relay(kind, tmp_path, anonymous=attacker == "anonymous")
    relay.start()
    alice, bob, card_b = pair(tmp_path)
    try:
        bob.start(relay.url())  # bob's persistent session subscribes, then he goes away
        time.sleep(1.0)
        bob.stop()
        alice.start(relay.url())
        msg_id = alice.cli_json("send", "bob", "queued before the flood")["msg_id"]
        eventually(lambda: message_state(alice, "bob", msg_id) not in ("", "queued"))
        eventually(alice.outbox_empty)
        time.sleep(0.5)
        alice.stop()
        cpu = cpu_seconds(relay.pid)
        topics = [SHARED, bobs_prekey_topic(card_b)]
        accepted = asyncio.run(flood(relay, attacker, topics, 1200, 600, seconds=10))
        time.sleep(0.5)
        cpu = cpu_seconds(relay.pid) - cpu
        bob.start(relay.url())
        waited = eventually(lambda: bob.texts("alice") == ["queued before the flood"], 20)
        print(
            f"\n  {kind}/{attacker}: junk acknowledged {accepted}/2400; broker CPU "
            f"{cpu:.2f} s; message arrived {waited:.1f} s after bob's return"
        )
    finally:
        for daemon in (alice, bob):
            daemon.stop()
        relay.stop()


def latency_under_flood(
    tmp_path: Path,
    kind: str,
    attacker: str,
    attack: Callable[[Relay, threading.Event], int],
    *,
    ahead: bool = False,
) -> None:
    """Alice and bob online; ``attack(relay, started)`` runs in the background; once its
    flood has started, alice sends. ``ahead``: the message must arrive before the flood ends."""
    relay = Relay(kind, tmp_path, anonymous=attacker == "anonymous")
    relay.start()
    alice, bob, _ = pair(tmp_path)
    try:
        bob.start(relay.url())
        alice.start(relay.url())
        first = alice.cli_json("send", "bob", "hello before")["msg_id"]
        quiet = eventually(lambda: message_state(alice, "bob", first) == "delivered", 30)
        cpu = cpu_seconds(relay.pid)
        started = threading.Event()
        thread, result = in_background(lambda: attack(relay, started))
        assert started.wait(60)
        time.sleep(1.0)  # the flood is under way
        sending = time.monotonic()
        msg_id = alice.cli_json("send", "bob", "during the flood")["msg_id"]
        eventually(lambda: "during the flood" in bob.texts("alice"), 40)
        arrived = time.monotonic()
        took = arrived - sending
        thread.join()
        cpu = cpu_seconds(relay.pid) - cpu
        assert message_state(alice, "bob", msg_id) in ("sent", "delivered")
        junk, flood_over = result
        print(
            f"\n  {kind}/{attacker}: first message (quiet) delivered in {quiet:.1f} s; during "
            f"the flood arrived in {took:.1f} s ({flood_over - arrived:.1f} s before the flood "
            f"ended); junk acknowledged {junk:.0f}; broker CPU {cpu:.2f} s"
        )
        if ahead:  # delivery to a live gateway does not wait for the flood to end
            assert arrived < flood_over
    finally:
        for daemon in (alice, bob):
            daemon.stop()
        relay.stop()


@pytest.mark.parametrize(("kind", "attacker"), FLOOD_CASES)
def test_a_flood_on_the_shared_topic_does_not_delay_a_gateways_own_mail(
    tmp_path: Path, kind: str, attacker: str
) -> None:
    """Item 2: 40 envelopes of 16 junk sealed frames a second (640 frames/s) on the shared
    sealed topic and on random tag topics for 6 s, while alice writes to bob."""

    def attack(relay: Relay, started: threading.Event) -> int:
        topics = [SHARED, sealed_topic_of(os.urandom(16))]
        return asyncio.run(
            flood(
                relay,
                attacker,
                topics,
                240,
                0,
                seconds=10,
                frames_per_envelope=16,
                rate=40,
                started=started,
            )
        )

    latency_under_flood(tmp_path, kind, attacker, attack, ahead=True)


@pytest.mark.parametrize(("kind", "attacker"), FLOOD_CASES)
def test_a_saved_session_flood_does_not_stall_the_relay(
    tmp_path: Path, kind: str, attacker: str
) -> None:
    """Item 3: 40 client ids with persistent sessions and 20 subscriptions each, gone offline;
    then 1,500 junk messages of 4 KB to one of those topics while alice writes to bob."""

    def attack(relay: Relay, started: threading.Event) -> int:
        topics = [f"mc1/m/{os.urandom(16).hex()}" for _ in range(20)]
        user = None if attacker == "anonymous" else "mallory"
        password = None if user is None else relay.mallory_token

        async def sessions() -> int:
            made = 0
            for i in range(40):
                try:
                    async with aiomqtt.Client(
                        "127.0.0.1",
                        relay.port,
                        identifier=f"sleeper-{i}",
                        clean_session=False,
                        username=user,
                        password=password,
                        timeout=5,
                    ) as c:
                        await c.subscribe([(t, 1) for t in topics])
                        made += 1
                except aiomqtt.MqttError:
                    pass
            return made

        made = asyncio.run(sessions())
        print(f"\n  {kind}/{attacker}: {made}/40 saved sessions made")
        return asyncio.run(
            flood(relay, attacker, topics[:1], 1500, 4096, seconds=30, started=started)
        )

    latency_under_flood(tmp_path, kind, attacker, attack)


def test_a_sender_back_online_retries_what_the_relay_lost(tmp_path: Path) -> None:
    """Item 1, last part: the relay acknowledged alice's message and then lost it (it was
    restarted; amqtt keeps its queues in memory); alice comes back and her node tries again."""
    relay = Relay("amqtt", tmp_path)
    relay.start()
    alice, bob, _ = pair(tmp_path)
    try:
        bob.start(relay.url())
        time.sleep(1.0)
        bob.stop()
        alice.start(relay.url())
        msg_id = alice.cli_json("send", "bob", "lost by the relay")["msg_id"]
        eventually(lambda: message_state(alice, "bob", msg_id) not in ("", "queued"))
        eventually(alice.outbox_empty)
        time.sleep(0.5)
        alice.stop()
        relay.stop()
        relay.start()  # same port, nothing queued any more
        bob.start(relay.url())
        time.sleep(2.0)
        assert bob.texts("alice") == []
        alice.start(relay.url())
        waited = eventually(lambda: bob.texts("alice") == ["lost by the relay"], 60)
        eventually(lambda: message_state(alice, "bob", msg_id) == "delivered", 30)
        print(f"\n  amqtt: arrived {waited:.1f} s after alice came back")
    finally:
        for daemon in (alice, bob):
            daemon.stop()
        relay.stop()
