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
frames that played as gaps, the bytes on the wire per second (packets with their
signatures, before the link's framing and encryption), and the CPU time of the process (both
nodes) per second of talk.

With ``--file MB`` (default 64; 0: none) the same is measured a second time while the listener
pulls a file of that size from the talker over the same LAN link, so live frames share the
link (and the talker's loop) with file pieces; the transfer's progress during the talks is
printed. The last line is the figure without the file.

Last line: ``talk_mouth_to_ear_p95_ms: X (target <= 150)``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from meshchat.node import Node
from meshchat.node._filestate import Direction, State
from meshchat.node._talk import paced
from meshchat.store.records import Trust
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


async def pull_file(talker: Node, listener: Node, home: Path, mb: int) -> None:
    """Start a transfer of ``mb`` MB from ``talker`` to ``listener`` (accepted at once)."""
    path = home / "big.bin"
    path.write_bytes(os.urandom(mb << 20))
    await listener.set_trust(talker.identity.node_id, Trust.VERIFIED)
    await talker.files.send("listener", path)
    async with asyncio.timeout(10):
        while True:
            incoming = [t for t in await listener.files.transfers() if t.direction is Direction.IN]
            if incoming and incoming[0].state is State.ASKING:
                await listener.files.accept(incoming[0].root.hex())
            if incoming and incoming[0].state is State.ACTIVE:
                return
            await asyncio.sleep(0.05)


async def held_bytes(listener: Node) -> int:
    total = 0
    for t in await listener.files.transfers():
        if t.direction is Direction.IN:
            total += (
                t.manifest.size if t.state is State.DONE else (t.progress.held if t.progress else 0)
            )
    return total


async def run(talks: int, home: Path, wav: Path, file_mb: int) -> Result:
    pcm = read_audio(wav)
    entered: dict[tuple[bytes, int], float] = {}
    result = Result()
    async with lan_pair(home) as pair:

        def played(talk_id: bytes, seq: int, samples: bytes) -> None:
            start = entered.get((talk_id, seq))
            if start is not None:
                result.delays.append((time.perf_counter() - start) * 1000)

        def sent(talk_id: bytes, seq: int, at: float) -> None:
            entered[(talk_id, seq)] = at

        pair.listener.talk.played_hooks.append(played)
        if file_mb:
            await pull_file(pair.talker, pair.listener, home, file_mb)
            result.file_before = await held_bytes(pair.listener)
        cpu = time.process_time()
        for _ in range(talks):
            said = await pair.talker.talk.talk("listener", paced(pcm), sent_hook=sent)
            result.frames += said.frames
            result.wire += said.wire_bytes
            result.seconds += said.seconds
            async with asyncio.timeout(10):
                while said.talk_id not in pair.listener.talk.heard or not (
                    pair.listener.talk.heard[said.talk_id].why
                ):
                    await asyncio.sleep(0.05)
            result.gaps += pair.listener.talk.heard[said.talk_id].gaps
        result.cpu = time.process_time() - cpu
        if file_mb:
            result.file_after = await held_bytes(pair.listener)
    return result


@dataclass
class Result:
    delays: list[float] = field(default_factory=list)
    frames: int = 0
    gaps: int = 0
    wire: float = 0.0
    seconds: float = 0.0
    file_before: int = 0
    file_after: int = 0
    cpu: float = 0.0

    def show(self, talks: int, label: str) -> tuple[float, float]:
        median, p95 = statistics.median(self.delays), percentile(self.delays, 0.95)
        each = self.seconds / talks
        print(f"{label}: {talks} talks of {each:.1f} s, {self.frames} frames of {FRAME_MS} ms")
        print(f"  frames heard: {len(self.delays)}, played as gaps: {self.gaps}")
        rate = self.wire / self.seconds
        print(f"  wire: {rate:.0f} bytes/s ({rate * 8 / 1000:.1f} kbit/s)")
        print(
            f"  mouth-to-ear: median {median:.1f} ms, p95 {p95:.1f} ms, "
            f"max {max(self.delays):.1f} ms"
        )
        share = self.cpu / self.seconds * 100
        print(f"  CPU (talker and listener, one process): {share:.1f} % of one core")
        if self.file_after:
            moved = (self.file_after - self.file_before) / (1 << 20)
            print(f"  file pulled meanwhile: {moved:.1f} MB ({moved / self.seconds:.1f} MB/s)")
        return median, p95


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--talks", type=int, default=3)
    parser.add_argument("--file", type=int, default=64, metavar="MB")
    args = parser.parse_args()
    if shutil.which("espeak-ng") is None:
        print("espeak-ng is not installed (apt-get install espeak-ng)", file=sys.stderr)
        return 1
    print(f"playout delay (jitter buffer): {PLAYOUT_DELAY_MS} ms over the fastest path")
    with tempfile.TemporaryDirectory() as tmp:
        wav = speak(Path(tmp) / "speech.wav", TEXT)
        if args.file:
            loaded = asyncio.run(run(args.talks, Path(tmp) / "file", wav, args.file))
            _, f_p95 = loaded.show(args.talks, f"while a {args.file} MB file is pulled")
        alone = asyncio.run(run(args.talks, Path(tmp) / "alone", wav, 0))
        median, p95 = alone.show(args.talks, "alone on the link")
    if args.file:
        print(f"talk_mouth_to_ear_p95_ms_with_file: {f_p95:.1f}")
    print(f"talk_mouth_to_ear_median_ms: {median:.1f}")
    print(f"talk_mouth_to_ear_p95_ms: {p95:.1f} (target <= {TARGET_MS})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
