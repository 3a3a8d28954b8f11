"""Catching up on a conversation's history: when to ask, when to summarise, what to answer.

Theory of operation. Direct messages are acked and retried until acked, so a lost one comes
again by itself. Group and channel messages are sent once, so members catch up with
:class:`~meshchat.wire.payloads.HistoryBody` messages, sent inside the conversation's own
encryption (relays see one more message of the group, nothing else):

* **wants**: a member holding a message whose parent is missing asks for it (at most one
  request per conversation every :attr:`CatchupTimings.want_every_ms`, at most
  :data:`~meshchat.causal.MAX_WANTS` ids each), again while it is still missing;
* **heads**: after a conversation has been quiet for :attr:`CatchupTimings.quiet_ms`, a member
  that stored something in it tells the others its heads; unchanged heads are told again after
  each of :attr:`CatchupTimings.repeat_ms`, then not until something new is stored. A member
  that does not know a head asks for it, so the last message of a burst, lost on the way to
  someone, is not lost for good;
* **answers**: only a message's own sender resends it (another member's copy would be
  authenticated as that member's, which is forgery), and at most
  :attr:`CatchupTimings.resend_budget` messages per conversation per
  :attr:`CatchupTimings.resend_window_ms`, each at most once per
  :attr:`CatchupTimings.resend_same_ms`: a request cannot make a node flood the mesh.

:class:`Catchup` is pure: the node feeds it what happened and the clock, and does the sending.
It keeps state only for conversations the node is in (groups and joined channels).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from meshchat.causal import MAX_WANTS

__all__ = ["Catchup", "CatchupTimings"]


@dataclass(frozen=True, slots=True)
class CatchupTimings:
    """How often a node asks, summarises and answers (see the module docstring)."""

    quiet_ms: int = 3_000
    repeat_ms: tuple[int, ...] = (30_000, 120_000, 600_000)
    want_every_ms: int = 2_000
    resend_window_ms: int = 10_000
    resend_budget: int = 32
    resend_same_ms: int = 5_000


@dataclass(slots=True)
class _Conversation:
    last_activity: int | None = None  # something stored since the last summary
    heads_told: tuple[bytes, ...] = ()
    repeats: int = 0
    repeat_at: int | None = None
    last_want: int | None = None
    window_start: int = 0
    resent_in_window: int = 0
    resent_at: dict[bytes, int] = field(default_factory=dict)


class Catchup:
    """The catch-up policy of one node, for the conversations it is in."""

    def __init__(self, timings: CatchupTimings | None = None) -> None:
        self.timings = timings or CatchupTimings()
        self._conversations: dict[str, _Conversation] = {}

    def _state(self, conversation: str) -> _Conversation:
        state = self._conversations.get(conversation)
        if state is None:
            state = self._conversations[conversation] = _Conversation()
        return state

    def forget(self, conversation: str) -> None:
        """The node left the conversation."""
        self._conversations.pop(conversation, None)

    def activity(self, conversation: str, now_ms: int) -> None:
        """A message was stored in the conversation (sent or received)."""
        self._state(conversation).last_activity = now_ms

    def may_ask(self, conversation: str, now_ms: int) -> bool:
        """Whether a request in this conversation would be sent now (nothing is used up)."""
        state = self._conversations.get(conversation)
        last = None if state is None else state.last_want
        return last is None or now_ms - last >= self.timings.want_every_ms

    def next_ask(self, conversation: str) -> int | None:
        """When a request in this conversation may next be sent (None: at once)."""
        state = self._conversations.get(conversation)
        if state is None or state.last_want is None:
            return None
        return state.last_want + self.timings.want_every_ms

    def wants(self, conversation: str, missing: Sequence[bytes], now_ms: int) -> tuple[bytes, ...]:
        """The ids to ask for now out of ``missing`` (empty when it is not time yet)."""
        if not missing:
            return ()
        state = self._state(conversation)
        if state.last_want is not None and now_ms - state.last_want < self.timings.want_every_ms:
            return ()
        state.last_want = now_ms
        return tuple(dict.fromkeys(missing))[:MAX_WANTS]

    def answerable(self, conversation: str, ids: Iterable[bytes], now_ms: int) -> list[bytes]:
        """Which of the requested ids (of our own messages) may be resent now."""
        t = self.timings
        state = self._state(conversation)
        if now_ms - state.window_start >= t.resend_window_ms:
            state.window_start, state.resent_in_window = now_ms, 0
            state.resent_at = {
                k: v for k, v in state.resent_at.items() if now_ms - v < t.resend_same_ms
            }
        chosen: list[bytes] = []
        for msg_id in dict.fromkeys(ids):
            if state.resent_in_window >= t.resend_budget:
                break
            last = state.resent_at.get(msg_id)
            if last is not None and now_ms - last < t.resend_same_ms:
                continue
            state.resent_at[msg_id] = now_ms
            state.resent_in_window += 1
            chosen.append(msg_id)
        return chosen

    def summaries_due(self, now_ms: int) -> list[str]:
        """Conversations whose heads should be told now."""
        due = []
        for name, state in self._conversations.items():
            quiet = (
                state.last_activity is not None
                and now_ms - state.last_activity >= self.timings.quiet_ms
            )
            repeat = state.repeat_at is not None and now_ms >= state.repeat_at
            if quiet or repeat:
                due.append(name)
        return due

    def summarised(self, conversation: str, heads: tuple[bytes, ...], now_ms: int) -> None:
        """The node told these heads; schedule the next telling."""
        state = self._state(conversation)
        state.repeats = state.repeats + 1 if heads == state.heads_told else 0
        state.heads_told = heads
        state.last_activity = None
        schedule = self.timings.repeat_ms
        later = schedule[state.repeats] if state.repeats < len(schedule) else None
        state.repeat_at = None if later is None else now_ms + later

    def next_deadline(self) -> int | None:
        """When :meth:`summaries_due` next has something (None: nothing planned)."""
        times: list[int] = []
        for state in self._conversations.values():
            if state.last_activity is not None:
                times.append(state.last_activity + self.timings.quiet_ms)
            if state.repeat_at is not None:
                times.append(state.repeat_at)
        return min(times, default=None)
