"""Broker fixtures for relay tests: the embedded amqtt broker and Debian's mosquitto."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from brokers import BrokerInfo, Mosquitto, free_port

from meshchat.transports.relay import add_token
from meshchat.transports.relay.broker import BrokerSettings, EmbeddedBroker


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path, free_port())
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
async def amqtt_broker() -> AsyncIterator[EmbeddedBroker]:
    # an open relay (the operator opted in): these tests are not about authentication
    settings = BrokerSettings(binds=("127.0.0.1",), port=0, sweep_s=0.2, allow_anonymous=True)
    broker = EmbeddedBroker(settings)
    await broker.start()
    yield broker
    await broker.stop()


@pytest.fixture(params=["amqtt", "mosquitto"])
async def broker(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BrokerInfo]:
    if request.param == "amqtt":
        tokens = tmp_path / "relay-tokens"
        token = add_token(tokens, "gw")
        embedded = EmbeddedBroker(
            BrokerSettings(binds=("127.0.0.1",), port=0, token_file=str(tokens))
        )
        await embedded.start()
        try:
            yield BrokerInfo("amqtt", embedded.addresses[0][1], f"gw:{token}")
        finally:
            await embedded.stop()
    else:
        process = Mosquitto(tmp_path, free_port())
        process.start()
        try:
            yield BrokerInfo("mosquitto", process.port)
        finally:
            process.stop()
