"""``meshchat config`` and config.toml under the flags of ``run`` and ``daemon``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from clirun import run_cli

from meshchat.cli.main import build_parser
from meshchat.cli.node_cmds import settings_from
from meshchat.config import parse
from meshchat.errors import ConfigError

PASS = "config passphrase"

FILE = """
name = "From File"
[lan]
port = 4000
peers = ["10.0.0.9:4000"]
mdns = false
interfaces = ["127.0.0.1"]
[ble]
enabled = true
backend = "bumble"
max_links = 3
[mesh]
ttl = 5
announce = false
link_rate = 20
[internet]
relays = ["mqtt://relay.example:1883"]
dht_bootstrap = ["10.0.0.7:8468"]
bridges = ["#mesh"]
[retention]
relay_days = 2
history_days = 10
"""


def daemon_args(*flags: str) -> argparse.Namespace:
    return build_parser().parse_args(["daemon", *flags])


def test_the_file_sets_the_node_when_no_flag_is_given() -> None:
    settings = settings_from(daemon_args(), parse(FILE))
    assert settings.name == "From File"
    assert settings.lan_port == 4000 and settings.mdns is False
    assert settings.static_peers == [("10.0.0.9", 4000)]
    assert settings.mdns_interfaces == ["127.0.0.1"]
    assert settings.advertise == ["127.0.0.1"]  # loopback discovery advertises loopback
    assert settings.ble_backend == "bumble" and settings.ble_max_links == 3
    assert settings.options.ttl == 5 and settings.options.announce is False
    assert settings.options.router.link_rate == 20.0
    assert settings.options.router.link_burst == 40.0
    assert settings.relays == ["mqtt://relay.example:1883"]
    assert settings.dht_bootstrap == [("10.0.0.7", 8468)]
    assert settings.dht_port == 0  # a bootstrap turns the DHT on
    assert settings.bridge_channels == ["#mesh"]
    assert settings.relay_retention_s == 2 * 24 * 3600
    assert settings.options.history.max_age_ms == 10 * 24 * 3600_000


def test_flags_override_the_file() -> None:
    args = daemon_args(
        "--lan-port", "5000",
        "--peer", "10.0.0.1:1",
        "--mdns",
        "--no-ble",
        "--ttl", "9",
        "--announce",
        "--link-rate", "7",
        "--relay", "mqtts://other:8883",
        "--relay-retention-days", "1",
        "--bridge-channel", "+family",
    )  # fmt: skip
    settings = settings_from(args, parse(FILE))
    assert settings.lan_port == 5000 and settings.mdns is True
    assert settings.static_peers == [("10.0.0.1", 1)]  # a repeated flag replaces the list
    assert settings.ble_backend is None
    assert settings.options.ttl == 9 and settings.options.announce is True
    assert settings.options.router.link_rate == 7.0
    assert settings.relays == ["mqtts://other:8883"]
    assert settings.relay_retention_s == 24 * 3600
    assert settings.bridge_channels == ["+family"]
    # what no flag touched still comes from the file
    assert settings.name == "From File" and settings.ble_max_links == 3


def test_no_file_and_no_flag_is_the_old_default() -> None:
    settings = settings_from(daemon_args())
    assert settings.lan and settings.mdns and settings.lan_port == 0
    assert settings.relays == [] and settings.dht_port is None
    # Bluetooth is on by default (the OS stack; used when an adapter is usable)
    assert settings.ble_backend == "bleak"
    assert settings.options.ttl == 12 and settings.options.announce
    assert settings.name is None


@pytest.mark.parametrize(
    ("flags", "key"),
    [
        (["--lan-port", "70000"], "lan.port"),
        (["--ttl", "0"], "mesh.ttl"),
        (["--relay-retention-days", "8"], "retention.relay_days"),
        (["--peer", "nohost"], "lan.peers"),
        (["--bridge-channel", "mesh"], "internet.bridges"),
    ],
)
def test_a_bad_flag_names_the_key_it_stands_for(flags: list[str], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from(daemon_args(*flags))
    assert caught.value.key == key


def test_init_writes_a_commented_default_and_config_commands_work(tmp_path: Path) -> None:
    home = tmp_path / "home"
    done = run_cli(home, PASS, "init", "--name", "Cfg", "--kdf", "interactive")
    assert done.returncode == 0, done.stderr
    path = home / "config.toml"
    assert path.read_text().startswith("# meshchat configuration")
    assert "Cfg" not in path.read_text()  # the name stays sealed in the keystore

    assert run_cli(home, PASS, "config", "path").stdout.strip() == str(path)
    done = run_cli(home, PASS, "config", "set", "lan.port", "4711")
    assert done.returncode == 0, done.stderr
    assert run_cli(home, PASS, "config", "get", "lan.port").stdout.strip() == "4711"
    shown = json.loads(run_cli(home, PASS, "config", "get", "--json").stdout)
    assert shown["lan.port"] == 4711 and shown["mesh.ttl"] == 12
    assert "# TCP port; 0: any free port" in path.read_text()  # comments kept

    refused = run_cli(home, PASS, "config", "set", "lan.prot", "1")
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        "meshchat: error: lan.prot: unknown key (did you mean lan.port?)"
    )


def test_a_bad_file_stops_the_daemon_with_one_line_naming_key_and_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text('[lan]\nport = 1\n\n[mesh]\nttl = "high"\n')
    done = run_cli(home, PASS, "daemon")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"meshchat: error: {home / 'config.toml'}, line 5: mesh.ttl: "
        "must be an integer, not a string"
    ]


async def test_the_name_key_names_the_running_node_and_its_card(tmp_path: Path) -> None:
    from meshchat.app import NodeSettings, offline_card, running_node
    from meshchat.home import Home
    from meshchat.identity import KdfProfile

    home = Home(tmp_path / "named")
    home.create_identity("Sealed Name", PASS, KdfProfile.INTERACTIVE)
    assert (await offline_card(home, PASS)).name == "Sealed Name"
    async with running_node(home, PASS, NodeSettings(name="Picked", lan=False)) as node:
        assert node.name == "Picked"
        assert (await node.card()).name == "Picked"
    home.config.write_text('name = "From Config"\n')
    assert (await offline_card(home, PASS)).name == "From Config"


def test_bluetooth_is_turned_off_by_the_flag_or_the_key() -> None:
    assert settings_from(daemon_args("--no-ble")).ble_backend is None
    assert settings_from(daemon_args(), parse("[ble]\nenabled = false\n")).ble_backend is None
    # a flag beats the key both ways
    on = settings_from(daemon_args("--ble", "bleak"), parse("[ble]\nenabled = false\n"))
    assert on.ble_backend == "bleak"
    assert settings_from(build_parser().parse_args(["run", "--no-ble"])).ble_backend is None
