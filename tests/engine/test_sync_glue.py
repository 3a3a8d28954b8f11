"""Sync and erasure blobs between real engines on the in-process mesh: only my own devices
are heard, from anyone else a sync blob never becomes an event (a sync peer that is not one
of my devices)."""

from __future__ import annotations

import pytest
from mesh import Mesh
from test_accounts_mesh import link, pair, pub

from meshchat.errors import SyncError, SyncReason
from meshchat.events import ErasedArrived, MessageRejected, SyncArrived
from meshchat.sync.wire import Erased, sync_blob


def test_a_sync_peer_that_is_not_one_of_my_devices_is_refused() -> None:
    mesh: Mesh = pair()
    link(mesh)
    mesh.run(20_000)
    a1 = pub(mesh, "a1")
    for sender in ("bob", "a2"):  # bob is a contact, a2 my other device
        engine = mesh.engines[sender]
        mesh._handle(
            sender, engine.account_glue.send(a1, sync_blob(b"from " + sender.encode()), mesh.now_ms)
        )
    mesh.run(20_000)
    arrived = mesh.events("a1", SyncArrived)
    assert [(e.device, e.data) for e in arrived] == [(pub(mesh, "a2"), b"from a2")]
    reasons = [r.reason for r in mesh.events("a1", MessageRejected)]
    assert any("not one of mine" in r for r in reasons)


def test_the_glue_never_sends_sync_to_a_device_that_is_not_mine() -> None:
    mesh = pair()
    link(mesh)
    mesh.run(20_000)
    a1 = mesh.engines["a1"]
    with pytest.raises(SyncError) as caught:
        a1.sync.send(pub(mesh, "bob"), b"x", mesh.now_ms)
    assert caught.value.reason is SyncReason.NOT_MY_DEVICE


def test_a_deletion_is_told_to_my_other_devices_only() -> None:
    mesh = pair()
    link(mesh)
    mesh.run(20_000)
    a1 = mesh.engines["a1"]
    ids = (b"\x01" * 16, b"\x02" * 16)
    mesh._handle("a1", a1.sync.erased("dm:" + "00" * 16, ids, mesh.now_ms))
    mesh.run(20_000)
    (told,) = mesh.events("a2", ErasedArrived)
    assert told.device == pub(mesh, "a1") and told.msg_ids == ids
    assert mesh.events("bob", ErasedArrived) == []
    # a forged erasure from bob to a2 is refused
    bob = mesh.engines["bob"]
    blob = Erased("dm:" + "00" * 16, (b"\x03" * 16,)).encode()
    mesh._handle("bob", bob.account_glue.send(pub(mesh, "a2"), blob, mesh.now_ms))
    mesh.run(20_000)
    assert len(mesh.events("a2", ErasedArrived)) == 1
