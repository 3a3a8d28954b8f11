"""Two islands of real daemons in namespaces, joined only through a relay host's MQTT broker.

Topology: ``a - g1 - relay - g2 - b``. Every link is its own subnet and no host forwards IP,
so ``a`` and ``b`` cannot reach the relay at all; ``g1`` and ``g2`` reach it and run as
gateways (``--relay``). The relay host runs mosquitto (Debian's package) or the embedded
amqtt broker (``meshchat relay``), and a packet capture of everything its interfaces receive.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from meshlab import MESHCHAT, Host, Lab, read_capture, wait_state

from meshchat.gateway import mailbox_tag
from meshchat.identity import ContactCard

pytestmark = pytest.mark.netns

LAN_PORT = "7000"


def relay_status(host: Host) -> dict[str, object] | None:
    result = host.cli("peers", "--json", check=False)
    if result.returncode != 0:
        return None
    for transport in json.loads(result.stdout)["transports"]:
        if transport["name"] == "relay":
            return dict(transport)
    return None


def wait_gateway(host: Host, mailboxes: int, timeout: float = 30) -> str:
    """Wait until ``host``'s relay is up and collects at least ``mailboxes`` mailboxes."""
    deadline = time.monotonic() + timeout
    while True:
        status = relay_status(host)
        detail = str(status["detail"]) if status else ""
        if status and status["up"] and f"gateway for {mailboxes} mailboxes" in detail:
            return detail
        if time.monotonic() > deadline:
            raise TimeoutError(f"{host.name} gateway not ready: {status}")
        time.sleep(0.1)


def start_broker(lab: Lab, relay: Host, kind: str, port: int) -> None:
    addresses = relay.addresses
    if kind == "mosquitto":
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        conf = lab.root / "mosquitto.conf"
        lines = [f"listener {port} {addr}" for addr in addresses]
        conf.write_text("\n".join([*lines, "allow_anonymous true", "persistence false", ""]))
        lab.run_process(relay, binary, "-c", str(conf))
    else:
        binds = [arg for addr in addresses for arg in ("--bind", addr)]
        # an open relay: this scenario is about what crosses the wires, not about access
        lab.run_process(relay, MESHCHAT, "relay", *binds, "--port", str(port), "--allow-anonymous")
    for addr in addresses:
        lab.wait_port(relay, addr, port)


@pytest.mark.parametrize("kind", ["mosquitto", "amqtt"])
def test_islands_talk_through_the_relay_host(lab: Lab, kind: str) -> None:
    installed = shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists()
    if kind == "mosquitto" and not installed:
        pytest.fail("mosquitto is not installed (.ci/run installs it)")
    a, g1, relay, g2, b = (lab.host(n) for n in ("a", "g1", "relay", "g2", "b"))
    lab.link(a, g1)
    lab.link(g1, relay)
    lab.link(relay, g2)
    lab.link(g2, b)
    # a cannot reach the relay host: only the gateways can.
    ping = subprocess.run(
        ["ip", "netns", "exec", a.netns, "ping", "-c1", "-W1", relay.addresses[0]],
        capture_output=True,
        check=False,
    )
    assert ping.returncode != 0
    port = 1883
    start_broker(lab, relay, kind, port)
    capture_path = lab.root / "relay.capture"
    capture = lab.capture(relay, capture_path)

    for host in (a, g1, g2, b):
        lab.init(host)
    lab.introduce(a, b)
    common = ["--no-mdns", "--lan-port", LAN_PORT]
    lab.start(g1, *common, "--relay", f"mqtt://{relay.addresses[0]}:{port}")
    lab.start(g2, *common, "--relay", f"mqtt://{relay.addresses[1]}:{port}")
    lab.start(a, *common, "--peer", f"{g1.addresses[0]}:{LAN_PORT}")
    lab.start(b, *common, "--peer", f"{g2.addresses[1]}:{LAN_PORT}")
    detail = wait_gateway(g1, 2)
    wait_gateway(g2, 2)
    assert "up" in detail

    sent = a.cli_json("send", "b", "hello from island one")
    wait_state(a, "b", sent["msg_id"], "delivered", timeout=30)
    assert [m["text"] for m in b.cli_json("log", "a")["messages"]] == ["hello from island one"]
    reply = b.cli_json("send", "a", "hello back from island two")
    wait_state(b, "a", reply["msg_id"], "delivered", timeout=30)
    assert [m["text"] for m in a.cli_json("log", "b")["messages"]] == [
        "hello from island one",
        "hello back from island two",
    ]

    lab.end(capture)
    received = b"".join(read_capture(capture_path))
    ids = {h.name: ContactCard.from_text(h.cli_json("id")["card"]).identity for h in (a, g1, g2, b)}
    # The capture is real: the broker received both mailbox topics.
    for who in ("a", "b"):
        assert mailbox_tag(ids[who].node_id).hex().encode() in received
    secrets = [b"hello from island one", b"hello back from island two"]
    for identity in ids.values():
        for value in (identity.node_id, identity.sign_public, identity.box_public):
            secrets += [value, value.hex().encode()]
    assert [s for s in secrets if s in received] == []
