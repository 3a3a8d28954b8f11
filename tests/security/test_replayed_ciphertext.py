"""A replayed sealed message is not shown again, not acknowledged, and leaves the ratchet as it
was; the conversation goes on afterwards."""

from __future__ import annotations

from sealed_mesh import Capture, chain, link, rejected, texts, transmitted

from meshchat.events import MessageReceived, PrekeysUpdated, SessionUpdated
from meshchat.router import RouterConfig
from meshchat.router.actions import Drop
from meshchat.wire.packet import PacketKind

HOUR_MS = 3_600_000


def _message_frames(capture: Capture) -> list[bytes]:
    return [
        f
        for f, p in zip(capture.frames, capture.packets(), strict=True)
        if p.kind is PacketKind.MESSAGE
    ]


#: routers that remember ids for an hour only: the recipient's own defence must hold even where
#: routers forgot (a full dedupe bucket, a save lost in a crash); see test_router_* for theirs
FORGETFUL = RouterConfig(replay_horizon=False)


def test_router_still_knows_a_replayed_message_two_hours_later() -> None:
    mesh = chain("alice", "relay", "bob")
    capture = Capture(mesh, "bob")
    mesh.send_direct("alice", "bob", "pay 10 coins")
    mesh.run(2_000)
    capture.on = False
    [frame] = _message_frames(capture)
    mesh.run(2 * HOUR_MS)
    mesh.tick()
    out = mesh.inject("bob", frame, link("bob", "relay"))
    assert [o.reason for o in out if isinstance(o, Drop)] == ["duplicate"]
    assert texts(mesh, "bob", "alice") == ["pay 10 coins"]


def test_replayed_message_rejected_without_ack_and_without_state_change() -> None:
    mesh = chain("alice", "relay", "bob", config=FORGETFUL)
    mesh.send_direct("alice", "bob", "hello")
    mesh.run(2_000)
    capture = Capture(mesh, "bob")
    mesh.send_direct("alice", "bob", "pay 10 coins")
    mesh.run(2_000)
    capture.on = False
    [frame] = _message_frames(capture)
    assert texts(mesh, "bob", "alice") == ["hello", "pay 10 coins"]

    # At once: the router knows the packet id.
    out = mesh.inject("bob", frame, link("bob", "relay"))
    assert [o.reason for o in out if isinstance(o, Drop)] == ["duplicate"]

    # Two hours later the router has forgotten it (its seen set keeps an hour); the engine
    # has not.
    mesh.run(2 * HOUR_MS)
    mesh.tick()
    out = mesh.inject("bob", frame, link("bob", "relay"))
    assert [r for r in rejected(mesh, "bob")] == ["stale or replayed packet"]
    assert not any(isinstance(o, MessageReceived | SessionUpdated | PrekeysUpdated) for o in out)
    assert [p.kind for p in transmitted(out)].count(PacketKind.ACK) == 0

    # A restart does not make it new: what recognises it is in the stored state.
    mesh.restart("bob")
    mesh.run(HOUR_MS)
    mesh.tick()
    out = mesh.inject("bob", frame, link("bob", "relay"))
    assert rejected(mesh, "bob") == ["stale or replayed packet"] * 2
    assert not any(isinstance(o, MessageReceived) for o in out)
    assert [p.kind for p in transmitted(out)].count(PacketKind.ACK) == 0

    # The ratchet is intact both ways.
    mesh.send_direct("alice", "bob", "still here")
    mesh.run(2_000)
    mesh.send_direct("bob", "alice", "so am I")
    mesh.run(2_000)
    assert texts(mesh, "bob", "alice") == ["hello", "pay 10 coins", "still here"]
    assert texts(mesh, "alice", "bob") == ["so am I"]


def test_retry_of_a_received_message_is_acknowledged_but_not_shown_twice() -> None:
    mesh = chain("alice", "relay", "bob")
    mesh.send_direct("alice", "bob", "hello")
    mesh.run(2_000)
    # Bob's acks are lost for a while: Alice retries the same message.
    mesh.filter = lambda node, link, frame: node != "alice"
    msg_id = mesh.send_direct("alice", "bob", "are you there?")
    mesh.run(20_000)
    mesh.filter = None
    mesh.run(60_000)
    received = [r for r in mesh.events("bob", MessageReceived) if r.msg_id == msg_id]
    assert len(received) == 1
    acks = [p for o in mesh.outputs["bob"] for p in transmitted([o]) if p.kind is PacketKind.ACK]
    assert len(acks) >= 4  # every retry was acknowledged again
    assert rejected(mesh, "bob") == []
    assert not mesh.engines["alice"].outbox.copies(msg_id)
