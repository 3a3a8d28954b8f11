"""Push-to-talk: mouth-to-ear delay on loopback, and what a second of live speech costs.

Two nodes in this process, joined by a real LAN link (TCP on 127.0.0.1, the link's Noise
encryption included), contacts of each other. The talker sends espeak-ng speech live, paced
as if spoken (frame ``i`` enters the encoder ``(i + 1) * 20 ms`` after the start, when a
microphone would have it whole); the listener has no sound card, so it writes a WAV file.

Mouth-to-ear delay of a frame: from the moment its 20 ms of samples enter the encoder on the
talker to the moment its decoded samples leave the listener's jitter buffer (both read from
``time.perf_counter`` in this one process). It covers encoding, sealing, signing, the link,
checking, opening, the jitter buffer's wait (the playout delay: 60 ms over the fastest path
seen) and decoding; it leaves out the 20 ms a frame takes to be spoken and the sound card's
own buffers on each side. Reported: median and 95th percentile over ``--talks`` talks, the
frames that played as gaps, and the bytes on the wire per second (packets with their
signatures, before the link's framing and encryption).

Last line: ``talk_mouth_to_ear_p95_ms: X (target <= 150)``.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from meshchat.node._talk import paced
from meshchat.talk.params import FRAME_MS, PLAYOUT_DELAY_MS
from meshchat.voice import read_audio
from tests.talk.lan_pair import lan_pair
from tests.voice.speech import speak

TARGET_MS = 150
TEXT = (
    "Push to talk over the mesh. The square is closed from the north side, so go round by "
    "the market and meet the others at the library steps."
)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(talks: int, home: Path, wav: Path) -> tuple[list[float], int, int, float, float]:
    pcm = read_audio(wav)
    entered: dict[tuple[bytes, int], float] = {}
    delays: list[float] = []
    gaps = frames = 0
    wire = seconds = 0.0
    async with lan_pair(home) as pair:

        def played(talk_id: bytes, seq: int, samples: bytes) -> None:
            start = entered.get((talk_id, seq))
            if start is not None:
                delays.append((time.perf_counter() - start) * 1000)

        pair.listener.talk.played_hooks.append(played)
        for _ in range(talks):

            def sent(talk_id: bytes, seq: int, at: float) -> None:
                entered[(talk_id, seq)] = at

            said = await pair.talker.talk.talk("listener", paced(pcm), sent_hook=sent)
            frames += said.frames
            wire += said.wire_bytes
            seconds += said.seconds
            async with asyncio.timeout(10):
                while said.talk_id not in pair.listener.talk.heard or not (
                    pair.listener.talk.heard[said.talk_id].why
                ):
                    await asyncio.sleep(0.05)
            gaps += pair.listener.talk.heard[said.talk_id].gaps
    return delays, frames, gaps, wire, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--talks", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("espeak-ng") is None:
        print("espeak-ng is not installed (apt-get install espeak-ng)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        wav = speak(Path(tmp) / "speech.wav", TEXT)
        delays, frames, gaps, wire, seconds = asyncio.run(run(args.talks, Path(tmp), wav))
    median, p95 = statistics.median(delays), percentile(delays, 0.95)
    print(f"talks: {args.talks} of {seconds / args.talks:.1f} s, {frames} frames of {FRAME_MS} ms")
    print(f"frames heard: {len(delays)}, played as gaps: {gaps}")
    print(f"wire: {wire / seconds:.0f} bytes/s ({wire * 8 / seconds / 1000:.1f} kbit/s)")
    print(f"playout delay (jitter buffer): {PLAYOUT_DELAY_MS} ms over the fastest path")
    print(f"mouth-to-ear: median {median:.1f} ms, p95 {p95:.1f} ms, max {max(delays):.1f} ms")
    print(f"talk_mouth_to_ear_median_ms: {median:.1f}")
    print(f"talk_mouth_to_ear_p95_ms: {p95:.1f} (target <= {TARGET_MS})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
