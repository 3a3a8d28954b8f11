"""``config set``: comments and layout survive, bad values leave the file as it was."""

from __future__ import annotations

import stat
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshchat.config import (
    KEYS,
    convert,
    default_text,
    find_key,
    load,
    set_value,
    write_default,
)
from meshchat.errors import ConfigError


def test_the_default_file_shows_every_key_commented_with_its_help(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    assert write_default(path) is True
    text = path.read_text()
    for key in KEYS:
        assert f"# {key.leaf} = " in text, key.name
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("# mine\n")
    assert write_default(path) is False  # never over a person's file
    assert path.read_text() == "# mine\n"


def test_set_uncomments_the_default_line_in_place_and_keeps_every_comment(
    tmp_path: Path,
) -> None:
    path = tmp_path / "config.toml"
    write_default(path)
    before = path.read_text().splitlines()
    assert set_value(path, "lan.port", "4711") == 4711
    after = path.read_text().splitlines()
    assert len(after) == len(before)
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert changed == [("# port = 0", "port = 4711")]
    assert load(path)["lan.port"] == 4711 and load(path).given == {"lan.port"}


def test_set_keeps_a_persons_comments_and_order(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        "# my settings\n"
        "[lan]\n"
        "port = 1  # the office firewall opens this one\n"
        "# peers at home\n"
        'peers = ["10.0.0.2:1"]\n'
        "\n"
        "[mesh]\n"
        "ttl = 5 # short\n"
    )
    set_value(path, "lan.port", "2")
    set_value(path, "mesh.announce", "off")
    set_value(path, "name", "Bob")
    text = path.read_text()
    assert "# my settings\n" in text
    assert "port = 2  # the office firewall opens this one\n" in text
    assert "# peers at home\n" in text
    assert "ttl = 5 # short\n" in text
    assert text.index("name = ") < text.index("[lan]")  # a top-level key stays above tables
    config = load(path)
    assert (config["lan.port"], config["mesh.announce"], config["name"]) == (2, False, "Bob")
    assert config["lan.peers"] == ["10.0.0.2:1"]


def test_set_on_a_missing_file_starts_from_the_commented_default(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    set_value(path, "internet.relays", "mqtt://a:1883, mqtts://b")
    text = path.read_text()
    assert text.startswith("# meshchat configuration")
    assert 'relays = ["mqtt://a:1883", "mqtts://b"]' in text
    assert load(path)["internet.relays"] == ["mqtt://a:1883", "mqtts://b"]


def test_a_refused_value_leaves_the_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    write_default(path)
    set_value(path, "lan.port", "4711")
    before = path.read_bytes()
    for key, value, words in [
        ("lan.port", "99999", "0 to 65535"),
        ("lan.port", "twelve", "must be an integer"),
        ("ble.enabled", "maybe", "true or false"),
        ("lan.peers", "nohost", "HOST:PORT"),
        ("mesh.link_rate", "nan", "must be a number"),
        ("lan.prot", "1", "did you mean lan.port?"),
    ]:
        with pytest.raises(ConfigError, match=words):
            set_value(path, key, value)
    assert path.read_bytes() == before
    assert not (tmp_path / "config.toml.tmp").exists()


def test_set_reports_a_broken_file_with_its_line_and_does_not_touch_it(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[lan]\nport = 1\nport = 2\n")
    with pytest.raises(ConfigError) as caught:
        set_value(path, "mesh.ttl", "3")
    assert caught.value.line == 3
    assert path.read_text() == "[lan]\nport = 1\nport = 2\n"


@pytest.mark.parametrize(
    ("key", "text", "value"),
    [
        ("ble.enabled", "yes", True),
        ("ble.enabled", "FALSE", False),
        ("mesh.ttl", " 7 ", 7),
        ("retention.relay_days", "1.5", 1.5),
        ("lan.interfaces", "127.0.0.1", ["127.0.0.1"]),
        ("lan.interfaces", "", []),
        ("internet.bridges", '["#a", "+b"]', ["#a", "+b"]),
        ("name", "  Zoë  ", "  Zoë  "),
    ],
)
def test_convert_reads_what_people_type(key: str, text: str, value: object) -> None:
    assert convert(find_key(key), text) == value


def test_the_default_text_parses_to_defaults_and_round_trips_every_key(tmp_path: Path) -> None:
    assert default_text().count("\n[") == len({k.section for k in KEYS if k.section})
    path = tmp_path / "config.toml"
    for key in KEYS:
        if key.kind.name == "BOOL":
            set_value(path, key.name, "false" if key.default else "true")
    flipped = load(path)
    for key in KEYS:
        if key.kind.name == "BOOL":
            assert flipped[key.name] is (not key.default), key.name


def test_set_refuses_a_relay_url_with_a_token(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    with pytest.raises(ConfigError, match="MESHCHAT_RELAY_PASSWORD"):
        set_value(path, "internet.relays", "mqtt://alice:TOKEN@203.0.113.5:1883")
    assert not path.exists()


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from([k.name for k in KEYS]),
    text=st.one_of(
        st.text(max_size=30),
        st.sampled_from(["true", "off", "0", "7", "1.5", "[]", '["#a"]', "a:1, b:2", "mqtt://h"]),
    ),
)
def test_set_any_text_stores_what_load_reads_back_or_refuses_it(name: str, text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.toml"
        write_default(path)
        before = path.read_bytes()
        try:
            value = set_value(path, name, text)
        except ConfigError as exc:
            assert exc.key == name or exc.line is not None, str(exc)
            assert path.read_bytes() == before
            return
        assert load(path)[name] == value
