"""Encryption at rest: the database file and its WAL hold none of the private values.

The tests write distinctive texts, names, keys, channel keys and carried frames, then read the
raw bytes of ``meshchat.db`` and ``meshchat.db-wal`` (while the store is open, so the WAL is
full) and search them. They also show that a wrong key is refused, that a sealed cell moved to
another row does not open, and that a version 1 (plaintext) file is sealed and scrubbed.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from meshchat.errors import StoreError
from meshchat.store import CarriedPacket, Channel, Contact, MessageState, Store, Trust
from meshchat.store.schema import MIGRATIONS, migrate

from .helpers import KEY, ME

ALICE_ID = bytes.fromhex("a1ce00000000000000000000000000a1")
ALICE_SIGN = bytes.fromhex("5a" * 32)
ALICE_BOX = bytes.fromhex("b0" * 32)
CHANNEL_KEY = bytes.fromhex("c4" * 32)
CHANNEL_ID = bytes.fromhex("1d" * 16)
FRAME = b"CARRIED-FRAME-" + bytes(range(200))
SECRETS_TEXT = [
    "Meet at the old lighthouse 21:40",
    "Alicia Quartermaine",
    "Bobbington Reply Text",
    "#harbour-ops",
    "theme-setting-value",
    "PeerNameVeryDistinct",
    "OutboxOnlyText zebra",
]


def raw_files(path: Path) -> bytes:
    """Every byte SQLite keeps for this database: the file, its WAL and its shared memory."""
    data = b""
    for suffix in ("", "-wal", "-shm", "-journal"):
        p = path.with_name(path.name + suffix)
        if p.exists():
            data += p.read_bytes()
    return data


def secrets_in(data: bytes) -> list[str]:
    found = [s for s in SECRETS_TEXT if s.encode() in data or s.encode("utf-16-le") in data]
    for name, value in (
        ("alice node id", ALICE_ID),
        ("alice sign key", ALICE_SIGN),
        ("alice box key", ALICE_BOX),
        ("channel key", CHANNEL_KEY),
        ("channel id", CHANNEL_ID),
        ("carried frame", FRAME[:40]),
        ("own node id", ME),
    ):
        if value in data:
            found.append(name)
    if ALICE_ID.hex().encode() in data:
        found.append("alice node id in hex")
    return found


def fill(store: Store) -> None:
    store.add_contact(
        Contact(ALICE_ID, ALICE_SIGN, ALICE_BOX, "Alicia Quartermaine", Trust.VERIFIED, 5)
    )
    store.remember_peer(b"\x07" * 16, b"\x08" * 32, b"\x09" * 32, "PeerNameVeryDistinct", 9)
    store.join_channel(Channel("#harbour-ops", CHANNEL_ID, CHANNEL_KEY, 10))
    conversation = "dm:" + ALICE_ID.hex()
    store.add_incoming(
        conversation, b"i" * 16, ALICE_ID, "Alicia Quartermaine",
        "Meet at the old lighthouse 21:40", 1, 2,
    )  # fmt: skip
    sent = store.add_outgoing(
        conversation, b"o" * 16, ALICE_ID, ME, "me", "Bobbington Reply Text", 3, 10**12
    )
    store.set_state(sent.msg_id, MessageState.SENT, 4)
    store.add_outgoing(
        "#harbour-ops", b"p" * 16, CHANNEL_ID, ME, "me", "OutboxOnlyText zebra", 5, 10**12
    )
    store.mark_read(conversation)
    store.carry(CarriedPacket(b"\x0c" * 16, FRAME, ALICE_ID, 10**12))
    store.set_setting("theme", "theme-setting-value")


def test_the_file_and_its_wal_hold_no_private_value(db_path: Path) -> None:
    with Store.open(db_path, key=KEY) as store:
        fill(store)
        wal = db_path.with_name(db_path.name + "-wal")
        assert wal.stat().st_size > 0  # the writes are in the WAL right now
        # The values really are stored: reading them back works.
        assert store.find_contact("alicia quartermaine").box_public == ALICE_BOX
        assert store.get_channel("#harbour-ops") == Channel(
            "#harbour-ops", CHANNEL_ID, CHANNEL_KEY, 10
        )
        assert store.carried(0)[0].frame == FRAME
        assert secrets_in(raw_files(db_path)) == []
    # After a clean close the WAL is folded into the file: still nothing.
    assert secrets_in(raw_files(db_path)) == []
    # The check itself can fail: a plaintext copy of the same values is caught.
    plain = tmp_plain(db_path.parent / "plain.db")
    assert set(secrets_in(plain)) >= {"Alicia Quartermaine", "channel key", "carried frame"}


def tmp_plain(path: Path) -> bytes:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (a, b)")
    conn.execute("INSERT INTO t VALUES (?, ?)", ("Alicia Quartermaine", CHANNEL_KEY + FRAME))
    conn.commit()
    conn.close()
    return path.read_bytes()


def test_a_wrong_key_is_refused_and_the_right_one_still_opens(db_path: Path) -> None:
    with Store.open(db_path, key=KEY) as store:
        fill(store)
    with pytest.raises(StoreError, match="wrong store key"):
        Store.open(db_path, key=bytes(32))
    with Store.open(db_path, key=KEY) as store:
        assert store.get_setting("theme") == "theme-setting-value"
        assert [m.text for m in store.messages("dm:" + ALICE_ID.hex())] == [
            "Meet at the old lighthouse 21:40",
            "Bobbington Reply Text",
        ]


def test_a_sealed_cell_moved_to_another_row_does_not_open(db_path: Path) -> None:
    with Store.open(db_path, key=KEY) as store:
        store.add_incoming("c", b"1" * 16, ALICE_ID, "a", "first text", 1, 2)
        store.add_incoming("c", b"2" * 16, ALICE_ID, "a", "second text", 1, 3)
        store.set_setting("a", "1")
        store.set_setting("b", "2")
    conn = sqlite3.connect(db_path)
    try:
        first = conn.execute("SELECT sealed FROM messages ORDER BY row_id").fetchone()[0]
        conn.execute("UPDATE messages SET sealed = ? WHERE row_id = 2", (first,))
        a, b = (r[0] for r in conn.execute("SELECT sealed FROM settings ORDER BY rowid"))
        conn.execute("UPDATE settings SET sealed = ? WHERE sealed = ?", (a, b))
        conn.commit()
    finally:
        conn.close()
    with Store.open(db_path, key=KEY) as store:
        with pytest.raises(StoreError, match="does not open"):
            store.messages("c")
        with pytest.raises(StoreError, match="does not open"):
            store.get_setting("b")
        assert store.get_setting("a") == "1"


def test_a_damaged_key_check_is_a_store_error(db_path: Path) -> None:
    with Store.open(db_path, key=KEY):
        pass
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE meta SET value = 'zz' WHERE key = 'store_key_check'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="wrong store key"):
        Store.open(db_path, key=KEY)


def make_v1_database(path: Path) -> None:
    """A version 1 database as the first meshchat wrote it: every value in clear."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    migrate(conn, MIGRATIONS[:1])
    conversation = "dm:" + ALICE_ID.hex()
    statements = [
        ("INSERT INTO contacts VALUES (?, ?, ?, ?, ?, ?)",
         (ALICE_ID, ALICE_SIGN, ALICE_BOX, "Alicia Quartermaine", "verified", 5)),
        ("INSERT INTO peers VALUES (?, ?, ?, ?, ?)",
         (b"\x07" * 16, b"\x08" * 32, b"\x09" * 32, "PeerNameVeryDistinct", 9)),
        ("INSERT INTO channels VALUES (?, ?, ?, ?)", ("#harbour-ops", CHANNEL_ID, CHANNEL_KEY, 10)),
        ("INSERT INTO messages VALUES (7, ?, ?, 0, ?, ?, ?, 1, 'received', 2, 2)",
         (conversation, b"i" * 16, ALICE_ID, "Alicia Quartermaine",
          "Meet at the old lighthouse 21:40")),
        ("INSERT INTO messages VALUES (9, ?, ?, 1, ?, 'me', ?, 3, 'queued', 3, 3)",
         (conversation, b"o" * 16, ME, "Bobbington Reply Text")),
        ("INSERT INTO outbox VALUES (?, ?, ?, ?, 3, 2, 50, ?)",
         (b"o" * 16, conversation, ALICE_ID, "Bobbington Reply Text", 10**12)),
        ("INSERT INTO carried VALUES (?, ?, ?, ?)", (b"\x0c" * 16, FRAME, ALICE_ID, 10**12)),
        ("INSERT INTO read_marks VALUES (?, 7)", (conversation,)),
        ("INSERT INTO settings VALUES ('theme', 'theme-setting-value')", ()),
    ]  # fmt: skip
    conn.execute("BEGIN")
    for sql, params in statements:
        conn.execute(sql, params)
    conn.execute("COMMIT")
    conn.close()


def test_a_version_1_file_is_sealed_and_scrubbed_on_first_open(db_path: Path) -> None:
    db_path.parent.mkdir(mode=0o700)
    make_v1_database(db_path)
    assert "Alicia Quartermaine" in secrets_in(raw_files(db_path))
    with Store.open(db_path, key=KEY) as store:
        assert secrets_in(raw_files(db_path)) == []
        alice = store.get_contact(ALICE_ID)
        assert alice is not None
        assert (alice.name, alice.trust, alice.box_public) == (
            "Alicia Quartermaine",
            Trust.VERIFIED,
            ALICE_BOX,
        )
        conversation = "dm:" + ALICE_ID.hex()
        got = store.messages(conversation)
        assert [(m.row_id, m.text) for m in got] == [
            (7, "Meet at the old lighthouse 21:40"),
            (9, "Bobbington Reply Text"),
        ]
        # They keep that order in the causal history (none held), the newest as the head.
        assert [m.order_ms for m in got] == [7, 9]
        assert store.heads(conversation) == (b"o" * 16,)
        # Row ids were kept, so the read mark still covers the incoming message.
        assert store.conversations()[0].unread == 0
        entry = store.pending_outbox(0)[0]
        assert (entry.text, entry.attempts, entry.next_try_ms) == ("Bobbington Reply Text", 2, 50)
        assert store.carried(0)[0].frame == FRAME
        assert store.peer_by_sign_key(b"\x08" * 32) == (b"\x07" * 16, "PeerNameVeryDistinct")
        assert store.get_channel("#harbour-ops") is not None
        assert store.get_setting("theme") == "theme-setting-value"
        # New rows continue after the kept row ids.
        new = store.add_incoming(conversation, b"n" * 16, ALICE_ID, "x", "new", 1, 2)
        assert new is not None and new.row_id > 9
    assert secrets_in(raw_files(db_path)) == []
    # The first key adopted the file: another key is now refused.
    with pytest.raises(StoreError, match="wrong store key"):
        Store.open(db_path, key=bytes(32))


def test_crypto_state_is_sealed_and_kept_per_kind_and_key(db_path: Path) -> None:
    session = b"RATCHET-SESSION-STATE-" + bytes(range(100))
    prekeys = b"PREKEY-PRIVATE-STATE-" + bytes(range(100, 200))
    with Store.open(db_path, key=KEY) as store:
        assert store.get_state("session", ALICE_ID) is None
        store.put_state("session", ALICE_ID, b"old")
        store.put_state("session", ALICE_ID, session)
        store.put_state("session", b"\x02" * 16, b"other peer")
        store.put_state("prekeys", b"", prekeys)
        assert store.get_state("session", ALICE_ID) == session
        assert store.states("session") == {ALICE_ID: session, b"\x02" * 16: b"other peer"}
        assert store.states("prekeys") == {b"": prekeys}
        assert store.states("nothing") == {}
        data = raw_files(db_path)
        for secret in (session[:30], prekeys[:30], ALICE_ID):
            assert secret not in data
        assert store.delete_state("session", b"\x02" * 16) is True
        assert store.delete_state("session", b"\x02" * 16) is False
        assert list(store.states("session")) == [ALICE_ID]
        with pytest.raises(StoreError):
            store.put_state("session", ALICE_ID, b"x" * 70_000)
    # A state moved under another kind does not open.
    conn = sqlite3.connect(db_path)
    try:
        kinds = [r[0] for r in conn.execute("SELECT DISTINCT kind_tag FROM crypto_state")]
        conn.execute("UPDATE crypto_state SET kind_tag = ?", (kinds[0],))
        conn.commit()
    finally:
        conn.close()
    with Store.open(db_path, key=KEY) as store, pytest.raises(StoreError, match="does not open"):
        store.states("session")
        store.states("prekeys")
