"""The listener: talks offered, frames opened and ordered, and what it refuses."""

from __future__ import annotations

import os

from meshchat.talk.listen import Ended, Listener, Started
from meshchat.talk.params import IDLE_MS, MAX_TALKS, PENDING_FRAMES, PENDING_MS
from meshchat.talk.wire import LiveFrame, TalkOffer, seal_sound

ALICE = b"a" * 16
MALLORY = b"m" * 16


def frame(offer: TalkOffer, seq: int, sound: bytes = b"opus", *, end: bool = False) -> LiveFrame:
    sealed = seal_sound(offer.key, offer.talk_id, seq, sound, end=end)
    return LiveFrame(offer.talk_id, seq, sealed, end)


def test_a_talk_plays_in_order_and_ends_with_its_end_frame() -> None:
    listener, offer = Listener(), TalkOffer.new()
    (started,) = listener.offer(ALICE, offer, 0)
    assert isinstance(started, Started)
    for seq, at in ((0, 0), (2, 41), (1, 42)):
        listener.frame(ALICE, frame(offer, seq, bytes([seq])), at)
    listener.frame(ALICE, frame(offer, 3, b"", end=True), 60)
    assert [(o.seq, o.opus) for o in listener.pop(200)] == [
        (0, b"\x00"), (1, b"\x01"), (2, b"\x02"), (3, b""),
    ]  # fmt: skip
    (ended,) = listener.expire(200)
    assert isinstance(ended, Ended) and ended.why == "ended"
    assert listener.talks == {}


def test_frames_that_overtook_their_offer_wait_for_it() -> None:
    listener, offer = Listener(), TalkOffer.new()
    assert listener.frame(ALICE, frame(offer, 0), 0) == "pending"
    listener.offer(ALICE, offer, 5)
    assert [o.seq for o in listener.pop(100)] == [0]


def test_pending_frames_are_bounded_and_expire() -> None:
    listener = Listener()
    for _ in range(PENDING_FRAMES + 10):
        listener.frame(MALLORY, frame(TalkOffer.new(), 0), 0)
    assert len(listener._pending) == PENDING_FRAMES
    listener.expire(PENDING_MS + 1)
    assert len(listener._pending) == 0
    assert listener.counters["drop.never-offered"] == PENDING_FRAMES + 10


def test_frames_from_another_device_or_under_another_key_are_refused() -> None:
    listener, offer = Listener(), TalkOffer.new()
    listener.offer(ALICE, offer, 0)
    assert listener.frame(MALLORY, frame(offer, 0), 1) == "other-device"
    forged = TalkOffer(offer.talk_id, os.urandom(32))
    assert listener.frame(ALICE, frame(forged, 0), 1) == "does-not-open"
    assert listener.pop(1000) == []


def test_a_replayed_talk_or_offer_is_refused() -> None:
    listener, offer = Listener(), TalkOffer.new()
    listener.offer(ALICE, offer, 0)
    listener.frame(ALICE, frame(offer, 0, end=True), 0)
    listener.pop(100)
    assert listener.expire(100)
    assert listener.offer(ALICE, offer, 200) == []  # the same offer again
    assert listener.frame(ALICE, frame(offer, 0), 200) == "ended"
    assert listener.talks == {}


def test_at_most_a_few_talks_at_once_and_silent_ones_end() -> None:
    listener = Listener()
    for n in range(MAX_TALKS):
        assert listener.offer(bytes([n]) * 16, TalkOffer.new(), 0)
    assert listener.offer(ALICE, TalkOffer.new(), 0) == []
    assert listener.counters["offer.too-many"] == 1
    ended = listener.expire(IDLE_MS)
    assert len(ended) == MAX_TALKS and {e.why for e in ended} == {"silent"}
    assert listener.offer(ALICE, TalkOffer.new(), IDLE_MS)


def test_a_device_talks_once_at_a_time_its_new_offer_ends_the_earlier() -> None:
    listener, first, second = Listener(), TalkOffer.new(), TalkOffer.new()
    listener.offer(ALICE, first, 0)
    out = listener.offer(ALICE, second, 10)
    assert [type(o).__name__ for o in out] == ["Ended", "Started"]
    assert out[0].talk.talk_id == first.talk_id and out[0].why == "replaced"  # type: ignore[union-attr]
    assert list(listener.talks) == [second.talk_id]
    assert listener.frame(ALICE, frame(first, 0), 20) == "ended"
