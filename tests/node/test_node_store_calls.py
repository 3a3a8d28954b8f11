"""The worker's short store calls: on the loop thread only when that cannot stall the loop."""

from __future__ import annotations

import asyncio
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshchat.node._store import FAST_COMMIT_NS, AsyncStore, commits_are_fast
from meshchat.store import COMMITS_KEPT, Store

KEY = bytes(range(32))


@pytest.fixture
def shm_store() -> Iterator[Store]:
    """A real store on tmpfs, where a commit's disk sync costs nothing."""
    if not Path("/dev/shm").is_dir():
        pytest.fail("this test needs /dev/shm (tmpfs)")
    with tempfile.TemporaryDirectory(dir="/dev/shm") as root:
        store = Store.open(Path(root) / "s.db", key=KEY)
        yield store
        store.close()


def settle(store: Store) -> None:
    """Enough commits for the store to know what one costs here."""
    for i in range(COMMITS_KEPT):
        store.set_setting(f"k{i}", "v")


@pytest.mark.parametrize(
    ("recent", "fast"),
    [
        ((), False),
        ((1_000,) * (COMMITS_KEPT - 1), False),  # too few known
        ((1_000,) * COMMITS_KEPT, True),
        ((FAST_COMMIT_NS,) * COMMITS_KEPT, True),
        ((1_000,) * (COMMITS_KEPT - 1) + (FAST_COMMIT_NS + 1,), False),  # one slow is enough
        ((4_000_000,) * COMMITS_KEPT, False),  # a disk that syncs
    ],
)
def test_commits_are_fast_only_when_every_recent_one_was(
    recent: tuple[int, ...], fast: bool
) -> None:
    assert commits_are_fast(recent) is fast


def test_the_store_remembers_how_long_its_latest_commits_took(shm_store: Store) -> None:
    assert shm_store.recent_commits_ns() == ()
    settle(shm_store)
    with shm_store.transaction():
        shm_store.set_setting("a", "1")
        shm_store.set_setting("b", "2")
    recent = shm_store.recent_commits_ns()
    assert len(recent) == COMMITS_KEPT  # the group counted once; only the latest are kept
    assert all(ns > 0 for ns in recent)


async def test_a_quick_call_runs_on_the_loop_when_commits_are_fast(shm_store: Store) -> None:
    calls = AsyncStore(shm_store)
    try:
        # Before the store knows its commit cost, the thread.
        thread = await calls.quick(threading.get_ident)
        assert thread != threading.get_ident()
        settle(shm_store)
        assert await calls.quick(threading.get_ident) == threading.get_ident()
        await calls.quick(shm_store.set_setting, "x", "y")
        assert await calls.call(shm_store.get_setting, "x") == "y"
        assert calls.ways == {"loop": 2, "thread": 1}
    finally:
        calls.shutdown()


async def test_a_quick_call_never_waits_for_the_store_on_the_loop(shm_store: Store) -> None:
    """While another call holds the store (a long read, a commit waiting for the disk), a
    quick call goes to the store thread and the loop keeps running meanwhile."""
    settle(shm_store)
    calls = AsyncStore(shm_store)
    held, release = threading.Event(), threading.Event()

    def long_call() -> None:
        with shm_store.transaction():
            held.set()
            release.wait(5)

    other = threading.Thread(target=long_call)
    other.start()
    try:
        assert held.wait(5)
        read = asyncio.ensure_future(calls.quick(shm_store.get_setting, "k0"))
        ticks = 0
        for _ in range(5):
            await asyncio.sleep(0.01)
            ticks += 1  # the loop runs while the quick call waits
        assert not read.done() and ticks == 5
        release.set()
        assert await asyncio.wait_for(read, 5) == "v"
        assert calls.ways == {"loop": 0, "thread": 1}
    finally:
        release.set()
        other.join()
        calls.shutdown()


async def test_a_failing_quick_call_raises_its_error(shm_store: Store) -> None:
    settle(shm_store)
    calls = AsyncStore(shm_store)
    try:

        def fail() -> None:
            with shm_store.transaction():
                shm_store.set_setting("gone", "1")
                raise ValueError("no")

        with pytest.raises(ValueError, match="no"):
            await calls.quick(fail)
        assert await calls.quick(shm_store.get_setting, "gone") is None  # rolled back
    finally:
        calls.shutdown()
