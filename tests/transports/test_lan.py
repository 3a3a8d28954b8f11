"""LanTransport with real mDNS on loopback (and across two network namespaces) and real TCP."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from meshchat.errors import TransportError
from meshchat.identity import Identity
from meshchat.transports.lan import LanTransport
from meshchat.transports.stream import StreamLink

PEER_SCRIPT = Path(__file__).with_name("lan_peer.py")


def _pair() -> tuple[Identity, Identity]:
    """Two identities, the one with the smaller node id first."""
    a, b = Identity.generate(), Identity.generate()
    return (a, b) if a.node_id < b.node_id else (b, a)


@pytest.fixture
def service_type() -> str:
    """A service type of this test's own, so parallel runs on the same loopback do not meet."""
    return f"_mct-{secrets.token_hex(4)}._tcp.local."


@pytest.fixture
async def make_lan(service_type: str) -> AsyncIterator[Callable[..., LanTransport]]:
    made: list[LanTransport] = []

    def make(identity: Identity, **options: Any) -> LanTransport:
        settings: dict[str, Any] = {
            "host": "127.0.0.1",
            "interfaces": ["127.0.0.1"],
            "advertised_addresses": ["127.0.0.1"],
            "service_type": service_type,
        }
        settings.update(options)
        transport = LanTransport(identity, **settings)
        made.append(transport)
        return transport

    yield make
    for transport in made:
        await transport.stop()


def _same_connection(a: StreamLink, b: StreamLink) -> bool:
    return a.local_address == b.remote_address and a.remote_address == b.local_address


async def _exchange(ha: Any, hb: Any, link_a: StreamLink, link_b: StreamLink) -> None:
    assert link_a.send(b"ping from a")
    assert link_b.send(b"pong from b")
    await hb.until(lambda: b"ping from a" in hb.payloads())
    await ha.until(lambda: b"pong from b" in ha.payloads())


async def test_two_nodes_discover_each_other_and_exchange_frames(
    make_lan: Callable[..., LanTransport], make_handler: Any
) -> None:
    small, large = _pair()
    ha, hb = make_handler(), make_handler()
    # A long dial_delay: the node with the larger (random) advertised label leaves the dialling
    # to the other, so exactly one connection is made.
    ta, tb = make_lan(small, dial_delay=5.0), make_lan(large, dial_delay=5.0)
    assert not ta.status().up and ta.listening_port is None
    loop = asyncio.get_running_loop()
    began = loop.time()
    await asyncio.gather(ta.start(ha), tb.start(hb))
    await ha.until(lambda: len(ha.live) == 1, timeout=8)
    await hb.until(lambda: len(hb.live) == 1, timeout=8)
    elapsed = loop.time() - began
    print(f"\nloopback mDNS discovery + TCP + handshake: {elapsed * 1000:.0f} ms")
    (link_a,), (link_b,) = ha.live, hb.live
    assert link_a.peer == large.public and link_b.peer == small.public
    assert link_a.transport == "lan" and link_a.link_id.startswith("lan:")
    assert _same_connection(link_a, link_b)  # type: ignore[arg-type]
    assert link_a.initiator != link_b.initiator
    await _exchange(ha, hb, link_a, link_b)  # type: ignore[arg-type]
    status = ta.status()
    assert status.up and status.name == "lan"
    assert str(ta.listening_port) in status.detail and "1 link" in status.detail
    assert ta.links == [link_a]
    with pytest.raises(TransportError):
        await ta.start(ha)

    await ta.stop()
    await hb.until(lambda: not hb.live)
    assert ha.downs == [link_a] and not ta.status().up and ta.listening_port is None
    await tb.stop()
    leftovers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert leftovers == []


async def _settled(ha: Any, hb: Any, ta: LanTransport, tb: LanTransport) -> bool:
    return (
        len(ha.live) == 1
        and len(hb.live) == 1
        and len(ta.links) == 1
        and len(tb.links) == 1
        and _same_connection(ta.links[0], tb.links[0])
    )


async def _wait_settled(ha: Any, hb: Any, ta: LanTransport, tb: LanTransport) -> None:
    async with asyncio.timeout(8):
        while not await _settled(ha, hb, ta, tb):
            await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)  # and it stays that way
    assert await _settled(ha, hb, ta, tb)
    assert ha.live == ta.links and hb.live == tb.links


async def test_simultaneous_dial_keeps_one_connection(
    make_lan: Callable[..., LanTransport], make_handler: Any
) -> None:
    """Both sides dial each other at once (static peers); both keep the same single link."""
    for _ in range(4):
        small, large = _pair()
        ha, hb = make_handler(), make_handler()
        ports = [_free_port(), _free_port()]
        ta = make_lan(small, port=ports[0], discovery=False, static_peers=[("127.0.0.1", ports[1])])
        tb = make_lan(large, port=ports[1], discovery=False, static_peers=[("127.0.0.1", ports[0])])
        await asyncio.gather(ta.start(ha), tb.start(hb))
        await _wait_settled(ha, hb, ta, tb)
        # The kept connection is the one the smaller node id dialled.
        assert ta.links[0].initiator and not tb.links[0].initiator
        assert len(ha.ups) - len(ha.downs) == 1 and len(hb.ups) - len(hb.downs) == 1
        await _exchange(ha, hb, ta.links[0], tb.links[0])
        await asyncio.gather(ta.stop(), tb.stop())


async def test_simultaneous_dial_over_mdns(
    make_lan: Callable[..., LanTransport], make_handler: Any
) -> None:
    small, large = _pair()
    ha, hb = make_handler(), make_handler()
    ta, tb = make_lan(small, dial_delay=0.0), make_lan(large, dial_delay=0.0)
    await asyncio.gather(ta.start(ha), tb.start(hb))
    await _wait_settled(ha, hb, ta, tb)
    await _exchange(ha, hb, ta.links[0], tb.links[0])


@pytest.mark.parametrize("restarted", ["smaller", "larger"])
async def test_peer_restart_reconnects(
    make_lan: Callable[..., LanTransport], make_handler: Any, restarted: str
) -> None:
    small, large = _pair()
    stay, leave = (large, small) if restarted == "smaller" else (small, large)
    hs, hl = make_handler(), make_handler()
    ts, tl = make_lan(stay), make_lan(leave)
    await asyncio.gather(ts.start(hs), tl.start(hl))
    await hs.until(lambda: len(hs.live) == 1, timeout=8)
    first = hs.live[0]

    await tl.stop()
    await hs.until(lambda: not hs.live)
    loop = asyncio.get_running_loop()
    began = loop.time()
    hl2 = make_handler()
    tl2 = make_lan(leave)
    await tl2.start(hl2)
    await hs.until(lambda: len(hs.live) == 1, timeout=8)
    print(f"\nreconnect after restart of the {restarted} id: {(loop.time() - began) * 1000:.0f} ms")
    second = hs.live[0]
    assert second is not first and second.peer == leave.public
    await hl2.until(lambda: len(hl2.live) == 1)
    await _exchange(hs, hl2, second, hl2.live[0])  # type: ignore[arg-type]


async def test_static_peer_is_redialled_until_it_answers(
    make_lan: Callable[..., LanTransport], make_handler: Any
) -> None:
    small, large = _pair()
    port = _free_port()
    ha, hb = make_handler(), make_handler()
    ta = make_lan(
        small,
        discovery=False,
        static_peers=[("127.0.0.1", port)],
        reconnect_initial=0.05,
        reconnect_max=0.2,
    )
    await ta.start(ha)
    await asyncio.sleep(0.5)  # several refused attempts
    assert ha.events == [] and "1 target" in ta.status().detail
    tb = make_lan(large, port=port, discovery=False)
    await tb.start(hb)
    await ha.until(lambda: len(ha.live) == 1, timeout=3)
    assert ha.live[0].initiator and ha.live[0].peer == large.public
    # The link is lost; the dialler comes back on its own.
    await tb.stop()
    await ha.until(lambda: not ha.live)
    hb2 = make_handler()
    tb2 = make_lan(large, port=port, discovery=False)
    await tb2.start(hb2)
    await ha.until(lambda: len(ha.live) == 1, timeout=3)
    await hb2.until(lambda: len(hb2.live) == 1)
    assert len(ha.ups) == 2 and len(ha.downs) == 1


async def test_larger_id_dials_when_the_smaller_cannot(
    make_lan: Callable[..., LanTransport], make_handler: Any
) -> None:
    """The smaller id cannot reach the larger one (it advertises a dead address), so after
    ``dial_delay`` the larger id dials instead."""
    small, large = _pair()
    ha, hb = make_handler(), make_handler()
    ta = make_lan(small, dial_delay=0.3)
    tb = make_lan(large, dial_delay=0.3, advertised_addresses=["127.0.0.2"])
    await asyncio.gather(ta.start(ha), tb.start(hb))
    await hb.until(lambda: len(hb.live) == 1, timeout=8)
    assert hb.live[0].initiator and hb.live[0].peer == small.public
    await ha.until(lambda: len(ha.live) == 1)
    assert not ha.live[0].initiator


async def test_an_advert_says_nothing_of_the_node_and_its_name_rotates(
    make_lan: Callable[..., LanTransport], make_handler: Any, service_type: str
) -> None:
    """The advert carries no node id, its name is random and changes; links survive that."""
    a, b = _pair()
    ha, hb = make_handler(), make_handler()
    ta, tb = make_lan(a, mdns_rotate_every=1.0), make_lan(b)
    seen: dict[str, dict[bytes, bytes | None]] = {}
    zc = AsyncZeroconf(interfaces=["127.0.0.1"])

    def on_change(zeroconf: Any, service_type: str, name: str, state_change: Any) -> None:
        seen.setdefault(name, {})

    browser = AsyncServiceBrowser(zc.zeroconf, service_type, handlers=[on_change])
    try:
        await asyncio.gather(ta.start(ha), tb.start(hb))
        await ha.until(lambda: len(ha.live) == 1, timeout=8)
        (link,) = ha.live
        async with asyncio.timeout(10):
            while len(seen) < 4:  # b's name, and a's first three
                await asyncio.sleep(0.1)
        for name in list(seen):
            info = AsyncServiceInfo(service_type, name)
            if await info.async_request(zc.zeroconf, 1500):
                seen[name] = dict(info.properties)
        for name, properties in seen.items():
            label = name.split(".", 1)[0]
            for identity in (a, b):
                assert identity.node_id.hex()[:8] not in label
            assert b"id" not in properties
        assert {p.get(b"v") for p in seen.values() if p} == {b"2"}
        # the rotations did not disturb the link
        assert ha.live == [link] and ha.downs == []
    finally:
        await browser.async_cancel()
        await zc.async_close()


async def test_an_advert_at_a_listener_reaches_whoever_proves_itself_there(
    make_lan: Callable[..., LanTransport], make_handler: Any, service_type: str
) -> None:
    """An advert from someone else (with any TXT id) leads to a link to the node that listens
    there, proven by the handshake; the id in the advert is not used."""
    dialler, listener, claimed = Identity.generate(), Identity.generate(), Identity.generate()
    ha, hb = make_handler(), make_handler()
    tb = make_lan(listener, discovery=False)
    await tb.start(hb)
    ta = make_lan(dialler, dial_delay=0.0)
    zc = AsyncZeroconf(interfaces=["127.0.0.1"])
    info = AsyncServiceInfo(
        service_type,
        f"liar.{service_type}",
        port=tb.listening_port,
        properties={b"id": claimed.node_id.hex().encode(), b"v": b"2"},
        server="liar.local.",
        parsed_addresses=["127.0.0.1"],
    )
    try:
        await ta.start(ha)
        await zc.async_register_service(info)
        await ha.until(lambda: len(ha.live) == 1, timeout=8)
        assert ha.live[0].peer == listener.public
    finally:
        await zc.async_unregister_all_services()
        await zc.async_close()


async def _spawn_echo_peer(seed: str, service_type: str) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(PEER_SCRIPT),
        "--seed", seed,
        "--service-type", service_type,
        "--host", "127.0.0.1",
        "--interfaces", "127.0.0.1",
        "--advertise", "127.0.0.1",
        "--echo",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    ready = await asyncio.wait_for(proc.stdout.readline(), 10)
    assert b"port" in ready, await proc.stderr.read() if proc.stderr else b""
    return proc


async def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.kill()
    await proc.communicate()


async def test_crashed_peer_is_found_again_at_its_new_port(
    make_lan: Callable[..., LanTransport], make_handler: Any, service_type: str
) -> None:
    """The peer is killed (no mDNS goodbye) and comes back on a new port: the stale record is
    replaced by the new announcement and the link comes back."""
    seed = secrets.token_hex(64)
    peer = Identity.from_seeds(bytes.fromhex(seed[:64]), bytes.fromhex(seed[64:]))
    local = Identity.generate()
    ha = make_handler()
    ta = make_lan(local, reconnect_initial=0.2)
    await ta.start(ha)
    procs = [await _spawn_echo_peer(seed, service_type)]
    try:
        await ha.until(lambda: len(ha.live) == 1, timeout=8)
        first_port = ha.live[0].remote_address[1]
        procs[0].kill()
        await ha.until(lambda: not ha.live, timeout=5)
        loop = asyncio.get_running_loop()
        began = loop.time()
        procs.append(await _spawn_echo_peer(seed, service_type))
        # Whichever side dials (the advert is new to both), one link comes back.
        await ha.until(lambda: len(ha.live) == 1, timeout=8)
        print(
            f"\nreconnect after a crash (new process, new port): "
            f"{(loop.time() - began) * 1000:.0f} ms"
        )
        (link,) = ha.live
        assert link.peer == peer.public
        if link.initiator:  # we followed the new advert to the new port
            assert link.remote_address[1] != first_port
        assert link.send(b"are you there")
        await ha.until(lambda: b"echo:are you there" in ha.payloads())
    finally:
        for proc in procs:
            await _kill(proc)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- two hosts: network namespaces -----------------------------------------------------------------


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.fixture
def namespaces() -> Any:
    """Two namespaces joined by a veth pair: 10.99.<n>.1/24 and 10.99.<n>.2/24."""
    tag = f"mct{os.getpid() % 100000}{secrets.token_hex(2)}"
    names = (f"{tag}a", f"{tag}b")
    subnet = 100 + secrets.randbelow(150)
    addresses = (f"10.99.{subnet}.1", f"10.99.{subnet}.2")
    try:
        for name in names:
            _ip("netns", "add", name)
            _ip("-n", name, "link", "set", "lo", "up")
        _ip(
            "link",
            "add",
            "vethA",
            "netns",
            names[0],
            "type",
            "veth",
            "peer",
            "name",
            "vethB",
            "netns",
            names[1],
        )
        for name, dev, address in zip(names, ("vethA", "vethB"), addresses, strict=True):
            _ip("-n", name, "addr", "add", f"{address}/24", "dev", dev)
            _ip("-n", name, "link", "set", dev, "up")
        yield names, addresses
    finally:
        for name in names:
            subprocess.run(
                ["ip", "netns", "del", name], check=False, capture_output=True, timeout=10
            )


@pytest.mark.netns
def test_two_namespaces_discover_by_mdns_and_exchange_a_frame(namespaces: Any) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to make network namespaces")
    names, addresses = namespaces
    seeds = [secrets.token_hex(64), secrets.token_hex(64)]
    service_type = f"_mct-{secrets.token_hex(4)}._tcp.local."
    procs = [
        subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                name,
                sys.executable,
                str(PEER_SCRIPT),
                "--seed",
                seed,
                "--service-type",
                service_type,
                "--timeout",
                "8",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, seed in zip(names, seeds, strict=True)
    ]
    began = time.monotonic()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    wall = time.monotonic() - began
    ids = [Identity.from_seeds(bytes.fromhex(s[:64]), bytes.fromhex(s[64:])) for s in seeds]
    for me, other, result, address in zip((0, 1), (1, 0), results, addresses, strict=True):
        assert result["peer"] == ids[other].node_id.hex()
        assert result["received"] == f"hello from {ids[other].node_id.hex()[:8]}"
        assert result["advertised"] == [address]  # the default: ifaddr, loopback left out
        assert result["remote"].split(":")[0] == addresses[other]
        del me
    print(
        "\nnetns: start -> link up "
        + ", ".join(f"{r['link_up_ms']:.0f} ms" for r in results)
        + f"; wall {wall:.2f} s"
    )
