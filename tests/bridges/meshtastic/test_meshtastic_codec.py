"""Meshtastic channel crypto and envelopes: the firmware's key expansion, hash and counter
block, cross-checked with two independent decoders (mmqtt, meshtastic-mqtt-json), and every
bad envelope refused with a reason."""

from __future__ import annotations

import base64
import contextlib
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from meshtastic.protobuf import mesh_pb2, mqtt_pb2, portnums_pb2

from meshchat.bridges.meshtastic.codec import (
    DEFAULT_KEY,
    Channel,
    build_envelope,
    decode_envelope,
    expand_key,
    text_of,
)
from meshchat.errors import BridgeError, BridgeReason

with warnings.catch_warnings():  # mmqtt makes a paho client with the deprecated v1 callbacks
    warnings.simplefilter("ignore", DeprecationWarning)
    from mmqtt.encryption import decrypt_packet
    from mmqtt.utils import generate_hash
from meshtastic_mqtt_json.client import MeshtasticMQTT

LONGFAST = Channel.from_psk("LongFast", "AQ==")
NODE = 0x1234ABCD


def test_key_expansion_follows_the_firmware() -> None:
    assert expand_key("AQ==") == DEFAULT_KEY
    assert base64.b64encode(DEFAULT_KEY).decode() == "1PG7OiApB1nwvP+rz05pAQ=="
    assert expand_key("Ag==") == DEFAULT_KEY[:-1] + b"\x02"  # alias n: last byte + n - 1
    assert expand_key(base64.b64encode(b"abc").decode()) == b"abc" + bytes(13)
    assert len(expand_key(base64.b64encode(b"k" * 20).decode())) == 32
    for bad in ("AA==", "not base64!", base64.b64encode(b"k" * 33).decode()):
        with pytest.raises(BridgeError):
            expand_key(bad)
    assert LONGFAST.key_is_public
    assert not Channel("Secret", b"s" * 16).key_is_public


def test_channel_hash_matches_the_firmware_and_mmqtt() -> None:
    assert LONGFAST.hash == 8  # the well-known hash of LongFast with the default key
    assert LONGFAST.hash == generate_hash("LongFast", "1PG7OiApB1nwvP+rz05pAQ==")
    other = Channel.from_psk("Friends", base64.b64encode(b"0123456789abcdef").decode())
    assert other.hash == generate_hash("Friends", base64.b64encode(b"0123456789abcdef").decode())


def _envelope(text: str = "hello mesh", **kw: object) -> bytes:
    fields: dict[str, object] = {
        "from_node": NODE,
        "packet_id": 0xDEADBEEF,
        "portnum": portnums_pb2.TEXT_MESSAGE_APP,
        "payload": text.encode(),
    }
    fields.update(kw)
    return build_envelope(LONGFAST, **fields)  # type: ignore[arg-type]


def test_independent_decoders_decrypt_our_envelopes() -> None:
    envelope = mqtt_pb2.ServiceEnvelope()
    envelope.ParseFromString(_envelope("über LoRa"))
    assert envelope.channel_id == "LongFast" and envelope.gateway_id == "!1234abcd"
    packet = envelope.packet
    assert packet.hop_limit == 3 and packet.to == 0xFFFFFFFF and packet.channel == 8
    data = decrypt_packet(packet, "AQ==")  # mmqtt
    assert data is not None and data.portnum == portnums_pb2.TEXT_MESSAGE_APP
    assert data.payload.decode() == "über LoRa"
    other = MeshtasticMQTT()  # meshtastic-mqtt-json
    other.key_bytes = DEFAULT_KEY
    decrypted = other.decrypt_message_packet(
        mqtt_pb2.ServiceEnvelope.FromString(_envelope()).packet
    )
    assert decrypted.decoded.payload == b"hello mesh"


def test_round_trip_and_text() -> None:
    inbound = decode_envelope(_envelope("hi"), LONGFAST)
    assert (inbound.from_node, inbound.packet_id, inbound.hop_limit) == (NODE, 0xDEADBEEF, 3)
    assert text_of(inbound) == "hi"


def _raw(
    *,
    channel_id: str = "LongFast",
    channel_hash: int = 8,
    encrypted: bytes | None = None,
    plain: mesh_pb2.Data | None = None,
    hop_limit: int = 3,
) -> bytes:
    packet = mesh_pb2.MeshPacket(to=0xFFFFFFFF, id=77, channel=channel_hash, hop_limit=hop_limit)
    setattr(packet, "from", NODE)
    if plain is not None:
        packet.decoded.CopyFrom(plain)
    else:
        data = mesh_pb2.Data(portnum=1, payload=b"x").SerializeToString()
        packet.encrypted = encrypted if encrypted is not None else LONGFAST.crypt(77, NODE, data)
    return bytes(
        mqtt_pb2.ServiceEnvelope(
            packet=packet, channel_id=channel_id, gateway_id="!x"
        ).SerializeToString()
    )


BAD = [
    ("wrong channel hash", _raw(channel_hash=9), BridgeReason.WRONG_CHANNEL),
    ("wrong channel id", _raw(channel_id="MediumFast"), BridgeReason.WRONG_CHANNEL),
    ("undecryptable payload", _raw(encrypted=b"\x8f" * 40), BridgeReason.UNDECRYPTABLE),
    (
        "another key",
        _raw(encrypted=Channel("LongFast", b"k" * 16).crypt(77, NODE, b"\x08\x01\x12\x01x")),
        BridgeReason.UNDECRYPTABLE,
    ),
    (
        "plaintext packet",
        _raw(plain=mesh_pb2.Data(portnum=1, payload=b"x")),
        BridgeReason.UNDECRYPTABLE,
    ),
    ("encrypted over 256 bytes", _raw(encrypted=b"e" * 257), BridgeReason.OVERSIZED),
    ("envelope over 1024 bytes", b"\x0a" + b"\xff" * 1100, BridgeReason.OVERSIZED),
    ("not a protobuf", b"\xff\xff\xff\xff", BridgeReason.BAD_FIELD),
    (
        "no packet",
        mqtt_pb2.ServiceEnvelope(channel_id="LongFast").SerializeToString(),
        BridgeReason.BAD_FIELD,
    ),
    ("hop limit 9", _raw(hop_limit=9), BridgeReason.BAD_FIELD),
    (
        "payload over 233 bytes",
        _raw(
            encrypted=LONGFAST.crypt(
                77, NODE, mesh_pb2.Data(portnum=1, payload=b"p" * 234).SerializeToString()
            )
        ),
        BridgeReason.OVERSIZED,
    ),
]


@pytest.mark.parametrize(("name", "data", "reason"), BAD, ids=[b[0] for b in BAD])
def test_bad_envelopes_are_refused(name: str, data: bytes, reason: BridgeReason) -> None:
    with pytest.raises(BridgeError) as caught:
        decode_envelope(data, LONGFAST)
    assert caught.value.reason is reason and caught.value.network == "meshtastic"


def test_non_text_ports_are_not_text() -> None:
    position = decode_envelope(_envelope(portnum=portnums_pb2.POSITION_APP), LONGFAST)
    with pytest.raises(BridgeError) as caught:
        text_of(position)
    assert caught.value.reason is BridgeReason.NOT_TEXT
    bad_utf8 = decode_envelope(
        build_envelope(LONGFAST, from_node=NODE, packet_id=5, portnum=1, payload=b"\xff"), LONGFAST
    )
    with pytest.raises(BridgeError):
        text_of(bad_utf8)


def test_build_refuses_oversized_text_and_reserved_nodes() -> None:
    with pytest.raises(BridgeError):
        _envelope("x" * 234)
    with pytest.raises(BridgeError):
        _envelope(from_node=0xFFFFFFFF)
    assert len(_envelope("x" * 233)) < 400


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_envelope_decoder_never_fails_untyped(data: bytes) -> None:
    with contextlib.suppress(BridgeError):
        decode_envelope(data, LONGFAST)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=120), st.integers(min_value=0, max_value=255))
def test_mutated_envelopes_never_fail_untyped(at: int, value: int) -> None:
    frame = bytearray(_envelope("mutate me"))
    frame[at % len(frame)] = value
    with contextlib.suppress(BridgeError):
        decode_envelope(bytes(frame), LONGFAST)


def test_conversation_names_and_marks() -> None:
    assert LONGFAST.conversation == "#meshtastic-longfast"  # conversation names are lower case
    assert LONGFAST.mark == "other network, channel key is public"
    assert Channel("Friends", b"s" * 16).mark == "other network, shared channel key"
