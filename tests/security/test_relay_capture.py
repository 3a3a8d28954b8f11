"""A relay's capture of a sealed conversation names neither party, and captures an epoch apart
cannot be linked by any header field."""

from __future__ import annotations

from sealed_mesh import Capture, chain, texts

from meshchat.crypto.padding import BUCKETS
from meshchat.crypto.tags import EPOCH_MS
from meshchat.wire.packet import PacketKind, Suite


def _identifiers(mesh, *names: str) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    found = {}
    for name in names:
        public = mesh.engines[name].identity.public
        found[f"{name} node id"] = public.node_id
        found[f"{name} signing key"] = public.sign_public
        found[f"{name} box key"] = public.box_public
    return found


def _converse(mesh, rounds: int) -> None:  # type: ignore[no-untyped-def]
    for i in range(rounds):
        mesh.send_direct("alice", "bob", f"alice {i}")
        mesh.run(2_000)
        mesh.send_direct("bob", "alice", f"bob {i}")
        mesh.run(2_000)


def test_capture_reveals_no_sender_and_no_recipient_id() -> None:
    mesh = chain("alice", "relay", "bob")
    capture = Capture(mesh, "relay")
    _converse(mesh, 5)
    assert texts(mesh, "bob", "alice") == [f"alice {i}" for i in range(5)]
    assert texts(mesh, "alice", "bob") == [f"bob {i}" for i in range(5)]
    packets = capture.packets()
    assert len(packets) >= 20  # ten messages and ten acks went through the relay
    assert {p.suite for p in packets} == {Suite.RATCHET}
    assert {p.kind for p in packets} == {PacketKind.MESSAGE, PacketKind.ACK}
    for what, value in _identifiers(mesh, "alice", "bob").items():
        leaks = [i for i, frame in enumerate(capture.frames) if value in frame]
        assert leaks == [], f"{what} appears in frames {leaks}"
    # Every payload is one of a few sizes, whatever the text.
    assert {len(p.payload) for p in packets} <= set(BUCKETS)
    # Every packet has its own origin key: the signatures link no two packets.
    assert len({p.origin for p in packets}) == len(packets)


def test_captures_an_epoch_apart_share_no_header_field_value() -> None:
    mesh = chain("alice", "relay", "bob")
    _converse(mesh, 1)  # the session exists; later messages use pair tags
    first = Capture(mesh, "relay")
    _converse(mesh, 3)
    first.on = False
    mesh.run(EPOCH_MS)  # an hour later, the same two people talk on
    second = Capture(mesh, "relay")
    _converse(mesh, 3)
    a, b = first.packets(), second.packets()
    assert len(a) >= 12 and len(b) >= 12
    for field in ("packet_id", "origin", "destination", "signature"):
        shared = {getattr(p, field) for p in a} & {getattr(p, field) for p in b}
        assert shared == set(), f"{field} links the captures"
    # Nor do the cleartext ack hashes / tokens at the start of the payloads.
    assert {p.payload[:16] for p in a}.isdisjoint({p.payload[:16] for p in b})
    # Within one epoch, a direction of a pair uses one tag: it is the epoch that rotates it.
    assert len({p.destination for p in a}) == 2
