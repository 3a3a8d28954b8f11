"""A replayed key-agreement (X3DH initial) message starts no second session.

Without one-time prekeys, an initial message stays valid for as long as the recipient keeps
its signed prekey. The recipient remembers the ephemeral key of every initial message per
prekey (in its stored state), so a replay is refused even when the session it started is gone.
"""

from __future__ import annotations

from sealed_mesh import Capture, chain, link, rejected, texts, transmitted

from meshchat.events import MessageReceived, SessionUpdated
from meshchat.router import RouterConfig
from meshchat.wire.packet import PacketKind

HOUR_MS = 3_600_000


def _initial_frame(mesh, capture: Capture) -> bytes:  # type: ignore[no-untyped-def]
    bob = mesh.engines["bob"]
    for frame, packet in zip(capture.frames, capture.packets(), strict=True):
        source = bob.direct.book.source_of(packet.destination.value)
        if packet.kind is PacketKind.MESSAGE and source is not None and source.kind == "prekey":
            return frame
    raise AssertionError("no initial message captured")


def test_replayed_initial_message_rejected() -> None:
    # Routers that remember ids for an hour only (replay_horizon off): the recipient's own
    # defence must hold even where routers forgot.
    mesh = chain("alice", "relay", "bob", config=RouterConfig(replay_horizon=False))
    capture = Capture(mesh, "bob")
    mesh.send_direct("alice", "bob", "let us talk")
    mesh.run(2_000)
    mesh.send_direct("bob", "alice", "sure")
    mesh.send_direct("alice", "bob", "good")
    mesh.run(2_000)
    capture.on = False
    initial = _initial_frame(mesh, capture)
    before = mesh.state("bob")

    mesh.run(2 * HOUR_MS)
    mesh.tick()  # the routers forget the packet id
    out = mesh.inject("bob", initial, link("bob", "relay"))
    assert rejected(mesh, "bob") == ["stale or replayed packet"]
    assert not any(isinstance(o, MessageReceived | SessionUpdated) for o in out)
    assert [p.kind for p in transmitted(out)].count(PacketKind.ACK) == 0
    assert mesh.state("bob") == before
    assert texts(mesh, "bob", "alice") == ["let us talk", "good"]


def test_replayed_initial_message_rejected_after_the_session_is_lost() -> None:
    mesh = chain("alice", "relay", "bob")
    capture = Capture(mesh, "bob")
    mesh.send_direct("alice", "bob", "let us talk")
    mesh.run(2_000)
    capture.on = False
    initial = _initial_frame(mesh, capture)
    # Bob's session with Alice is lost (say its record was damaged); his prekeys are kept.
    alice_id = mesh.engines["alice"].identity.node_id
    state = {k: v for k, v in mesh.state("bob").items() if k != alice_id}
    mesh.restart("bob", state)
    assert alice_id not in mesh.engines["bob"].direct.records

    mesh.run(2 * HOUR_MS)
    mesh.tick()
    out = mesh.inject("bob", initial, link("bob", "relay"))
    assert rejected(mesh, "bob") == ["replayed key agreement"]
    assert not any(isinstance(o, MessageReceived | SessionUpdated) for o in out)
    assert [p.kind for p in transmitted(out)].count(PacketKind.ACK) == 0
    assert alice_id not in mesh.engines["bob"].direct.records
    assert texts(mesh, "bob", "alice") == ["let us talk"]
