"""Who may use a relay and how much: tokens, per-client limits and the queued-mail ledger, on the
embedded amqtt broker and on mosquitto run with docs/mosquitto.conf (real clients)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest
from attackers import Relay

from meshchat.errors import UsageError
from meshchat.transports.relay import Limits, TokenBook, add_token
from meshchat.transports.relay._limits import Ledger, Principal
from meshchat.transports.relay.broker import BrokerSettings, EmbeddedBroker

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TOPIC = "mc1/m/" + "ab" * 16
GW = Principal("token:gw", True)
OTHER = Principal("token:other", True)
STRANGER = Principal("anon:203.0.113.9", False)
STRANGER2 = Principal("anon:198.51.100.7", False)


def test_tokens_are_stored_hashed_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    token = add_token(path, "gw")
    assert token not in path.read_text()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    book = TokenBook.load(path)
    assert book.check("gw", token) and book.check("gw", token.encode())
    assert not book.check("gw", token + "x") and not book.check("other", token)
    assert not book.check(None, token) and not book.check("gw", None)
    again = add_token(path, "gw")  # a new token replaces the old one
    assert TokenBook.load(path).check("gw", again) and not TokenBook.load(path).check("gw", token)
    with pytest.raises(UsageError, match="line 2"):
        TokenBook.parse("gw:" + "0" * 64 + "\nnot a token line\n")
    with pytest.raises(UsageError):
        add_token(path, "bad name")


def test_junk_from_strangers_never_evicts_a_known_gateways_mail() -> None:
    ledger = Ledger(Limits(mailbox_quota=10, anonymous_share=0.2))
    assert ledger.admit("bob", 1, GW, TOPIC, 600) == set()
    out: set[int] = set()
    for i in range(100, 1300):
        out |= ledger.admit("bob", i, STRANGER if i % 2 else STRANGER2, TOPIC, 600)
    assert 1 not in out
    assert ledger.queued("bob") == 1 + 2  # gw's message and the strangers' share (20% of 10)


def test_a_known_flood_evicts_its_own_mail_first() -> None:
    ledger = Ledger(Limits(mailbox_quota=5))
    ledger.admit("bob", 1, GW, TOPIC, 100)
    ledger.admit("bob", 2, GW, TOPIC, 100)
    evicted: set[int] = set()
    for i in range(10, 30):
        evicted |= ledger.admit("bob", i, OTHER, TOPIC, 100)
    assert {1, 2}.isdisjoint(evicted) and ledger.queued("bob") == 5
    # the oldest of the flooder's own went first
    assert evicted == set(range(10, 27))


def test_queued_bytes_and_sources_are_bounded() -> None:
    limits = Limits(session_bytes=10_000, anonymous_source_bytes=3_000, anonymous_share=1.0)
    ledger = Ledger(limits)
    refused = sum(i in ledger.admit(f"s{i % 7}", i, STRANGER, TOPIC, 1000) for i in range(50))
    assert refused == 47  # one source: 3,000 bytes over all sessions
    for i in range(100, 130):
        ledger.admit("bob", i, GW, TOPIC, 1000)
    assert ledger.queued("bob") <= 10
    ledger.forget("bob")
    assert ledger.queued("bob") == 0


@pytest.fixture
async def open_relay(tmp_path: Path) -> AsyncIterator[EmbeddedBroker]:
    tokens = tmp_path / "tokens"
    settings = BrokerSettings(port=0, token_file=str(tokens), allow_anonymous=True)
    broker = EmbeddedBroker(settings)
    await broker.start()
    yield broker
    await broker.stop()


async def test_a_stranger_keeps_few_saved_sessions_and_subscriptions(
    open_relay: EmbeddedBroker,
) -> None:
    """Item 3: 40 client ids with persistent sessions from one address, 100 topics each."""
    port = open_relay.addresses[0][1]
    topics = [f"mc1/m/{os.urandom(16).hex()}" for _ in range(100)]
    granted = []
    for i in range(40):
        async with aiomqtt.Client("127.0.0.1", port, identifier=f"s{i}", clean_session=False) as c:
            codes = await c.subscribe([(t, 1) for t in topics])
            granted.append(sum(getattr(code, "value", code) != 0x80 for code in codes))
    await asyncio.sleep(0.2)
    sessions = [s for s in open_relay._broker.sessions.values() if s[0].client_id.startswith("s")]
    assert len(sessions) <= Limits().anonymous_sessions
    assert max(granted) == Limits().anonymous_subscriptions
    policy = open_relay.policy
    assert policy is not None and policy.expired_sessions >= 36
    assert await policy.expire_idle(time.time() + 2 * 3600) == len(sessions)
    assert not [s for s in open_relay._broker.sessions.values() if s[0].client_id.startswith("s")]


async def test_the_relay_admits_token_holders_only_by_default(tmp_path: Path) -> None:
    """Item 4: without --allow-anonymous, a client without a valid token is refused."""
    tokens = tmp_path / "tokens"
    token = add_token(tokens, "gw")
    broker = EmbeddedBroker(BrokerSettings(port=0, token_file=str(tokens)))
    await broker.start()
    try:
        port = broker.addresses[0][1]
        for user, password in ((None, None), ("gw", "wrong"), ("other", token)):
            with pytest.raises(aiomqtt.MqttError):
                async with aiomqtt.Client(
                    "127.0.0.1", port, identifier="x", username=user, password=password
                ):
                    pass
        async with aiomqtt.Client("127.0.0.1", port, username="gw", password=token) as c:
            await c.publish(TOPIC, b"x", qos=1)
        policy = broker.policy
        assert policy is not None and policy.refused_clients == 3
    finally:
        await broker.stop()


def test_meshchat_relay_refuses_strangers_unless_the_operator_opts_in(tmp_path: Path) -> None:
    """Item 4 on the real command: ``meshchat relay`` with its defaults, then opened."""
    relay = Relay("amqtt", tmp_path)
    relay.start()
    try:

        async def connect(user: str | None, password: str | None) -> bool:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1", relay.port, username=user, password=password, timeout=5
                ):
                    return True
            except aiomqtt.MqttError:
                return False

        assert not asyncio.run(connect(None, None))
        assert asyncio.run(connect("gw", relay.token))
    finally:
        relay.stop()


def test_mosquitto_with_the_documented_configuration(tmp_path: Path) -> None:
    """docs/mosquitto.conf: anonymous clients refused, token holders admitted, and only to
    meshchat topics."""
    relay = Relay("mosquitto", tmp_path)
    relay.start()
    try:

        async def scenario() -> tuple[bool, list[str]]:
            try:
                async with aiomqtt.Client("127.0.0.1", relay.port, timeout=5):
                    anonymous = True
            except aiomqtt.MqttError:
                anonymous = False
            got: list[str] = []
            auth = {"username": "gw", "password": relay.token}
            async with (
                aiomqtt.Client("127.0.0.1", relay.port, identifier="sub", **auth) as sub,
                aiomqtt.Client("127.0.0.1", relay.port, identifier="pub", **auth) as pub,
            ):
                await sub.subscribe([(TOPIC, 1), ("other/topic", 1)])
                await pub.publish("other/topic", b"not meshchat", qos=1)
                await pub.publish(TOPIC, b"meshchat", qos=1)
                try:
                    async with asyncio.timeout(1.0):
                        async for message in sub.messages:
                            got.append(str(message.topic))
                except TimeoutError:
                    pass
            return anonymous, got

        anonymous, got = asyncio.run(scenario())
        assert not anonymous
        assert got == [TOPIC]
    finally:
        relay.stop()


async def test_a_strangers_junk_does_not_evict_queued_mail(tmp_path: Path) -> None:
    """Item 1 on the broker alone: bob's gateway is offline with one message queued from a
    token holder; a stranger publishes 1,200 junk messages of 600 B to the same topic."""
    tokens = tmp_path / "tokens"
    token = add_token(tokens, "gw")
    settings = BrokerSettings(port=0, token_file=str(tokens), allow_anonymous=True)
    broker = EmbeddedBroker(settings)
    await broker.start()
    port = broker.addresses[0][1]
    auth = {"username": "gw", "password": token}
    try:
        async with aiomqtt.Client(
            "127.0.0.1", port, identifier="bob", clean_session=False, **auth
        ) as c:
            await c.subscribe(TOPIC, qos=1)
        async with aiomqtt.Client("127.0.0.1", port, identifier="alice", **auth) as a:
            await a.publish(TOPIC, b"the real one", qos=1)
        async with aiomqtt.Client(
            "127.0.0.1", port, identifier="junk", max_inflight_messages=100
        ) as j:
            await asyncio.gather(*(j.publish(TOPIC, os.urandom(600), qos=1) for _ in range(1200)))
        await asyncio.sleep(0.3)
        got: list[bytes] = []
        async with aiomqtt.Client(
            "127.0.0.1", port, identifier="bob", clean_session=False, **auth
        ) as c:
            try:
                async with asyncio.timeout(1.0):
                    async for message in c.messages:
                        assert isinstance(message.payload, bytes)
                        got.append(message.payload)
            except TimeoutError:
                pass
        assert b"the real one" in got
        assert len(got) <= 1 + Limits().mailbox_quota * Limits().anonymous_share
    finally:
        await broker.stop()


def test_meshchat_relay_add_token_prints_a_token_the_relay_accepts(tmp_path: Path) -> None:
    import subprocess
    import sys

    from attackers import env

    home = tmp_path / "home"
    argv = [sys.executable, "-m", "meshchat.cli.main", "--home", str(home), "relay"]
    made = subprocess.run(
        [*argv, "--add-token", "alice"], capture_output=True, text=True, env=env(), check=False
    )
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    book = TokenBook.load(home / "relay-tokens")
    assert book.check("alice", token) and token not in (home / "relay-tokens").read_text()
