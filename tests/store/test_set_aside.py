"""State that cannot be decoded is set aside with its reason, never overwritten."""

from __future__ import annotations

from pathlib import Path

from meshchat.errors import StoreError, StoreReason
from meshchat.identity import Identity
from meshchat.node import Node
from meshchat.store import Store
from meshchat.transports.memory import MemoryHub

from .helpers import KEY


def test_set_aside_keeps_each_blob_and_its_reason(store: Store) -> None:
    store.put_state("session", b"peer", b"garbage one")
    assert store.set_aside_state("session", b"peer", "did not decode", 5)
    assert store.get_state("session", b"peer") is None
    store.put_state("session", b"peer", b"garbage two")
    assert store.set_aside_state("session", b"peer", "did not decode either", 6)
    aside = store.set_aside()
    assert [(a.blob, a.reason, a.set_ms) for a in aside] == [
        (b"garbage one", "did not decode", 5),
        (b"garbage two", "did not decode either", 6),
    ]
    assert not store.set_aside_state("session", b"nobody", "x", 7)


def test_bad_values_and_damaged_rows_say_which(store: Store) -> None:
    try:
        store.put_state("session", "not bytes", b"")  # type: ignore[arg-type]
    except StoreError as exc:
        assert exc.reason is StoreReason.BAD_VALUE and exc.field == "state key"
    else:
        raise AssertionError("a str key was accepted")
    store.close()
    try:
        store.list_contacts()
    except StoreError as exc:
        assert exc.reason is StoreReason.CLOSED
    else:
        raise AssertionError("a closed store answered")


async def test_a_node_sets_aside_an_unreadable_session_record(tmp_path: Path) -> None:
    path = tmp_path / "n.db"
    identity = Identity.generate()
    with Store.open(path, key=KEY) as store:
        store.put_state("session", b"\x07" * 16, b"\xff not a session record")
    store = Store.open(path, key=KEY)
    node = Node(identity, "n", store, [MemoryHub().transport(identity.public)])
    await node.start()
    await node.stop()
    aside = store.set_aside()
    store.close()
    assert [(a.kind, a.key, a.blob) for a in aside] == [
        ("session", b"\x07" * 16, b"\xff not a session record")
    ]
    assert "could not be decoded" in aside[0].reason
