"""Resident memory of one node taking in 100,000 distinct flooded packets, in one run.

What is measured. One node -- an :class:`meshchat.engine.Engine` (router, payload crypto,
outbox) joined to the public ``#mesh`` channel, with eight neighbour links -- receives
100,000 distinct signed channel messages from 200 origins, as it would in a busy mesh: every
packet arrives on a random link, 30% of them a second time on another link (a relayed copy),
signatures are checked, each message is decoded into a ``MessageReceived`` event, and relays
are scheduled by the default managed policy and fired by ``tick``. The virtual clock runs at
100 packets per second. The process's resident set size (VmRSS) is sampled every 5,000
packets.

What bounds it. The seen-set holds at most 65,536 packet ids (``RouterConfig.seen_capacity``)
and evicts the oldest; pending relays are bounded by ``max_pending``; a broadcast is never
carried. So RSS should grow until the seen-set is full (~65,000 packets) and then stay flat.
The message store is SQLite on disk and is not part of this figure.

Baseline, same run: the RSS of this interpreter with meshchat imported and the workload's
origins generated, before the node exists. The table shows both, and the node's own share.

Run ``python bench/memory.py`` (``--packets N`` to change the count). Last line::

    node_rss_mb: 55.0 (target <= 80)
"""

from __future__ import annotations

import argparse
import gc
import random
import resource
import sys
from pathlib import Path

from meshchat.crypto.channel import ChannelKey
from meshchat.engine import Engine
from meshchat.events import MessageReceived
from meshchat.identity import Identity
from meshchat.router.flood import FloodRouter
from meshchat.wire import codec
from meshchat.wire.packet import DEFAULT_TTL, Destination, PacketKind, Suite
from meshchat.wire.payloads import MessageBody

EPOCH_MS = 1_700_000_000_000
TARGET_MB = 80.0
LINKS = [f"peer{i}" for i in range(8)]
SAMPLE_EVERY = 5000
WARMUP = 70_000  # past the seen-set's capacity (65,536): from here on RSS should be flat


def rss_mb() -> float:
    """The current resident set size of this process in MiB (Linux: /proc; else peak RSS)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--packets", type=int, default=100_000)
    parser.add_argument("--origins", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    channel = ChannelKey.public()
    origins = [
        Identity.from_seeds(rng.randbytes(32), rng.randbytes(32)) for _ in range(args.origins)
    ]
    gc.collect()
    baseline = rss_mb()

    me = Identity.from_seeds(rng.randbytes(32), rng.randbytes(32))
    router_rng = random.Random(args.seed + 1)
    router = FloodRouter(me.node_id, me.public.sign_public, rng=router_rng)
    engine = Engine(me, "bench", router=router, rng=router_rng)
    engine.join(channel)
    for link in LINKS:
        engine.link_up(link, EPOCH_MS)
    after_node = rss_mb()

    samples: list[tuple[int, float, int, int]] = []
    received = transmits = 0
    now = EPOCH_MS
    for i in range(1, args.packets + 1):
        now += 10  # 100 packets per second of virtual time
        body = MessageBody(rng.randbytes(16), f"message {i} " + "x" * rng.randrange(20, 120))
        packet = codec.build(
            origins[rng.randrange(len(origins))],
            PacketKind.MESSAGE,
            Destination.channel(channel.channel_id),
            Suite.SIGNED,
            body.encode(),
            now,
            DEFAULT_TTL,
        )
        frame = codec.encode(packet.relayed())
        first = rng.choice(LINKS)
        for out in engine.receive(first, frame, now, rssi=rng.uniform(-95.0, -60.0)):
            received += isinstance(out, MessageReceived)
        if rng.random() < 0.3:
            engine.receive(rng.choice(LINKS), frame, now + 5)
        if i % 5 == 0:
            transmits += sum(1 for _ in engine.tick(now))
        if i % SAMPLE_EVERY == 0:
            samples.append((i, rss_mb(), router.seen_count, len(router._pending)))
    transmits += sum(1 for _ in engine.tick(now + 60_000))
    if not samples or samples[-1][0] != args.packets:
        samples.append((args.packets, rss_mb(), router.seen_count, len(router._pending)))

    print(
        f"{args.packets:,} distinct flooded packets into one node ({len(LINKS)} links, "
        f"signatures checked), Python {sys.version.split()[0]}"
    )
    print(f"baseline (interpreter + meshchat + workload origins): {baseline:.1f} MB")
    print(f"after creating the node:                              {after_node:.1f} MB")
    print(f"{'packets':>9}{'RSS MB':>9}{'node MB':>9}{'seen ids':>10}{'pending':>9}")
    for count, mb, seen, pending in samples:
        print(f"{count:>9,}{mb:>9.1f}{mb - baseline:>9.1f}{seen:>10,}{pending:>9,}")
    if received != args.packets:
        raise SystemExit(f"only {received} of {args.packets} packets were delivered")
    final = samples[-1][1]
    warm = [mb for count, mb, _, _ in samples if count >= WARMUP]
    growth = (max(warm) - min(warm)) if warm else float("nan")
    print(f"messages delivered: {received:,}; relay actions: {transmits:,}")
    print(
        f"after warm-up ({WARMUP:,}+ packets) RSS varies by {growth:.1f} MB; "
        f"node total / baseline = {final / baseline:.2f}"
    )
    print(f"node_rss_mb: {final:.1f} (target <= {TARGET_MB:.0f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
