"""The rules of a conversation's causal history: bounds, and where a message goes in the order.

Theory of operation. Every message names, inside its encrypted body, the ids of the latest
messages its sender had seen or sent in that conversation (its *parents*, the heads of the
sender's history when it wrote, at most :data:`MAX_PARENTS`). Those references make each
conversation a DAG, and the order shown is a topological order of it:

1. A message's **order time** is ``max(sent_ms, newest parent's order time + 1)``, so a message
   always sorts after every parent it names, whatever its sender's clock says. Ties are broken
   by message id, so two devices holding the same messages show the same order.
2. A message whose blocking parents are not all here is **held**: stored (and acked), but not
   shown, and the node asks for the missing ones. It is released when they arrive, or after
   :data:`HOLD_MS`, or when more than :data:`MAX_HELD` messages wait in its conversation (the
   oldest first); a message released with parents still missing carries a *gap* marker.
3. A message may land before messages already shown only within :data:`GRACE_MS` of the newest
   one (concurrent messages crossing in the mesh). Further back, it goes to the end, marked
   **arrived late**: a member cannot back-date a message into history others have read.
4. A sender's clock ahead of the receiver's counts as at most :data:`FUTURE_SLACK_MS` ahead, so
   a message cannot pin itself below everything written after it.

Loose parents (files and voice) are named like parents but never hold a message back.
Everything here is pure: the store applies it inside its transactions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "FUTURE_SLACK_MS",
    "GRACE_MS",
    "HOLD_MS",
    "MAX_HEADS_SHOWN",
    "MAX_HELD",
    "MAX_PARENTS",
    "MAX_WANTS",
    "Placement",
    "order_time",
    "place",
    "split_heads",
]

#: Most parents (blocking and loose together) one message names. A sender with more heads
#: names its newest ones; the older heads stay in the order by time and are merged by the
#: next message that sees them as newest.
MAX_PARENTS = 8
#: Most message ids one history request asks for.
MAX_WANTS = 32
#: Most heads a history summary lists.
MAX_HEADS_SHOWN = MAX_PARENTS
#: How long a message waits for a missing parent before it is shown with a gap marker.
HOLD_MS = 180_000
#: Most messages held at once in one conversation; above it the oldest is released.
MAX_HELD = 256
#: How far before the newest shown message a message may still be placed in time order.
GRACE_MS = 60_000
#: How far ahead of the receiver's clock a sender's clock may be taken at its word.
FUTURE_SLACK_MS = 60_000


def order_time(sent_ms: int, parent_times: Iterable[int], received_ms: int | None = None) -> int:
    """The order time of a message sent at ``sent_ms`` after parents with these order times.

    ``received_ms`` (for a message from someone else) caps how far ahead of our clock the
    sender's clock is believed.
    """
    claimed = sent_ms
    if received_ms is not None:
        claimed = min(claimed, received_ms + FUTURE_SLACK_MS)
    return max([claimed, *(t + 1 for t in parent_times)])


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a message lands: its order time, and whether it arrived late."""

    order_ms: int
    late: bool


def place(order_ms: int, newest_shown: int | None, grace_ms: int = GRACE_MS) -> Placement:
    """Place a message with this order time in a conversation whose newest shown message has
    order time ``newest_shown`` (None when nothing is shown yet)."""
    if newest_shown is None or order_ms >= newest_shown - grace_ms:
        return Placement(order_ms, False)
    return Placement(newest_shown + 1, True)


class Head(Protocol):
    """What :func:`split_heads` reads of a head: its id, text and blocking parents."""

    @property
    def msg_id(self) -> bytes: ...

    @property
    def text(self) -> str: ...

    @property
    def parents(self) -> tuple[bytes, ...]: ...


def split_heads(
    heads: Sequence[Head], is_loose: Callable[[str], bool]
) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    """The parents a new message names, from the heads of its conversation (newest first):
    heads whose text ``is_loose`` (file announcements) are named loose, and their own blocking
    parents are named instead as blocking ones (so the text before a file still comes before
    the text after it, while the file never holds the later text back). Blocking parents and
    loose ones are unique and at most :data:`MAX_PARENTS` together, the heads themselves first.
    """
    blocking: list[bytes] = []
    loose: list[bytes] = []
    inherited: list[bytes] = []
    for head in heads:
        if is_loose(head.text):
            loose.append(head.msg_id)
            inherited.extend(head.parents)
        else:
            blocking.append(head.msg_id)
    named = set(blocking) | set(loose)
    for parent in inherited:
        if parent not in named:
            named.add(parent)
            blocking.append(parent)
    room = MAX_PARENTS - min(len(loose), MAX_PARENTS)
    return tuple(blocking[:room]), tuple(loose[:MAX_PARENTS])
