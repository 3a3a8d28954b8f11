"""Reading config.toml: values, defaults, and one clear error naming the key and its line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshchat.config import KEYS, Config, default_text, line_of, load, parse
from meshchat.errors import ConfigError, MeshchatError


def test_the_default_file_sets_nothing_and_every_key_has_its_default() -> None:
    config = parse(default_text())
    assert config.given == frozenset()
    assert dict(config.values) == {k.name: k.default for k in KEYS}
    assert config["lan.port"] == 0 and config["lan.enabled"] is True


def test_a_missing_file_is_every_default(tmp_path: Path) -> None:
    config = load(tmp_path / "config.toml")
    assert config.given == frozenset() and config["mesh.ttl"] == 12


def test_values_are_read_with_their_types() -> None:
    text = """
name = "Alice"
[lan]
port = 4711
peers = ["10.0.0.2:4711", "[fe80::1]:4711"]
mdns = false
[mesh]
link_rate = 50          # an integer where a number is wanted is taken
[internet]
relays = ["mqtts://relay.example:8883"]
bridges = ["#mesh", "+family"]
[retention]
relay_days = 2.5
"""
    config = parse(text)
    assert config.text("name") == "Alice"
    assert config.integer("lan.port") == 4711
    assert config.texts("lan.peers") == ["10.0.0.2:4711", "[fe80::1]:4711"]
    assert config.flag("lan.mdns") is False
    assert config.number("mesh.link_rate") == 50.0
    assert isinstance(config["mesh.link_rate"], float)
    assert config.texts("internet.bridges") == ["#mesh", "+family"]
    assert config.number("retention.relay_days") == 2.5
    assert config.given == {
        "name",
        "lan.port",
        "lan.peers",
        "lan.mdns",
        "mesh.link_rate",
        "internet.relays",
        "internet.bridges",
        "retention.relay_days",
    }


def test_dotted_keys_at_the_top_are_the_same_keys() -> None:
    assert parse('lan.port = 5\nble."max_links" = 3\n')["ble.max_links"] == 3


def error_of(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse(text, Path("/home/a/config.toml"))
    return caught.value


@pytest.mark.parametrize(
    ("text", "key", "line", "words"),
    [
        ('[lan]\nport = "4711"\n', "lan.port", 2, "must be an integer, not a string"),
        ("\n\n[lan]\n# a comment\nport = 70000\n", "lan.port", 5, "0 to 65535"),
        ("[ble]\nenabled = 1\n", "ble.enabled", 2, "true or false, not an integer"),
        ('[ble]\nbackend = "bluez"\n', "ble.backend", 2, "one of bleak, bumble"),
        ('[lan]\npeers = "10.0.0.1:1"\n', "lan.peers", 2, "a list of strings"),
        ("[lan]\npeers = [1, 2]\n", "lan.peers", 2, "a list"),
        ('[lan]\npeers = ["nohost"]\n', "lan.peers", 2, "HOST:PORT"),
        ('[internet]\nrelays = ["http://x"]\n', "internet.relays", 2, "mqtt://"),
        ('[internet]\nbridges = ["mesh"]\n', "internet.bridges", 2, "#channel or a +group"),
        ("[mesh]\nttl = 0\n", "mesh.ttl", 2, "at least 1"),
        ("[retention]\nrelay_days = 30\n", "retention.relay_days", 2, "at most 7"),
        ("[mesh]\nlink_rate = true\n", "mesh.link_rate", 2, "a number, not true or false"),
        ("lan = 3\n", "lan", 1, "must be a table"),
        ('name = "' + "x" * 200 + '"\n', "name", 1, "longer"),
    ],
)
def test_a_bad_value_names_the_key_and_its_line(text: str, key: str, line: int, words: str) -> None:
    error = error_of(text)
    assert error.key == key and error.line == line, str(error)
    assert words in str(error)
    assert str(error).startswith(f"/home/a/config.toml, line {line}: {key}: ")


@pytest.mark.parametrize(
    ("text", "key", "line", "near"),
    [
        ("[lan]\nport = 1\nprot = 2\n", "lan.prot", 3, "lan.port"),
        ("[bel]\nenabled = true\n", "bel", 1, "ble"),
        ("colour = 'red'\n", "colour", 1, None),
        ("[lan.extra]\nx = 1\n", "lan.extra", 1, None),
    ],
)
def test_an_unknown_key_is_named_with_the_nearest_known_one(
    text: str, key: str, line: int, near: str | None
) -> None:
    error = error_of(text)
    assert error.key == key and error.line == line, str(error)
    assert "unknown key" in str(error)
    if near is not None:
        assert f"did you mean {near}?" in str(error)


def test_a_syntax_error_gives_its_line() -> None:
    error = error_of('[lan]\nport = 1\nhost = "unclosed\n')
    assert error.line == 3 and "not valid TOML" in str(error)
    assert error.key is None
    assert isinstance(error.__cause__, Exception)  # tomllib's error is kept


def test_a_file_that_is_not_utf8_or_too_large_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b'name = "ok"\nbad = "\xff"\n')
    with pytest.raises(ConfigError, match="line 2: not UTF-8"):
        load(path)
    path.write_bytes(b"#" * (300 * 1024))
    with pytest.raises(ConfigError, match="larger than"):
        load(path)


def test_line_of_skips_comments_and_strings() -> None:
    text = (
        "# [lan]\n"
        "# port = 1\n"
        'name = "a # [lan] port = 2"\n'
        "[ lan ]  # the LAN\n"
        "host = '0.0.0.0'\n"
        "port = 9\n"
    )
    assert line_of(text, "lan") == 4
    assert line_of(text, "lan.port") == 6
    assert line_of(text, "name") == 3
    assert line_of(text, "ble.enabled") is None


def test_config_accessors_refuse_the_wrong_type() -> None:
    config = Config()
    with pytest.raises(TypeError):
        config.integer("lan.host")
    with pytest.raises(ConfigError, match="unknown key"):
        config["nope"]


keys = st.sampled_from([k.name for k in KEYS] + ["lan.nope", "x"])
toml_values = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.lists(st.text(max_size=10), max_size=3),
)


@given(st.text(max_size=300))
def test_any_text_is_a_config_or_one_config_error(text: str) -> None:
    try:
        parse(text)
    except ConfigError as exc:
        assert str(exc)
    except MeshchatError as exc:  # pragma: no cover - the failure this test looks for
        raise AssertionError(f"not a ConfigError: {exc!r}") from exc


@given(st.lists(st.tuples(keys, toml_values), max_size=4))
def test_any_typed_assignment_is_a_config_or_an_error_naming_its_key(
    pairs: list[tuple[str, object]],
) -> None:
    import tomlkit

    document = tomlkit.document()
    for name, value in pairs:
        section, _, leaf = name.rpartition(".")
        if section:
            table = document.setdefault(section, tomlkit.table())
            table[leaf] = value
        else:
            document[leaf] = value
    text = document.as_string()
    try:
        config = parse(text)
    except ConfigError as exc:
        assert exc.key is not None or exc.line is not None, str(exc)
        if exc.key is not None and "." in exc.key:
            assert exc.line is not None
        return
    for name in config.given:
        assert name in {k.name for k in KEYS}


def test_a_relay_url_with_a_password_is_refused_in_the_file_but_not_on_the_command_line() -> None:
    error = error_of('[internet]\nrelays = ["mqtt://alice:TOKEN@203.0.113.5:1883"]\n')
    assert error.key == "internet.relays" and error.line == 2
    assert "MESHCHAT_RELAY_PASSWORD" in str(error) and "TOKEN" not in str(error)
    assert parse('[internet]\nrelays = ["mqtt://alice@203.0.113.5:1883"]\n')  # a user is fine
