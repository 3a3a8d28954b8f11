"""What one client of the relay broker may cost: limits and the ledger of queued messages.

Theory of operation. Every client is a :class:`Principal`: a *known* one (it presented a token
the operator handed out, or a password) is keyed by its name; an *anonymous* one (only when the
operator opted in) by its source address, so a stranger gains nothing by using many client ids.

*Queued mail.* While a gateway is offline the broker queues the messages published to its
subscriptions. :class:`Ledger` accounts for every queued message by the offline session, the
topic and the publishing principal, and decides on each new one (:meth:`Ledger.admit`):

1. Anonymous publishers together may hold at most ``anonymous_share`` of a session's
   per-topic quota and of its bytes, and one anonymous source at most
   ``anonymous_source_bytes`` over all sessions. Beyond that the new message is refused if its
   source is the largest anonymous holder (cheap: nothing queued moves), else the oldest
   message of the largest holder makes room.
2. Then the session's own limits (``mailbox_quota`` messages per topic, ``session_bytes``): the
   victim is taken from the anonymous publishers first, the largest first; only when none is
   queued from the known publisher holding the most (its oldest message).

So junk never evicts mail from a known gateway, one known gateway's flood evicts its own
mail first, and a stranger's flood only competes with other strangers.

*Sessions and subscriptions* (checked by the broker plugin with :meth:`Limits.sessions_for`
and :meth:`Limits.subscriptions_for`): at most so many persistent sessions per principal and
subscriptions per client id; an anonymous session idle for ``anonymous_idle_s`` is removed.
*Publish rate:* a principal's publishes pass a token bucket (:class:`Bucket`); an anonymous
source's connection is slowed to its rate, so its flood costs the broker little and waits
behind nothing of anyone else's. Pure: no amqtt, no asyncio.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["Bucket", "Ledger", "Limits", "Principal"]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a client is, for the limits: ``key`` is ``token:<name>``, ``user:<name>`` or
    ``anon:<address>``."""

    key: str
    known: bool


@dataclass(frozen=True, slots=True)
class Limits:
    """Every per-client bound of the embedded relay (see the module docstring)."""

    #: messages queued per offline session and topic (one gateway's copy of one mailbox)
    mailbox_quota: int = 1000
    #: bytes queued per offline session
    session_bytes: int = 16 << 20
    #: the part of both that anonymous publishers together may hold
    anonymous_share: float = 0.1
    #: bytes one anonymous source may have queued over all sessions
    anonymous_source_bytes: int = 4 << 20
    #: persistent sessions per known principal / per anonymous source address
    known_sessions: int = 16
    anonymous_sessions: int = 4
    #: subscriptions per client id
    known_subscriptions: int = 4096
    anonymous_subscriptions: int = 64
    #: an anonymous session disconnected this long is removed with its queue
    anonymous_idle_s: float = 3600.0
    #: publishes per second (and burst) per principal
    known_rate: float = 2000.0
    known_burst: float = 10_000.0
    anonymous_rate: float = 20.0
    anonymous_burst: float = 200.0

    def __post_init__(self) -> None:
        if self.mailbox_quota < 1 or self.session_bytes < 1 or not 0 <= self.anonymous_share <= 1:
            raise ValueError("relay quotas must be positive and the anonymous share in 0..1")

    def sessions_for(self, who: Principal) -> int:
        return self.known_sessions if who.known else self.anonymous_sessions

    def subscriptions_for(self, who: Principal) -> int:
        return self.known_subscriptions if who.known else self.anonymous_subscriptions

    def bucket_for(self, who: Principal) -> Bucket:
        if who.known:
            return Bucket(self.known_rate, self.known_burst)
        return Bucket(self.anonymous_rate, self.anonymous_burst)


@dataclass(slots=True)
class Bucket:
    """A token bucket: :meth:`take` returns how long to wait before the next publish."""

    rate: float
    burst: float
    level: float = -1.0
    at: float = 0.0

    def take(self, now: float) -> float:
        if self.level < 0:
            self.level, self.at = self.burst, now
        self.level = min(self.burst, self.level + (now - self.at) * self.rate)
        self.at = now
        self.level -= 1.0
        return 0.0 if self.level >= 0 else -self.level / self.rate


@dataclass(slots=True)
class _Entry:
    who: Principal
    topic: str
    size: int


@dataclass(slots=True)
class _Session:
    #: message id -> entry, oldest first
    entries: dict[int, _Entry] = field(default_factory=dict)
    per_topic: Counter[str] = field(default_factory=Counter)
    anon_per_topic: Counter[str] = field(default_factory=Counter)
    #: (principal, topic) -> messages; principal -> messages
    holders: Counter[tuple[Principal, str]] = field(default_factory=Counter)
    held: Counter[Principal] = field(default_factory=Counter)
    size: int = 0
    anon_size: int = 0


class Ledger:
    """Queued messages per offline session, by topic and publisher (see the module docstring)."""

    __slots__ = ("_sessions", "_source_bytes", "limits")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._sessions: dict[str, _Session] = {}
        self._source_bytes: Counter[Principal] = Counter()

    def queued(self, session: str) -> int:
        state = self._sessions.get(session)
        return len(state.entries) if state is not None else 0

    def forget(self, session: str) -> None:
        """The session's queue was handed out or removed."""
        state = self._sessions.pop(session, None)
        if state is None:
            return
        for entry in state.entries.values():
            if not entry.who.known:
                self._release_source(entry.who, entry.size)

    def _release_source(self, who: Principal, size: int) -> None:
        left = self._source_bytes[who] - size
        if left > 0:
            self._source_bytes[who] = left
        else:
            del self._source_bytes[who]

    def admit(self, session: str, message: int, who: Principal, topic: str, size: int) -> set[int]:
        """Account for ``message`` queued for ``session``; returns the message ids to take out
        of the queue again (possibly ``message`` itself), already forgotten here."""
        limits = self.limits
        state = self._sessions.setdefault(session, _Session())
        self._add(state, message, _Entry(who, topic, size))
        out: set[int] = set()
        if not who.known:
            if self._source_bytes[who] > limits.anonymous_source_bytes:
                self._remove(state, message)
                return {message}
            share_n = int(limits.mailbox_quota * limits.anonymous_share)
            share_b = int(limits.session_bytes * limits.anonymous_share)
            while message not in out and (
                state.anon_per_topic[topic] > share_n or state.anon_size > share_b
            ):
                by_topic = state.anon_per_topic[topic] > share_n
                out.add(self._evict(state, message, who, topic if by_topic else None, False))
        while message not in out and (
            state.per_topic[topic] > limits.mailbox_quota or state.size > limits.session_bytes
        ):
            by_topic = state.per_topic[topic] > limits.mailbox_quota
            scope = topic if by_topic else None
            anon_left = state.anon_per_topic[topic] if by_topic else state.anon_size
            out.add(self._evict(state, message, who, scope, anon_left == 0))
        return out

    def _add(self, state: _Session, message: int, entry: _Entry) -> None:
        state.entries[message] = entry
        state.per_topic[entry.topic] += 1
        state.holders[(entry.who, entry.topic)] += 1
        state.held[entry.who] += 1
        state.size += entry.size
        if not entry.who.known:
            state.anon_per_topic[entry.topic] += 1
            state.anon_size += entry.size
            self._source_bytes[entry.who] += entry.size

    def _remove(self, state: _Session, message: int) -> None:
        entry = state.entries.pop(message)
        state.per_topic[entry.topic] -= 1
        state.holders[(entry.who, entry.topic)] -= 1
        state.held[entry.who] -= 1
        state.size -= entry.size
        if not entry.who.known:
            state.anon_per_topic[entry.topic] -= 1
            state.anon_size -= entry.size
            self._release_source(entry.who, entry.size)

    def _evict(
        self, state: _Session, new: int, who: Principal, topic: str | None, known: bool
    ) -> int:
        """Take out one message: from the largest holder among the known (``known``) or the
        anonymous publishers, within ``topic`` if given; the new message itself if its own
        publisher is that holder and not known (so a flood stops at its own share cheaply)."""
        if topic is None:
            counts = {p: n for p, n in state.held.items() if p.known is known and n > 0}
        else:
            counts = {
                p: n for (p, t), n in state.holders.items() if t == topic and p.known is known and n
            }
        if not counts:  # nothing of that class: the newcomer goes
            self._remove(state, new)
            return new
        largest = max(counts, key=lambda p: (counts[p], p == who))
        if largest == who and not who.known:
            self._remove(state, new)
            return new
        for message, entry in state.entries.items():
            if entry.who == largest and (topic is None or entry.topic == topic):
                self._remove(state, message)
                return message
        self._remove(state, new)  # unreachable while the counters agree with the entries
        return new
