"""Round trips and rules of the message store, on real SQLite files."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshchat.errors import StoreError, UsageError
from meshchat.store import (
    DEFAULT_MAX_CARRIED,
    DEFAULT_MAX_PEERS,
    MAX_TEXT_BYTES,
    CarriedPacket,
    Channel,
    Contact,
    Conversation,
    MessageState,
    OutboxEntry,
    Store,
    Trust,
)
from meshchat.store._rows import Rows

from .helpers import KEY, ME, make_contact, outgoing

ALICE_ID = bytes.fromhex("a1ce0000000000000000000000000001")
ALICE2_ID = bytes.fromhex("a1ce0000000000000000000000000002")
BOB_ID = bytes.fromhex("b0b00000000000000000000000000003")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _count(path: Path, table: str) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


# -- opening, files, lifecycle -------------------------------------------------------------


def test_open_creates_private_file_and_directory(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "meshchat.db"
    with Store.open(path, key=KEY) as store:
        store.set_setting("k", "v")
        assert _mode(path) == 0o600
        assert _mode(path.parent) == 0o700
        wal = path.with_name(path.name + "-wal")
        assert wal.exists()
        assert _mode(wal) == 0o600


def test_open_tightens_a_world_readable_file(tmp_path: Path) -> None:
    path = tmp_path / "loose.db"
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o644)
    os.close(fd)
    path.chmod(0o644)
    with Store.open(path, key=KEY):
        assert _mode(path) == 0o600


def test_wal_and_full_sync(store: Store, db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
    assert store._conn is not None
    assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_close_is_idempotent_and_later_calls_fail(db_path: Path) -> None:
    with Store.open(db_path, key=KEY) as store:
        store.set_setting("a", "1")
        assert "open" in repr(store)
    store.close()
    assert "closed" in repr(store)
    with pytest.raises(StoreError, match="closed"):
        store.get_setting("a")
    with pytest.raises(StoreError, match="closed"):
        store.set_setting("a", "2")
    with Store.open(db_path, key=KEY) as again:
        assert again.get_setting("a") == "1"


def test_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not an SQLite database file at all" * 100)
    with pytest.raises(StoreError):
        Store.open(path, key=KEY)


def test_path_that_is_a_directory_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        Store.open(tmp_path, key=KEY)


def test_bounds_must_be_positive(db_path: Path) -> None:
    with pytest.raises(StoreError):
        Store(db_path, key=KEY, max_carried=0)
    assert DEFAULT_MAX_CARRIED == 5000
    assert DEFAULT_MAX_PEERS == 10_000


# -- contacts --------------------------------------------------------------------------------


def test_contact_round_trip(store: Store) -> None:
    alice = make_contact("Alice", ALICE_ID, trust=Trust.VERIFIED)
    bob = make_contact("bob", BOB_ID)
    store.add_contact(bob)
    store.add_contact(alice)
    assert store.get_contact(ALICE_ID) == alice
    assert store.get_contact(b"\x00" * 16) is None
    assert store.contact_by_sign_key(bob.sign_public) == bob
    assert store.contact_by_sign_key(b"\x00" * 32) is None
    assert store.list_contacts() == [alice, bob]


def test_add_existing_contact_only_updates_name(store: Store) -> None:
    store.add_contact(make_contact("Alice", ALICE_ID, trust=Trust.VERIFIED, added_ms=5))
    store.add_contact(make_contact("Alice Smith", ALICE_ID, trust=Trust.COMPROMISED, added_ms=9))
    got = store.get_contact(ALICE_ID)
    assert got == make_contact("Alice Smith", ALICE_ID, trust=Trust.VERIFIED, added_ms=5)
    assert len(store.list_contacts()) == 1


def test_set_trust(store: Store) -> None:
    store.add_contact(make_contact("Alice", ALICE_ID))
    store.set_trust(ALICE_ID, Trust.COMPROMISED)
    got = store.get_contact(ALICE_ID)
    assert got is not None
    assert got.trust is Trust.COMPROMISED
    with pytest.raises(UsageError, match="no contact"):
        store.set_trust(BOB_ID, Trust.VERIFIED)


def test_find_contact_by_name_and_id_prefix(store: Store) -> None:
    alice = make_contact("Alice", ALICE_ID)
    bob = make_contact("Bob", BOB_ID)
    store.add_contact(alice)
    store.add_contact(bob)
    assert store.find_contact("alice") == alice
    assert store.find_contact("  ALICE ") == alice
    assert store.find_contact("b0b0") == bob
    assert store.find_contact("B0B0000") == bob
    assert store.find_contact(BOB_ID.hex()) == bob


def test_find_contact_errors_are_clear(store: Store) -> None:
    store.add_contact(make_contact("Alice", ALICE_ID))
    store.add_contact(make_contact("alice", ALICE2_ID))
    store.add_contact(make_contact("Bob", BOB_ID))
    with pytest.raises(UsageError, match=f"2 contacts are named 'ALICE' \\({ALICE_ID.hex()}, "):
        store.find_contact("ALICE")
    with pytest.raises(UsageError, match="matches 2 contacts"):
        store.find_contact("a1ce")
    with pytest.raises(UsageError, match="at least 4 hex digits"):
        store.find_contact("b0b")
    with pytest.raises(UsageError, match="or has a node id starting with it"):
        store.find_contact("cafe")
    with pytest.raises(UsageError, match="no contact is named 'Carol'"):
        store.find_contact("Carol")
    with pytest.raises(UsageError):
        store.find_contact("   ")
    assert store.find_contact(ALICE2_ID.hex()).node_id == ALICE2_ID


def test_find_contact_name_wins_over_id_prefix(store: Store) -> None:
    named_beef = make_contact("beef", ALICE_ID)
    id_beef = make_contact("Other", bytes.fromhex("beef0000000000000000000000000000"))
    store.add_contact(named_beef)
    store.add_contact(id_beef)
    assert store.find_contact("BEEF") == named_beef
    assert store.find_contact("beef0") == id_beef


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.text(max_size=40))
def test_find_contact_never_fails_untyped(store: Store, query: str) -> None:
    if not store.list_contacts():
        store.add_contact(make_contact("Alice", ALICE_ID))
        store.add_contact(make_contact("alice", ALICE2_ID))
    try:
        found = store.find_contact(query)
    except UsageError:
        return
    assert found in store.list_contacts()


# -- peers -------------------------------------------------------------------------------------


def test_peer_round_trip_and_update(store: Store) -> None:
    assert store.peer_by_sign_key(b"k" * 32) is None
    store.remember_peer(BOB_ID, b"k" * 32, b"x" * 32, "bob", 100)
    assert store.peer_by_sign_key(b"k" * 32) == (BOB_ID, "bob")
    store.remember_peer(BOB_ID, b"k" * 32, b"x" * 32, "Robert", 200)
    assert store.peer_by_sign_key(b"k" * 32) == (BOB_ID, "Robert")
    # The same signing key announced with a new node id replaces the old row.
    store.remember_peer(ALICE_ID, b"k" * 32, b"y" * 32, "bob2", 300)
    assert store.peer_by_sign_key(b"k" * 32) == (ALICE_ID, "bob2")


def test_peers_are_bounded_oldest_seen_go_first(db_path: Path) -> None:
    with Store.open(db_path, key=KEY, max_peers=5) as store:
        seen = [50, 10, 70, 30, 90, 20, 60]  # peer i seen at seen[i]
        for i, ms in enumerate(seen):
            store.remember_peer(bytes([i]) * 16, bytes([i]) * 32, b"b" * 32, f"p{i}", ms)
        kept = {i for i in range(len(seen)) if store.peer_by_sign_key(bytes([i]) * 32)}
        # peer 5 (seen 20) evicted peer 1 (seen 10), then peer 6 evicted peer 5 (20).
        assert kept == {0, 2, 3, 4, 6}
    assert _count(db_path, "peers") == 5


# -- channels ----------------------------------------------------------------------------------


def test_channel_round_trip(store: Store) -> None:
    public = Channel("#general", b"\x11" * 16, None, 10)
    secret = Channel("#ops", b"\x22" * 16, b"K" * 32, 20)
    store.join_channel(secret)
    store.join_channel(public)
    assert store.get_channel("#general") == public
    assert store.get_channel("#ops") == secret
    assert store.get_channel("#nope") is None
    assert store.channel_by_id(b"\x22" * 16) == secret
    assert store.channel_by_id(b"\x33" * 16) is None
    assert store.list_channels() == [public, secret]
    assert store.leave_channel("#ops") is True
    assert store.leave_channel("#ops") is False
    assert store.list_channels() == [public]


def test_rejoin_replaces_and_duplicate_id_is_refused(store: Store) -> None:
    store.join_channel(Channel("#ops", b"\x22" * 16, b"K" * 32, 20))
    new = Channel("#ops", b"\x44" * 16, b"L" * 32, 30)
    store.join_channel(new)
    assert store.get_channel("#ops") == new
    with pytest.raises(UsageError, match="already joined as '#ops'"):
        store.join_channel(Channel("#other", b"\x44" * 16, b"L" * 32, 40))
    assert store.get_channel("#other") is None


# -- messages ----------------------------------------------------------------------------------


def test_add_outgoing_writes_message_and_outbox(store: Store) -> None:
    msg = store.add_outgoing("bob", b"m" * 16, BOB_ID, ME, "me", "hello", 1000, 9000)
    assert msg.state is MessageState.QUEUED
    assert msg.outgoing is True
    assert msg.updated_ms == 1000
    assert store.get_message(b"m" * 16) == msg
    assert store.messages("bob") == [msg]
    assert store.pending_outbox(1000) == [
        OutboxEntry(b"m" * 16, "bob", BOB_ID, "hello", 1000, 0, 1000, 9000)
    ]


def test_duplicate_outgoing_id_is_refused_whole(store: Store, db_path: Path) -> None:
    outgoing(store, 1)
    with pytest.raises(StoreError):
        store.add_outgoing("carol", (1).to_bytes(16, "big"), BOB_ID, ME, "me", "x", 5, 9)
    assert _count(db_path, "messages") == 1
    assert _count(db_path, "outbox") == 1
    assert store.messages("carol") == []


def test_add_incoming_dedupes_by_sender_and_id(store: Store) -> None:
    first = store.add_incoming("bob", b"i" * 16, BOB_ID, "bob", "hi", 900, 1100)
    assert first is not None
    assert first.state is MessageState.RECEIVED
    assert first.outgoing is False
    assert first.updated_ms == 1100
    assert store.add_incoming("bob", b"i" * 16, BOB_ID, "bob", "hi again", 900, 1200) is None
    # The same msg_id from another sender is another message.
    other = store.add_incoming("#general", b"i" * 16, ALICE_ID, "alice", "yo", 901, 1300)
    assert other is not None
    assert store.messages("bob") == [first]
    assert store.messages("#general") == [other]
    # Incoming messages are not outgoing ones.
    assert store.get_message(b"i" * 16) is None


def test_own_message_echoed_back_is_not_stored_twice(store: Store) -> None:
    mine = store.add_outgoing("#general", b"e" * 16, b"\x11" * 16, ME, "me", "hi all", 10, 99)
    assert store.add_incoming("#general", b"e" * 16, ME, "me", "hi all", 10, 20) is None
    assert store.messages("#general") == [mine]


def test_messages_returns_the_last_n_oldest_first(store: Store) -> None:
    ids = [outgoing(store, n) for n in range(10)]
    outgoing(store, 99, conversation="elsewhere")
    assert [m.msg_id for m in store.messages("bob", limit=3)] == ids[-3:]
    assert [m.msg_id for m in store.messages("bob")] == ids
    assert store.messages("bob", limit=0) == []
    assert store.messages("bob", limit=-5) == []
    assert store.messages("nobody") == []


def test_conversations_newest_first_with_unread(store: Store) -> None:
    assert store.conversations() == []
    store.add_incoming("bob", b"1" * 16, BOB_ID, "bob", "one", 1, 100)
    store.add_incoming("bob", b"2" * 16, BOB_ID, "bob", "two", 2, 110)
    store.add_incoming("alice", b"3" * 16, ALICE_ID, "alice", "three", 3, 120)
    assert store.conversations() == [
        Conversation("alice", 120, 1, "three"),
        Conversation("bob", 110, 2, "two"),
    ]
    store.mark_read("bob")
    store.add_outgoing("bob", b"4" * 16, BOB_ID, ME, "me", "reply", 130, 999)
    # Outgoing messages are never unread; the reply moves bob to the top.
    assert store.conversations() == [
        Conversation("bob", 130, 0, "reply"),
        Conversation("alice", 120, 1, "three"),
    ]
    store.add_incoming("bob", b"5" * 16, BOB_ID, "bob", "five", 4, 140)
    assert store.conversations()[0] == Conversation("bob", 140, 1, "five")
    store.mark_read("alice")
    store.mark_read("nobody")
    assert [c.unread for c in store.conversations()] == [1, 0]


# -- message states ------------------------------------------------------------------------


def test_sent_keeps_the_outbox_row_delivered_removes_it(store: Store) -> None:
    msg_id = outgoing(store, 1)
    assert store.set_state(msg_id, MessageState.SENT, 2000) is True
    assert [e.msg_id for e in store.pending_outbox(2000)] == [msg_id]
    assert store.set_state(msg_id, MessageState.DELIVERED, 3000) is True
    assert store.pending_outbox(2000) == []
    got = store.get_message(msg_id)
    assert got is not None
    assert (got.state, got.updated_ms) == (MessageState.DELIVERED, 3000)


def test_late_reports_never_move_backwards(store: Store) -> None:
    msg_id = outgoing(store, 1)
    store.set_state(msg_id, MessageState.DELIVERED, 3000)
    for late in (MessageState.SENT, MessageState.QUEUED, MessageState.FAILED):
        assert store.set_state(msg_id, late, 4000) is False
    got = store.get_message(msg_id)
    assert got is not None
    assert (got.state, got.updated_ms) == (MessageState.DELIVERED, 3000)


def test_failed_removes_outbox_and_a_late_ack_still_counts(store: Store) -> None:
    msg_id = outgoing(store, 1)
    store.set_state(msg_id, MessageState.SENT, 2000)
    assert store.set_state(msg_id, MessageState.FAILED, 2500) is True
    assert store.pending_outbox(0) == []
    assert store.set_state(msg_id, MessageState.SENT, 2600) is False
    assert store.set_state(msg_id, MessageState.DELIVERED, 2700) is True
    got = store.get_message(msg_id)
    assert got is not None
    assert got.state is MessageState.DELIVERED


def test_set_state_refuses_received_and_ignores_unknown_ids(store: Store) -> None:
    msg_id = outgoing(store, 1)
    with pytest.raises(StoreError):
        store.set_state(msg_id, MessageState.RECEIVED, 5)
    with pytest.raises(StoreError):
        store.set_state(msg_id, "bogus", 5)  # type: ignore[arg-type]
    assert store.set_state(b"?" * 16, MessageState.SENT, 5) is False


def test_set_state_leaves_incoming_messages_alone(store: Store) -> None:
    store.add_incoming("bob", b"x" * 16, BOB_ID, "bob", "hi", 1, 2)
    assert store.set_state(b"x" * 16, MessageState.DELIVERED, 5) is False
    assert store.messages("bob")[0].state is MessageState.RECEIVED


# -- outbox --------------------------------------------------------------------------------


def test_pending_outbox_skips_expired_and_orders_by_due_time(store: Store) -> None:
    a = outgoing(store, 1, expires_ms=5000)
    b = outgoing(store, 2, expires_ms=6000)
    c = outgoing(store, 3, expires_ms=7000)
    assert store.record_attempt(a, 1, 4000) is True
    assert [e.msg_id for e in store.pending_outbox(1000)] == [b, c, a]
    assert [e.msg_id for e in store.pending_outbox(5000)] == [b, c]  # expiry is inclusive
    assert store.pending_outbox(7000) == []
    entry = store.pending_outbox(0)[-1]
    assert (entry.attempts, entry.next_try_ms) == (1, 4000)
    assert store.record_attempt(b"?" * 16, 1, 1) is False


def test_expire_outbox_fails_messages(store: Store) -> None:
    a = outgoing(store, 1, expires_ms=5000)
    b = outgoing(store, 2, expires_ms=5000)
    c = outgoing(store, 3, expires_ms=9000)
    store.set_state(b, MessageState.SENT, 1500)
    assert store.expire_outbox(4999) == []
    assert store.expire_outbox(5000) == [a, b]
    assert [e.msg_id for e in store.pending_outbox(0)] == [c]
    for msg_id in (a, b):
        got = store.get_message(msg_id)
        assert got is not None
        assert (got.state, got.updated_ms) == (MessageState.FAILED, 5000)
    got = store.get_message(c)
    assert got is not None
    assert got.state is MessageState.QUEUED
    assert store.expire_outbox(5000) == []


# -- carried packets -----------------------------------------------------------------------


def _packet(n: int, expires_ms: int) -> CarriedPacket:
    return CarriedPacket(bytes([n]) * 16, b"frame-%d" % n, BOB_ID, expires_ms)


def test_carried_round_trip_and_expiry(store: Store) -> None:
    p1, p2, p3 = _packet(1, 5000), _packet(2, 3000), _packet(3, 8000)
    for p in (p1, p2, p3):
        assert store.carry(p) is True
    assert store.carry(p1) is False
    assert store.carried(0) == [p1, p2, p3]
    assert store.carried(3000) == [p1, p3]
    assert store.drop_carried(p1.packet_id) is True
    assert store.drop_carried(p1.packet_id) is False
    assert store.expire_carried(3000) == 1
    assert store.carried(0) == [p3]
    assert store.expire_carried(3000) == 0


def test_carried_is_bounded_evicting_soonest_expiry(db_path: Path) -> None:
    with Store.open(db_path, key=KEY, max_carried=3) as store:
        for n, expires in enumerate([500, 100, 900]):
            assert store.carry(_packet(n, expires))
        assert store.carry(_packet(3, 700)) is True  # evicts packet 1 (expires 100)
        assert store.carry(_packet(4, 50)) is False  # itself the soonest to expire
        assert [p.packet_id[0] for p in store.carried(0)] == [0, 2, 3]
    assert _count(db_path, "carried") == 3


# -- settings ----------------------------------------------------------------------------------


def test_settings_round_trip(store: Store) -> None:
    assert store.get_setting("name") is None
    store.set_setting("name", "Zoë")
    store.set_setting("name", "Zoë 2")
    store.set_setting("other", "")
    assert store.get_setting("name") == "Zoë 2"
    assert store.get_setting("other") == ""


# -- bounds and bad input ------------------------------------------------------------------


def test_text_bound_is_enforced_in_bytes(store: Store, db_path: Path) -> None:
    ok = "x" * MAX_TEXT_BYTES
    assert store.add_incoming("bob", b"1" * 16, BOB_ID, "bob", ok, 1, 2) is not None
    with pytest.raises(StoreError, match="4098 bytes"):
        store.add_incoming("bob", b"2" * 16, BOB_ID, "bob", "é" * 2049, 1, 2)
    with pytest.raises(StoreError):
        store.add_outgoing("bob", b"3" * 16, BOB_ID, ME, "me", ok + "!", 1, 2)
    with pytest.raises(StoreError):
        store.set_setting("k", ok + "!")
    assert _count(db_path, "messages") == 1
    assert _count(db_path, "outbox") == 0


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.add_incoming("bob", "not bytes", BOB_ID, "bob", "hi", 1, 2),
        lambda s: s.add_incoming("bob", b"1", BOB_ID, "bob", "\ud800", 1, 2),
        lambda s: s.add_incoming("bob", b"1", BOB_ID, "bob", "hi", 2**63, 2),
        lambda s: s.add_incoming("bob", b"1", BOB_ID, "bob", "hi", True, 2),
        lambda s: s.add_incoming("bob", b"1", BOB_ID, "bob", "hi", 1.5, 2),
        lambda s: s.add_outgoing("bob", b"1", BOB_ID, ME, "me", "hi", 1, -(2**63) - 1),
        lambda s: s.add_contact(make_contact(7, ALICE_ID)),  # type: ignore[arg-type]
        lambda s: s.add_contact(make_contact("a", ALICE_ID, trust="no")),  # type: ignore[arg-type]
        lambda s: s.carry(CarriedPacket(b"p", b"f" * 70_000, BOB_ID, 5)),
        lambda s: s.join_channel(Channel("#c", b"c", "text", 1)),  # type: ignore[arg-type]
    ],
)
def test_bad_arguments_are_store_errors_and_write_nothing(
    store: Store, db_path: Path, call: object
) -> None:
    assert callable(call)
    with pytest.raises(StoreError):
        call(store)
    for table in ("messages", "outbox", "contacts", "carried", "channels"):
        assert _count(db_path, table) == 0


def test_damaged_rows_are_store_errors(store: Store, db_path: Path) -> None:
    store.add_contact(make_contact("Alice", ALICE_ID))
    outgoing(store, 1)
    conn = sqlite3.connect(db_path)
    try:
        # One flipped ciphertext bit; a state that is not a MessageState.
        sealed = bytearray(conn.execute("SELECT sealed FROM contacts").fetchone()[0])
        sealed[30] ^= 1
        conn.execute("UPDATE contacts SET sealed = ?", (bytes(sealed),))
        conn.execute("UPDATE messages SET state = 'lost'")
        conn.commit()
    finally:
        conn.close()
    with pytest.raises(StoreError, match="does not open"):
        store.get_contact(ALICE_ID)
    with pytest.raises(StoreError, match="MessageState"):
        store.messages("bob")
    with pytest.raises(StoreError):
        store.set_state((1).to_bytes(16, "big"), MessageState.SENT, 5)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    text=st.text(max_size=300),
    name=st.text(max_size=40),
    sender=st.binary(min_size=1, max_size=40),
    created=st.integers(min_value=-(2**63), max_value=2**63 - 1),
)
def test_incoming_round_trips_any_value(
    store: Store, text: str, name: str, sender: bytes, created: int
) -> None:
    msg_id = os.urandom(16)
    # one conversation per example: where a message sorts depends on its claimed time
    conversation = "fuzz-" + msg_id.hex()
    stored = store.add_incoming(conversation, msg_id, sender, name, text, created, 7)
    assert stored is not None
    assert store.messages(conversation, limit=1) == [stored]
    assert (stored.text, stored.sender_name, stored.sender) == (text, name, sender)


# -- threads -------------------------------------------------------------------------------


def test_two_threads_can_share_the_store(store: Store) -> None:
    errors: list[BaseException] = []

    def writer(base: int) -> None:
        try:
            for n in range(base, base + 100):
                outgoing(store, n)
                store.messages("bob", limit=5)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(base,)) for base in (0, 1000)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert len(store.messages("bob", limit=1000)) == 200
    assert len(store.pending_outbox(0)) == 200


def test_contact_dataclass_is_frozen() -> None:
    contact = make_contact("Alice", ALICE_ID)
    with pytest.raises(AttributeError):
        contact.name = "Mallory"  # type: ignore[misc]
    assert isinstance(contact, Contact)
    assert not hasattr(contact, "__dict__")


def test_finding_a_contact_opens_only_rows_that_changed(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sending to a contact looks it up by name among all contacts (names are sealed). Each
    row is opened once, not once per message: a row opens again only when its sealed cell
    changed, here or from another connection, and a deleted contact is gone at once."""
    contacts = [make_contact(f"c{i:02d}", bytes([i + 1]) * 15 + b"\x00") for i in range(30)]
    for contact in contacts:
        store.add_contact(contact)
    opened: list[bytes] = []
    real_open = Rows.open_contact

    def counting(rows: Rows, row: tuple[bytes, bytes, bytes]) -> Contact:
        opened.append(row[0])
        return real_open(rows, row)

    monkeypatch.setattr(Rows, "open_contact", counting)
    assert store.find_contact("c07") == contacts[7]
    first = len(opened)
    assert store.find_contact("c12") == contacts[12]
    assert store.find_contact("c07") == contacts[7]
    assert len(opened) == first  # nothing changed: nothing opened again
    store.add_contact(replace(contacts[7], name="renamed"))
    assert store.find_contact("renamed").node_id == contacts[7].node_id
    assert len(opened) == first + 2  # the old row (add_contact keeps its card), the new one
    with pytest.raises(UsageError):
        store.find_contact("c07")
    other = Store.open(store._path, key=KEY)  # another connection changes a row
    try:
        other.add_contact(replace(contacts[3], name="elsewhere"))
    finally:
        other.close()
    assert store.find_contact("elsewhere").node_id == contacts[3].node_id
    assert store.remove_contact(contacts[12].node_id)
    with pytest.raises(UsageError):
        store.find_contact("c12")
