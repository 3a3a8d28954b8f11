"""The in-memory transport's lossy, reordering medium."""

from __future__ import annotations

import asyncio
import random

import pytest

from meshchat.errors import TransportError
from meshchat.identity import Identity
from meshchat.transports.base import Link
from meshchat.transports.memory import MemoryHub


class Sink:
    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def link_up(self, link: Link) -> None:
        pass

    def link_down(self, link: Link) -> None:
        pass

    def frame_received(self, link: Link, frame: bytes) -> None:
        self.frames.append(frame)


async def pair(hub: MemoryHub) -> tuple[Link, Sink]:
    a = hub.transport(Identity.generate().public)
    b = hub.transport(Identity.generate().public)
    sink = Sink()
    await a.start(Sink())  # type: ignore[arg-type]
    await b.start(sink)  # type: ignore[arg-type]
    link, _ = hub.connect(a, b)
    return link, sink


async def test_loss_drops_about_that_share_and_counts_it() -> None:
    hub = MemoryHub(loss=0.3, rng=random.Random(7))
    link, sink = await pair(hub)
    for i in range(2000):
        assert link.send(i.to_bytes(2, "big"))
    await asyncio.sleep(0.01)
    assert hub.frames_sent == 2000
    assert hub.frames_lost == 2000 - len(sink.frames)
    assert 500 < hub.frames_lost < 700


async def test_jitter_reorders_frames() -> None:
    hub = MemoryHub(jitter_s=0.01, rng=random.Random(3))
    link, sink = await pair(hub)
    sent = [i.to_bytes(2, "big") for i in range(200)]
    for frame in sent:
        link.send(frame)
    await asyncio.sleep(0.05)
    assert sorted(sink.frames) == sent
    assert sink.frames != sent


async def test_without_loss_or_jitter_frames_keep_their_order() -> None:
    hub = MemoryHub()
    link, sink = await pair(hub)
    sent = [i.to_bytes(2, "big") for i in range(100)]
    for frame in sent:
        link.send(frame)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert sink.frames == sent


@pytest.mark.parametrize("kwargs", [{"loss": 1.0}, {"loss": -0.1}, {"jitter_s": -1.0}])
def test_impossible_media_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(TransportError):
        MemoryHub(**kwargs)  # type: ignore[arg-type]


async def test_a_drop_predicate_loses_the_frames_it_picks() -> None:
    hub = MemoryHub()
    link, sink = await pair(hub)
    hub.drop = lambda sender, frame: frame.startswith(b"x")
    for frame in (b"a", b"x1", b"b", b"x2"):
        assert link.send(frame)
    await asyncio.sleep(0)
    assert sink.frames == [b"a", b"b"]
    assert hub.frames_lost == 2
