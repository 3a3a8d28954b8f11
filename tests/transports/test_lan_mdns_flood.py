"""Fake mDNS services must not make nodes dial an attacker's listener over and over.

Real zeroconf on 127.0.0.1: two honest nodes advertise and browse a service type of this test's
own; an attacker (another host on the loopback network, 127.0.0.2) copies the TXT record a real
node publishes (with a fresh random id wherever the record has one) and registers 300 fake
services pointing at listeners of its own, 30 on each of 10 ports. Every connection to those
listeners is a dial that hands the attacker a handshake. The honest nodes must still find each
other, and their dials to the attacker must stay few (each address is backed off exponentially,
and one host counts only so many services).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from meshchat.identity import Identity
from meshchat.transports.lan import LanTransport

#: the attacker's host; the honest nodes are at 127.0.0.1
ATTACKER = "127.0.0.2"
FAKES = 300
PORTS = 10
#: how long the nodes are watched once the fakes are registered (the attack ran 50 s)
WINDOW = 8.0
#: what two nodes may dial in that window: with per-address exponential backoff from 0.5 s, at
#: most about log2(WINDOW / 0.5) + 2 dials per address and node; the code before made hundreds
MAX_DIALS = 2 * PORTS * 7


@pytest.fixture
def service_type() -> str:
    return f"_mct-{secrets.token_hex(4)}._tcp.local."


@pytest.fixture
async def zeroconf() -> AsyncIterator[AsyncZeroconf]:
    zc = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    yield zc
    await zc.async_close()


async def _copy_a_real_record(zc: AsyncZeroconf, service_type: str) -> dict[bytes, bytes]:
    """The TXT properties of a real node's advertisement, as an attacker would read them."""
    names: list[str] = []
    browser = AsyncServiceBrowser(
        zc.zeroconf,
        service_type,
        handlers=[lambda zeroconf, service_type, name, state_change: names.append(name)],
    )
    try:
        async with asyncio.timeout(10):
            while not names:
                await asyncio.sleep(0.05)
    finally:
        await browser.async_cancel()
    info = AsyncServiceInfo(service_type, names[0])
    assert await info.async_request(zc.zeroconf, 3000)
    return {k: v for k, v in info.properties.items() if v is not None}


async def test_fake_services_do_not_make_nodes_dial_the_attacker(
    make_handler: Any, service_type: str, zeroconf: AsyncZeroconf
) -> None:
    dials = 0

    async def on_dial(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal dials
        dials += 1
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1):
                await reader.read(4096)  # what the node sends first
        writer.close()

    servers = [await asyncio.start_server(on_dial, ATTACKER, 0) for _ in range(PORTS)]
    ports = [int(s.sockets[0].getsockname()[1]) for s in servers]

    made: list[LanTransport] = []

    def node(identity: Identity) -> LanTransport:
        transport = LanTransport(
            identity,
            host="127.0.0.1",
            interfaces=["127.0.0.1"],
            advertised_addresses=["127.0.0.1"],
            service_type=service_type,
        )
        made.append(transport)
        return transport

    ha, hb = make_handler(), make_handler()
    ta, idb = node(Identity.generate()), Identity.generate()
    fakes: list[AsyncServiceInfo] = []
    try:
        await ta.start(ha)
        template = await _copy_a_real_record(zeroconf, service_type)
        for i in range(FAKES):
            properties = dict(template)
            if b"id" in properties:
                properties[b"id"] = secrets.token_bytes(16).hex().encode()
            label = f"fake-{secrets.token_hex(6)}"
            fakes.append(
                AsyncServiceInfo(
                    service_type,
                    f"{label}.{service_type}",
                    port=ports[i % PORTS],
                    properties=properties,
                    server=f"{label}.local.",
                    addresses=[socket.inet_aton(ATTACKER)],
                )
            )
        registered = await asyncio.gather(
            *(zeroconf.async_register_service(f, cooperating_responders=True) for f in fakes)
        )
        await asyncio.gather(*registered)
        dials = 0  # count from here: both nodes see every fake from now on
        tb = node(idb)
        await tb.start(hb)
        await asyncio.sleep(WINDOW)
        print(f"\n{dials} dials to the attacker in {WINDOW:.0f} s from two nodes")
        # the honest nodes still found each other among the fakes
        assert any(link.peer == idb.public for link in ta.links)
        assert dials <= MAX_DIALS, f"{dials} dials to the attacker in {WINDOW} s"
    finally:
        for transport in made:
            await transport.stop()
        with contextlib.suppress(Exception):
            await zeroconf.async_unregister_all_services()
        for server in servers:
            server.close()
            await server.wait_closed()
