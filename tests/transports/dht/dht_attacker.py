"""A hostile Kademlia participant in a process of its own, for the attack tests.

It speaks the ``kademlia`` package's wire protocol (rpcudp: msgpack over UDP) from loopback
addresses of its own, and prints one JSON summary line when done. Modes:

``store``    stores ``--count`` valid junk records (each signed by a fresh key, at most
             ``MAX_RECORD`` bytes, under its own key) at every target, plus forged, oversized
             and mis-filed records under every ``--keys`` key, with ``--window`` requests in flight.
``flood``    sends ``find_value`` and ``find_node`` requests from fresh node ids to every target
             at ``--rate`` per second for ``--seconds``, without waiting for answers.
``garbage``  runs ``--sybils`` nodes that join through the targets and answer every lookup with
             garbage: forged, oversized, mis-filed and non-bytes values, malformed node lists
             and hundreds of nodes that do not exist; they accept every store and keep nothing.
``squat``    stores, from every ``--hosts`` address, a valid record that lives as long as
             allowed (8 days) in every slot of every ``--tags`` tag at every target: whoever
             saw a tag on a mesh can compute its keys and seal records for them.
``eclipse``  runs ``--sybils`` nodes whose ids share a long prefix with the ``--keys`` keys
             (split evenly): each answers a lookup with the sybils nearest the key and accepts
             every store and keeps nothing.

Server modes run for ``--seconds`` (or until killed) after printing ``{"ready": n}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import time
from typing import Any

import umsgpack
from kademlia.network import Server
from kademlia.node import Node
from kademlia.protocol import KademliaProtocol
from nacl.signing import SigningKey

from meshchat.transports.dht._records import MAX_RECORD, seal_record


def junk_record(expires_s: int, size: int = MAX_RECORD) -> tuple[bytes, bytes]:
    """A valid record under its own key (as Kademlia digests it), as large as allowed."""
    signer = SigningKey.generate()
    frame = os.urandom(min(2040, max(1, size - 420)))  # padded up to the largest envelope
    key, record = seal_record(signer, os.urandom(32), 0, frame, expires_s)
    assert len(record) <= MAX_RECORD
    return _digest(key), record


def _digest(key: bytes) -> bytes:
    import hashlib

    return hashlib.sha1(key).digest()


def bad_records(now: int) -> list[object]:
    """Forged (broken signature), oversized, mis-filed (valid, other key) and not bytes."""
    _, good = junk_record(now + 600, 600)
    forged = good[:50] + bytes([good[50] ^ 1]) + good[51:]
    return [forged, b"MD\x01" + os.urandom(7000), good, 12345, [1, 2, 3], os.urandom(300)]


class Hostile(KademliaProtocol):  # type: ignore[misc]
    mode = "garbage"
    pool: list[Node] = []
    host = "127.0.0.1"
    answered = 0

    def rpc_store(self, sender: Any, nodeid: bytes, key: bytes, value: Any) -> bool:
        return True  # "stored": and dropped

    def rpc_find_node(self, sender: Any, nodeid: bytes, key: bytes) -> Any:
        Hostile.answered += 1
        if self.mode == "eclipse":
            target = Node(key)
            nearest = sorted(self.pool, key=lambda n: n.distance_to(target))[:20]
            return [(n.id, n.ip, n.port) for n in nearest]
        choice = Hostile.answered % 5
        if choice == 0:
            return "not a list"
        if choice == 1:
            return [[b"short", self.host, 1]]
        if choice == 2:
            return [[os.urandom(20), 12345, "port"]]
        if choice == 3:
            # hundreds of nodes right next to the key, none of which exists
            return [(_near(key), self.host, 9) for _ in range(300)]
        return None

    def rpc_find_value(self, sender: Any, nodeid: bytes, key: bytes) -> Any:
        if self.mode == "eclipse":
            return self.rpc_find_node(sender, nodeid, key)
        Hostile.answered += 1
        values = bad_records(int(time.time()))
        choice = Hostile.answered % (len(values) + 2)
        if choice == len(values):
            return {"no value": 1}
        if choice == len(values) + 1:
            return self.rpc_find_node(sender, nodeid, key)
        return {"value": values[choice]}


def _near(key: bytes, shared_bits: int = 120) -> bytes:
    value = int.from_bytes(key, "big") ^ random.getrandbits(160 - shared_bits)
    return value.to_bytes(20, "big")


class HostileServer(Server):  # type: ignore[misc]
    protocol_class = Hostile


async def run_sybils(args: argparse.Namespace) -> dict[str, object]:
    Hostile.mode = args.mode
    Hostile.host = args.hosts[0]
    keys = [bytes.fromhex(k) for k in args.keys]
    servers: list[Server] = []
    for i in range(args.sybils):
        node_id = _near(keys[i % len(keys)]) if args.mode == "eclipse" and keys else None
        server = HostileServer(ksize=20, node_id=node_id)
        host = args.hosts[i % len(args.hosts)]
        await server.listen(0, interface=host)
        port = server.transport.get_extra_info("sockname")[1]
        Hostile.pool.append(Node(server.node.id, host, port))
        servers.append(server)
    targets = [_addr(t) for t in args.targets]
    # each sybil introduces itself to every honest node (which adds it to its routing table)
    pings = [s.protocol.ping(t, s.node.id) for s in servers for t in targets]
    await asyncio.gather(*pings, return_exceptions=True)
    print(json.dumps({"ready": len(servers)}), flush=True)
    await asyncio.sleep(args.seconds)
    for server in servers:
        server.stop()
    return {"mode": args.mode, "sybils": len(servers), "answered": Hostile.answered}


async def run_store(args: argparse.Namespace) -> dict[str, object]:
    servers = []
    for host in args.hosts:  # one storing node per source address, used in turn
        server = Server()
        await server.listen(0, interface=host)
        servers.append(server)
    now = int(time.time())
    began = time.monotonic()
    records = [junk_record(now + 7 * 24 * 3600) for _ in range(args.count)]
    signing_s = time.monotonic() - began
    jobs: list[tuple[tuple[str, int], bytes, object]] = []
    for target in map(_addr, args.targets):
        jobs += [(target, key, record) for key, record in records]
        for key in args.keys:
            jobs += [(target, bytes.fromhex(key), value) for value in bad_records(now)]
    acked = failed = 0
    sem = asyncio.Semaphore(args.window)

    async def one(i: int, target: tuple[str, int], key: bytes, value: object) -> None:
        nonlocal acked, failed
        server = servers[i % len(servers)]
        async with sem:
            ok, _ = await server.protocol.store(target, server.node.id, key, value)
            if ok:
                acked += 1
            else:
                failed += 1

    began = time.monotonic()
    await asyncio.gather(*(one(i, *job) for i, job in enumerate(jobs)))
    for server in servers:
        server.stop()
    return {
        "mode": "store",
        "sources": len(servers),
        "sent": len(jobs),
        "acked": acked,
        "unanswered": failed,
        "bytes": sum(len(r) for _, r in records) * len(args.targets),
        "signing_s": round(signing_s, 2),
        "seconds": round(time.monotonic() - began, 2),
    }


async def run_squat(args: argparse.Namespace) -> dict[str, object]:
    from meshchat.crypto.direct import anonymous_packet
    from meshchat.transports.dht._records import MAX_RECORD_LIFETIME_S
    from meshchat.transports.dht._sealed import (
        SEALED_SLOTS,
        sealed_envelope_key,
        sealed_signer,
    )
    from meshchat.wire import Destination, PacketKind, encode

    now = int(time.time())
    expires = now + MAX_RECORD_LIFETIME_S - 120
    records: list[tuple[int, bytes, bytes]] = []  # (source index, key, record)
    for i, _host in enumerate(args.hosts):
        for tag in map(bytes.fromhex, args.tags):
            for slot in range(SEALED_SLOTS):
                packet = anonymous_packet(
                    SigningKey.generate(),
                    PacketKind.MESSAGE,
                    Destination.node(tag),
                    os.urandom(64),
                    now * 1000,
                    4,
                )
                key, record = seal_record(
                    sealed_signer(tag), sealed_envelope_key(tag), slot, encode(packet), expires
                )
                records.append((i, _digest(key), record))
    servers = []
    for host in args.hosts:
        server = Server()
        await server.listen(0, interface=host)
        servers.append(server)
    calls = [
        servers[i].protocol.store(target, servers[i].node.id, key, record)
        for target in map(_addr, args.targets)
        for i, key, record in records
    ]
    results = await asyncio.gather(*calls)
    for server in servers:
        server.stop()
    return {"mode": "squat", "sent": len(calls), "acked": sum(1 for ok, _ in results if ok)}


async def run_flood(args: argparse.Namespace) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((args.hosts[0], 0))
    sock.setblocking(False)
    targets = [_addr(t) for t in args.targets]
    keys = [bytes.fromhex(k) for k in args.keys] or [os.urandom(20)]
    sent = received = 0
    deadline = time.monotonic() + args.seconds
    tick = 0.01
    per_tick = max(1, int(args.rate * tick))
    while time.monotonic() < deadline:
        for _ in range(per_tick):
            method = "find_value" if sent % 2 == 0 else "find_node"
            request = umsgpack.packb([method, [os.urandom(20), random.choice(keys)]])
            datagram = b"\x00" + os.urandom(20) + request
            for target in targets:
                try:
                    sock.sendto(datagram, target)
                    sent += 1
                except BlockingIOError:
                    pass
        while True:
            try:
                sock.recv(65536)
                received += 1
            except BlockingIOError:
                break
        await asyncio.sleep(tick)
    await asyncio.sleep(0.5)
    while True:
        try:
            sock.recv(65536)
            received += 1
        except BlockingIOError:
            break
    sock.close()
    del loop
    return {"mode": "flood", "sent": sent, "answers": received}


def _addr(text: str) -> tuple[str, int]:
    host, port = text.rsplit(":", 1)
    return host, int(port)


async def main(args: argparse.Namespace) -> None:
    if args.mode == "store":
        result = await run_store(args)
    elif args.mode == "squat":
        result = await run_squat(args)
    elif args.mode == "flood":
        result = await run_flood(args)
    else:
        result = await run_sybils(args)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["store", "squat", "flood", "garbage", "eclipse"])
    parser.add_argument("--hosts", nargs="+", default=["127.66.0.1"])
    parser.add_argument("--targets", nargs="+", default=[])
    parser.add_argument("--keys", nargs="*", default=[], help="Kademlia keys (hex digests)")
    parser.add_argument("--tags", nargs="*", default=[], help="sealed tags (hex)")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--sybils", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=30)
    asyncio.run(main(parser.parse_args()))
