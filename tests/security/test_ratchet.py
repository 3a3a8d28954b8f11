"""The Double Ratchet under loss, reordering and restarts: every message decrypts exactly once."""

from __future__ import annotations

import random
from collections import Counter

from sealed_mesh import chain, delivered, rejected, texts

from meshchat.crypto.sessions import MAX_SKIP
from meshchat.events import MessageReceived, MessageRejected, SessionUpdated
from meshchat.router.actions import Transmit
from meshchat.wire import codec


def test_a_thousand_messages_with_loss_and_reordering_decrypt_once_each() -> None:
    mesh = chain("alice", "relay", "bob", seed=7, jitter_ms=400)
    loss = random.Random(1)
    lost = Counter[str]()

    def lossy(node: str, link: str, frame: bytes) -> bool:
        if loss.random() < 0.2:
            lost[node] += 1
            return False
        return True

    mesh.filter = lossy
    sent: list[bytes] = []
    replies: list[bytes] = []
    for burst in range(20):
        for _ in range(50):
            sent.append(mesh.send_direct("alice", "bob", f"m{len(sent)}"))
        if burst % 4 == 3:  # bob answers now and then: the DH ratchet turns
            replies.append(mesh.send_direct("bob", "alice", f"r{len(replies)}"))
        mesh.run(1_000)
    # Retries back off to five minutes apart: run until every ack is in (at most six hours).
    deadline = mesh.now_ms + 6 * 3_600_000
    while len(delivered(mesh, "alice")) < len(sent) and mesh.now_ms < deadline:
        mesh.run(60_000)

    received = Counter(r.msg_id for r in mesh.events("bob", MessageReceived))
    assert len(sent) == 1000
    assert [m for m in sent if received[m] != 1] == []
    assert sorted(texts(mesh, "bob", "alice"), key=lambda t: int(t[1:])) == [
        f"m{i}" for i in range(1000)
    ]
    assert set(delivered(mesh, "alice")) == set(sent)
    assert set(delivered(mesh, "bob")) == set(replies)
    assert sorted(texts(mesh, "alice", "bob")) == sorted(f"r{i}" for i in range(len(replies)))
    # Losses were real and the only rejections are late copies of retries already acked.
    assert sum(lost.values()) > 500
    assert set(rejected(mesh, "bob")) <= {"stale or replayed packet"}
    # Retries re-send the same ratchet message: the skipped-key window was never in play.
    assert MAX_SKIP == 1000


def test_restart_mid_conversation_from_stored_state() -> None:
    mesh = chain("alice", "relay", "bob")
    for i in range(3):
        mesh.send_direct("alice", "bob", f"before {i}")
        mesh.send_direct("bob", "alice", f"reply {i}")
        mesh.run(3_000)
    # Bob's node stops and starts again from what its store holds.
    stored = mesh.state("bob")
    assert mesh.engines["alice"].identity.node_id in stored
    mesh.restart("bob", stored)
    mesh.send_direct("alice", "bob", "after bob restarted")
    mesh.run(3_000)
    mesh.send_direct("bob", "alice", "bob is back")
    mesh.run(3_000)
    # Then Alice restarts with a message still in her outbox.
    mesh.disconnect("alice", "relay")
    pending = mesh.send_direct("alice", "bob", "queued over a restart")
    before_restart = {
        codec.parse(frame).packet_id
        for node in ("relay", "bob")
        for out in mesh.outputs[node]
        if isinstance(out, Transmit)
        for frame in [out.frame]
    }
    mesh.restart("alice")
    mesh.connect("alice", "relay")
    mesh.run(10_000)
    mesh.send_direct("bob", "alice", "and on")
    mesh.run(3_000)
    assert texts(mesh, "bob", "alice") == [
        "before 0",
        "before 1",
        "before 2",
        "after bob restarted",
        "queued over a restart",
    ]
    assert texts(mesh, "alice", "bob") == ["reply 0", "reply 1", "reply 2", "bob is back", "and on"]
    assert pending in delivered(mesh, "alice")
    # The restarted router has forgotten which packets it saw, so the relay's re-offer of the
    # acks it carries reaches Alice again; their keys are spent, so they are rejected (and
    # nothing else is).
    assert rejected(mesh, "bob") == []
    again = [r.packet_id for r in mesh.events("alice", MessageRejected)]
    assert set(again) <= before_restart


def test_state_is_stored_before_the_packet_that_needs_it() -> None:
    mesh = chain("alice", "bob")
    mesh.send_direct("alice", "bob", "one")
    mesh.run(3_000)
    for name in ("alice", "bob"):
        kinds = [type(o).__name__ for o in mesh.outputs[name]]
        # Each transmission of a sealed packet follows the state update it depends on.
        first_update = kinds.index("SessionUpdated")
        assert first_update < kinds.index("Transmit")
    bob = [type(o).__name__ for o in mesh.outputs["bob"]]
    got = bob.index("MessageReceived")
    assert got < bob.index("SessionUpdated", got) < bob.index("Transmit", got)
    assert all(o.blob for o in mesh.events("bob", SessionUpdated))
