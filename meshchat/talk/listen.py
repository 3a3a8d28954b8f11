"""The listening side of push-to-talk: which talks are live, and their frames in order.

Theory of operation. A talk starts with an offer that came sealed from a contact
(:meth:`Listener.offer`; the node checks the contact, the session authenticated the sender).
Its frames come over a LAN link from that same device (:meth:`Listener.frame`: the node has
checked the packet's signature and that its signer is the link's proven peer); each is opened
with the talk's key and given to the talk's :class:`~meshchat.talk.jitter.JitterBuffer`.
:meth:`Listener.pop` hands out what is due to play (a gap with the talk's
:class:`~meshchat.talk.conceal.Concealer`'s plan for it), and :meth:`Listener.expire` ends
talks that played their end frame, went silent for :data:`~meshchat.talk.params.IDLE_MS` or
ran past :data:`~meshchat.talk.params.MAX_SECONDS`.

Refused, each counted by reason: a frame of a talk never offered (kept a short while in a
small pending list, in case it overtook its offer, then dropped), of an ended talk (ids of the
last talks are remembered, so a replay of a whole talk is refused), from another device than
the one that offered, that does not open under the key, or that its jitter buffer refuses
(late, replayed, too far ahead). A device talks once at a time: its new offer ends its
earlier live talk (so one contact cannot hold every slot by talking many times at once). An
offer beyond :data:`~meshchat.talk.params.MAX_TALKS` live talks, or of an id seen before, is
refused. Memory is bounded by those constants. Pure: the
caller passes the time.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

from meshchat.errors import DecryptionError
from meshchat.talk.conceal import Conceal, Concealer
from meshchat.talk.jitter import JitterBuffer, Verdict
from meshchat.talk.params import (
    CONCEAL_FRAMES,
    IDLE_MS,
    MAX_SECONDS,
    MAX_TALKS,
    PENDING_FRAMES,
    PENDING_MS,
)
from meshchat.talk.wire import LiveFrame, TalkOffer, open_sound

__all__ = ["Ended", "Listener", "Out", "Started", "Talk"]

#: ids of ended talks remembered (a replayed talk is refused)
_REMEMBERED = 256


@dataclass(slots=True)
class Talk:
    """One live talk being received."""

    talk_id: bytes
    #: the talking device's node id (the only one whose frames count)
    sender: bytes
    key: bytes
    started_ms: int
    last_ms: int
    buffer: JitterBuffer = field(default_factory=JitterBuffer)
    #: what each gap out of the buffer plays as
    concealer: Concealer = field(default_factory=Concealer)
    refused: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Started:
    talk: Talk


@dataclass(frozen=True, slots=True)
class Out:
    """Frame ``seq`` of a talk, due to play now: an Opus packet, or None for a gap (and then
    ``conceal`` says how the gap plays)."""

    talk: Talk
    seq: int
    opus: bytes | None
    conceal: Conceal | None = None


@dataclass(frozen=True, slots=True)
class Ended:
    talk: Talk
    why: str


class Listener:
    """The talks one node receives; see the module's theory of operation."""

    def __init__(self, *, conceal_frames: int = CONCEAL_FRAMES) -> None:
        """``conceal_frames``: how many frames of a loss are concealed (0: gaps are silence;
        see :mod:`meshchat.talk.conceal`)."""
        self.conceal_frames = conceal_frames
        self.talks: dict[bytes, Talk] = {}
        self._ended: OrderedDict[bytes, None] = OrderedDict()
        self._pending: deque[tuple[int, bytes, LiveFrame]] = deque()
        self.counters: dict[str, int] = {}

    def _count(self, what: str) -> None:
        self.counters[what] = self.counters.get(what, 0) + 1

    def offer(self, sender: bytes, offer: TalkOffer, now_ms: int) -> list[Started | Ended]:
        """A talk offered by device ``sender`` (a contact); False-y list if refused. The
        sender's earlier live talk, if any, ends first (listed as :class:`Ended`, "replaced")."""
        if offer.talk_id in self.talks or offer.talk_id in self._ended:
            self._count("offer.again")
            return []
        replaced: list[Started | Ended] = []
        for earlier in [t for t in self.talks.values() if t.sender == sender]:
            self._count("offer.replaced")
            self.end(earlier.talk_id)
            replaced.append(Ended(earlier, "replaced"))
        if len(self.talks) >= MAX_TALKS:
            self._count("offer.too-many")
            return replaced
        talk = Talk(offer.talk_id, sender, offer.key, now_ms, now_ms)
        talk.concealer = Concealer(self.conceal_frames)
        self.talks[offer.talk_id] = talk
        out: list[Started | Ended] = [*replaced, Started(talk)]
        early = [p for p in self._pending if p[2].talk_id == offer.talk_id]
        self._pending = deque(p for p in self._pending if p[2].talk_id != offer.talk_id)
        for _, peer, frame in early:
            self.frame(peer, frame, now_ms)
        return out

    def frame(self, peer: bytes, frame: LiveFrame, now_ms: int) -> Verdict | str:
        """A live frame from device ``peer`` (signature and link already checked)."""
        talk = self.talks.get(frame.talk_id)
        if talk is None:
            if frame.talk_id in self._ended:
                self._count("drop.ended")
                return "ended"
            self._keep_pending(peer, frame, now_ms)
            return "pending"
        if peer != talk.sender:
            self._count("drop.other-device")
            return "other-device"
        try:
            opus = open_sound(talk.key, frame)
        except DecryptionError:
            self._count("drop.does-not-open")
            return "does-not-open"
        verdict = talk.buffer.push(frame.seq, opus, now_ms, end=frame.end)
        if verdict is Verdict.HELD:
            talk.last_ms = now_ms
        else:
            self._count(f"drop.{verdict.value}")
            talk.refused[verdict.value] = talk.refused.get(verdict.value, 0) + 1
        return verdict

    def _keep_pending(self, peer: bytes, frame: LiveFrame, now_ms: int) -> None:
        while self._pending and self._pending[0][0] < now_ms - PENDING_MS:
            self._pending.popleft()
            self._count("drop.never-offered")
        if len(self._pending) >= PENDING_FRAMES:
            self._pending.popleft()
            self._count("drop.never-offered")
        self._pending.append((now_ms, peer, frame))

    def next_due_ms(self) -> int | None:
        """The earliest time :meth:`pop` has a frame to hand out."""
        times = [t for talk in self.talks.values() if (t := talk.buffer.next_due_ms()) is not None]
        return min(times) if times else None

    def pop(self, now_ms: int) -> list[Out]:
        """Every frame of every talk due to play by ``now_ms``, in each talk's order."""
        out: list[Out] = []
        for talk in self.talks.values():
            due = talk.buffer.pop(now_ms)
            popped = dict(due)
            for seq, opus in due:
                following = popped[seq + 1] if seq + 1 in popped else talk.buffer.held(seq + 1)
                out.append(Out(talk, seq, opus, talk.concealer.plan(opus, following)))
        return out

    def expire(self, now_ms: int) -> list[Ended]:
        """End the talks that are over (and forget pending frames too old to keep)."""
        while self._pending and self._pending[0][0] < now_ms - PENDING_MS:
            self._pending.popleft()
            self._count("drop.never-offered")
        out: list[Ended] = []
        for talk in list(self.talks.values()):
            why = ""
            if talk.buffer.finished:
                why = "ended"
            elif now_ms - talk.last_ms >= IDLE_MS:
                why = "silent"
            elif now_ms - talk.started_ms > (MAX_SECONDS + 5) * 1000:
                why = "too long"
            if why:
                out.append(Ended(talk, why))
                self.end(talk.talk_id)
        return out

    def end(self, talk_id: bytes) -> None:
        """Forget a talk (its id stays remembered: its frames are refused from now on)."""
        self.talks.pop(talk_id, None)
        self._ended[talk_id] = None
        while len(self._ended) > _REMEMBERED:
            self._ended.popitem(last=False)
