"""The Meshtastic bridge on a real mosquitto broker (127.0.0.1), against independent code:
what we publish is decrypted by mmqtt and by meshtastic-mqtt-json, and what mmqtt publishes
(NODEINFO and text, built by its own encoder) shows up in the bridge; garbage on the channel
topic is counted and dropped."""

from __future__ import annotations

import asyncio
import warnings
from types import SimpleNamespace
from typing import Any

import aiomqtt
from meshtastic.protobuf import mqtt_pb2, portnums_pb2

from meshchat.bridges.meshtastic.bridge import Heard
from meshchat.bridges.meshtastic.codec import Channel, build_envelope
from meshchat.bridges.meshtastic.mqtt import MeshtasticMqtt, parse_url
from meshchat.errors import BridgeReason

with warnings.catch_warnings():  # mmqtt makes a paho client with the deprecated v1 callbacks
    warnings.simplefilter("ignore", DeprecationWarning)
    import mmqtt
    from mmqtt.encryption import decrypt_packet
from meshtastic_mqtt_json.client import MeshtasticMQTT


async def _until(check: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.02)


def test_parse_url() -> None:
    target = parse_url("mqtt://meshdev:large4cats@127.0.0.1:1884/LongFast?region=EU_868")
    assert (target.host, target.port, target.channel, target.region) == (
        "127.0.0.1",
        1884,
        "LongFast",
        "EU_868",
    )
    assert target.username == "meshdev" and target.password == "large4cats"
    assert parse_url("mqtt://h/MediumSlow").port == 1883


async def test_envelopes_cross_both_ways_through_mosquitto(broker: int) -> None:
    heard: list[Heard] = []
    ours = MeshtasticMqtt.create(
        parse_url(f"mqtt://127.0.0.1:{broker}/LongFast"),
        "AQ==",
        0x4D430001,
        "meshchat",
        heard.append,
    )
    ours.start()
    raw: list[tuple[str, bytes]] = []
    async with aiomqtt.Client("127.0.0.1", broker) as listener:
        await listener.subscribe("msh/US/2/e/LongFast/#")

        async def collect() -> None:
            async for message in listener.messages:
                assert isinstance(message.payload, bytes)
                raw.append((str(message.topic), message.payload))

        collector = asyncio.get_running_loop().create_task(collect())
        try:
            await asyncio.wait_for(ours.connected.wait(), 10)
            await _until(lambda: len(raw) >= 1)  # our NODEINFO on connecting
            ours.send_text(b"msg-1", "alice: hello from meshchat")
            await _until(lambda: any(b"msg" not in p and len(raw) >= 2 for _, p in raw))
        finally:
            collector.cancel()
    topics = {topic for topic, _ in raw}
    assert topics == {"msh/US/2/e/LongFast/!4d430001"}

    # mmqtt decrypts both
    kinds = {}
    for _, payload in raw:
        data = decrypt_packet(mqtt_pb2.ServiceEnvelope.FromString(payload).packet, "AQ==")
        assert data is not None
        kinds[data.portnum] = data.payload
    assert kinds[portnums_pb2.TEXT_MESSAGE_APP] == b"alice: hello from meshchat"
    assert portnums_pb2.NODEINFO_APP in kinds

    # meshtastic-mqtt-json, through its own receive path
    got: dict[str, Any] = {}
    other = MeshtasticMQTT()
    other.key_bytes = bytes.fromhex("d4f1bb3a20290759f0bcffabcf4e6901")
    other.register_callback("TEXT_MESSAGE_APP", lambda packet: got.setdefault("text", packet))
    other.register_callback("NODEINFO_APP", lambda packet: got.setdefault("node", packet))
    for topic, payload in raw:
        other.event_mqtt_recv(None, None, SimpleNamespace(topic=topic, payload=payload))
    assert got["text"]["decoded"]["payload"] == "alice: hello from meshchat"
    assert got["node"]["decoded"]["payload"]["longName"] == "meshchat"  # MessageToJson names

    # mmqtt builds and publishes; the bridge hears it
    client = mmqtt.client
    client.server, client.port, client.root_topic = "127.0.0.1", broker, "msh/US"
    client.channel, client.key, client.node_id = "LongFast", "AQ==", "!0badf00d"
    client.destination_id = 0xFFFFFFFF
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        await asyncio.to_thread(client.connect)
    try:
        await asyncio.to_thread(
            mmqtt.send_nodeinfo, id="!0badf00d", long_name="Radio Bob", short_name="RB"
        )
        await asyncio.sleep(0.3)  # names arrive before the text they label
        await asyncio.to_thread(mmqtt.send_text_message, "hello from a Meshtastic client")
        await _until(lambda: len(heard) == 1)
    finally:
        await asyncio.to_thread(client.disconnect)
    assert heard[0].text == "hello from a Meshtastic client"
    assert heard[0].sender == "!0badf00d" and heard[0].name == "Radio Bob"

    # bad input on the channel topic: counted by reason, nothing heard
    async with aiomqtt.Client("127.0.0.1", broker) as attacker:
        bad_hash = Channel("LongFast", b"k" * 16)
        await attacker.publish("msh/US/2/e/LongFast/!bad", b"\xff\x00garbage")
        await attacker.publish(
            "msh/US/2/e/LongFast/!bad",
            build_envelope(
                bad_hash, from_node=0x0BAD, packet_id=1, portnum=1, payload=b"wrong key"
            ),
        )
    await _until(lambda: ours.refused[BridgeReason.WRONG_CHANNEL] >= 1)
    assert ours.refused[BridgeReason.DUPLICATE] == 2  # our own NODEINFO and text, echoed
    assert ours.refused[BridgeReason.BAD_FIELD] == 1
    assert ours.refused[BridgeReason.WRONG_CHANNEL] == 1
    assert len(heard) == 1
    await ours.close()
