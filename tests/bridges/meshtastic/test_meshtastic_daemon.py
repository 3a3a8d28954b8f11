"""``meshchat daemon --meshtastic mqtt://HOST:PORT/CHANNEL`` as a real process with mosquitto:
a text from a Meshtastic node shows in ``meshchat log '#meshtastic-longfast'`` under its
marking, and ``meshchat send`` to that conversation is published on the channel, where mmqtt
decrypts it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import warnings
from pathlib import Path

import aiomqtt
from meshtastic.protobuf import mqtt_pb2, portnums_pb2

from meshchat.bridges.meshtastic.codec import Channel, build_envelope
from meshchat.home import Home

sys.path.insert(0, str(Path(__file__).parents[2] / "cli"))
from clirun import cli_env, run_cli

with warnings.catch_warnings():  # mmqtt makes a paho client with the deprecated v1 callbacks
    warnings.simplefilter("ignore", DeprecationWarning)
    from mmqtt.encryption import decrypt_packet

PASS = "meshtastic daemon passphrase"
CONVERSATION = "#meshtastic-longfast"


def _wait(check: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_daemon_bridges_a_meshtastic_channel(tmp_path: Path, broker: int) -> None:
    home = Home(tmp_path / "home")
    assert (
        run_cli(home.path, PASS, "init", "--name", "Daemonia", "--kdf", "interactive").returncode
        == 0
    )
    log = (tmp_path / "daemon.log").open("wb")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "meshchat.cli.main", "--home", str(home.path), "daemon",
         "--no-lan", "--meshtastic", f"mqtt://127.0.0.1:{broker}/LongFast"],
        stdout=log, stderr=subprocess.STDOUT, env=cli_env(PASS), stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait(lambda: home.control_socket.exists() or daemon.poll() is not None, "daemon start")
        assert daemon.poll() is None, (tmp_path / "daemon.log").read_text()

        def shown() -> str:
            return run_cli(home.path, PASS, "log", CONVERSATION).stdout

        _wait(lambda: "other network, channel key is public" in shown(), "the marking notice")
        envelope = build_envelope(
            Channel.from_psk("LongFast"),
            from_node=0x0BADF00D,
            packet_id=99,
            portnum=portnums_pb2.TEXT_MESSAGE_APP,
            payload=b"hello from a radio",
        )

        async def radio() -> list[bytes]:
            texts: list[bytes] = []
            async with aiomqtt.Client("127.0.0.1", broker) as client:
                await client.subscribe("msh/US/2/e/LongFast/#")
                await client.publish("msh/US/2/e/LongFast/!0badf00d", envelope)
                await asyncio.to_thread(
                    _wait, lambda: "hello from a radio" in shown(), "the radio's text in log"
                )
                sent = await asyncio.to_thread(
                    run_cli, home.path, PASS, "send", CONVERSATION, "hello from a daemon"
                )
                assert sent.returncode == 0, sent.stderr
                async with asyncio.timeout(20):
                    async for message in client.messages:
                        assert isinstance(message.payload, bytes)
                        if str(message.topic).endswith("!0badf00d"):
                            continue  # the radio's own publication
                        packet = mqtt_pb2.ServiceEnvelope.FromString(message.payload).packet
                        data = decrypt_packet(packet, "AQ==")
                        if data is not None and data.portnum == portnums_pb2.TEXT_MESSAGE_APP:
                            texts.append(bytes(data.payload))
                            if data.payload == b"hello from a daemon":
                                return texts
            return texts

        texts = asyncio.run(radio())
        # the daemon published our text, and did not send the radio's text back
        assert texts[-1] == b"hello from a daemon" and b"hello from a radio" not in texts
        lines = shown()
        assert "!0badf00d@meshtastic" in lines and "hello from a daemon" in lines
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=15)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        log.close()
