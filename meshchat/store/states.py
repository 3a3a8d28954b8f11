"""The life of an outgoing message, as a table.

Theory of operation
-------------------
An outgoing message is stored ``QUEUED`` together with its outbox row. The node reports what
happens to it, and reports can arrive late or out of order: a retry's "sent" may be processed
after the recipient's acknowledgement, and an acknowledgement may arrive after the outbox gave
up. So a report never moves a message backwards; one that would is ignored::

    QUEUED ──> SENT ──> DELIVERED
       │         │          ^
       │         v          │
       └──────> FAILED ─────┘   (a late acknowledgement still proves delivery)

Forward means up this order: ``QUEUED < SENT < FAILED < DELIVERED``. ``FAILED`` is entered only
from ``QUEUED`` or ``SENT``; ``DELIVERED`` is final. Entering ``DELIVERED`` or ``FAILED`` ends the
outbox row, in the same transaction as the state change. ``RECEIVED`` belongs to incoming
messages, which never change state.
"""

from __future__ import annotations

from meshchat.store.records import MessageState

__all__ = ["OUTBOX_ENDING", "RANK", "advance"]

_Q, _S, _D, _F = (
    MessageState.QUEUED,
    MessageState.SENT,
    MessageState.DELIVERED,
    MessageState.FAILED,
)

#: Which reports each state of an outgoing message accepts.
_TRANSITIONS: dict[MessageState, frozenset[MessageState]] = {
    _Q: frozenset({_S, _D, _F}),
    _S: frozenset({_D, _F}),
    _F: frozenset({_D}),
    _D: frozenset(),
    MessageState.RECEIVED: frozenset(),
}

#: The forward order of outgoing states; every accepted transition goes up this ranking.
RANK: dict[MessageState, int] = {_Q: 0, _S: 1, _F: 2, _D: 3}

#: States whose arrival ends the message's outbox row.
OUTBOX_ENDING: frozenset[MessageState] = frozenset({_D, _F})


def advance(current: MessageState, reported: MessageState) -> MessageState | None:
    """The new state after ``reported``, or None when the report must be ignored."""
    if reported in _TRANSITIONS[current]:
        return reported
    return None
