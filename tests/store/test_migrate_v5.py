"""Schema versions 5 and 6 (the causal history) on a store written by the release before it.

``fixtures/v4_store.db`` was written by ``fixtures/make_v4_store.py`` with the schema version 4
code; ``v4_store.json`` records what it held.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from meshchat.store import SCHEMA_VERSION, MessageState, Store

FIXTURES = Path(__file__).parent / "fixtures"
KEY = bytes.fromhex((FIXTURES / "v4_store.key").read_text().strip())
SUMMARY = json.loads((FIXTURES / "v4_store.json").read_text())
DM = "dm:" + "a1" * 16
T0 = 1_760_000_000_000


@pytest.fixture
def old_store(tmp_path: Path) -> Path:
    path = tmp_path / "meshchat.db"
    shutil.copyfile(FIXTURES / "v4_store.db", path)
    with sqlite3.connect(path) as conn:
        version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    assert version == ("4",)
    return path


def test_the_fixture_is_version_4_and_this_code_writes_6_or_later() -> None:
    assert SUMMARY["schema_version"] == 4
    assert SCHEMA_VERSION >= 6


def test_old_messages_keep_their_order_and_contents(old_store: Path) -> None:
    with Store.open(old_store, key=KEY) as store:
        for conversation, expected in SUMMARY["conversations"].items():
            got = [
                [m.msg_id.hex(), m.text, m.outgoing, m.state.value]
                for m in store.history(conversation)
            ]
            assert got == expected, conversation
            for message in store.history(conversation):
                assert message.parents == () and message.loose == ()
                assert message.order_ms is not None and not message.late
                assert message.missing == 0
        assert {c.name for c in store.list_contacts()} == {"alice", "carol"}
        assert {c.name for c in store.list_channels()} == {"#mesh", "#crew"}


def test_only_the_newest_old_message_is_a_head(old_store: Path) -> None:
    with Store.open(old_store, key=KEY) as store:
        for conversation, expected in SUMMARY["conversations"].items():
            assert store.heads(conversation) == (bytes.fromhex(expected[-1][0]),)


def test_a_new_message_names_the_newest_old_one_and_sorts_after_all(old_store: Path) -> None:
    with Store.open(old_store, key=KEY) as store:
        newest_old = bytes.fromhex(SUMMARY["conversations"][DM][-1][0])
        parents = store.heads(DM)
        sent = store.add_outgoing(
            DM, b"\x77" * 16, b"\xa1" * 16, b"\x01" * 16, "me", "back", T0 + 20_000,
            T0 + 3_600_000, parents=parents,
        )  # fmt: skip
        assert sent.parents == (newest_old,)
        reply = store.add_incoming(
            DM, b"\x78" * 16, b"\xa1" * 16, "alice", "ok", T0 + 10, T0 + 21_000,
            parents=(sent.msg_id,),
        )  # fmt: skip
        assert reply is not None and not reply.late
        history = store.history(DM)
        assert [m.msg_id for m in history[-2:]] == [sent.msg_id, reply.msg_id]
        assert [m.text for m in history[:4]] == [row[1] for row in SUMMARY["conversations"][DM]]
        assert store.heads(DM) == (reply.msg_id,)


def test_the_outbox_survives_and_keeps_its_rows(old_store: Path) -> None:
    with Store.open(old_store, key=KEY) as store:
        pending = store.pending_outbox(T0)
        assert [e.msg_id.hex() for e in pending] == SUMMARY["outbox"]
        assert all(e.parents == () and e.loose == () for e in pending)
        queued = bytes.fromhex(SUMMARY["outbox"][0])
        message = store.get_message(queued)
        assert message is not None and message.state is MessageState.QUEUED
        assert store.set_state(queued, MessageState.DELIVERED, T0 + 50_000)
        assert [e.msg_id.hex() for e in store.pending_outbox(T0)] == SUMMARY["outbox"][1:]


def test_the_migrated_store_reopens_at_the_current_version(old_store: Path) -> None:
    with Store.open(old_store, key=KEY) as store:
        before = store.history(DM)
    with sqlite3.connect(old_store) as conn:
        version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert version == (str(SCHEMA_VERSION),)
    assert {"links", "tombstones"} <= tables
    with Store.open(old_store, key=KEY) as store:
        assert store.history(DM) == before
