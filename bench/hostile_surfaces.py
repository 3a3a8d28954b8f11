"""Attacks on a real daemon through push-to-talk, files and account blobs, with the cost to it.

A real daemon V (``meshchat daemon``, its own process) on loopback; its contact B (a node in
this process, linked over LAN) sends direct messages to V before and during each attack, and
each one's latency (sent to acked as delivered) is measured; V's CPU (user + system time of its
process over the attack, as a share of one core) and resident memory (VmRSS, the highest seen)
are read from /proc. Attackers: M, a contact of V's (a malicious but linked peer), and
strangers (throw-away identities with a LAN link to V, or a node that holds V's card while V
does not hold theirs).

    PYTHONPATH=. python bench/hostile_surfaces.py [--seconds 6] [--only NAME]

Prints one line per attack: messages delivered before / during, median latency before and
during, V's CPU share and highest RSS during, and what V counted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cbor2

from meshchat.control import request
from meshchat.engine._files import LINK_FILE_TAG
from meshchat.files.manifest import DEFAULT_CHUNK_SIZE as CHUNK
from meshchat.files.wire import Piece, Request
from meshchat.home import Home
from meshchat.identity import ContactCard, Identity
from meshchat.node import Node
from meshchat.store import Store
from meshchat.store.records import MessageState
from meshchat.talk.wire import LiveFrame, TalkOffer
from meshchat.transports.base import Link
from meshchat.transports.lan import LanTransport
from meshchat.wire import codec
from meshchat.wire.packet import Destination, PacketKind, Suite
from tests.node.junk_link import FirstLink
from tests.node.test_node_inbox import daemon, free_port, meshchat_cli, wait_for

Attack = Callable[["World", asyncio.Event], Awaitable[str]]


class World:
    """What an attack sees: V's port and card, a file V serves, and (in the attacker's
    process) M, a contact of V's, and a stranger node that holds V's card."""

    def __init__(self, tmp: Path, port: int, v_card: ContactCard) -> None:
        self.tmp = tmp
        self.port = port
        self.v_card = v_card
        self.stores: list[Store] = []
        self.nodes: list[Node] = []
        self.served_root = b""
        self.served_chunks = 0
        self.m: Node
        self.stranger: Node

    async def node(self, name: str) -> Node:
        store = Store.open(self.tmp / f"{name}.db", key=os.urandom(32))
        self.stores.append(store)
        identity = Identity.generate()
        lan = LanTransport(
            identity, host="127.0.0.1", discovery=False,
            static_peers=[("127.0.0.1", self.port)], dial_delay=0.0,
        )  # fmt: skip
        node = Node(identity, name, store, [lan])
        await node.start()
        self.nodes.append(node)
        await node.add_card(self.v_card, "v")
        return node

    async def close(self) -> None:
        for n in self.nodes:
            await n.stop()
        for st in self.stores:
            st.close()


@contextlib.asynccontextmanager
async def stranger_link(port: int, identity: Identity | None = None) -> AsyncIterator[Link]:
    transport = LanTransport(
        identity or Identity.generate(), host="127.0.0.1", discovery=False,
        static_peers=[("127.0.0.1", port)], dial_delay=0.0,
    )  # fmt: skip
    handler = FirstLink()
    await transport.start(handler)
    try:
        yield await asyncio.wait_for(handler.up, 30)
    finally:
        await transport.stop()


async def _pump(link: Link, make: Callable[[int], bytes], stop: asyncio.Event) -> int:
    """Send ``make(i)`` frames as fast as the link takes them until ``stop``."""
    sent = 0
    while not stop.is_set():
        while link.send(make(sent)):
            sent += 1
            if sent % 200 == 0:
                break
        await asyncio.sleep(0.001)
    return sent


def _talk_frame(signer: Identity, to: bytes, *, forge: bool = False) -> bytes:
    live = LiveFrame(os.urandom(16), 0, os.urandom(60))
    packet = codec.build(
        signer, PacketKind.TALK, Destination.node(to), Suite.SIGNED, live.encode(),
        int(time.time() * 1000), 1,
    )  # fmt: skip
    frame = codec.encode(packet)
    return frame[:-1] + bytes([frame[-1] ^ 1]) if forge else frame


async def talk_flood_stranger(w: World, stop: asyncio.Event) -> str:
    me, v_id = Identity.generate(), w.v_card.identity.node_id
    frames = [_talk_frame(me, v_id) for _ in range(64)]
    async with stranger_link(w.port, me) as link:
        n = await _pump(link, lambda i: frames[i % 64], stop)
    return f"{n} signed TALK frames from a stranger's link"


async def talk_flood_contact(w: World, stop: asyncio.Event) -> str:
    m = w.m
    v_id = w.v_card.identity.node_id
    links = [lk for lk in m.links.values() if lk.transport == "lan"]
    frames = [_talk_frame(m.identity, v_id, forge=i % 2 == 1) for i in range(64)]
    n = await _pump(links[0], lambda i: frames[i % 64], stop)
    return f"{n} TALK frames (half forged, unknown talk ids) from contact M's link"


async def _glue_blobs(
    node: Node, to: Identity, blobs: Callable[[int], bytes], stop: asyncio.Event, per_s: int
) -> int:
    glue, sent = node.engine.account_glue, 0
    target = to.public if hasattr(to, "public") else to
    while not stop.is_set():
        start = time.monotonic()
        for _ in range(per_s // 10):
            blob = blobs(sent)
            await node.submit(lambda b=blob: node.effects.run(glue.send(target, b, node.clock())))  # type: ignore[misc]
            sent += 1
        await asyncio.sleep(max(0.0, 0.1 - (time.monotonic() - start)))
    return sent


async def talk_offers_stranger(w: World, stop: asyncio.Event) -> str:
    s = w.stranger
    n = await _glue_blobs(s, w.v_card.identity, lambda i: TalkOffer.new().encode(), stop, 50)
    return f"{n} sealed talk offers from a non-contact"


_KINDS = (19, 20, 26, 27, 28, 40)


def _garbage(i: int) -> bytes:
    kind = _KINDS[i % len(_KINDS)]
    if i % 3 == 0:
        return cbor2.dumps([kind, os.urandom(16), [os.urandom(64)] * 200])  # large and wrong
    if i % 3 == 1:
        return bytes([0x82, 0x18, kind]) + os.urandom(40)  # not CBOR after the kind
    return cbor2.dumps([kind, {"x": os.urandom(8)}, 1, 2, 3])


async def garbage_blobs_contact(w: World, stop: asyncio.Event) -> str:
    n = await _glue_blobs(w.m, w.v_card.identity, _garbage, stop, 40)
    return f"{n} bad blobs of kinds {_KINDS} from contact M (not an own device)"


async def sync_claims_stranger(w: World, stop: asyncio.Event) -> str:
    def claim(i: int) -> bytes:
        return cbor2.dumps([(16, 19, 20, 26, 28)[i % 5], os.urandom(16), [os.urandom(32)]])

    n = await _glue_blobs(w.stranger, w.v_card.identity, claim, stop, 40)
    return f"{n} device-list / sync / group-held claims from a stranger"


async def piece_flood(w: World, stop: asyncio.Event) -> str:
    async def one(k: int) -> int:
        async with stranger_link(w.port) as link:
            return await _pump(
                link,
                lambda i: (
                    LINK_FILE_TAG + Piece(os.urandom(32), 0, i % 4096, os.urandom(1200)).encode()
                ),
                stop,
            )

    n = sum(await asyncio.gather(*(one(k) for k in range(4))))
    return f"{n} FILE pieces for unknown transfers from 4 strangers' links"


async def request_flood(w: World, stop: asyncio.Event) -> str:
    root = w.served_root
    chunks = w.served_chunks

    async def one(k: int) -> int:
        async with stranger_link(w.port) as link:
            bodies = [
                LINK_FILE_TAG + Request(root, 0, tuple(range(s, min(s + 32, chunks)))).encode()
                for s in range(0, chunks, 32)
            ]
            return await _pump(link, lambda i: bodies[i % len(bodies)], stop)

    n = sum(await asyncio.gather(*(one(k) for k in range(20))))
    return f"{n} requests (32 chunks each, every chunk of a {chunks}-chunk file) from 20 identities"


async def dm_flood_contact(w: World, stop: asyncio.Event) -> str:
    """Plain direct messages from M at about its link's allowance (200 frames/s)."""
    m, sent = w.m, 0
    while not stop.is_set():
        start = time.monotonic()
        for _ in range(25):
            await m.send_text("v", f"hello {sent}")
            sent += 1
        await asyncio.sleep(max(0.0, 0.1 - (time.monotonic() - start)))
    return f"{sent} direct messages from contact M"


async def link_requests_stranger(w: World, stop: asyncio.Event) -> str:
    """Requests to join V's account as a new device, while V has no invitation open."""
    from meshchat.account.link import LinkRequest

    me = w.stranger.identity.public

    def ask(i: int) -> bytes:
        return LinkRequest(me, f"phone {i}", os.urandom(32), os.urandom(32)).encode()

    n = await _glue_blobs(w.stranger, w.v_card.identity, ask, stop, 40)
    return f"{n} requests to link as one of V's devices from a stranger"


ATTACKS: dict[str, Attack] = {
    "link-stranger": link_requests_stranger,
    "dms-contact": dm_flood_contact,
    "talk-stranger": talk_flood_stranger,
    "talk-contact": talk_flood_contact,
    "offers-stranger": talk_offers_stranger,
    "blobs-contact": garbage_blobs_contact,
    "claims-stranger": sync_claims_stranger,
    "pieces": piece_flood,
    "requests": request_flood,
}


def _cpu_rss(pid: int) -> tuple[float, int]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return cpu, rss


async def _dm(b: Node, timeout: float = 20.0) -> float | None:
    start = time.monotonic()
    msg = await b.send_text("v", f"ping {time.time()}")

    async def delivered() -> bool:
        got = await b.store.call(b.store.store.get_message, msg.msg_id)
        return got is not None and got.state is MessageState.DELIVERED

    try:
        await wait_for(delivered, timeout=timeout)
    except TimeoutError:
        return None
    return time.monotonic() - start


async def _dms(b: Node, count: int) -> list[float | None]:
    out = []
    for _ in range(count):
        out.append(await _dm(b))
        await asyncio.sleep(0.2)
    return out


def _median_ms(xs: list[float | None]) -> str:
    ok = [x for x in xs if x is not None]
    return f"{statistics.median(ok) * 1000:.0f} ms" if ok else "none"


def _attacker(
    name: str, port: int, card: str, root: str, chunks: int, seconds: float, pipe: Any
) -> None:
    """The attacker's process: makes M and a stranger node, hands M's card to the parent
    (which makes M V's contact), then runs attack ``name`` for ``seconds``."""

    async def run() -> str:
        with tempfile.TemporaryDirectory() as folder:
            w = World(Path(folder), port, ContactCard.from_text(card))
            w.served_root, w.served_chunks = bytes.fromhex(root), chunks
            try:
                w.m = await w.node("m")
                w.stranger = await w.node("s")
                pipe.send((await w.m.card()).to_text())
                pipe.recv()  # M is V's contact now
                await wait_for(lambda: all(len(n.links) >= 1 for n in w.nodes), timeout=30)
                await asyncio.sleep(1.0)
                pipe.send("go")
                stop = asyncio.Event()
                asyncio.get_running_loop().call_later(seconds, stop.set)
                return await ATTACKS[name](w, stop)
            finally:
                await w.close()

    pipe.send(asyncio.run(run()))


async def run_one(
    v: Home,
    pid: int,
    port: int,
    card: str,
    b: Node,
    name: str,
    seconds: float,
    root: str,
    chunks: int,
) -> None:
    ctx = multiprocessing.get_context("spawn")
    here, there = ctx.Pipe()
    proc = ctx.Process(target=_attacker, args=(name, port, card, root, chunks, seconds, there))
    proc.start()
    m_card = await asyncio.to_thread(here.recv)
    cli = ("contacts", "add", m_card, "--name", f"m-{name}")
    await asyncio.to_thread(meshchat_cli, v.path, *cli)
    here.send("added")
    before = await _dms(b, 3)
    assert await asyncio.to_thread(here.recv) == "go"

    def counters() -> dict[str, int]:
        return dict(request(v.control_socket, {"op": "status"}, timeout=10).get("counters", {}))

    counters0 = counters()
    b0 = dict(b.counters)
    profile = os.environ.get("HOSTILE_PROFILE")  # a py-spy raw profile of V during the attack
    spy = None
    if profile:
        spy = subprocess.Popen(
            ["py-spy", "record", "-p", str(pid), "-d", str(int(seconds)), "-f", "raw",
             "-o", f"{profile}-{name}.txt"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    cpu0, rss0 = _cpu_rss(pid)
    t0 = time.monotonic()
    await asyncio.sleep(1.0)
    during: list[float | None] = []
    peak = rss0
    while time.monotonic() - t0 < seconds:
        during.append(await _dm(b))
        peak = max(peak, _cpu_rss(pid)[1])
        await asyncio.sleep(0.2)
    cpu1, rss1 = _cpu_rss(pid)
    wall = time.monotonic() - t0
    counters1 = counters()
    what = await asyncio.to_thread(here.recv)
    if spy is not None:
        await asyncio.to_thread(spy.wait, 30)
    await asyncio.to_thread(proc.join, 30)
    changed = {k: v - counters0.get(k, 0) for k, v in counters1.items() if v != counters0.get(k, 0)}
    top = sorted(changed.items(), key=lambda kv: -kv[1])[:6]
    b_changed = {k: v - b0.get(k, 0) for k, v in b.counters.items() if v != b0.get(k, 0)}
    ok = [x for x in during if x is not None]
    print(
        f"[{name}] {what}\n"
        f"   DMs before {sum(x is not None for x in before)}/{len(before)} median "
        f"{_median_ms(before)}; during {len(ok)}/{len(during)} median {_median_ms(during)} "
        f"max {max(ok, default=0) * 1000:.0f} ms ({[round(x * 1000) for x in ok]})\n"
        f"   V: CPU {100 * (cpu1 - cpu0) / wall:.0f} % of a core, RSS {rss0 // 1024} -> peak "
        f"{max(peak, rss1) // 1024} MiB; counted {top}; B counted {b_changed}",
        flush=True,
    )


async def main(seconds: float, only: list[str]) -> None:
    os.environ["MESHCHAT_NO_SOUND"] = "1"
    keep = os.environ.get("HOSTILE_KEEP")  # a folder to keep V's home and log in
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(keep or folder)
        v, port = Home(tmp / "v"), free_port()
        await asyncio.to_thread(meshchat_cli, v.path, "init", "--name", "V", "--kdf", "interactive")
        shown = json.loads(await asyncio.to_thread(meshchat_cli, v.path, "id", "--json"))
        card = str(shown["card"])
        w = World(tmp, port, ContactCard.from_text(card))
        b = await w.node("b")
        cli = ("contacts", "add", (await b.card()).to_text(), "--name", "b")
        await asyncio.to_thread(meshchat_cli, v.path, *cli)
        source = tmp / "served.bin"
        source.write_bytes(os.urandom(2_000_000))
        try:
            with daemon(v, port, tmp / "v.log") as proc:
                await wait_for(v.control_socket.exists)
                await wait_for(lambda: len(b.links) >= 1, timeout=30)
                sent = request(
                    v.control_socket, {"op": "send_file", "to": "b", "path": str(source)},
                    timeout=30,
                )["transfer"]  # fmt: skip
                chunks = -(-2_000_000 // CHUNK)
                for name in only or list(ATTACKS):
                    await run_one(v, proc.pid, port, card, b, name, seconds, sent["root"], chunks)
                    await asyncio.sleep(2.0)  # V settles
        finally:
            await w.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--only", action="append", default=[])
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.only))
