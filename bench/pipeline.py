"""Receive-path throughput of one node, against libsodium's raw signature check, in one run.

What is measured. A node receives distinct direct messages addressed to it, from many senders,
on one link. For each frame :meth:`meshchat.engine.Engine.receive` parses it, checks it against
the seen-set, checks its time window and Ed25519 signature, opens the BOX payload (X25519 +
XSalsa20-Poly1305, shared keys cached per sender), decodes the message body and builds the
signed end-to-end ack. The baseline is ``nacl.bindings.crypto_sign_open`` alone on the very
same signed bytes: the one unavoidable cost per packet. The ratio of the two rates says how
close the Python pipeline comes to the cost of the signature check it cannot skip.

Method. All frames are built before any timing (each sender seals and signs its own). Each
repetition gets a fresh engine (an empty seen-set, so no frame is a duplicate) whose router
has a link rate high enough that rate limiting never triggers. Time is the process's CPU time,
so other load on the machine does not count against either side. Repetitions interleave the
pipeline and the baseline so both see the same machine state; the table reports median rates
and the final ratio is the median of the per-repetition (paired) ratios.
Stages are timed separately too, so the ratio can be explained: the router alone (parse,
dedupe, time, signature), the parser alone, the BOX open, and the ack build.

Run ``python bench/pipeline.py`` (``--help`` for sizes; ``--profile`` adds a cProfile table of
the full receive path). The last line is machine-readable::

    receive_path_vs_sign_open: 0.93 (target >= 0.90)
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import pstats
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import nacl.bindings

from meshchat.crypto.box import BoxSuite
from meshchat.engine import Engine
from meshchat.events import MessageReceived
from meshchat.identity import Identity
from meshchat.router.flood import FloodRouter, RouterConfig
from meshchat.wire import codec
from meshchat.wire.packet import DEFAULT_TTL, Destination, PacketKind, Suite
from meshchat.wire.payloads import AckBody, MessageBody

NOW_MS = 1_700_000_000_000
TARGET = 0.90
LINK = "peer"


@dataclass(frozen=True, slots=True)
class Workload:
    receiver: Identity
    frames: list[bytes]
    signed: list[tuple[bytes, bytes]]  # (signature || signed bytes, origin key) per frame
    payloads: list[bytes]  # the BOX payloads, for the decrypt stage
    packet_ids: list[bytes]


def build_workload(senders: int, per_sender: int, seed: int) -> Workload:
    """Frames of distinct direct messages from ``senders`` identities to one receiver."""
    rng = random.Random(seed)
    receiver = Identity.generate()
    recipient = receiver.public
    frames: list[bytes] = []
    signed: list[tuple[bytes, bytes]] = []
    payloads: list[bytes] = []
    packet_ids: list[bytes] = []
    for _ in range(senders):
        sender = Identity.generate()
        box = BoxSuite(sender)
        for _ in range(per_sender):
            text = "message text " * rng.randint(1, 8)
            body = MessageBody(rng.randbytes(16), text).encode()
            packet = codec.build(
                sender,
                PacketKind.MESSAGE,
                Destination.node(recipient.node_id),
                Suite.BOX,
                box.seal(recipient.box_public, body),
                NOW_MS,
                DEFAULT_TTL,
                rng.randbytes(16),
            )
            frames.append(codec.encode(packet))
            signed.append((packet.signature + codec.signed_bytes(packet), packet.origin))
            payloads.append(packet.payload)
            packet_ids.append(packet.packet_id)
    order = list(range(len(frames)))
    rng.shuffle(order)  # senders interleaved, as on a busy link
    return Workload(
        receiver,
        [frames[i] for i in order],
        [signed[i] for i in order],
        [payloads[i] for i in order],
        [packet_ids[i] for i in order],
    )


def _fresh_engine(work: Workload) -> Engine:
    config = RouterConfig(
        seen_capacity=max(65536, 2 * len(work.frames)),
        link_rate=1e9,
        link_burst=1e9,
    )
    router = FloodRouter(
        work.receiver.node_id,
        work.receiver.public.sign_public,
        config=config,
        rng=random.Random(1),
    )
    engine = Engine(work.receiver, "bench", router=router, rng=random.Random(1))
    engine.link_up(LINK, NOW_MS)
    return engine


def _timed(fn: Callable[[], object]) -> float:
    """CPU seconds of this process spent in ``fn`` (other load on the machine does not count)."""
    gc.collect()
    start = time.process_time()
    fn()
    return time.process_time() - start


def run_engine_receive(work: Workload) -> float:
    engine = _fresh_engine(work)
    receive = engine.receive
    frames = work.frames

    def loop() -> None:
        for frame in frames:
            receive(LINK, frame, NOW_MS)

    elapsed = _timed(loop)
    # Check after timing that every frame really became a received message.
    again = _fresh_engine(work)
    sample = frames[:50]
    got = sum(
        1 for f in sample for o in again.receive(LINK, f, NOW_MS) if isinstance(o, MessageReceived)
    )
    if got != len(sample):
        raise SystemExit(f"pipeline broken: {got} of {len(sample)} frames received")
    return elapsed


def run_router_receive(work: Workload) -> float:
    router = _fresh_engine(work).router
    receive = router.receive
    frames = work.frames

    def loop() -> None:
        for frame in frames:
            receive(LINK, frame, NOW_MS)

    return _timed(loop)


def run_parse(work: Workload) -> float:
    parse = codec.parse
    frames = work.frames

    def loop() -> None:
        for frame in frames:
            parse(frame)

    return _timed(loop)


def run_box_open(work: Workload) -> float:
    box = BoxSuite(work.receiver)
    payloads = work.payloads

    def loop() -> None:
        for payload in payloads:
            _, plaintext = box.open(payload)
            MessageBody.decode(plaintext)

    return _timed(loop)


def run_ack_build(work: Workload) -> float:
    identity = work.receiver
    dest = Destination.node(bytes(16))
    ids = work.packet_ids

    def loop() -> None:
        for packet_id in ids:
            codec.encode(
                codec.build(
                    identity,
                    PacketKind.ACK,
                    dest,
                    Suite.SIGNED,
                    AckBody(packet_id, packet_id).encode(),
                    NOW_MS,
                    DEFAULT_TTL,
                )
            )

    return _timed(loop)


def run_sign_open(work: Workload) -> float:
    sign_open = nacl.bindings.crypto_sign_open
    signed = work.signed

    def loop() -> None:
        for message, key in signed:
            sign_open(message, key)

    return _timed(loop)


STAGES: list[tuple[str, Callable[[Workload], float]]] = [
    ("crypto_sign_open (libsodium baseline)", run_sign_open),
    ("Engine.receive (full receive path)", run_engine_receive),
    ("  FloodRouter.receive (parse+dedupe+verify)", run_router_receive),
    ("  codec.parse only", run_parse),
    ("  BoxSuite.open + MessageBody.decode", run_box_open),
    ("  ack: codec.build + encode (signs)", run_ack_build),
]


def profile(work: Workload, top: int) -> str:
    engine = _fresh_engine(work)
    profiler = cProfile.Profile()
    profiler.enable()
    for frame in work.frames:
        engine.receive(LINK, frame, NOW_MS)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--senders", type=int, default=50)
    parser.add_argument("--per-sender", type=int, default=40)
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="print a cProfile table")
    parser.add_argument("--top", type=int, default=25, help="rows of the cProfile table")
    args = parser.parse_args(argv)

    work = build_workload(args.senders, args.per_sender, args.seed)
    n = len(work.frames)
    times: dict[str, list[float]] = {name: [] for name, _ in STAGES}
    for _, fn in STAGES:  # warm-up: caches, allocator, branch predictors
        fn(work)
    for _ in range(args.reps):
        for name, fn in STAGES:
            times[name].append(fn(work))

    rates = {name: n / statistics.median(ts) for name, ts in times.items()}
    base = rates[STAGES[0][0]]
    paired = [b / e for b, e in zip(times[STAGES[0][0]], times[STAGES[1][0]], strict=True)]
    print(
        f"{n} distinct direct messages from {args.senders} senders, {args.reps} repetitions "
        f"(medians), Python {sys.version.split()[0]}"
    )
    print(f"{'stage':<46}{'packets/s':>12}{'us/packet':>12}{'vs sign_open':>14}")
    for name, _ in STAGES:
        rate = rates[name]
        spread = (max(times[name]) - min(times[name])) / statistics.median(times[name])
        print(
            f"{name:<46}{rate:>12,.0f}{1e6 / rate:>12.1f}{rate / base:>14.2f}"
            f"   (spread {spread:.0%})"
        )
    if args.profile:
        print()
        print(profile(work, args.top))
    ratio = statistics.median(paired)
    print(f"paired ratios per repetition: {' '.join(f'{r:.2f}' for r in paired)}")
    print(f"receive_path_vs_sign_open: {ratio:.2f} (target >= {TARGET:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
