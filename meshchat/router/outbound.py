"""What this node sends each neighbour, kept inside the allowance that neighbour gives us.

Theory of operation. Every node takes at most ``link_rate`` frames a second from each link
(:class:`~meshchat.router.ratelimit.TokenBucket`, step 1 of the router's checks) and drops the
rest unread. Each frame a neighbour ``X`` sends us can make us send frames to every other
neighbour: the relayed copy, and, for a message to us, our ack (flooded like any packet, so a
relay cannot tell which messages were ours). A contact staying inside our allowance for its
link could so make us send every other neighbour two frames for each of its own, twice their
allowance for us, and they would drop, at random, our acks of their own messages and the
messages we relay to them: a neighbour silenced by a third party, through us.

So each outgoing frame is charged to its **cause**: the link whose frame made us send it (a
relay: the link of the first copy, all internet transports being one cause; an ack: the link
the acknowledged message came by), or
``None`` for what this node sends of its own accord (the user's messages, announces, carried
packets offered to a new neighbour). Per outgoing link:

* a **total** bucket of ``total_share`` of ``link_rate`` (0.8): what all causes together may
  send; frames caused by a third link are refused while fewer than ``reserve`` of its
  tokens are left, so what remains serves the causes of the last item first;
* a bucket per cause of ``cause_share`` of ``link_rate`` (0.5): what one neighbour can make us
  send another, so that one neighbour never takes a link's whole allowance;
* a frame caused by the outgoing link itself (our ack to that neighbour's own message) is never
  refused here (it takes a token of the total when one is left), and a frame of our own is
  not charged at all (the router does not ask): neither can be crowded out by third parties,
  and what the neighbour asked for itself is its own affair (its allowance for us takes what
  it can).

What third parties make us send a neighbour is then at most ``total_share`` of its allowance,
the rest being what it asked for itself and what this node originates. File frames
have their own, larger allowance and are not charged here. Strangers on many links still
share the total among themselves and with honest neighbours (the "many links multiply a
share" limit in docs/security.md); what they cannot do is make us drop a neighbour's acks.
Pure: the caller passes the time in milliseconds.
"""

from __future__ import annotations

from meshchat.router.ratelimit import TokenBucket

__all__ = ["OutboundShares"]

#: per outgoing link, the causes remembered at most (a fresh bucket for each beyond)
MAX_CAUSES = 256


class OutboundShares:
    """Per outgoing link: a total bucket and a bucket per cause (see the module)."""

    __slots__ = (
        "_cause_burst",
        "_cause_rate",
        "_causes",
        "_reserve",
        "_total_burst",
        "_total_rate",
        "_totals",
    )

    def __init__(
        self,
        link_rate: float,
        link_burst: float,
        *,
        total_share: float = 0.8,
        cause_share: float = 0.5,
        reserve: float = 0.25,
    ) -> None:
        self._total_rate = link_rate * total_share
        self._total_burst = link_burst * total_share
        self._cause_rate = link_rate * cause_share
        self._cause_burst = link_burst * cause_share
        self._reserve = self._total_burst * reserve
        self._totals: dict[str, TokenBucket] = {}
        self._causes: dict[str, dict[str, TokenBucket]] = {}

    def forget(self, link: str) -> None:
        """A link went down: its buckets, and its share of every other link's."""
        self._totals.pop(link, None)
        self._causes.pop(link, None)
        for shares in self._causes.values():
            shares.pop(link, None)

    def admit(self, link: str, cause: str | None, now_ms: int) -> bool:
        """Whether a frame caused by ``cause`` may go out on ``link`` now (and charge it)."""
        total = self._totals.get(link)
        if total is None:
            total = self._totals[link] = TokenBucket(self._total_rate, self._total_burst, now_ms)
        if cause is None or cause == link:
            total.take(now_ms)
            return True
        shares = self._causes.get(link)
        if shares is None:
            shares = self._causes[link] = {}
        share = shares.get(cause)
        if share is None:
            if len(shares) >= MAX_CAUSES:
                shares.clear()
            share = shares[cause] = TokenBucket(self._cause_rate, self._cause_burst, now_ms)
        if total.available(now_ms) < self._reserve + 1.0 or not share.take(now_ms):
            return False
        total.take(now_ms)
        return True
