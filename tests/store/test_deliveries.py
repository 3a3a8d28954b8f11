"""Per-device delivery rows: one message, one outbox row, a row per device's copy.

Also the upgrade: an outbox row written before fan-out (the version 4 fixture) has no
delivery rows, and ends on delivery as it always did."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from meshchat.errors import StoreError
from meshchat.store import MessageState, Store

FIXTURES = Path(__file__).parent / "fixtures"
KEY = bytes.fromhex((FIXTURES / "v4_store.key").read_text().strip())
SUMMARY = json.loads((FIXTURES / "v4_store.json").read_text())
T0 = 1_760_000_000_000
DM = "dm:" + "b1" * 16
B1, B2 = b"\xb1" * 16, b"\xb2" * 16
D, S, F, Q = (
    MessageState.DELIVERED,
    MessageState.SENT,
    MessageState.FAILED,
    MessageState.QUEUED,
)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "s.db", key=b"\x05" * 32)


def _send(store: Store, msg_id: bytes = b"\x01" * 16) -> bytes:
    store.add_outgoing(DM, msg_id, B1, b"\xaa" * 16, "me", "hi", T0, T0 + 3_600_000)
    return msg_id


def _pending(store: Store) -> list[bytes]:
    return [e.msg_id for e in store.pending_outbox(T0)]


def test_the_outbox_row_ends_with_the_last_copy_not_the_first_ack(store: Store) -> None:
    msg_id = _send(store)
    store.record_copy_attempt(msg_id, B1, 1, T0 + 3_000, T0)
    store.record_copy_attempt(msg_id, B2, 1, T0 + 3_500, T0)
    store.set_delivery(msg_id, B1, S, T0 + 1)
    # b1 acked; b2 still tried: the message is delivered, its outbox row stays
    store.set_delivery(msg_id, B1, D, T0 + 2, last=False)
    assert store.set_state(msg_id, D, T0 + 2, keep_outbox=True)
    assert store.get_message(msg_id).state is D  # type: ignore[union-attr]
    assert _pending(store) == [msg_id]
    got = store.deliveries([msg_id])[msg_id]
    assert [(d.device, d.state, d.attempts) for d in got] == [(B1, D, 1), (B2, Q, 1)]
    assert [d.pending for d in got] == [False, True]
    # b2's copy expires: the last one; the message stays delivered, the row ends
    store.set_delivery(msg_id, B2, F, T0 + 3, last=True)
    assert not store.set_state(msg_id, F, T0 + 3)
    assert store.get_message(msg_id).state is D  # type: ignore[union-attr]
    assert _pending(store) == []
    assert [d.state for d in store.deliveries([msg_id])[msg_id]] == [D, F]


def test_a_copys_state_only_moves_forward(store: Store) -> None:
    msg_id = _send(store)
    store.set_delivery(msg_id, B1, D, T0)
    assert store.set_delivery(msg_id, B1, S, T0 + 1).state is D
    assert store.set_delivery(msg_id, B1, F, T0 + 2).state is D
    with pytest.raises(StoreError):
        store.set_delivery(msg_id, B1, MessageState.RECEIVED, T0)


def test_deleting_the_message_deletes_its_delivery_rows(store: Store) -> None:
    msg_id = _send(store)
    store.set_delivery(msg_id, B1, D, T0)
    assert store.deliveries([msg_id])
    store.delete_messages(DM, [msg_id], now_ms=T0 + 1)
    assert store.deliveries([msg_id]) == {}
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM deliveries").fetchone() == (0,)


def test_device_ids_are_sealed(store: Store) -> None:
    msg_id = _send(store)
    store.set_delivery(msg_id, B2, S, T0)
    store.close()
    with sqlite3.connect(store.path) as conn:
        raw = b"".join(
            bytes(c) for row in conn.execute("SELECT * FROM deliveries") for c in row
            if isinstance(c, bytes)
        )  # fmt: skip
    assert B2 not in raw and msg_id not in raw


def test_an_outbox_row_from_before_fan_out_has_no_rows_and_ends_on_delivery(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    shutil.copyfile(FIXTURES / "v4_store.db", path)
    with Store.open(path, key=KEY) as store:
        pending = [bytes.fromhex(m) for m in SUMMARY["outbox"]]
        assert store.deliveries(pending) == {}  # the contact's only device, not tried yet
        queued = pending[0]
        # the node reloads it, sends it to that device; its ack ends the row, as before
        store.record_copy_attempt(queued, b"\xa1" * 16, 1, T0 + 3_000, T0)
        store.set_delivery(queued, b"\xa1" * 16, D, T0 + 1, last=True)
        assert store.set_state(queued, D, T0 + 1)
        assert [e.msg_id for e in store.pending_outbox(T0)] == pending[1:]


def test_a_carbon_is_stored_as_my_own_sent_message_once_and_never_after_deletion(
    store: Store,
) -> None:
    """A message another of my devices sent (a carbon): outgoing, SENT, no outbox row."""
    msg_id = b"\x09" * 16
    got = store.add_own_copy(DM, msg_id, b"\xa2" * 16, "me", "from my laptop", T0, T0 + 5)
    assert got is not None and got.outgoing and got.state is S
    assert _pending(store) == []  # its own device sends it, not this one
    assert store.add_own_copy(DM, msg_id, b"\xa2" * 16, "me", "again", T0, T0 + 6) is None
    store.delete_messages(DM, [msg_id], now_ms=T0 + 7)
    assert store.add_own_copy(DM, msg_id, b"\xa2" * 16, "me", "late", T0, T0 + 8) is None
    assert store.history(DM) == []
