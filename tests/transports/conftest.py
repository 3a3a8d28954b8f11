"""Shared pieces for transport tests: a handler that records what it is told."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from meshchat.transports.base import Link


class RecordingHandler:
    """A LinkHandler that keeps every report, and lets a test wait for a condition."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Link]] = []
        self.frames: list[tuple[Link, bytes]] = []
        self._changed = asyncio.Event()

    def link_up(self, link: Link) -> None:
        self.events.append(("up", link))
        self._notify()

    def link_down(self, link: Link) -> None:
        self.events.append(("down", link))
        self._notify()

    def frame_received(self, link: Link, frame: bytes) -> None:
        self.frames.append((link, frame))
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    @property
    def ups(self) -> list[Link]:
        return [link for kind, link in self.events if kind == "up"]

    @property
    def downs(self) -> list[Link]:
        return [link for kind, link in self.events if kind == "down"]

    @property
    def live(self) -> list[Link]:
        """Links reported up and not (yet) down."""
        downs = self.downs
        return [link for link in self.ups if link not in downs]

    def payloads(self) -> list[bytes]:
        return [frame for _, frame in self.frames]

    async def until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` holds; fail the test after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            while not predicate():
                await self._changed.wait()


@pytest.fixture
def make_handler() -> Callable[[], RecordingHandler]:
    return RecordingHandler
