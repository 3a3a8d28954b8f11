"""Every key of ``config.toml``: its type, default, checks, and the flag that overrides it.

The table :data:`KEYS` is the one source: the loader checks a file against it, ``meshchat
config set`` converts and checks a value with it, the commented default file is written from
it, and ``docs/configuration.md`` lists the same keys. A key is dotted: ``lan.port`` is
``port`` in the ``[lan]`` table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from meshchat.errors import IdentityError, UsageError
from meshchat.identity import clean_name
from meshchat.wire.packet import DEFAULT_TTL, MAX_TTL

__all__ = ["KEYS", "SECTIONS", "Key", "Kind", "Value", "check_value", "host_port"]

Value = str | int | float | bool | list[str]


class Kind(Enum):
    """The TOML type a key takes."""

    STR = "a string"
    INT = "an integer"
    FLOAT = "a number"
    BOOL = "true or false"
    LIST = "a list of strings"


@dataclass(frozen=True, slots=True)
class Key:
    """One configuration key."""

    name: str
    kind: Kind
    default: Value
    help: str
    #: the command-line flag of ``meshchat run``/``daemon`` that overrides it, if any
    flag: str | None = None
    #: checks a value of the right type: returns what is wrong with it, or None
    check: Callable[[Value], str | None] | None = None
    #: the allowed values of a string key (None: any)
    choices: tuple[str, ...] | None = None

    @property
    def section(self) -> str:
        return self.name.rpartition(".")[0]

    @property
    def leaf(self) -> str:
        return self.name.rpartition(".")[2]


def host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) -> (host, port). Raises :class:`UsageError`."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"wants HOST:PORT, not {text!r}")
    return host.strip("[]"), int(port)


def _port(value: Value) -> str | None:
    return None if isinstance(value, int) and 0 <= value <= 65535 else "must be 0 to 65535"


def _between(low: float, high: float, low_open: bool = False) -> Callable[[Value], str | None]:
    def check(value: Value) -> str | None:
        if not isinstance(value, int | float):
            return "must be a number"
        if (value <= low if low_open else value < low) or value > high:
            return f"must be {'more than' if low_open else 'at least'} {low:g} and at most {high:g}"
        return None

    return check


def _host_ports(value: Value) -> str | None:
    if not isinstance(value, list):
        return "must be a list of strings"
    for item in value:
        try:
            host_port(item)
        except UsageError as exc:
            return str(exc)
    return None


def _relay_urls(value: Value) -> str | None:
    from meshchat.transports.relay import parse_relay_url

    if not isinstance(value, list):
        return "must be a list of strings"
    for item in value:
        try:
            parse_relay_url(item)
        except UsageError as exc:
            return str(exc)
    return None


def _bridges(value: Value) -> str | None:
    if not isinstance(value, list):
        return "must be a list of strings"
    for item in value:
        if not item.startswith(("#", "+")) or len(item) < 2:
            return f"each entry is a #channel or a +group, not {item!r}"
    return None


def _name(value: Value) -> str | None:
    if not isinstance(value, str):
        return "must be a string"
    try:
        clean_name(value)
    except IdentityError as exc:
        return str(exc)
    return None


KEYS: tuple[Key, ...] = (
    Key(
        "name",
        Kind.STR,
        "",
        "display name others see; empty: the name chosen at init (kept sealed in the keystore; "
        "a name set here is stored in clear in this file)",
        check=_name,
    ),
    Key(
        "ble.enabled",
        Kind.BOOL,
        True,
        "use Bluetooth LE when this machine has a usable adapter (status says why not)",
        flag="--ble / --no-ble",
    ),
    Key(
        "ble.backend",
        Kind.STR,
        "bleak",
        "bleak: the operating system's stack; bumble: a USB Bluetooth dongle driven directly",
        flag="--ble BACKEND",
        choices=("bleak", "bumble"),
    ),
    Key("ble.controller", Kind.STR, "usb:0", "the bumble controller", flag="--ble-controller"),
    Key(
        "ble.max_links",
        Kind.INT,
        7,
        "most Bluetooth links at once",
        flag="--ble-max-links",
        check=_between(1, 64),
    ),
    Key("lan.enabled", Kind.BOOL, True, "use the LAN (TCP and mDNS)", flag="--lan / --no-lan"),
    Key("lan.host", Kind.STR, "0.0.0.0", "address to listen on for TCP", flag="--lan-host"),
    Key("lan.port", Kind.INT, 0, "TCP port; 0: any free port", flag="--lan-port", check=_port),
    Key(
        "lan.interfaces",
        Kind.LIST,
        [],
        'addresses of the interfaces mDNS uses; empty: all; ["127.0.0.1"]: this machine only',
        flag="--mdns-interface",
    ),
    Key("lan.mdns", Kind.BOOL, True, "advertise and browse with mDNS", flag="--mdns / --no-mdns"),
    Key(
        "lan.advertise",
        Kind.LIST,
        [],
        "addresses put in our mDNS record; empty: every non-loopback address",
        flag="--advertise",
    ),
    Key(
        "lan.peers",
        Kind.LIST,
        [],
        'nodes to dial directly, "HOST:PORT"',
        flag="--peer",
        check=_host_ports,
    ),
    Key(
        "mesh.ttl",
        Kind.INT,
        DEFAULT_TTL,
        f"hops our packets may travel (at most {MAX_TTL})",
        flag="--ttl",
        check=_between(1, MAX_TTL),
    ),
    Key(
        "mesh.announce",
        Kind.BOOL,
        True,
        "tell neighbours our display name",
        flag="--announce / --no-announce",
    ),
    Key(
        "mesh.link_rate",
        Kind.FLOAT,
        200.0,
        "frames per second accepted from one neighbour (burst: twice that)",
        flag="--link-rate",
        check=_between(0, 100_000, low_open=True),
    ),
    Key(
        "internet.relays",
        Kind.LIST,
        [],
        'MQTT brokers to be a gateway through, "mqtt://host:1883" or "mqtts://host:8883" '
        "(the password comes from $MESHCHAT_RELAY_PASSWORD, never from this file)",
        flag="--relay",
        check=_relay_urls,
    ),
    Key(
        "internet.relay_tls",
        Kind.BOOL,
        False,
        "use TLS with mqtt:// too",
        flag="--relay-tls / --no-relay-tls",
    ),
    Key("internet.relay_ca", Kind.STR, "", "CA bundle to verify brokers", flag="--relay-ca"),
    Key("internet.relay_user", Kind.STR, "", "user name at the brokers", flag="--relay-user"),
    Key(
        "internet.relay_keepalive",
        Kind.INT,
        30,
        "seconds between MQTT keepalives; a broker silent for about 1.5 times this is taken "
        "as lost, and the node stops being a gateway until it answers again",
        check=_between(1, 3600),
    ),
    Key(
        "internet.relay_retry_max",
        Kind.FLOAT,
        60.0,
        "most seconds between attempts to reach a broker that cannot be reached (the wait "
        "doubles from half a second up to this)",
        check=_between(0.5, 3600),
    ),
    Key(
        "internet.dht",
        Kind.BOOL,
        False,
        "join the Kademlia DHT (also on when dht_bootstrap lists a node)",
        flag="--dht-port",
    ),
    Key("internet.dht_host", Kind.STR, "0.0.0.0", "address for the DHT", flag="--dht-host"),
    Key(
        "internet.dht_port",
        Kind.INT,
        0,
        "UDP port for the DHT; 0: any free port",
        flag="--dht-port",
        check=_port,
    ),
    Key(
        "internet.dht_bootstrap",
        Kind.LIST,
        [],
        'DHT nodes to join through, "HOST:PORT"',
        flag="--dht-bootstrap",
        check=_host_ports,
    ),
    Key(
        "internet.bridges",
        Kind.LIST,
        [],
        'channels and private groups whose messages gateways also carry over the internet, "#name" '
        'or "+group" (others never leave the mesh)',
        flag="--bridge-channel",
        check=_bridges,
    ),
    Key(
        "bitchat.enabled",
        Kind.BOOL,
        False,
        "bridge bitchat's public chat as #bitchat through a Bluetooth controller driven by "
        "bumble (public, not end-to-end encrypted, another network; see docs/bridges.md)",
        flag="--bitchat / --no-bitchat",
    ),
    Key(
        "bitchat.controller",
        Kind.STR,
        "usb:0",
        "the bumble controller bitchat uses (a second dongle when meshchat's own BLE uses one)",
        flag="--bitchat-controller",
    ),
    Key(
        "bitchat.nickname",
        Kind.STR,
        "",
        "the nickname bitchat peers see; empty: the display name",
        flag="--bitchat-nickname",
        check=_name,
    ),
    Key(
        "bitchat.read_receipts",
        Kind.BOOL,
        True,
        "tell a bitchat peer when its direct messages were read here (a read receipt each, "
        "as bitchat does); off: only that they arrived",
        flag="--bitchat-read-receipts / --no-bitchat-read-receipts",
    ),
    Key(
        "retention.relay_days",
        Kind.FLOAT,
        7.0,
        "how long brokers and the DHT keep a message for an offline contact (at most 7)",
        flag="--relay-retention-days",
        check=_between(0, 7, low_open=True),
    ),
    Key(
        "retention.history_days",
        Kind.FLOAT,
        30.0,
        "how long each channel's incoming history is kept",
        check=_between(0, 36_500, low_open=True),
    ),
    Key(
        "files.downloads",
        Kind.STR,
        "",
        "folder for received files; empty: the home's downloads folder",
        flag="--to",
    ),
    Key(
        "files.auto_accept_mb",
        Kind.FLOAT,
        5.0,
        "files up to this size from a verified contact are taken without asking (0: always ask)",
        check=_between(0, 1024),
    ),
    Key(
        "files.max_ble_mb",
        Kind.FLOAT,
        1.0,
        "largest file taken from a sender reached only over Bluetooth",
        check=_between(0, 1024),
    ),
    Key(
        "files.max_lan_mb",
        Kind.FLOAT,
        256.0,
        "largest file taken from a sender reached over the LAN",
        check=_between(0, 1024),
    ),
    Key(
        "files.max_relay_mb",
        Kind.FLOAT,
        16.0,
        "largest file taken from a sender reached over a relay, the DHT or another medium",
        check=_between(0, 1024),
    ),
    Key(
        "ui.bell",
        Kind.BOOL,
        True,
        "ring the terminal's bell when a direct message arrives (meshchat run)",
    ),
    Key(
        "daemon.log_level",
        Kind.STR,
        "info",
        "what `meshchat daemon` logs",
        flag="--log-level",
        choices=("debug", "info", "warning", "error"),
    ),
)

BY_NAME: dict[str, Key] = {k.name: k for k in KEYS}
#: the tables, in the order the default file shows them
SECTIONS: tuple[str, ...] = tuple(dict.fromkeys(k.section for k in KEYS if k.section))


def check_value(key: Key, value: object) -> tuple[Value | None, str | None]:
    """``value`` as ``key`` takes it (an integer is taken where a number is wanted), or what is
    wrong with it: (value, None) or (None, problem)."""
    kind = key.kind
    good: Value
    match value:
        case bool() if kind is Kind.BOOL:
            good = value
        case int() if kind is Kind.INT and not isinstance(value, bool):
            good = value
        case int() | float() if kind is Kind.FLOAT and not isinstance(value, bool):
            good = float(value)
        case str() if kind is Kind.STR:
            good = value
        case list() if kind is Kind.LIST and all(isinstance(v, str) for v in value):
            good = [str(v) for v in value]
        case _:
            return None, f"must be {kind.value}, not {_toml_type(value)}"
    if key.choices is not None and good not in key.choices:
        return None, f"must be one of {', '.join(key.choices)}, not {good!r}"
    if key.check is not None and (problem := key.check(good)) is not None:
        return None, problem
    return good, None


def _toml_type(value: object) -> str:
    match value:
        case bool():
            return "true or false"
        case int():
            return "an integer"
        case float():
            return "a number"
        case str():
            return "a string"
        case list():
            return "a list with other things than strings"
        case dict():
            return "a table"
        case _:
            return type(value).__name__
