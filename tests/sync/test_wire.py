"""The sync codec: round trips, bounds, and fuzzing (every failure a PacketError)."""

from __future__ import annotations

import contextlib

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshchat.errors import PacketError
from meshchat.sync.items import INFINITY, MAX_TS, Bound
from meshchat.sync.records import (
    MAX_PARENTS,
    ContactRecord,
    MessageRecord,
    ReadRecord,
    StateRecord,
    TombstoneRecord,
)
from meshchat.sync.wire import (
    MAX_IDS,
    MAX_RANGES,
    MAX_RECORDS,
    MAX_SYNC_BYTES,
    RANGE_MAX_BYTES,
    Erased,
    Mode,
    Range,
    Reconcile,
    Records,
    decode_sync,
    decode_sync_blob,
    pack_records,
    range_size,
    sync_blob,
)

S = b"\x05" * 8
sid = st.binary(min_size=16, max_size=16)
times = st.integers(0, MAX_TS - 1)


@st.composite
def reconciles(draw: st.DrawFn) -> Reconcile:
    uppers = sorted(draw(st.sets(st.tuples(times, st.binary(max_size=16)), max_size=20)))
    ranges = []
    for ts, prefix in uppers:
        mode = draw(st.sampled_from(list(Mode)))
        if mode is Mode.FINGERPRINT:
            ranges.append(Range(Bound(ts, prefix), mode, fingerprint=draw(sid)))
        elif mode is Mode.IDS:
            ids = tuple(sorted(draw(st.sets(sid, max_size=10))))
            ranges.append(Range(Bound(ts, prefix), mode, ids=ids))
        else:
            ranges.append(Range(Bound(ts, prefix), mode))
    if draw(st.booleans()):
        ranges.append(Range(INFINITY, Mode.SKIP))
    wants = tuple(sorted(draw(st.sets(sid, max_size=20))))
    return Reconcile(draw(st.binary(min_size=8, max_size=8)), tuple(ranges), wants)


names = st.text(max_size=20)
records = st.one_of(
    st.builds(
        MessageRecord,
        st.text(min_size=1, max_size=30),
        sid,
        sid,
        names,
        st.text(max_size=200),
        times,
        st.sampled_from(["queued", "sent", "failed", "delivered", "received"]),
        st.just(()),
        st.just(()),
    ),
    st.builds(TombstoneRecord, st.text(min_size=1, max_size=30), sid, times),
    st.builds(
        ReadRecord,
        st.text(min_size=1, max_size=30),
        st.sets(sid, min_size=1, max_size=MAX_PARENTS).map(tuple),
        times,
    ),
    st.builds(
        StateRecord,
        st.text(min_size=1, max_size=30),
        sid,
        times,
        st.sampled_from(["queued", "sent", "failed", "delivered"]),
    ),
    st.builds(
        ContactRecord,
        sid,
        st.binary(min_size=32, max_size=32),
        st.binary(min_size=32, max_size=32),
        names,
        st.sampled_from(["unverified", "verified", "compromised"]),
        times,
        sid,
        st.text(max_size=300),
    ),
)


@settings(max_examples=200, deadline=None)
@given(reconciles())
def test_reconcile_round_trips(message: Reconcile) -> None:
    assert decode_sync(message.encode()) == message


@settings(max_examples=200, deadline=None)
@given(st.lists(records, max_size=20))
def test_records_round_trip(
    items: list[MessageRecord | TombstoneRecord | ContactRecord | StateRecord | ReadRecord],
) -> None:
    message = Records(S, tuple(items), len(items))
    assert decode_sync(message.encode()) == message


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_are_refused_with_a_packet_error(data: bytes) -> None:
    with contextlib.suppress(PacketError):
        decode_sync(data)


@settings(max_examples=300, deadline=None)
@given(reconciles(), st.data())
def test_mutated_messages_decode_or_are_refused(message: Reconcile, data: st.DataObject) -> None:
    raw = bytearray(message.encode())
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] = data.draw(st.integers(0, 255))
    try:
        again = decode_sync(bytes(raw))
    except PacketError:
        return
    assert decode_sync(again.encode()) == again


@settings(max_examples=200, deadline=None)
@given(st.lists(records, min_size=1, max_size=5), st.data())
def test_mutated_records_decode_or_are_refused(items: list, data: st.DataObject) -> None:  # type: ignore[type-arg]
    raw = bytearray(Records(S, tuple(items)).encode())
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] = data.draw(st.integers(0, 255))
    with contextlib.suppress(PacketError):
        decode_sync(bytes(raw))


def raw(*fields: object) -> bytes:
    return cbor2.dumps(list(fields), canonical=True)


A, B = b"\x01" * 16, b"\x02" * 16


@pytest.mark.parametrize(
    "data",
    [
        raw(1, S, [], [B, A]),  # wants not sorted
        raw(1, S, [], [A, A]),  # wants repeated
        raw(1, S, [[None, 2, [B, A]]], []),  # ids not sorted
        raw(1, S, [[None, 1, b"\x00" * 15]], []),  # short fingerprint
        raw(1, S, [[None, 0, b"x"]], []),  # skip with a payload
        raw(1, S, [[None, 3, None]], []),  # unknown mode
        raw(1, S, [[[5, b""], 0, None], [[0, b""], 0, None]], []),  # bounds not ascending
        raw(1, S, [[[MAX_TS - 1, b""], 0, None], [[5, b""], 0, None]], []),  # time past the end
        raw(1, S, [[[5, b"\x00" * 17], 0, None]], []),  # prefix too long
        raw(1, S, [[[MAX_TS, b""], 0, None]], []),  # a time out of range
        raw(1, S, [[[-1, b""], 0, None]], []),
        raw(1, b"short", [], []),  # session id
        raw(1, S, [], [b"\x01" * 15]),  # a 15-byte sid
        raw(9, S, []),  # unknown kind
        raw(2, S, [], -1),  # a negative count left
        raw(2, S, []),  # no count left
        raw(1, S, [[None, 0, None]] * (MAX_RANGES + 1), []),  # too many ranges
        raw(1, S, [], [n.to_bytes(16, "big") for n in range(MAX_IDS + 1)]),  # too many ids
        raw(2, S, [[1, "dm:x", A, B, "", "", 1, "sent", [A], []]], 0),  # a message naming itself
        raw(2, S, [[1, "dm:x", A, B, "", "", 1, "lost", [], []]], 0),  # unknown state
        raw(2, S, [[1, "", A, B, "", "", 1, "sent", [], []]], 0),  # empty conversation
        raw(2, S, [[1, "dm:x", A, B, "", "", 1, "sent", [B] * 9, []]], 0),  # too many parents
        raw(2, S, [[3, A, A, A, "n", "verified", 1, A, ""]], 0),  # a 16-byte key
        raw(2, S, [[3, A, A * 2, A * 2, "n", "own", 1, A, ""]], 0),  # trust own is never synced
        raw(2, S, [[3, A, A * 2, A * 2, "n", "verified", 1, A, "x" * 1101]], 0),  # a long card
        raw(2, S, [[3, A, A * 2, A * 2, "n", "verified", 1, A]], 0),  # no card field
        raw(2, S, [[2, "dm:x", A, 1]] * (MAX_RECORDS + 1), 0),  # too many records
        raw(2, S, [[2, "dm:x", A]], 0),  # a short record
        raw(2, S, [[4, "dm:x", A, 1, "received"]], 0),  # an incoming message has no state item
        raw(2, S, [[4, "dm:x", A, 1]], 0),
        raw(2, S, [[5, "dm:x", [], 1]], 0),  # a read mark naming nothing
        raw(2, S, [[5, "dm:x", [A] * (MAX_PARENTS + 1), 1]], 0),  # naming too many
        raw(2, S, [[5, "dm:x", [A, A], 1]], 0),  # one id twice
        raw(2, S, [[5, "dm:x", [A[:15]], 1]], 0),  # a 15-byte id
        raw(2, S, [[5, "dm:x", A, 1]], 0),  # ids not a list
        raw(2, S, [[5, "", [A], 1]], 0),  # empty conversation
        raw(2, S, [[5, "x" * 129, [A], 1]], 0),  # conversation too long
        raw(2, S, [[5, "dm:x", [A], -1]], 0),  # a negative time
        raw(2, S, [[5, "dm:x", [A], MAX_TS]], 0),  # a time out of range
        raw(2, S, [[5, "dm:x", [A]]], 0),  # no time
        raw(2, S, [[5, "dm:x", [[A]], 1]], 0),  # an id that is a list
        b"\x00" * (MAX_SYNC_BYTES + 1),
    ],
)
def test_each_malformed_message_is_refused(data: bytes) -> None:
    with pytest.raises(PacketError):
        decode_sync(data)


def test_encoders_refuse_what_decoders_would() -> None:
    with pytest.raises(PacketError):
        Reconcile(S, (), (B, A))
    with pytest.raises(PacketError):
        Reconcile(S, (Range(Bound(5), Mode.SKIP), Range(Bound(5), Mode.SKIP)))
    with pytest.raises(PacketError):
        Range(Bound(1), Mode.FINGERPRINT)
    big = MessageRecord("dm:x", A, B, "", "x" * 4000, 1, "received")
    with pytest.raises(PacketError):
        Records(S, (big,) * 6).encode()


def test_a_read_record_is_small_and_its_newest_version_wins() -> None:
    old = ReadRecord("dm:" + "ab" * 16, (A, B), 1_700_000_000_000)
    new = ReadRecord(old.conversation, (B,), old.read_ms + 1)
    assert new.wins_over(old) and not old.wins_over(new)
    tie = ReadRecord(old.conversation, (A,), old.read_ms)
    assert tie.wins_over(old) != old.wins_over(tie)  # ties go by sync id, the same everywhere
    assert old.sid != ReadRecord(old.conversation, (A, B), old.read_ms + 1).sid
    assert len(cbor2.dumps(old.fields(), canonical=True)) < 90  # one small item


def test_pack_records_fills_messages_within_bounds_and_counts_down() -> None:
    items = [
        MessageRecord("dm:x", n.to_bytes(16, "big"), B, "", "x" * 900, 1, "received")
        for n in range(100)
    ]
    packed = pack_records(S, items)
    assert [r for m in packed for r in m.records] == items
    assert [m.left for m in packed][-1] == 0
    assert all(len(m.encode()) <= MAX_SYNC_BYTES for m in packed)
    assert len(packed) == 5  # about 20 records of 0.9 kB in each 20 kB message
    small = [TombstoneRecord("dm:x", n.to_bytes(16, "big"), 1) for n in range(1000)]
    assert all(len(m.records) <= MAX_RECORDS for m in pack_records(S, small))


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=MAX_SYNC_BYTES))
def test_sync_blobs_round_trip(data: bytes) -> None:
    assert decode_sync_blob(sync_blob(data)) == data


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=1, max_size=40), st.sets(sid, max_size=30))
def test_erased_round_trips(conversation: str, ids: set[bytes]) -> None:
    erased = Erased(conversation, tuple(ids))
    assert Erased.decode(erased.encode()) == erased


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_blobs_are_refused_with_a_packet_error(blob: bytes) -> None:
    with contextlib.suppress(PacketError):
        decode_sync_blob(blob)
    with contextlib.suppress(PacketError):
        Erased.decode(blob)


@pytest.mark.parametrize(
    "blob",
    [
        raw(20, "dm:x", [A, A]),  # repeated
        raw(20, "", [A]),  # no conversation
        raw(20, "x" * 129, [A]),
        raw(20, "dm:x", [b"short"]),
        raw(20, "dm:x", [n.to_bytes(16, "big") for n in range(1001)]),
        raw(19, "dm:x", [A]),  # another kind
        raw(20, "dm:x"),
    ],
)
def test_each_malformed_erased_blob_is_refused(blob: bytes) -> None:
    with pytest.raises(PacketError):
        Erased.decode(blob)
    with pytest.raises(PacketError):
        decode_sync_blob(blob)


@settings(max_examples=200, deadline=None)
@given(reconciles())
def test_range_size_is_what_a_range_takes_in_a_message(message: Reconcile) -> None:
    after = 0
    for i, r in enumerate(message.ranges):
        before = Reconcile(S, message.ranges[:i]).encode()
        alone = len(Reconcile(S, message.ranges[: i + 1]).encode()) - len(before)
        if i == 23:
            alone -= 1  # the array of ranges takes a byte more from 24 items on
        assert range_size(r, after) == alone
        after = r.upper.ts if r.upper != INFINITY else after
        assert alone <= RANGE_MAX_BYTES + len(r.ids) * (1 + 16)  # ids are counted apart
