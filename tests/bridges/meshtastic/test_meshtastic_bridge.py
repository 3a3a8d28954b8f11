"""The Meshtastic bridge's state: dedupe both ways, names from NODEINFO, rate limits, and what
it publishes (own node number, NODEINFO, unique packet ids, <= 233 bytes, hop limit 3)."""

from __future__ import annotations

import pytest
from meshtastic.protobuf import mesh_pb2, mqtt_pb2, portnums_pb2

from meshchat.bridges.meshtastic.bridge import MeshtasticBridge, node_number
from meshchat.bridges.meshtastic.codec import Channel, build_envelope, decode_envelope
from meshchat.errors import BridgeError, BridgeReason

CH = Channel.from_psk("LongFast")
TOPIC = "msh/US/2/e/LongFast/!0badcafe"
ALICE = 0x0BADCAFE


def _bridge() -> MeshtasticBridge:
    return MeshtasticBridge(CH, node_num=node_number(b"seed"), long_name="meshchat bridge")


def _text(text: str, packet_id: int, sender: int = ALICE) -> bytes:
    return build_envelope(
        CH,
        from_node=sender,
        packet_id=packet_id,
        portnum=portnums_pb2.TEXT_MESSAGE_APP,
        payload=text.encode(),
    )


def _reason(call: object) -> BridgeReason:
    with pytest.raises(BridgeError) as caught:
        call()  # type: ignore[operator]
    return caught.value.reason


def test_texts_are_heard_once_with_the_announced_name() -> None:
    bridge = _bridge()
    assert bridge.subscribe_topic == "msh/US/2/e/LongFast/#"
    info = mesh_pb2.User(
        id="!0badcafe", long_name="Alice's radio", short_name="AR"
    ).SerializeToString()
    nodeinfo = build_envelope(
        CH, from_node=ALICE, packet_id=1, portnum=portnums_pb2.NODEINFO_APP, payload=info
    )
    assert bridge.receive(TOPIC, nodeinfo, 0.0) is None
    heard = bridge.receive(TOPIC, _text("hi all", 2), 0.0)
    assert heard is not None and heard.text == "hi all" and heard.name == "Alice's radio"
    assert heard.sender == "!0badcafe"
    assert _reason(lambda: bridge.receive(TOPIC, _text("hi all", 2), 1.0)) is BridgeReason.DUPLICATE


def test_refusals_from_the_channel() -> None:
    bridge = _bridge()
    own = _text("echo", 9, sender=bridge.node_num)
    assert _reason(lambda: bridge.receive(TOPIC, own, 0)) is BridgeReason.DUPLICATE
    assert (
        _reason(lambda: bridge.receive("msh/EU/2/e/LongFast/!1", _text("x", 3), 0))
        is BridgeReason.WRONG_CHANNEL
    )
    position = build_envelope(
        CH, from_node=ALICE, packet_id=4, portnum=portnums_pb2.POSITION_APP, payload=b""
    )
    assert _reason(lambda: bridge.receive(TOPIC, position, 0)) is BridgeReason.NOT_TEXT


def test_inbound_rate_limit_per_sender_and_channel() -> None:
    bridge = _bridge()
    accepted = 0
    for i in range(20):
        try:
            bridge.receive(TOPIC, _text(f"flood {i}", 100 + i), 0.0)
            accepted += 1
        except BridgeError as exc:
            assert exc.reason is BridgeReason.RATE_LIMITED
    assert accepted == 5  # a sender's burst
    assert bridge.receive(TOPIC, _text("later", 500), 6.0) is not None  # one more per 6 s
    others = 0
    for n in range(40):
        try:
            bridge.receive(TOPIC, _text("crowd", 1000 + n, sender=0x100 + n), 6.0)
            others += 1
        except BridgeError as exc:
            assert exc.reason is BridgeReason.RATE_LIMITED
    assert others <= 20  # the channel's burst


def test_publications() -> None:
    bridge = _bridge()
    first = bridge.send_text(b"m1", "alice: hello meshtastic", 0.0)
    assert [p.topic for p in first] == [bridge.publish_topic] * 2
    kinds = []
    for publication in first:
        envelope = mqtt_pb2.ServiceEnvelope.FromString(publication.payload)
        assert getattr(envelope.packet, "from") == bridge.node_num
        assert (
            envelope.packet.hop_limit == 3
            and envelope.gateway_id == bridge.publish_topic.rsplit("/", 1)[1]
        )
        inbound = decode_envelope(publication.payload, CH)
        kinds.append(inbound.portnum)
    assert kinds == [portnums_pb2.NODEINFO_APP, portnums_pb2.TEXT_MESSAGE_APP]
    second = bridge.send_text(b"m2", "é" * 200, 1.0)  # 400 bytes: cut to 233
    assert len(second) == 1  # NODEINFO only every 3 hours
    body = decode_envelope(second[0].payload, CH).payload
    assert len(body) <= 233 and body.decode().endswith("…")
    ids = {p.packet_id for p in first + second}
    assert len(ids) == 3
    assert _reason(lambda: bridge.send_text(b"m1", "again", 2.0)) is BridgeReason.DUPLICATE


def test_outbound_rate_limit_and_no_echo_back() -> None:
    bridge = _bridge()
    bridge.receive(TOPIC, _text("from the radio", 7), 0.0)
    assert _reason(lambda: bridge.send_text(b"e", "from the radio", 0.0)) is BridgeReason.DUPLICATE
    sent = 0
    for i in range(10):
        try:
            bridge.send_text(bytes([i]), f"text {i}", 0.0)
            sent += 1
        except BridgeError as exc:
            assert exc.reason is BridgeReason.RATE_LIMITED
    assert sent == 3
    assert bridge.send_text(b"x", "after 10 s", 10.0)


def test_node_numbers_are_stable_and_not_reserved() -> None:
    assert node_number(b"a") == node_number(b"a") != node_number(b"b")
    with pytest.raises(BridgeError):
        MeshtasticBridge(CH, node_num=0xFFFFFFFF, long_name="x")
