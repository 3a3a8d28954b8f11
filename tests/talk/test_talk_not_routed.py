"""A live frame is never routed: the flood router drops a TALK packet from any source
(an internet transport's injection included) instead of delivering, relaying or carrying it."""

from __future__ import annotations

from meshchat.identity import Identity
from meshchat.router.actions import Drop
from meshchat.router.flood import FloodRouter
from meshchat.talk.wire import LiveFrame, TalkOffer, seal_sound
from meshchat.wire import codec
from meshchat.wire.packet import BROADCAST, Destination, PacketKind, Suite


def test_the_router_drops_talk_packets() -> None:
    me, talker = Identity.generate(), Identity.generate()
    router = FloodRouter(me.node_id, me.public.sign_public)
    router.link_up("lan:1", 0)
    offer = TalkOffer.new()
    body = LiveFrame(offer.talk_id, 0, seal_sound(offer.key, offer.talk_id, 0, b"x")).encode()
    for destination in (Destination.node(me.node_id), BROADCAST):
        packet = codec.build(talker, PacketKind.TALK, destination, Suite.SIGNED, body, 1000, 8)
        for link in ("lan:1", None):
            actions = router.receive(link, codec.encode(packet), 1000)
            assert [type(a) for a in actions] == [Drop]
            assert isinstance(actions[0], Drop) and actions[0].reason == "bad-kind"
