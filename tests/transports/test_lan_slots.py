"""LanTransport's slots over real TCP on loopback: who is evicted, swept out or refused.

A small :class:`SlotPolicy` keeps the numbers readable: strangers fill the table, then a
contact, a newcomer and half-open connections arrive. Strangers connect from 127.0.0.2.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from meshchat.identity import Identity, PublicIdentity
from meshchat.transports.lan import LanTransport
from meshchat.transports.slots import SlotPolicy
from meshchat.transports.stream import StreamLink, open_stream_link

STRANGER = "127.0.0.2"


class Judge:
    """A RecordingHandler that also says who is a contact (as the node does)."""

    def __init__(self, base: Any, contacts: set[PublicIdentity]) -> None:
        self.base = base
        self.contacts = contacts

    def prefers(self, peer: PublicIdentity) -> bool:
        return peer in self.contacts

    def link_up(self, link: Any) -> None:
        self.base.link_up(link)

    def link_down(self, link: Any) -> None:
        self.base.link_down(link)

    def frame_received(self, link: Any, frame: bytes) -> None:
        self.base.frame_received(link, frame)


@pytest.fixture
async def victim(make_handler: Any) -> AsyncIterator[Callable[..., Any]]:
    made: list[LanTransport] = []
    dialled: list[StreamLink] = []

    async def make(policy: SlotPolicy, contacts: set[PublicIdentity]) -> tuple[Any, Any]:
        handler = make_handler()
        transport = LanTransport(
            Identity.generate(), host="127.0.0.1", discovery=False, slots=policy
        )
        made.append(transport)
        await transport.start(Judge(handler, contacts))
        return transport, handler

    async def dial(
        transport: LanTransport, identity: Identity, source: str = STRANGER
    ) -> StreamLink:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", transport.listening_port, local_addr=(source, 0)
        )
        link = await open_stream_link(
            reader,
            writer,
            identity,
            make_handler(),
            transport_name="t",
            link_id=f"t:{len(dialled)}",
            initiator=True,
        )
        dialled.append(link)
        return link

    make.dial = dial  # type: ignore[attr-defined]
    yield make
    for link in dialled:
        await link.close()
    for transport in made:
        await transport.stop()


async def _settle(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


def _peers(transport: LanTransport) -> set[PublicIdentity]:
    return {link.peer for link in transport.links}


async def test_a_contact_evicts_an_idle_stranger_from_a_full_table(victim: Any) -> None:
    contact = Identity.generate()
    policy = SlotPolicy(max_links=3, soft_links=3, grace=60.0)
    transport, _ = await victim(policy, {contact.public})
    strangers = [Identity.generate() for _ in range(3)]
    for s in strangers:
        await victim.dial(transport, s)
    await _settle(lambda: len(transport.links) == 3)
    # a fourth stranger finds no idle stranger past its grace: refused
    late = await victim.dial(transport, Identity.generate())
    await _settle(lambda: late.closed)
    assert _peers(transport) == {s.public for s in strangers}
    # the contact gets in at once, from the same host as the strangers
    await victim.dial(transport, contact)
    await _settle(lambda: contact.public in _peers(transport))
    assert len(transport.links) == 3
    assert "1 evicted, 1 refused" in transport.status().detail


async def test_a_useful_stranger_outlasts_idle_ones_and_a_newcomer_takes_an_idle_slot(
    victim: Any,
) -> None:
    policy = SlotPolicy(max_links=2, soft_links=2, grace=0.2)
    transport, _ = await victim(policy, set())
    useful, idle = Identity.generate(), Identity.generate()
    await victim.dial(transport, useful)
    await victim.dial(transport, idle)
    await _settle(lambda: len(transport.links) == 2)
    for link in transport.links:
        if link.peer == useful.public:
            link.credit()  # the node found a new, valid packet on it
    await asyncio.sleep(0.3)  # past the idle one's grace
    newcomer = Identity.generate()
    await victim.dial(transport, newcomer)
    await _settle(lambda: newcomer.public in _peers(transport))
    assert _peers(transport) == {useful.public, newcomer.public}


async def test_idle_strangers_are_swept_out_above_the_soft_limit(victim: Any) -> None:
    contact = Identity.generate()
    policy = SlotPolicy(max_links=8, soft_links=2, idle_timeout=0.3, sweep_every=0.1)
    transport, _ = await victim(policy, {contact.public})
    await victim.dial(transport, contact)
    for _ in range(4):
        await victim.dial(transport, Identity.generate())
    await _settle(lambda: len(transport.links) == 2, timeout=5)
    # down to the soft limit, and never the contact
    assert contact.public in _peers(transport)
    await asyncio.sleep(0.5)
    assert len(transport.links) == 2


async def test_half_open_connections_are_bounded_per_address(victim: Any) -> None:
    policy = SlotPolicy(max_pending=8, max_pending_per_address=2)
    transport, _ = await victim(policy, set())
    writers = []
    for _ in range(6):  # silent connections from one host: only the newest two are kept
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", transport.listening_port, local_addr=(STRANGER, 0)
        )
        writers.append((reader, writer))
        await asyncio.sleep(0.05)
    dropped = 0
    for reader, _ in writers[:4]:
        with contextlib.suppress(ConnectionError, TimeoutError):
            async with asyncio.timeout(2):
                if await reader.read() == b"":
                    dropped += 1
    assert dropped == 4 and "4 half-open dropped" in transport.status().detail
    # someone else still completes a handshake at once
    friend = Identity.generate()
    await victim.dial(transport, friend, source="127.0.0.3")
    await _settle(lambda: friend.public in _peers(transport))
    for _, writer in writers:
        writer.close()
