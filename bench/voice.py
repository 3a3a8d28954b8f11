"""Voice notes: how fast they encode and decode, and how many bytes a second of speech costs.

Speech is made by espeak-ng (a Debian package): a paragraph of about 30 s, read as a WAV
file. Each figure is the median of ``--repeats`` runs in this process:

* encode: WAV file -> Ogg/Opus note (read, resample to 16 kHz, encode), as x real time;
* decode: note -> 48 kHz PCM (the checks, demux, decode), as x real time;
* bytes per second of speech, and the bit rate, against the 16 kbit/s target;
* the same for a 60 s note of silence (what a pause costs) and of loud noise (the worst case).

Last line: ``voice_encode_x_realtime: N (target >= 20)``. The target is generous on purpose:
a note of the longest allowed length (5 minutes) then encodes in under 15 s on one slow core.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from meshchat.voice import Pcm, decode, encode_file, encode_pcm
from meshchat.voice.params import BITRATE

TARGET_X = 20
TEXT = (
    "This is a voice note sent over the mesh, where there is no network but the phones "
    "around you. The square is closed from the north side, so go round by the market and "
    "meet the others at the library steps. Bring water, a charged battery and the printed "
    "map. If the police block the bridge, wait at the bakery on the corner and send a message "
    "to the group. Do not reply to strangers who ask where we are. We will move at six, when "
    "the church bells ring, and stay together until everyone is home again."
)


def median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        print("espeak-ng is not installed (apt-get install espeak-ng)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run([espeak, "-w", str(wav), TEXT], check=True)
        note = encode_file(wav)
        seconds = note.duration
        enc = median_time(lambda: encode_file(wav), args.repeats)
        dec = median_time(lambda: decode(note.data), args.repeats)
    rng = random.Random(1)
    silence = encode_pcm(Pcm(bytes(60 * 16_000 * 2), 16_000))
    noise = encode_pcm(
        Pcm(b"".join(rng.randbytes(2) for _ in range(60 * 16_000)), 16_000)  # full-scale noise
    )
    print(f"speech: {seconds:.1f} s from espeak-ng, {len(note.data):,} bytes")
    print(f"{'':<10}{'bytes/s':>9}{'kbit/s':>8}")
    for name, made in (("speech", note), ("silence", silence), ("noise", noise)):
        rate = len(made.data) / made.duration
        print(f"{name:<10}{rate:>9.0f}{rate * 8 / 1000:>8.1f}")
    print(f"target bit rate: {BITRATE / 1000:.0f} kbit/s (variable)")
    print(f"encode: {enc * 1000:.0f} ms for {seconds:.1f} s = {seconds / enc:.0f}x real time")
    print(f"decode: {dec * 1000:.0f} ms for {seconds:.1f} s = {seconds / dec:.0f}x real time")
    print(f"voice_bytes_per_second_of_speech: {len(note.data) / seconds:.0f}")
    print(f"voice_decode_x_realtime: {seconds / dec:.0f}")
    print(f"voice_encode_x_realtime: {seconds / enc:.0f} (target >= {TARGET_X})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
