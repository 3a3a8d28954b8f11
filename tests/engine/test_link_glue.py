"""The engine's link glue on its own: refusals of bad requests are bounded."""

from __future__ import annotations

from meshchat.account.link import LinkRequest, RefuseReason, Transcript
from meshchat.engine import Engine
from meshchat.engine._link import MAX_REFUSALS
from meshchat.errors import LinkReason
from meshchat.events import LinkProgress
from meshchat.identity import Identity


def test_strangers_bad_requests_get_a_bounded_number_of_refusals() -> None:
    engine = Engine(Identity.generate(), "alice")
    inviter = engine.link.start(0)
    progress = []
    for i in range(3 * MAX_REFUSALS):
        stranger = Identity.generate().public
        forged, _ = LinkRequest.make(Transcript(b"w" * 9, inviter.me, stranger), "x", b"n" * 32)
        out = engine.link.on_blob(stranger, forged.encode(), 1000 + i)
        progress += [o for o in out if isinstance(o, LinkProgress)]
    refusals = [item for item in engine.outbox.items() if item.is_control]
    assert len(refusals) == MAX_REFUSALS
    assert progress[-1].state == "ended" and progress[-1].reason == "withdrawn"
    # a minute later, refusals go out again (one per request)
    stranger = Identity.generate().public
    forged, _ = LinkRequest.make(Transcript(b"w" * 9, inviter.me, stranger), "x", b"n" * 32)
    engine.link.on_blob(stranger, forged.encode(), 70_000)
    assert len([item for item in engine.outbox.items() if item.is_control]) == MAX_REFUSALS + 1


def test_refuse_reasons_say_what_happened() -> None:
    for reason, told in [
        (LinkReason.USED, LinkReason.USED),
        (LinkReason.EXPIRED, LinkReason.EXPIRED),
        (LinkReason.BAD_MAC, LinkReason.BAD_MAC),
        (LinkReason.WITHDRAWN, LinkReason.BAD_MAC),
        (LinkReason.MISMATCH, LinkReason.DECLINED),
        (LinkReason.OUT_OF_ORDER, LinkReason.OUT_OF_ORDER),
    ]:
        assert RefuseReason.of(reason).link_reason() is told
