"""File bodies between neighbours: one link frame, authenticated by the link, not signed.

A file body for a node this node has a link to goes on that link alone, as a link file frame
(tag byte then the body: no packet header, no signature); the receiver takes the sender to
be the link's peer (proven by the link handshake, every frame sealed by the link), so a
neighbour can speak only as itself. A body for a node reached only through relays is still a
signed FILE packet.
"""

from __future__ import annotations

import os

from meshchat.engine import Engine
from meshchat.engine._files import LINK_FILE_TAG, is_file_frame
from meshchat.events import FileArrived
from meshchat.identity import Identity
from meshchat.router.actions import Drop, Transmit
from meshchat.router.flood import FloodRouter, RouterConfig
from meshchat.wire import codec
from meshchat.wire.packet import PacketKind

BODY = os.urandom(300)


def _pair() -> tuple[Engine, Engine]:
    a, b = Engine(Identity.generate(), "a"), Engine(Identity.generate(), "b")
    a.link_up("ab", 0, b.identity.node_id)
    b.link_up("ba", 0, a.identity.node_id)
    a.link_up("ax", 0, os.urandom(16))  # a second neighbour of a
    return a, b


def test_a_body_for_a_neighbour_is_one_unsigned_frame_on_its_link_only() -> None:
    a, b = _pair()
    out = a.files.send(b.identity.node_id, BODY, 1_000)
    assert len(out) == 1 and isinstance(out[0], Transmit)
    assert out[0].links == ("ab",)
    frame = out[0].frame
    assert frame == LINK_FILE_TAG + BODY and is_file_frame(frame)
    arrived = b.receive("ba", frame, 1_000)
    assert arrived == [FileArrived(a.identity.node_id, BODY, "ba")]


def test_a_body_for_a_node_without_a_link_is_a_signed_packet_on_every_link() -> None:
    a, _ = _pair()
    far = os.urandom(16)
    out = a.files.send(far, BODY, 1_000)
    assert len(out) == 1 and isinstance(out[0], Transmit)
    assert set(out[0].links) == {"ab", "ax"}
    packet = codec.decode(out[0].frame, 1_000)
    assert packet.kind is PacketKind.FILE and is_file_frame(out[0].frame)


def test_the_sender_is_the_links_peer_whatever_the_frame_says() -> None:
    a, b = _pair()
    c = Identity.generate()
    b.link_up("bc", 0, c.node_id)
    frame = LINK_FILE_TAG + BODY  # nothing in the frame names a sender
    assert b.receive("bc", frame, 1_000) == [FileArrived(c.node_id, BODY, "bc")]
    assert b.receive("ba", frame, 1_000) == [FileArrived(a.identity.node_id, BODY, "ba")]


def test_link_file_frames_off_a_link_empty_or_after_it_went_are_dropped() -> None:
    a, b = _pair()
    for link, frame in [
        (None, LINK_FILE_TAG + BODY),  # from an internet source: no link to vouch for it
        ("ba", LINK_FILE_TAG),  # no body
        ("zz", LINK_FILE_TAG + BODY),  # a link never up
    ]:
        out = b.receive(link, frame, 1_000)
        assert out and all(isinstance(o, Drop) for o in out), (link, out)
    b.link_down("ba", 2_000)
    out = b.receive("ba", LINK_FILE_TAG + BODY, 2_000)
    assert out and all(isinstance(o, Drop) for o in out)
    # and a sender whose link went down falls back to signed packets
    a.link_down("ab", 2_000)
    sent = a.files.send(b.identity.node_id, BODY, 2_000)
    assert isinstance(sent[0], Transmit) and sent[0].frame[:1] != LINK_FILE_TAG


def test_link_file_frames_spend_the_links_file_allowance() -> None:
    a = Engine(Identity.generate(), "a")
    me = Identity.generate()
    router = FloodRouter(me.node_id, me.public.sign_public, config=RouterConfig(file_rate=10.0))
    b = Engine(me, "b", router=router)
    b.link_up("ba", 0, a.identity.node_id)
    results = [b.receive("ba", LINK_FILE_TAG + BODY, 1_000) for _ in range(50)]
    taken = sum(isinstance(r[0], FileArrived) for r in results)
    assert taken == 20  # the burst (twice the rate), nothing more at one instant
    assert all(r[0].reason == "rate-limited" for r in results if isinstance(r[0], Drop))


def test_of_several_links_to_a_neighbour_the_fastest_medium_carries_its_bodies() -> None:
    a, b = Engine(Identity.generate(), "a"), Identity.generate()
    a.link_up("lan:1", 0, b.node_id)
    a.link_up("ble:1", 0, b.node_id)  # came up last, but slower
    sent = a.files.send(b.node_id, BODY, 1_000)
    assert isinstance(sent[0], Transmit) and sent[0].links == ("lan:1",)
    a.link_down("lan:1", 2_000)
    sent = a.files.send(b.node_id, BODY, 2_000)
    assert isinstance(sent[0], Transmit) and sent[0].links == ("ble:1",)
    a.link_up("lan:2", 3_000, b.node_id)
    sent = a.files.send(b.node_id, BODY, 3_000)
    assert isinstance(sent[0], Transmit) and sent[0].links == ("lan:2",)


def test_an_internet_gateway_link_vouches_for_no_one() -> None:
    """The one link of an internet transport (relay, DHT) carries frames from anyone; its
    peer is a stand-in, so no link file frame is taken from it or sent on it."""
    a, b = Engine(Identity.generate(), "a"), Engine(Identity.generate(), "b")
    stand_in = os.urandom(16)
    b.link_up("relay:example.org:1883", 0, stand_in)
    out = b.receive("relay:example.org:1883", LINK_FILE_TAG + BODY, 1_000)
    assert out and all(isinstance(o, Drop) for o in out), out
    a.link_up("dht:4000", 0, stand_in)
    sent = a.files.send(stand_in, BODY, 1_000)
    assert isinstance(sent[0], Transmit) and sent[0].frame[:1] != LINK_FILE_TAG
