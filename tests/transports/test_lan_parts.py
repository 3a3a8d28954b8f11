"""The LAN transport's pure parts: TXT parsing, address choice, reconnect backoff."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshchat.errors import TransportError
from meshchat.identity import Identity
from meshchat.transports.lan._addresses import choose_addresses, is_loopback_only
from meshchat.transports.lan._backoff import Backoff
from meshchat.transports.lan._discovery import (
    SERVICE_TYPE,
    ServiceRecord,
    instance_name,
    parse_txt,
)

# -- TXT records ---------------------------------------------------------------------------------


def test_parse_txt_reads_the_claimed_node_id() -> None:
    node_id = Identity.generate().node_id
    assert parse_txt({b"id": node_id.hex().encode(), b"v": b"1"}) == node_id


@pytest.mark.parametrize(
    "properties",
    [
        {},
        {b"v": b"1"},
        {b"id": b"00" * 16},
        {b"id": b"00" * 16, b"v": b"2"},
        {b"id": b"00" * 16, b"v": None},
        {b"id": None, b"v": b"1"},
        {b"id": b"00" * 15, b"v": b"1"},
        {b"id": b"zz" * 16, b"v": b"1"},
        {b"id": b"AB" * 16, b"v": b"1"},
        {b"id": b" 0" * 16, b"v": b"1"},
        {b"id": "é".encode() * 16, b"v": b"1"},
    ],
)
def test_parse_txt_rejects_what_is_not_a_v1_meshchat_record(
    properties: dict[bytes, bytes | None],
) -> None:
    with pytest.raises(TransportError):
        parse_txt(properties)


@given(st.dictionaries(st.binary(max_size=8), st.one_of(st.none(), st.binary(max_size=40))))
def test_parse_txt_never_crashes(properties: dict[bytes, bytes | None]) -> None:
    try:
        node_id = parse_txt(properties)
    except TransportError:
        return
    assert len(node_id) == 16 and properties[b"id"] == node_id.hex().encode()


@given(st.binary(min_size=16, max_size=16), st.one_of(st.none(), st.binary(max_size=40)))
def test_parse_txt_accepts_every_lower_hex_id(node_id: bytes, extra: bytes | None) -> None:
    assert parse_txt({b"id": node_id.hex().encode(), b"v": b"1", b"x": extra}) == node_id


def test_instance_name_and_record_checks() -> None:
    node_id = bytes(range(16))
    assert instance_name(node_id) == f"mc-0001020304050607.{SERVICE_TYPE}"
    record = ServiceRecord("n", node_id, ("10.0.0.1",), 4000)
    assert record.port == 4000
    for bad in (
        dict(node_id=b"short"),
        dict(port=0),
        dict(port=70000),
        dict(addresses=()),
        dict(addresses=("10.0.0.1",) * 9),
    ):
        fields = {"name": "n", "node_id": node_id, "addresses": ("10.0.0.1",), "port": 4000}
        fields.update(bad)
        with pytest.raises(TransportError):
            ServiceRecord(**fields)  # type: ignore[arg-type]


# -- advertised addresses --------------------------------------------------------------------------


def test_explicit_addresses_win() -> None:
    assert choose_addresses("0.0.0.0", None, ["10.1.2.3"]) == ["10.1.2.3"]


def test_a_specific_listening_host_is_advertised() -> None:
    assert choose_addresses("10.9.8.7", None, None) == ["10.9.8.7"]


def test_loopback_only_interfaces_advertise_loopback() -> None:
    assert is_loopback_only(["127.0.0.1"])
    assert not is_loopback_only(["127.0.0.1", "10.0.0.1"]) and not is_loopback_only(None)
    assert not is_loopback_only(["eth0"])
    assert choose_addresses("0.0.0.0", ["127.0.0.1"], None) == ["127.0.0.1"]


def test_interface_addresses_skip_loopback() -> None:
    assert choose_addresses("0.0.0.0", ["127.0.0.1", "10.0.0.5"], None) == ["10.0.0.5"]


def test_machine_addresses_leave_out_loopback() -> None:
    chosen = choose_addresses("0.0.0.0", None, None)
    assert chosen
    # Either real interfaces (then no loopback among them) or, on a loopback-only machine,
    # loopback alone.
    assert all(not a.startswith("127.") for a in chosen) or chosen == ["127.0.0.1"]
    assert all(a.count(".") == 3 for a in chosen)


# -- backoff ---------------------------------------------------------------------------------------


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    backoff = Backoff(0.5, 4.0, random.Random(7))
    delays = [backoff.next() for _ in range(8)]
    bases = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    for delay, base in zip(delays, bases, strict=True):
        assert base * 0.5 <= delay <= base
    backoff.reset()
    assert 0.25 <= backoff.next() <= 0.5


def test_backoff_jitter_spreads_nodes_apart() -> None:
    delays = {round(Backoff(1.0, 1.0).next(), 6) for _ in range(20)}
    assert len(delays) > 10


def test_backoff_survives_many_attempts() -> None:
    backoff = Backoff(0.1, 30.0)
    for _ in range(5000):
        assert backoff.next() <= 30.0


def test_backoff_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        Backoff(0, 1)
    with pytest.raises(ValueError):
        Backoff(2, 1)
