"""Loss concealment: what plays in place of a live frame that never came (or came too late).

Theory of operation. The jitter buffer hands out every frame in order, a missing one as a gap
(:meth:`~meshchat.talk.jitter.JitterBuffer.pop`). Played as silence, each lost 20 ms frame
is a hole in a vowel, and a few percent of loss makes speech choppy. A :class:`Concealer`
sits next to the buffer and decides, frame by frame, what a gap plays as: the first
:data:`~meshchat.talk.params.CONCEAL_FRAMES` frames of a run of gaps are *concealed* (the
decoder makes up the sound that most likely was there, from what it heard last), with a gain
that fades to zero over the run; beyond that, and before the talk's first frame was heard
(there is nothing to extend), a gap is silence. So a short loss is bridged and a long one
(the talker's link dropped) fades out in 60 ms instead of a buzz that repeats forever.

The table, for a gap that is the ``run``-th of its run (``start`` → ``end``: the gain ramped
linearly across the frame's samples)::

    run 1    1.0 -> 1.0    the codec's own estimate as it is
    run 2    1.0 -> 0.5
    run 3    0.5 -> 0.0
    run 4+   0.0 -> 0.0    silence

When the frame after a gap is already in (the playout delay usually holds two or three
frames), the plan names its packet: Opus's in-band forward error correction (the encoder's
LBRR: a coarse copy of each frame in the next packet, :mod:`meshchat.voice.live`) lets the
decoder play the lost frame itself, at full gain, whatever its place in the run.

A frame that came resets the run. The decoder that applies a :class:`Conceal` is
:meth:`meshchat.voice.live.LiveDecoder.conceal` (Opus's own packet-loss concealment, see
there). Pure: no audio here, only the decision.
"""

from __future__ import annotations

from dataclasses import dataclass

from meshchat.talk.params import CONCEAL_FRAMES

__all__ = ["Conceal", "Concealer"]


@dataclass(frozen=True, slots=True)
class Conceal:
    """Play the decoder's estimate of a lost frame, its gain ramped from ``start`` to ``end``
    across the frame (both 0: silence). ``run``: which gap of its run this one is (1: the
    first after a frame that came). ``recover_from``: the next frame's packet, when it is
    already in: a decoder that reads Opus's in-band FEC plays the lost frame as that packet
    carries it, at full gain (it is the frame's own sound, coarser); one that cannot uses the
    gains."""

    run: int
    start: float
    end: float
    recover_from: bytes | None = None

    def __post_init__(self) -> None:
        if self.run < 1 or not (0.0 <= self.end <= 1.0 and 0.0 <= self.start <= 1.0):
            raise ValueError("a concealment is the n-th gap (n >= 1), its gains in 0..1")

    @property
    def silent(self) -> bool:
        return self.start == 0.0 and self.end == 0.0 and self.recover_from is None


def _gains(frames: int) -> tuple[tuple[float, float], ...]:
    """The gain table for runs concealed over ``frames`` frames (the first at full gain, then
    a linear fade that reaches zero at the end of the last)."""
    if frames <= 0:
        return ()
    if frames == 1:
        return ((1.0, 0.0),)
    fade = frames - 1
    steps = [1.0] + [1.0 - k / fade for k in range(fade + 1)]
    return tuple((steps[i], steps[i + 1]) for i in range(frames))


@dataclass(slots=True)
class Concealer:
    """Decides what each gap of one talk plays as; see the module's theory of operation.
    ``frames`` = 0 turns concealment off (every gap is silence)."""

    frames: int = CONCEAL_FRAMES
    #: gaps concealed (played as the decoder's estimate) and played as silence
    concealed: int = 0
    silent: int = 0
    _run: int = 0
    _heard: bool = False
    _table: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        if self.frames < 0:
            raise ValueError("conceal a run of 0 frames or more")
        self._table = _gains(self.frames)

    def plan(self, opus: bytes | None, following: bytes | None = None) -> Conceal | None:
        """For the next frame out of the jitter buffer: None when it came (decode it as it
        is), else how its gap plays; ``following``: the packet of the frame after it, if it
        is in (its in-band FEC may hold this one)."""
        if opus is not None:
            self._run, self._heard = 0, True
            return None
        self._run += 1
        start, end = 0.0, 0.0
        if self._heard and self._run <= len(self._table):
            start, end = self._table[self._run - 1]
        recover = following if following and self.frames else None
        plan = Conceal(self._run, start, end, recover)
        if plan.silent:
            self.silent += 1
        else:
            self.concealed += 1
        return plan
