"""The node's store: blocking calls off the event loop, and the worker's short calls on it.

Theory of operation. One interpreter lock serialises Python threads, so running a store call
on the store's thread lets the loop run only while the call waits (for the disk to sync a
commit, for a page to be read, for another call holding the store) or works inside SQLite,
which lets go of the lock; while it runs Python (sealing rows, placing a message in the causal
order) it holds the lock all the same. Handing a call to the thread and back costs two thread
wake-ups: about 30-100 us each on an idle machine, milliseconds when the cores are busy and
the woken thread waits for one.

So the calls the worker makes on a message's path and waits for before it does anything else
(:meth:`AsyncStore.quick`: the target and the heads a message is sent with, the writes of one
plan of effects and their commit) run on the loop thread when that cannot stall it: when no
other thread holds the store now, and each of the store's latest commits took at most
:data:`FAST_COMMIT_NS` (the file system's sync is as cheap as the hand-over: tmpfs, a disk
with a power-safe cache). Otherwise, and for every other call (:meth:`AsyncStore.call`: long
reads, the faces' calls), they run on the store thread.

Durability does not depend on the way taken: a commit is the same ``COMMIT`` of the same
transaction with the same ``synchronous = FULL``, and the worker awaits it before anything it
caused leaves the node. A disk that turns slow costs the loop one slow commit, after which
calls go to the thread again until the latest commits are all fast.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from meshchat.store import COMMITS_KEPT, Store

__all__ = ["FAST_COMMIT_NS", "AsyncStore", "commits_are_fast"]

P = ParamSpec("P")
T = TypeVar("T")

#: The longest commit (nanoseconds) that is still cheaper to wait for on the loop thread than
#: to hand to the store thread and back.
FAST_COMMIT_NS = 250_000


def commits_are_fast(recent_ns: Sequence[int]) -> bool:
    """Whether the store's latest commits were all fast (and enough of them are known)."""
    return len(recent_ns) >= COMMITS_KEPT and max(recent_ns) <= FAST_COMMIT_NS


class AsyncStore:
    """Runs blocking store calls on one dedicated thread, so they never stall the loop; the
    worker's short calls run on the loop thread when that cannot stall it (see above).

    ``store`` is the node's own :class:`Store`; only the node (and tests) call it, through
    these methods. Faces ask the node's public methods instead.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="meshchat-store")
        #: how many short calls took each way (``loop``, ``thread``)
        self.ways: dict[str, int] = {"loop": 0, "thread": 0}

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` on the store thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    async def quick(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """A short call the worker waits for: ``fn(*args, **kwargs)`` on the loop thread if
        the store is free and its latest commits were all fast, else on the store thread."""
        with self.store.held_if_free() as held:
            if held and commits_are_fast(self.store.recent_commits_ns()):
                self.ways["loop"] += 1
                return fn(*args, **kwargs)
        self.ways["thread"] += 1
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True)
