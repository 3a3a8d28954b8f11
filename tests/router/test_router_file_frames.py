"""File frames (kind FILE) at the router: their own per-link allowance, relayed, never carried."""

from __future__ import annotations

import os

from meshchat.identity import Identity
from meshchat.router.actions import Carry, Deliver, Drop, Transmit
from meshchat.router.flood import FloodRouter, RouterConfig
from meshchat.wire import codec
from meshchat.wire.packet import Destination, PacketKind, Suite


def _router(**config: object) -> tuple[FloodRouter, Identity]:
    me = Identity.generate()
    router = FloodRouter(me.node_id, me.public.sign_public, config=RouterConfig(**config))  # type: ignore[arg-type]
    router.link_up("l1", 0)
    router.link_up("l2", 0)
    return router, me


def _frame(kind: PacketKind, to: bytes, now: int = 1_000) -> bytes:
    sender = Identity.generate()
    packet = codec.build(sender, kind, Destination.node(to), Suite.SIGNED, os.urandom(64), now, 4)
    return codec.encode(packet)


def test_file_frames_do_not_spend_the_links_allowance_for_text() -> None:
    router, me = _router(link_rate=5.0, link_burst=5.0, file_rate=1000.0)
    for _ in range(200):  # a transfer's pieces on link l1
        out = router.receive("l1", _frame(PacketKind.FILE, me.node_id), 1_000)
        assert any(isinstance(a, Deliver) for a in out), out
    # text on the same link is still taken
    out = router.receive("l1", _frame(PacketKind.MESSAGE, me.node_id), 1_000)
    assert any(isinstance(a, Deliver) for a in out), out


def test_file_frames_have_an_allowance_of_their_own() -> None:
    router, me = _router(file_rate=10.0)
    taken = 0
    for _ in range(50):
        out = router.receive("l1", _frame(PacketKind.FILE, me.node_id), 1_000)
        taken += any(isinstance(a, Deliver) for a in out)
        assert all(a.reason == "rate-limited" for a in out if isinstance(a, Drop))
    assert taken == 20  # the burst (twice the rate), nothing more at one instant


def test_a_file_frame_for_another_node_is_relayed_but_never_carried() -> None:
    router, _ = _router()
    out = router.receive("l1", _frame(PacketKind.FILE, os.urandom(16)), 1_000)
    out += router.tick(10_000)
    assert not any(isinstance(a, Carry) for a in out)
    assert any(isinstance(a, Transmit) and a.links == ("l2",) for a in out), out
    # while a direct message for another node is carried
    message = router.receive("l1", _frame(PacketKind.MESSAGE, os.urandom(16)), 1_000)
    assert any(isinstance(a, Carry) for a in message)
