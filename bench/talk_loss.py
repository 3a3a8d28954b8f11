"""Push-to-talk over a lossy link: how close what is heard stays to the lossless playout, with
lost frames recovered from the next packet's in-band FEC or else concealed (as a node plays
them), concealed only (Opus's own concealment, fading out over 3 frames: the decoder through
PyAV, as where libopus cannot be called) and played as silence (the baseline, as before), in
the same run on the same losses.

espeak-ng speech is encoded live (20 ms Opus frames at 16 kbit/s); for each loss share, frames
are dropped at random (``--seeds`` seeded draws) and the rest given on time to a real
``Listener`` (jitter buffer and concealer) and decoded as a node does
(``tests/talk/lossy.py``; no sockets: the link's loss is the only thing simulated). Measure:
the Pearson correlation of the 20 ms RMS envelopes of the lossy playout and the lossless one,
the mean over the seeds; "shortfall" is 1 - r, and the ratio of a shortfall to the silent one
says how much of the damage is taken away. Bursts: runs of lost frames of
a given length placed at random, 5 % of the frames lost in all. Also the decoder's CPU time
per concealed frame against a decoded one.

Last line: ``talk_loss_envelope_r_5pct: X (target >= 0.95)`` (FEC and concealment, as a node
plays).
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
from meshchat.talk.params import BITRATE, CONCEAL_FRAMES, FRAME_MS
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


def compare(packets: list[bytes], draws: list[set[int]]) -> tuple[float, float, float]:
    """Mean envelope r: FEC and concealment, concealment only, silence."""
    reference = playout(packets, (), CONCEAL_FRAMES).pcm

    def mean(conceal: int, fec: bool) -> float:
        return statistics.mean(
            score(reference, playout(packets, lost, conceal, fec=fec).pcm) for lost in draws
        )

    return mean(CONCEAL_FRAMES, True), mean(CONCEAL_FRAMES, False), mean(0, False)


def row(label: str, fec: float, concealed: float, silent: float) -> None:
    def ratio(r: float) -> str:
        return f"{(1 - r) / (1 - silent):.2f}" if silent < 1 else "-"

    print(
        f"| {label} | {silent:.4f} | {concealed:.4f} ({ratio(concealed)}) "
        f"| {fec:.4f} ({ratio(fec)}) |"
    )


def cpu_per_frame(packets: list[bytes]) -> tuple[float, float, float]:
    """Decoder CPU (us) per decoded, concealed and FEC-recovered frame."""
    decoder = LiveDecoder()
    start = time.process_time()
    for p in packets:
        decoder.decode(p)
    decoded = (time.process_time() - start) / len(packets)
    start = time.process_time()
    for _ in range(len(packets)):
        decoder.conceal(Conceal(1, 1.0, 0.5))
    concealed = (time.process_time() - start) / len(packets)
    start = time.process_time()
    for p in packets:
        decoder.conceal(Conceal(1, 1.0, 1.0, p))
    recovered = (time.process_time() - start) / len(packets)
    return decoded * 1e6, concealed * 1e6, recovered * 1e6


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
    print("envelope r against the lossless playout (mean over the draws; shortfall ratio):\n")
    print("| frames lost | gaps as silence | concealed | FEC, else concealed |")
    print("| --- | ---: | ---: | ---: |")
    at_5 = (0.0, 0.0, 0.0)
    for share in (0.02, 0.05, 0.10, 0.20):
        result = compare(packets, [dropped(n, share, s) for s in seeds])
        row(f"{share:.0%} at random", *result)
        if share == 0.05:
            at_5 = result
    for length in (2, 5):
        row(
            f"5% in bursts of {length}",
            *compare(packets, [bursts(n, length, 0.05, s) for s in seeds]),
        )
    kbit = sum(map(len, packets)) * 8 / (n * FRAME_MS)
    print(f"\nOpus: {kbit:.1f} kbit/s of speech with FEC (target {BITRATE // 1000} kbit/s)")
    decoded, concealed, recovered = cpu_per_frame(packets)
    print(
        f"decoder CPU: {decoded:.0f} us a decoded frame, {concealed:.0f} us a concealed one, "
        f"{recovered:.0f} us one recovered by FEC"
    )
    print(f"talk_loss_envelope_r_5pct_silent: {at_5[2]:.4f}")
    print(f"talk_loss_envelope_r_5pct_concealed_only: {at_5[1]:.4f}")
    print(f"talk_loss_envelope_r_5pct: {at_5[0]:.4f} (target >= {TARGET})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
