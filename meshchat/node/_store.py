"""The node's store, called off the event loop."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from meshchat.store import Store

__all__ = ["AsyncStore"]

P = ParamSpec("P")
T = TypeVar("T")


class AsyncStore:
    """Runs blocking store calls on one dedicated thread, so they never stall the loop.

    ``store`` is the node's own :class:`Store`; only the node (and tests) call it, through
    :meth:`call`. Faces ask the node's public methods instead.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="meshchat-store")

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True)
