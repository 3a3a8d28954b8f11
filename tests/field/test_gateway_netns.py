"""Internet fallback by default: a node becomes a gateway when it can reach its relay, and stops
being one when it cannot, with no flag (the relay or DHT bootstrap is in its config.toml).

Topology: ``home`` (two nodes: ``gw`` with a relay configured, and its neighbour ``nb`` on the
LAN over loopback) joined by a link to ``internet``, which runs the broker (mosquitto, or the
embedded amqtt broker) or a DHT node to bootstrap from. ``home`` starts without a route to the
internet: the connected route of its link is deleted. Adding it back must make ``gw`` a
gateway (``status`` says so, and ``nb`` hears it in ``gw``'s announce); deleting it again must
end that (status gives the reason, and ``nb`` no longer lists ``gw`` as a gateway).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from meshlab import MESHCHAT, Host, Lab

PORT = 18830


def status(host: Host) -> Any:
    return json.loads(host.cli("status", "--json").stdout)


def wait(check: Callable[[], bool], what: str, timeout: float = 60) -> float:
    """Wait until ``check()``; the seconds it took."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise TimeoutError(what)
        time.sleep(0.2)
    return time.monotonic() - start


def start_internet(lab: Lab, internet: Host, kind: str) -> None:
    """The broker, or (``dht``) a DHT node that others join through."""
    address = internet.addresses[0]
    if kind == "dht":
        node = Host("boot", internet.netns, lab.root / "boot")
        lab.hosts["boot"] = node
        lab.init(node)
        lab.start(node, "--no-lan", "--no-ble", "--dht-host", address, "--dht-port", str(PORT))
        return
    if kind == "mosquitto":
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        conf = lab.root / "mosquitto.conf"
        conf.write_text(f"listener {PORT} {address}\nallow_anonymous true\npersistence false\n")
        lab.run_process(internet, binary, "-c", str(conf))
    else:
        lab.run_process(
            internet, MESHCHAT, "relay", "--bind", address, "--port", str(PORT),
            "--allow-anonymous",
        )  # fmt: skip
    lab.wait_port(internet, address, PORT)


def route(host: Host, action: str, subnet: str, device: str) -> None:
    subprocess.run(["ip", "-n", host.netns, "route", action, subnet, "dev", device], check=True)


@pytest.mark.parametrize("kind", ["mosquitto", "amqtt", "dht"])
def test_a_node_is_a_gateway_exactly_while_it_reaches_its_relay(lab: Lab, kind: str) -> None:
    if kind == "mosquitto" and not (
        shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists()
    ):
        pytest.fail("mosquitto is not installed (.ci/run installs it)")
    home, internet = lab.host("home"), lab.host("inet")
    lab.link(home, internet)
    start_internet(lab, internet, kind)
    subnet, device = f"{internet.addresses[0].rsplit('.', 1)[0]}.0/24", "v1home"
    route(home, "del", subnet, device)  # no way out yet

    gw = Host("gw", home.netns, lab.root / "gw")
    nb = Host("nb", home.netns, lab.root / "nb")
    lab.hosts.update({"gw": gw, "nb": nb})
    settings = {
        "lan.host": "127.0.0.1",
        "lan.mdns": "false",
        "ble.enabled": "false",
    }
    for host, port in ((gw, 17001), (nb, 17002)):
        lab.init(host)
        for key, value in {**settings, "lan.port": str(port)}.items():
            host.cli("config", "set", key, value)
    nb.cli("config", "set", "lan.peers", "127.0.0.1:17001")
    # the relay or the DHT bootstrap, and quick timings for a test; no flag on the command line
    if kind == "dht":
        gw.cli("config", "set", "internet.dht_bootstrap", f"{internet.addresses[0]}:{PORT}")
        down_reason = "no DHT neighbours"
    else:
        gw.cli("config", "set", "internet.relays", f"mqtt://{internet.addresses[0]}:{PORT}")
        gw.cli("config", "set", "internet.relay_keepalive", "1")
        gw.cli("config", "set", "internet.relay_retry_max", "1")
        down_reason = f"mqtt://{internet.addresses[0]}:{PORT}: "
    lab.start_all([gw, nb])
    lab.wait_neighbours(nb, 1)
    gw_id = status(gw)["identity"]["node_id"]

    medium = "dht" if kind == "dht" else "relay"

    def tried() -> bool:
        transport = {t["name"]: t for t in status(gw)["transports"]}[medium]
        return (
            not transport["up"]
            and transport["reason"] not in (None, "")
            and "connecting" not in transport["reason"]
        )

    wait(tried, f"the {medium} was never tried")
    shown = status(gw)
    assert shown["gateway"]["this_node"] is False
    assert shown["gateway"]["reason"].startswith(down_reason)
    assert f"not one: {down_reason}" in gw.cli("status").stdout

    def heard_by_nb() -> list[str]:
        return [g["node_id"] for g in status(nb)["gateway"]["heard"]]

    assert heard_by_nb() == []

    route(home, "add", subnet, device)
    became = wait(lambda: status(gw)["gateway"]["this_node"], "never became a gateway")
    shown = status(gw)
    assert shown["gateway"]["reason"] is None
    assert {t["name"]: t for t in shown["transports"]}[medium]["up"] is True
    assert "this node is a gateway to the internet" in gw.cli("status").stdout
    heard = wait(lambda: heard_by_nb() == [gw_id], "the neighbour never heard the gateway")

    route(home, "del", subnet, device)
    stopped = wait(lambda: not status(gw)["gateway"]["this_node"], "never stopped being one")
    assert status(gw)["gateway"]["reason"].startswith(down_reason)
    unheard = wait(lambda: heard_by_nb() == [], "the neighbour still lists the gateway")

    # and back once more: the node becomes a gateway again by itself
    route(home, "add", subnet, device)
    again = wait(lambda: status(gw)["gateway"]["this_node"], "never became a gateway again")
    print(
        f"{kind}: gateway {became:.1f} s after the route came, neighbour heard it "
        f"{heard:.1f} s later; stopped {stopped:.1f} s after it went, neighbour forgot it "
        f"{unheard:.1f} s later; gateway again {again:.1f} s after it came back"
    )
