"""Link-slot exhaustion against a live daemon (loopback): a contact still gets its link.

The attacker connects from 127.0.0.2 (another host on the loopback network), the victim listens
on 127.0.0.1 and its contact dials in from 127.0.0.1. Two attacks, as they were found:

* *idle links*: the attacker fills the victim's link table with links that complete the
  handshake under throw-away identities and then carry nothing, re-dialling whenever one is
  closed;
* *half-finished handshakes*: the attacker keeps hundreds of connections open that never
  finish the handshake, opening a new one as soon as one is dropped.

Under each, a contact that can only dial in must get a link and deliver a message within
seconds (the bound is generous; the figure measured is printed).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable

from meshlab import Lab
from test_hostile_and_crash import free_port, loopback_host, start_loopback

from meshchat.identity import Identity
from meshchat.transports.base import Link
from meshchat.transports.stream import open_stream_link

ATTACKER = "127.0.0.2"
#: generous bound for "within seconds"; the old code never gave the contact a link at all
LINK_UP_BOUND = 20.0


class _Sink:
    """A link handler that ignores everything the victim sends."""

    def link_up(self, link: Link) -> None:
        pass

    def link_down(self, link: Link) -> None:
        pass

    def frame_received(self, link: Link, frame: bytes) -> None:
        pass


class Attacker:
    """Runs ``count`` copies of an attack coroutine on a loop of its own, re-running each."""

    def __init__(self, count: int, one: Callable[[Attacker], Awaitable[None]]) -> None:
        self.count = count
        self.one = one
        self.stopping = False
        self.connections = 0
        self.links_up = 0
        self.live = 0
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    async def _main(self) -> None:
        await asyncio.gather(*(self._forever() for _ in range(self.count)))

    async def _forever(self) -> None:
        while not self.stopping:
            with contextlib.suppress(Exception):
                await self.one(self)
            await asyncio.sleep(0.05)

    def __enter__(self) -> Attacker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping = True
        self._thread.join(15)


def idle_link(port: int) -> Callable[[Attacker], Awaitable[None]]:
    """Complete the handshake under a fresh identity, then say nothing until closed."""

    async def one(attacker: Attacker) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(ATTACKER, 0))
        attacker.connections += 1
        link = await open_stream_link(
            reader,
            writer,
            Identity.generate(),
            _Sink(),
            transport_name="attack",
            link_id="attack",
            initiator=True,
        )
        attacker.links_up += 1
        attacker.live += 1
        try:
            while not attacker.stopping and not link.closed:
                await asyncio.sleep(0.2)
        finally:
            attacker.live -= 1
            await link.close()

    return one


def half_handshake(port: int) -> Callable[[Attacker], Awaitable[None]]:
    """Connect, send a few bytes of a frame, and wait until the victim drops the connection."""

    async def one(attacker: Attacker) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(ATTACKER, 0))
        attacker.connections += 1
        attacker.live += 1
        try:
            writer.write(b"\x00")  # the first byte of a frame's length prefix
            await writer.drain()
            while not attacker.stopping and await reader.read(4096):
                pass
        finally:
            attacker.live -= 1
            writer.close()

    return one


def _contact_under_attack(
    lab: Lab,
    attack: Callable[[int], Callable[[Attacker], Awaitable[None]]],
    count: int,
    settle: Callable[[Attacker], bool],
) -> tuple[float, float]:
    victim, friend = loopback_host(lab, "victim"), loopback_host(lab, "friend")
    for host in (victim, friend):
        lab.init(host)
    lab.introduce(victim, friend)
    friend_id = friend.cli_json("id")["node_id"]
    port = free_port()
    start_loopback(lab, victim, port)
    with Attacker(count, attack(port)) as attacker:
        deadline = time.monotonic() + 30
        while not settle(attacker):
            assert time.monotonic() < deadline, f"attack never settled: {vars(attacker)}"
            time.sleep(0.1)
        began = time.monotonic()
        start_loopback(lab, friend, free_port(), port)
        while friend_id not in lab.neighbours(victim):
            waited = time.monotonic() - began
            assert waited < LINK_UP_BOUND, (
                f"contact has no link after {waited:.1f}s; attacker {vars(attacker)}"
            )
            time.sleep(0.1)
        link_up = time.monotonic() - began
        msg = friend.cli_json("send", "victim", "through the flood")
        sent = time.monotonic()
        while True:
            texts = [m["text"] for m in victim.cli_json("log", "friend")["messages"]]
            if "through the flood" in texts:
                break
            assert time.monotonic() - sent < LINK_UP_BOUND, "the contact's message never arrived"
            time.sleep(0.1)
        delivered = time.monotonic() - sent
        print(
            f"contact link up after {link_up:.2f}s, message in {delivered:.2f}s; {vars(attacker)}"
        )
        assert msg["msg_id"]
    assert victim.process is not None and victim.process.poll() is None
    return link_up, delivered


def test_idle_link_flood_does_not_keep_a_contact_out(lab: Lab) -> None:
    # More idle links than the victim has slots, each re-dialled as soon as it is closed.
    _contact_under_attack(lab, idle_link, 140, lambda a: a.links_up >= 128)


def test_half_finished_handshakes_do_not_keep_a_contact_out(lab: Lab) -> None:
    _contact_under_attack(lab, half_handshake, 500, lambda a: a.connections >= 500)
