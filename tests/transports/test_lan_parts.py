"""The LAN transport's pure parts: TXT parsing, address choice; the shared reconnect backoff."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshchat.errors import TransportError
from meshchat.identity import Identity
from meshchat.transports.backoff import Backoff, BackoffTable
from meshchat.transports.lan._addresses import choose_addresses, is_loopback_only
from meshchat.transports.lan._discovery import (
    ServiceRecord,
    parse_txt,
    random_label,
)

# -- TXT records ---------------------------------------------------------------------------------


def test_parse_txt_takes_a_v2_record_and_trusts_nothing_else_in_it() -> None:
    parse_txt({b"v": b"2"})
    parse_txt({b"v": b"2", b"id": Identity.generate().node_id.hex().encode()})


@pytest.mark.parametrize(
    "properties",
    [{}, {b"v": b"1"}, {b"id": b"00" * 16}, {b"v": None}, {b"v": b"22"}, {b"V": b"2"}],
)
def test_parse_txt_rejects_what_is_not_a_v2_meshchat_record(
    properties: dict[bytes, bytes | None],
) -> None:
    with pytest.raises(TransportError):
        parse_txt(properties)


@given(st.dictionaries(st.binary(max_size=8), st.one_of(st.none(), st.binary(max_size=40))))
def test_parse_txt_never_crashes(properties: dict[bytes, bytes | None]) -> None:
    try:
        parse_txt(properties)
    except TransportError:
        assert properties.get(b"v") != b"2"
        return
    assert properties[b"v"] == b"2"


def test_labels_are_random_and_say_nothing_of_the_node() -> None:
    labels = {random_label() for _ in range(50)}
    assert len(labels) == 50
    assert all(label.startswith("mc-") and len(label) == 19 for label in labels)


def test_record_checks() -> None:
    record = ServiceRecord("n", ("10.0.0.1",), 4000)
    assert record.port == 4000
    for bad in (
        dict(port=0),
        dict(port=70000),
        dict(addresses=()),
        dict(addresses=("10.0.0.1",) * 9),
    ):
        fields: dict[str, object] = {"name": "n", "addresses": ("10.0.0.1",), "port": 4000}
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


def test_backoff_table_shares_one_schedule_per_address() -> None:
    table = BackoffTable(0.5, 8.0, rng=random.Random(3))
    key = ("10.0.0.9", 4000)
    assert table.wait(key, 0.0) == 0.0
    now, tries = 0.0, 0
    while now < 50.0:  # one dialler that tries whenever allowed
        wait = table.wait(key, now)
        if wait == 0.0:
            table.attempt(key, now)
            tries += 1
        now += 0.01
    # 0.25-0.5, then doubling to the 4-8 s cap: about ten tries in 50 s, not thousands
    assert 6 <= tries <= 16
    table.reset(key)
    assert table.wait(key, now) == 0.0


def test_backoff_table_is_bounded() -> None:
    table = BackoffTable(1.0, 1.0, max_keys=4, rng=random.Random(1))
    for i in range(4):
        table.attempt(i, 0.0)
    # full, and everyone is waiting: a new key must wait too
    assert table.wait("new", 0.0) > 0.0
    assert table.wait("new", 2.0) == 0.0
    table.attempt("new", 2.0)
    assert len(table) == 4
    with pytest.raises(ValueError):
        BackoffTable(1.0, 1.0, max_keys=0)


def test_backoff_table_forgets_keys_quiet_since_before_a_time() -> None:
    table = BackoffTable(1.0, 8.0, rng=random.Random(2))
    for _ in range(3):
        table.attempt("busy", 0.0)  # its wait ends near 2-4 s
    table.attempt("old", -100.0)  # its wait ended long ago
    table.forget_due_before(-50.0)
    assert len(table) == 1
    assert table.wait("busy", 0.0) > 0.0
    table.forget_due_before(100.0)
    assert len(table) == 0
    assert table.wait("busy", 0.0) == 0.0
