"""A running node with the Meshtastic bridge switched on (the daemon's ``--meshtastic``):
channel texts become the marked conversation ``#meshtastic-<channel>``, what the user sends
there is published (and decrypted by mmqtt), and nothing else of the node crosses."""

from __future__ import annotations

import asyncio
import os
import warnings
from pathlib import Path

import aiomqtt
from meshtastic.protobuf import mqtt_pb2, portnums_pb2

from meshchat.bridges.meshtastic.codec import Channel, build_envelope
from meshchat.identity import Identity
from meshchat.node import Node
from meshchat.node._meshtastic import MeshtasticGateway
from meshchat.store import Store

with warnings.catch_warnings():  # mmqtt makes a paho client with the deprecated v1 callbacks
    warnings.simplefilter("ignore", DeprecationWarning)
    from mmqtt.encryption import decrypt_packet

CONVERSATION = "#meshtastic-longfast"


async def test_node_shows_and_sends_the_channel(tmp_path: Path, broker: int) -> None:
    store = Store.open(tmp_path / "node.db", key=os.urandom(32))
    node = Node(Identity.generate(), "Alicewright", store, [])
    await node.start()
    gateway = MeshtasticGateway(node, f"mqtt://127.0.0.1:{broker}/LongFast")
    published: list[bytes] = []
    try:
        await gateway.start()
        await asyncio.wait_for(gateway.link.connected.wait(), 10)
        async with aiomqtt.Client("127.0.0.1", broker) as radio:
            await radio.subscribe("msh/US/2/e/LongFast/#")
            await radio.publish(
                "msh/US/2/e/LongFast/!0badf00d",
                build_envelope(
                    Channel.from_psk("LongFast"),
                    from_node=0x0BADF00D,
                    packet_id=42,
                    portnum=portnums_pb2.TEXT_MESSAGE_APP,
                    payload=b"hello from the hills",
                ),
            )

            async def heard() -> bool:
                texts = [m.text for m in await node.messages(CONVERSATION)]
                return "hello from the hills" in texts

            async with asyncio.timeout(10):
                while not await heard():
                    await asyncio.sleep(0.02)
            sent = await node.send_text("#meshtastic-LongFast", "hello from meshchat")
            assert sent.outgoing and sent.conversation == CONVERSATION
            await node.send_text("#mesh", "this stays in meshchat")
            async with asyncio.timeout(10):
                async for message in radio.messages:
                    assert isinstance(message.payload, bytes)
                    envelope = mqtt_pb2.ServiceEnvelope.FromString(message.payload)
                    data = decrypt_packet(envelope.packet, "AQ==")
                    if data is not None and data.portnum == portnums_pb2.TEXT_MESSAGE_APP:
                        published.append(bytes(data.payload))
                        if data.payload == b"hello from meshchat":
                            break
        messages = await node.messages(CONVERSATION)
        assert CONVERSATION in [c.name for c in await node.conversations()]
    finally:
        await gateway.stop()
        await node.stop()
        store.close()
    notice, incoming, outgoing = messages[0], messages[1], messages[2]
    assert notice.sender_name == "meshtastic bridge"
    assert "other network, channel key is public" in notice.text
    assert incoming.sender_name == "? !0badf00d@meshtastic" and not incoming.outgoing
    assert outgoing.text == "hello from meshchat" and outgoing.outgoing
    assert b"this stays in meshchat" not in published


def test_daemon_flags() -> None:
    import argparse

    import pytest

    from meshchat.cli.node_cmds import add_node_arguments, settings_from
    from meshchat.errors import UsageError

    parser = argparse.ArgumentParser()
    add_node_arguments(parser)
    plain = settings_from(parser.parse_args([]))
    assert plain.meshtastic is None  # off by default
    on = settings_from(
        parser.parse_args(["--meshtastic", "mqtt://h:1883/LongFast", "--meshtastic-key", "Ag=="])
    )
    assert (on.meshtastic, on.meshtastic_key) == ("mqtt://h:1883/LongFast", "Ag==")
    with pytest.raises(UsageError):
        settings_from(parser.parse_args(["--meshtastic", "http://h/LongFast"]))


def test_the_node_does_not_load_meshtastic_unless_asked() -> None:
    import subprocess
    import sys

    code = (
        "import sys, meshchat.app, meshchat.cli.main, meshchat.node\n"
        "print('meshtastic' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
