"""The record storage's bounds: per source, in all, per key, and expiry (pure, no network)."""

from __future__ import annotations

import hashlib
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from meshchat.errors import UsageError
from meshchat.identity import Identity
from meshchat.transports.dht import DhtConfig, DhtTransport, RecordStorage, seal_record
from meshchat.transports.dht._storage import LOCAL_SOURCE, StorageLimits, source_of

NOW = 1_700_000_000


def junk(expires: int = NOW + 600, signer: SigningKey | None = None) -> tuple[bytes, bytes]:
    """A valid record under its own Kademlia key."""
    key, record = seal_record(signer or SigningKey.generate(), bytes(32), 0, b"frame", expires)
    return hashlib.sha1(key).digest(), record


def storage(**limits: int) -> tuple[RecordStorage, list[float]]:
    clock = [float(NOW)]
    return RecordStorage(StorageLimits(**limits), clock=lambda: clock[0]), clock


def test_a_source_over_its_share_loses_only_its_own_oldest_records() -> None:
    store, _ = storage(records=100, source_records=3)
    mine = junk()
    assert store.put(*mine, source="10.0.0.1")
    flood = [junk() for _ in range(10)]
    for key, record in flood:
        store.put(key, record, source="10.0.0.66")
    assert store.get(mine[0]) == mine[1]
    assert store.usage("10.0.0.66")[0] == 3
    assert [store.get(k) is not None for k, _ in flood] == [False] * 7 + [True] * 3
    assert store.evicted == 7


def test_when_full_the_heaviest_source_gives_way() -> None:
    store, _ = storage(records=10, source_records=10)
    mine = junk()
    store.put(*mine, source="10.0.0.1")
    for i in range(40):  # four addresses, each heavier than ours
        store.put(*junk(), source=f"10.0.0.{100 + i % 4}")
    assert len(store) == 10
    assert store.get(mine[0]) == mine[1]
    assert store.stored_bytes <= store.limits.bytes


def test_bytes_are_bounded_as_well_as_records() -> None:
    _, record = junk()
    store, _ = storage(records=1000, bytes=5 * len(record), source_bytes=1000 * len(record))
    for _ in range(20):
        store.put(*junk(), source="10.0.0.66")
    assert len(store) == 5 and store.stored_bytes == 5 * len(record)


def test_a_key_holds_one_record_per_source_up_to_its_cap_answered_in_turn() -> None:
    store, _ = storage(records=100, per_key=3)
    signer = SigningKey.generate()  # whoever knows the key can sign for it
    key, first = junk(NOW + 100, signer)
    _, longer = junk(NOW + 200, signer)
    _, shorter = junk(NOW + 50, signer)
    store.put(key, first, source="a")
    assert store.put(key, longer, source="a")  # its own, longer: replaces
    assert not store.put(key, shorter, source="a")  # its own, shorter: an old copy
    assert store.values_of(key) == [longer]
    assert store.put(key, longer, source="b")  # the same record from another node: kept once
    assert store.values_of(key) == [longer]
    # squatters from three addresses, each also heavy elsewhere, fill the key ...
    for source in ("s1", "s2"):
        for _ in range(3):
            store.put(*junk(), source=source)
        assert store.put(key, junk(NOW + 300, signer)[1], source=source)
    assert len(store.values_of(key)) == 3
    # ... and a newcomer with less stored takes the heaviest one's place
    _, legit = junk(NOW + 60, signer)
    assert store.put(key, legit, source="legit")
    held = store.values_of(key)
    assert legit in held and longer in held and len(held) == 3
    assert {store.get(key) for _ in range(3)} == set(held)  # each in turn
    # a source heavier than all of them cannot take a place
    for _ in range(10):
        store.put(*junk(), source="heavy")
    assert not store.put(key, junk(NOW + 300, signer)[1], source="heavy")


def test_expiry_needs_no_scan_and_drops_every_copy() -> None:
    store, clock = storage(records=100)
    short, long_ = junk(NOW + 10), junk(NOW + 1000)
    store.put(*short, source="x")
    store.put(*long_, source="x")
    clock[0] = NOW + 11
    assert store.get(short[0]) is None and store.get(long_[0]) == long_[1]
    assert len(store) == 1 and store.usage("x") == (1, len(long_[1]))
    clock[0] = NOW + 1001
    assert list(store) == [] and store.usage("x") == (0, 0)


def test_local_writes_are_charged_to_the_node_itself() -> None:
    store, _ = storage()
    key, record = junk()
    store[key] = record
    assert store.usage(LOCAL_SOURCE)[0] == 1


def test_sources_are_addresses_and_ipv6_slash_64s() -> None:
    assert source_of("203.0.113.5") == "203.0.113.5"
    assert source_of("2001:db8:1:2:aaaa::1") == source_of("2001:db8:1:2:bbbb::9")
    assert source_of("2001:db8:1:2::1") != source_of("2001:db8:1:3::1")
    assert source_of("not an address") == "not an address"


def test_limits_must_be_positive() -> None:
    with pytest.raises(UsageError):
        StorageLimits(records=0)
    with pytest.raises(UsageError):
        StorageLimits(per_key=0)
    with pytest.raises(UsageError):
        DhtConfig(source_share=0)


async def test_the_kademlia_node_really_uses_the_checked_storage() -> None:
    """An empty storage is falsy, and ``kademlia.Server`` replaced it by its own unbounded,
    unchecked one: every value any peer sent was kept."""
    transport = DhtTransport(Identity.generate(), DhtConfig(host="127.0.0.1"))

    class Idle:
        def link_up(self, link: object) -> None:
            pass

        def link_down(self, link: object) -> None:
            pass

        def frame_received(self, link: object, frame: bytes) -> None:
            pass

    await transport.start(Idle())  # type: ignore[arg-type]
    try:
        server = transport._server
        assert server.storage is transport.storage
        server.protocol.rpc_store(("127.0.0.9", 9), os.urandom(20), os.urandom(20), b"junk")
        assert len(transport.storage) == 0 and transport.storage.refused == 1
    finally:
        await transport.stop()


_SIGNERS = [SigningKey(bytes([i]) * 32) for i in range(3)]
_POOL = [junk(NOW + 10 + 7 * i, _SIGNERS[i % 3]) for i in range(24)]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, len(_POOL) - 1), st.sampled_from("abcde"), st.integers(0, 200)),
        max_size=80,
    )
)
def test_every_bound_holds_whatever_is_stored(steps: list[tuple[int, str, int]]) -> None:
    _, record = _POOL[0]
    store, clock = storage(
        records=10, bytes=8 * len(record), source_records=4, source_bytes=3 * len(record), per_key=2
    )
    for index, source, advance in steps:
        clock[0] = NOW + advance
        store.put(*_POOL[index], source=source)
        stored = list(store)
        assert len(stored) == len(store) <= 10
        assert sum(len(v) for _, v in stored) == store.stored_bytes <= 8 * len(record)
        for src in "abcde":
            count, used = store.usage(src)
            assert count <= 4 and used <= 3 * len(record)
        keys = [k for k, _ in stored]
        assert all(keys.count(k) <= 2 for k in keys)
        assert sum(store.usage(src)[0] for src in "abcde") == len(store)
