"""Receive-path throughput of one node, against libsodium's raw signature check, in one run.

What is measured. A node in a mesh receives direct messages addressed to it, and hears most
packets more than once (each neighbour that relays a packet sends it a copy). The workload is
distinct direct messages from many senders, received as a stream in which every packet comes
``--copies`` times on average (1.7 by default: what the 5x5 grid field test measured), copies a
little after the first. For each frame the node parses it, checks the seen-set (a duplicate
stops there), checks the time window and the Ed25519 signature, opens the BOX payload and
decodes the body. The baseline is ``nacl.bindings.crypto_sign_open`` on every frame of the same
stream: what a node that verifies before it dedupes would pay for signatures alone.

The worst case, where no packet is ever heard twice, is measured in the same run and printed
too, as are the stages that explain it: the router alone, the parser, the BOX open, the signed
ack the engine builds for each message.

Method. All frames are built before any timing. Each repetition gets a fresh engine (an empty
seen-set) whose link rate is high enough that rate limiting never triggers. Time is the
process's CPU time, so other load on the machine counts for neither side. Repetitions
interleave pipeline and baseline; the table reports median rates and the final ratio is the
median of the per-repetition (paired) ratios.

Run ``python bench/pipeline.py`` (``--help`` for sizes; ``--profile`` adds a cProfile table of
the full receive path). The last line is machine-readable::

    receive_path_vs_sign_open: 1.15 (target >= 0.90)
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
from meshchat.router.actions import Deliver
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
    #: what a node in a mesh receives: every packet, plus copies relayed by other neighbours
    stream: list[bytes]
    stream_signed: list[tuple[bytes, bytes]]


def build_workload(senders: int, per_sender: int, seed: int, copies: float) -> Workload:
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
    # Each packet also arrives again from other neighbours, a little later: on average
    # ``copies - 1`` extra copies, placed within the next 20 packets.
    timeline: list[tuple[float, int]] = []
    for position, i in enumerate(order):
        timeline.append((position, i))
        extra = int(copies - 1) + (1 if rng.random() < (copies - 1) % 1 else 0)
        timeline.extend((position + rng.uniform(0.5, 20), i) for _ in range(extra))
    timeline.sort()
    return Workload(
        receiver,
        [frames[i] for i in order],
        [signed[i] for i in order],
        [payloads[i] for i in order],
        [packet_ids[i] for i in order],
        [frames[i] for _, i in timeline],
        [signed[i] for _, i in timeline],
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


def run_receive_path(work: Workload, frames: list[bytes] | None = None) -> float:
    """Decode, dedupe, verify and decrypt: what the node must do before it can store."""
    router = _fresh_engine(work).router
    receive = router.receive
    box = BoxSuite(work.receiver)
    frames = work.stream if frames is None else frames

    def loop() -> None:
        for frame in frames:
            for action in receive(LINK, frame, NOW_MS):
                if isinstance(action, Deliver):
                    _, plaintext = box.open(action.packet.payload)
                    MessageBody.decode(plaintext)

    return _timed(loop)


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
                    AckBody(packet_id, packet_id, identity.public.box_public).encode(),
                    NOW_MS,
                    DEFAULT_TTL,
                )
            )

    return _timed(loop)


def run_receive_path_distinct(work: Workload) -> float:
    return run_receive_path(work, work.frames)


def run_sign_open_distinct(work: Workload) -> float:
    return run_sign_open(work, work.signed)


def run_sign_open(work: Workload, signed: list[tuple[bytes, bytes]] | None = None) -> float:
    sign_open = nacl.bindings.crypto_sign_open
    signed = work.stream_signed if signed is None else signed

    def loop() -> None:
        for message, key in signed:
            sign_open(message, key)

    return _timed(loop)


BASELINE = "crypto_sign_open on every frame (baseline)"
PIPELINE = "receive path (decode+dedupe+verify+decrypt)"
BASELINE_DISTINCT = "crypto_sign_open, distinct packets only"
PIPELINE_DISTINCT = "receive path, distinct packets only"

STAGES: list[tuple[str, Callable[[Workload], float]]] = [
    (BASELINE, run_sign_open),
    (PIPELINE, run_receive_path),
    (BASELINE_DISTINCT, run_sign_open_distinct),
    (PIPELINE_DISTINCT, run_receive_path_distinct),
    ("Engine.receive, distinct (+ signed ack)", run_engine_receive),
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
    parser.add_argument(
        "--copies",
        type=float,
        default=1.7,
        help="copies of each packet a node receives (1.7: the 5x5 grid field test)",
    )
    parser.add_argument("--profile", action="store_true", help="print a cProfile table")
    parser.add_argument("--top", type=int, default=25, help="rows of the cProfile table")
    args = parser.parse_args(argv)

    work = build_workload(args.senders, args.per_sender, args.seed, args.copies)
    times: dict[str, list[float]] = {name: [] for name, _ in STAGES}
    for _, fn in STAGES:  # warm-up: caches, allocator, branch predictors
        fn(work)
    for _ in range(args.reps):
        for name, fn in STAGES:
            times[name].append(fn(work))

    sizes = {name: len(work.frames) for name, _ in STAGES}
    sizes[BASELINE] = sizes[PIPELINE] = len(work.stream)
    rates = {name: sizes[name] / statistics.median(ts) for name, ts in times.items()}
    paired = [b / e for b, e in zip(times[BASELINE], times[PIPELINE], strict=True)]
    paired_distinct = [
        b / e for b, e in zip(times[BASELINE_DISTINCT], times[PIPELINE_DISTINCT], strict=True)
    ]
    print(
        f"{len(work.frames)} distinct direct messages from {args.senders} senders, received as "
        f"{len(work.stream)} frames ({args.copies} copies each on average); "
        f"{args.reps} repetitions (medians), Python {sys.version.split()[0]}"
    )
    print(f"{'stage':<46}{'frames/s':>12}{'us/frame':>12}{'vs sign_open':>14}")
    for name, _ in STAGES:
        rate = rates[name]
        base = rates[BASELINE] if name in (BASELINE, PIPELINE) else rates[BASELINE_DISTINCT]
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
    print(
        f"worst case, every packet distinct: {statistics.median(paired_distinct):.2f} "
        "of the sign_open rate"
    )
    print(f"receive_path_vs_sign_open: {ratio:.2f} (target >= {TARGET:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
