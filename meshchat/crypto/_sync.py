"""Run the coroutines of the ``x3dh`` and ``doubleratchet`` packages without an event loop.

Both packages declare their operations ``async`` so that a crypto provider *could* await, but
the providers they ship compute everything inline and never suspend. The engine is sans-IO and
must not need a loop, so :func:`run` steps a coroutine once and takes its result. A coroutine
that does suspend would need a loop after all; that is a programming error here, raised as
:class:`RuntimeError`, never silently ignored.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["run"]

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """The result of ``coro``, which must finish without suspending."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("a crypto coroutine suspended; it needs an event loop")
