"""Push-to-talk over a lossy link: how close what is heard stays to the lossless playout, with
lost frames concealed (Opus's own concealment, fading out over 3 frames) and played as
silence (the baseline, in the same run on the same losses).

espeak-ng speech is encoded live (20 ms Opus frames at 16 kbit/s); for each loss share, frames
are dropped at random (``--seeds`` seeded draws) and the rest given on time to a real
``Listener`` (jitter buffer and concealer) and decoded as a node does
(``tests/talk/lossy.py``; no sockets: the link's loss is the only thing simulated). Measure:
the Pearson correlation of the 20 ms RMS envelopes of the lossy playout and the lossless one,
the mean over the seeds; "shortfall" is 1 - r, and the ratio of the concealed shortfall to the
silent one says how much of the damage concealment takes away. Bursts: runs of lost frames of
a given length placed at random, 5 % of the frames lost in all. Also the decoder's CPU time
per concealed frame against a decoded one.

Last line: ``talk_loss_envelope_r_5pct_concealed: X (target >= 0.95)``.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from meshchat.talk.conceal import Conceal
from meshchat.talk.params import CONCEAL_FRAMES
from meshchat.voice import read_audio
from meshchat.voice.live import LiveDecoder
from tests.talk.lossy import dropped, encoded, playout, score
from tests.voice.speech import speak

TARGET = 0.95
TEXT = (
    "Push to talk over the mesh. The square is closed from the north side, so go round by "
    "the market and meet the others at the library steps. Bring the spare radio and the "
    "charger; the battery on the blue one is nearly flat."
)


def bursts(frames: int, length: int, share: float, seed: int) -> set[int]:
    """Runs of ``length`` lost frames at random places, about ``share`` of ``frames`` lost."""
    rng, lost = random.Random(seed), set[int]()
    while len(lost) < share * frames:
        start = rng.randrange(1, frames - length)
        lost.update(range(start, start + length))
    return lost


def compare(packets: list[bytes], draws: list[set[int]]) -> tuple[float, float]:
    reference = playout(packets, (), CONCEAL_FRAMES).pcm
    concealed = [score(reference, playout(packets, lost, CONCEAL_FRAMES).pcm) for lost in draws]
    silent = [score(reference, playout(packets, lost, 0).pcm) for lost in draws]
    return statistics.mean(concealed), statistics.mean(silent)


def row(label: str, concealed: float, silent: float) -> None:
    ratio = (1 - concealed) / (1 - silent) if silent < 1 else 0.0
    print(f"| {label} | {silent:.4f} | {concealed:.4f} | {ratio:.2f} |")


def cpu_per_frame(packets: list[bytes]) -> tuple[float, float]:
    decoder = LiveDecoder()
    start = time.process_time()
    for p in packets:
        decoder.decode(p)
    decoded = (time.process_time() - start) / len(packets)
    start = time.process_time()
    for _ in range(len(packets)):
        decoder.conceal(Conceal(1, 1.0, 0.5))
    concealed = (time.process_time() - start) / len(packets)
    return decoded * 1e6, concealed * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    if shutil.which("espeak-ng") is None:
        print("espeak-ng is not installed (apt-get install espeak-ng)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        pcm = read_audio(speak(Path(tmp) / "speech.wav", TEXT))
    packets = encoded(pcm)
    n, seeds = len(packets), range(args.seeds)
    print(f"{pcm.duration:.1f} s of speech, {n} frames; {args.seeds} seeded draws per row")
    print("envelope r against the lossless playout (mean over the draws):\n")
    print("| frames lost | gaps as silence | concealed | shortfall ratio |")
    print("| --- | ---: | ---: | ---: |")
    at_5 = silent_5 = 0.0
    for share in (0.02, 0.05, 0.10, 0.20):
        concealed, silent = compare(packets, [dropped(n, share, s) for s in seeds])
        row(f"{share:.0%} at random", concealed, silent)
        if share == 0.05:
            at_5, silent_5 = concealed, silent
    for length in (2, 5):
        concealed, silent = compare(packets, [bursts(n, length, 0.05, s) for s in seeds])
        row(f"5% in bursts of {length}", concealed, silent)
    decoded_us, concealed_us = cpu_per_frame(packets)
    print(
        f"\ndecoder CPU: {decoded_us:.0f} us a decoded frame, {concealed_us:.0f} us a concealed one"
    )
    print(f"talk_loss_envelope_r_5pct_silent: {silent_5:.4f}")
    print(f"talk_loss_envelope_r_5pct_concealed: {at_5:.4f} (target >= {TARGET})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
