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

Sealed messages (suite RATCHET, what contacts with current cards use) are measured in the same
run, beside raw libsodium on the same frames (``crypto_sign_open``, ``crypto_box_seal_open``;
``crypto_box_seal`` + ``crypto_sign`` for sending). ``--ratchet-senders`` contacts each have a
confirmed session with the receiver and full replay memories (as on a node that has been
running), then send a chain of ``--ratchet-per-sender`` messages, senders interleaved. Each
repetition restores the receiver from its stored blobs (untimed) and opens the same frames.
Rows: the receive path (router, ``open_message``, and the session blob handed to the store,
which the engine does before anything leaves), ``Engine.receive`` with the sealed ack, the
steps alone, the send path (``build_message``, the blob, encoding), and messages one at a
time between two live suites: message, ack, both sides' blobs, where the ack and the next
message each bring a new ratchet key, so each takes a Diffie-Hellman ratchet step (a chain
replayed from blobs cannot: new ratchet keys are random).

Method. All frames are built before any timing. Each repetition gets a fresh engine (an empty
seen-set) whose link rate is high enough that rate limiting never triggers. Time is the
process's CPU time, so other load on the machine counts for neither side. Repetitions
interleave pipeline and baseline; the table reports median rates and the final ratio is the
median of the per-repetition (paired) ratios.

Run ``python bench/pipeline.py`` (``--help`` for sizes; ``--profile`` adds a cProfile table of
the full receive path). The last line is machine-readable::

    receive_path_vs_sign_open: 0.99 (target >= 0.90)

(The RATCHET rows are printed above it, with ``ratchet receive path: ... us/message``.)
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
from meshchat.crypto.direct import DirectSuite
from meshchat.crypto.sealed import PREFIX_SIZE
from meshchat.crypto.sessions import RECENT_CIPHERTEXTS, RECENT_MESSAGES
from meshchat.engine import Engine
from meshchat.events import MessageReceived
from meshchat.identity import Identity
from meshchat.router.actions import Deliver
from meshchat.router.flood import FloodRouter, RouterConfig
from meshchat.wire import codec
from meshchat.wire.packet import DEFAULT_TTL, Destination, Packet, PacketKind, Suite
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


def _engine_for(receiver: Identity, frames: int) -> Engine:
    config = RouterConfig(
        seen_capacity=max(65536, 2 * frames),
        link_rate=1e9,
        link_burst=1e9,
    )
    router = FloodRouter(
        receiver.node_id,
        receiver.public.sign_public,
        config=config,
        rng=random.Random(1),
    )
    engine = Engine(receiver, "bench", router=router, rng=random.Random(1))
    engine.link_up(LINK, NOW_MS)
    return engine


def _fresh_engine(work: Workload) -> Engine:
    return _engine_for(work.receiver, len(work.frames))


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


# -- suite RATCHET ----------------------------------------------------------------------------


@dataclass(slots=True)
class RatchetWorkload:
    receiver: Identity
    #: the receiver's stored state before the frames: prekeys and one record per sender
    blobs: dict[bytes, bytes]
    frames: list[bytes]
    packets: list[Packet]
    signed: list[tuple[bytes, bytes]]
    #: the sealed box of each frame (after the ack-hash prefix), for crypto_box_seal_open
    boxes: list[bytes]
    #: live senders (their sessions are confirmed) and their recipient, for the send path
    senders: list[DirectSuite]
    #: two live suites with a confirmed session, for conversation turns
    turn: tuple[DirectSuite, DirectSuite]
    counter: list[int]


def _fill_memories(suite: DirectSuite, rng: random.Random) -> None:
    """Full replay memories in every record, as on a node that has run for a while."""
    for record in suite.records.values():
        for _ in range(RECENT_CIPHERTEXTS):
            record.remember_ciphertext(rng.randbytes(10), NOW_MS - 60_000)
        for _ in range(RECENT_MESSAGES):
            record.remember_message(rng.randbytes(16))


def _handshake(a: DirectSuite, b: DirectSuite, rng: random.Random) -> None:
    """Contacts of each other, a session started by ``a`` and confirmed by ``b``'s ack."""
    a.add_peer(b.identity.public, b.own_prekey(NOW_MS))
    b.add_peer(a.identity.public, a.own_prekey(NOW_MS))
    msg_id = rng.randbytes(16)
    body = MessageBody(msg_id, "hello").encode()
    opened = b.open_message(a.build_message(b.identity.public, msg_id, body, NOW_MS, 4), NOW_MS)
    a.open_ack(b.build_ack(a.identity.public, opened.token, NOW_MS, 4), NOW_MS)
    a.forget(msg_id)


def _blobs(suite: DirectSuite) -> dict[bytes, bytes]:
    out = {node_id: record.blob() for node_id, record in suite.records.items()}
    out[suite.identity.node_id] = suite.prekeys.blob()
    suite.take_updates()
    return out


def build_ratchet_workload(senders: int, per_sender: int, seed: int) -> RatchetWorkload:
    rng = random.Random(seed)
    receiver = DirectSuite(Identity.generate())
    receiver.maintain(NOW_MS)
    suites = []
    for _ in range(senders):
        sender = DirectSuite(Identity.generate())
        sender.maintain(NOW_MS)
        _handshake(sender, receiver, rng)
        _fill_memories(sender, rng)
        sender.take_updates()
        suites.append(sender)
    _fill_memories(receiver, rng)
    blobs = _blobs(receiver)
    frames: list[bytes] = []
    for _ in range(per_sender):
        for sender in suites:
            msg_id = rng.randbytes(16)
            text = "message text " * rng.randint(1, 8)
            body = MessageBody(msg_id, text).encode()
            packet = sender.build_message(receiver.identity.public, msg_id, body, NOW_MS, 4)
            sender.take_updates()
            sender.forget(msg_id)
            frames.append(codec.encode(packet))
    packets = [codec.parse(f) for f in frames]
    a, b = DirectSuite(Identity.generate()), DirectSuite(Identity.generate())
    for s in (a, b):
        s.maintain(NOW_MS)
    _handshake(a, b, rng)
    _fill_memories(a, rng)
    _fill_memories(b, rng)
    a.take_updates()
    b.take_updates()
    return RatchetWorkload(
        receiver.identity,
        blobs,
        frames,
        packets,
        [(p.signature + codec.signed_bytes(p), p.origin) for p in packets],
        [p.payload[PREFIX_SIZE:] for p in packets],
        suites,
        (a, b),
        [0],
    )


def _restored(work: RatchetWorkload) -> DirectSuite:
    """The receiver as stored before the frames, its blob caches warm (as when running)."""
    suite = DirectSuite(work.receiver)
    suite.load(work.blobs)
    suite.maintain(NOW_MS)
    for record in suite.records.values():
        record.blob()
    suite.take_updates()
    return suite


def run_ratchet_receive_path(work: RatchetWorkload) -> float:
    """Router (parse, dedupe, verify), open and decrypt, and the blob for the store."""
    suite = _restored(work)
    router = _engine_for(work.receiver, len(work.frames)).router
    router.addresses = suite.book.tags
    receive, open_message, take_updates = router.receive, suite.open_message, suite.take_updates
    frames = work.frames

    def loop() -> None:
        for frame in frames:
            for action in receive(LINK, frame, NOW_MS):
                if isinstance(action, Deliver):
                    if open_message(action.packet, NOW_MS).text is None:
                        raise SystemExit("ratchet pipeline broken: a message did not open")
                    take_updates()

    return _timed(loop)


def run_ratchet_engine(work: RatchetWorkload) -> float:
    engine = _engine_for(work.receiver, len(work.frames))
    engine.load_sessions(work.blobs)
    engine.direct.maintain(NOW_MS)
    for record in engine.direct.records.values():
        record.blob()
    engine.flush()
    receive = engine.receive
    frames = work.frames
    got: list[int] = [0]

    def loop() -> None:
        for frame in frames:
            for out in receive(LINK, frame, NOW_MS):
                if isinstance(out, MessageReceived):
                    got[0] += 1

    elapsed = _timed(loop)
    if got[0] != len(frames):
        raise SystemExit(f"ratchet engine broken: {got[0]} of {len(frames)} frames received")
    return elapsed


def run_ratchet_open(work: RatchetWorkload) -> float:
    suite = _restored(work)
    open_message, packets = suite.open_message, work.packets

    def loop() -> None:
        for packet in packets:
            open_message(packet, NOW_MS)

    return _timed(loop)


def run_ratchet_open_store(work: RatchetWorkload) -> float:
    suite = _restored(work)
    open_message, take_updates, packets = suite.open_message, suite.take_updates, work.packets

    def loop() -> None:
        for packet in packets:
            open_message(packet, NOW_MS)
            take_updates()

    return _timed(loop)


def run_ratchet_ack(work: RatchetWorkload) -> float:
    """The sealed ack of each message and the blob stored before it leaves (untimed: open)."""
    suite = _restored(work)
    opened = []
    for packet in work.packets:
        opened.append(suite.open_message(packet, NOW_MS))
    suite.take_updates()
    build_ack, take_updates = suite.build_ack, suite.take_updates

    def loop() -> None:
        for o in opened:
            codec.encode(build_ack(o.sender, o.token, NOW_MS, 4))
            take_updates()

    return _timed(loop)


def run_box_seal_open_raw(work: RatchetWorkload) -> float:
    seal_open = nacl.bindings.crypto_box_seal_open
    secret = bytes(work.receiver.box_key)
    public = work.receiver.public.box_public
    boxes = work.boxes

    def loop() -> None:
        for box in boxes:
            seal_open(box, public, secret)

    return _timed(loop)


def run_ratchet_sign_open(work: RatchetWorkload) -> float:
    sign_open = nacl.bindings.crypto_sign_open
    signed = work.signed

    def loop() -> None:
        for message, key in signed:
            sign_open(message, key)

    return _timed(loop)


def run_ratchet_send(work: RatchetWorkload) -> float:
    """build_message (ratchet step, one-packet key, seal, sign), the blob, the frame."""
    recipient = work.receiver.public
    senders = work.senders
    count = len(work.frames) // len(senders)
    base = work.counter[0]
    work.counter[0] += count
    bodies = [
        (i.to_bytes(16, "big"), MessageBody(i.to_bytes(16, "big"), "message text " * 4).encode())
        for i in range(base, base + count)
    ]

    def loop() -> None:
        for msg_id, body in bodies:
            for sender in senders:
                codec.encode(sender.build_message(recipient, msg_id, body, NOW_MS, 4))
                sender.take_updates()
                sender.forget(msg_id)

    return _timed(loop)


def run_seal_sign_raw(work: RatchetWorkload) -> float:
    """The libsodium floor of a sealed packet: a one-packet Ed25519 key, the sealed box, the
    signature (no ratchet, no encoding)."""
    seal, sign = nacl.bindings.crypto_box_seal, nacl.bindings.crypto_sign
    keypair = nacl.bindings.crypto_sign_seed_keypair
    recipient = work.receiver.public.box_public
    boxes = work.boxes
    seeds = [bytes([i % 256]) * 32 for i in range(len(boxes))]

    def loop() -> None:
        for box, seed in zip(boxes, seeds, strict=True):
            _, sk = keypair(seed)
            sign(seal(box[: len(box) - 48], recipient), sk)

    return _timed(loop)


def run_ratchet_turns(work: RatchetWorkload) -> float:
    """Live, one at a time: a message, its ack, each with its blobs; per message. The ack
    carries a new ratchet key and so does the next message: two DH ratchet steps each."""
    a, b = work.turn
    count = len(work.frames)
    base = work.counter[0]
    work.counter[0] += count
    ids = [i.to_bytes(16, "big") for i in range(base, base + count)]
    bodies = [MessageBody(m, "message text " * 4).encode() for m in ids]
    peer_a, peer_b = a.identity.public, b.identity.public

    def loop() -> None:
        for msg_id, body in zip(ids, bodies, strict=True):
            packet = a.build_message(peer_b, msg_id, body, NOW_MS, 4)
            a.take_updates()
            opened = b.open_message(packet, NOW_MS)
            ack = b.build_ack(peer_a, opened.token, NOW_MS, 4)
            b.take_updates()
            a.open_ack(ack, NOW_MS)
            a.take_updates()
            a.forget(msg_id)

    return _timed(loop)


R_BASELINE = "crypto_sign_open, RATCHET frames (baseline)"
R_PIPELINE = "RATCHET receive path (verify+open+decrypt+blob)"

RATCHET_STAGES: list[tuple[str, Callable[[RatchetWorkload], float]]] = [
    (R_BASELINE, run_ratchet_sign_open),
    ("crypto_box_seal_open, same frames (libsodium)", run_box_seal_open_raw),
    (R_PIPELINE, run_ratchet_receive_path),
    ("Engine.receive, RATCHET (+ sealed ack)", run_ratchet_engine),
    ("  DirectSuite.open_message only", run_ratchet_open),
    ("  open_message + take_updates (blob)", run_ratchet_open_store),
    ("  sealed ack: build_ack + blob + encode", run_ratchet_ack),
    ("RATCHET send: build_message + blob + encode", run_ratchet_send),
    ("  libsodium floor: keypair + seal + sign", run_seal_sign_raw),
    ("RATCHET one at a time (msg+ack, both sides)", run_ratchet_turns),
]


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


def profile(work: Workload, ratchet: RatchetWorkload, top: int) -> str:
    out = io.StringIO()
    for title, engine, frames in (
        ("Engine.receive, suite BOX", _fresh_engine(work), work.frames),
        ("Engine.receive, suite RATCHET", _engine_for(ratchet.receiver, 0), ratchet.frames),
    ):
        if title.endswith("RATCHET"):
            engine.load_sessions(ratchet.blobs)
        profiler = cProfile.Profile()
        profiler.enable()
        for frame in frames:
            engine.receive(LINK, frame, NOW_MS)
        profiler.disable()
        print(f"-- {title}", file=out)
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
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
    parser.add_argument("--ratchet-senders", type=int, default=10)
    parser.add_argument("--ratchet-per-sender", type=int, default=40)
    parser.add_argument("--profile", action="store_true", help="print a cProfile table")
    parser.add_argument("--top", type=int, default=25, help="rows of the cProfile table")
    args = parser.parse_args(argv)

    work = build_workload(args.senders, args.per_sender, args.seed, args.copies)
    ratchet = build_ratchet_workload(args.ratchet_senders, args.ratchet_per_sender, args.seed)
    times: dict[str, list[float]] = {name: [] for name, _ in STAGES}
    rtimes: dict[str, list[float]] = {name: [] for name, _ in RATCHET_STAGES}
    for _, fn in STAGES:  # warm-up: caches, allocator, branch predictors
        fn(work)
    for _, rfn in RATCHET_STAGES:
        rfn(ratchet)
    for _ in range(args.reps):
        for name, fn in STAGES:
            times[name].append(fn(work))
        for name, rfn in RATCHET_STAGES:
            rtimes[name].append(rfn(ratchet))

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
    n_ratchet = len(ratchet.frames)
    rrates = {name: n_ratchet / statistics.median(ts) for name, ts in rtimes.items()}
    print(
        f"suite RATCHET: {n_ratchet} sealed messages, {args.ratchet_senders} senders with "
        "confirmed sessions and full replay memories"
    )
    for name, _ in RATCHET_STAGES:
        rate = rrates[name]
        spread = (max(rtimes[name]) - min(rtimes[name])) / statistics.median(rtimes[name])
        print(
            f"{name:<46}{rate:>12,.0f}{1e6 / rate:>12.1f}{rate / rrates[R_BASELINE]:>14.2f}"
            f"   (spread {spread:.0%})"
        )
    if args.profile:
        print()
        print(profile(work, ratchet, args.top))
    ratio = statistics.median(paired)
    print(f"paired ratios per repetition: {' '.join(f'{r:.2f}' for r in paired)}")
    print(
        f"worst case, every packet distinct: {statistics.median(paired_distinct):.2f} "
        "of the sign_open rate"
    )
    print(
        f"ratchet receive path: {1e6 / rrates[R_PIPELINE]:.0f} us/message "
        f"({rrates[R_PIPELINE] / rrates[R_BASELINE]:.2f} of the sign_open rate)"
    )
    print(f"receive_path_vs_sign_open: {ratio:.2f} (target >= {TARGET:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
