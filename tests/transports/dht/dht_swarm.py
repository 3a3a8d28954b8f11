"""Honest meshchat DHT nodes in a process of their own, for the attack tests.

Each node is a real :class:`DhtTransport` (a gateway with no mesh behind it) on its own
loopback address, so per-address limits see one address per node, as on the internet. The
first node is the bootstrap of the others. Prints ``{"ports": [...]}`` once every node is up,
then every ``--stats-s`` seconds a JSON line with what each node stores; runs until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from meshchat.identity import Identity
from meshchat.transports.base import Link
from meshchat.transports.dht import DhtConfig, DhtTransport


class Idle:
    """A node with no mesh: it only stores and answers for others."""

    def link_up(self, link: Link) -> None:
        pass

    def link_down(self, link: Link) -> None:
        pass

    def frame_received(self, link: Link, frame: bytes) -> None:
        pass


def stats(transports: list[DhtTransport]) -> dict[str, object]:
    nodes = []
    for t in transports:
        storage = t._server.storage  # what the Kademlia node really uses
        stored = list(storage)
        nodes.append(
            {
                "records": len(stored),
                "bytes": sum(len(v) if isinstance(v, bytes | str) else 8 for _, v in stored),
                "refused": getattr(storage, "refused", 0),
                "neighbours": t.neighbours,
                "counters": dict(getattr(t, "guard_counters", lambda: {})()),
            }
        )
    return {"nodes": nodes}


async def main(args: argparse.Namespace) -> None:
    idle = Idle()
    transports: list[DhtTransport] = []
    bootstrap: tuple[tuple[str, int], ...] = ()
    for host in args.hosts:
        config = DhtConfig(
            host=host,
            bootstrap=bootstrap,
            poll_s=60.0,
            ksize=args.ksize,
            max_stored=args.max_stored,
        )
        transport = DhtTransport(Identity.generate(), config)
        await transport.start(idle)
        transports.append(transport)
        if not bootstrap:
            bootstrap = ((host, transport.port),)
    async with asyncio.timeout(20):
        while not all(t.neighbours for t in transports[1:]):
            await asyncio.sleep(0.05)
    # every node learns every other, as in a swarm that has run a while
    for t in transports:
        await t._server.bootstrap(
            [(h, x.port) for h, x in zip(args.hosts, transports, strict=True)]
        )
    print(json.dumps({"ports": [t.port for t in transports]}), flush=True)
    while True:
        await asyncio.sleep(args.stats_s)
        print(json.dumps(stats(transports)), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", nargs="+", required=True)
    parser.add_argument("--ksize", type=int, default=20)
    parser.add_argument("--max-stored", type=int, default=4096)
    parser.add_argument("--stats-s", type=float, default=0.5)
    try:
        asyncio.run(main(parser.parse_args()))
    except KeyboardInterrupt:
        sys.exit(0)
