"""The guarded Kademlia protocol over real UDP on loopback: what a stranger's datagrams can do."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Callable

import pytest
import umsgpack  # type: ignore[import-untyped]
from hypothesis import given
from hypothesis import strategies as st
from kademlia.network import Server
from kademlia.node import Node
from kademlia.protocol import KademliaProtocol

from meshchat.transports.dht._protocol import GuardedProtocol, GuardLimits, valid_contacts
from meshchat.transports.dht._server import GuardedServer
from meshchat.transports.dht._storage import RecordStorage

HOST = "127.0.3.1"


@pytest.fixture
async def node() -> AsyncIterator[GuardedServer]:
    limits = GuardLimits(source_rate=20, source_burst=40, rpc_timeout=0.5)
    server = GuardedServer(20, 3, RecordStorage(), limits)
    await server.listen(0, interface=HOST)
    yield server
    server.stop()


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


def address(server: Server) -> tuple[str, int]:
    host, port = server.transport.get_extra_info("sockname")[:2]
    return str(host), int(port)


def protocol(server: GuardedServer) -> GuardedProtocol:
    assert isinstance(server.protocol, GuardedProtocol)
    return server.protocol


class Raw:
    """A UDP socket that speaks rpcudp by hand (and answers nothing)."""

    def __init__(self, host: str) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.3)

    def request(self, to: tuple[str, int], method: object, args: object) -> None:
        self.raw(to, b"\x00" + os.urandom(20) + umsgpack.packb([method, args]))

    def raw(self, to: tuple[str, int], data: bytes) -> None:
        self.sock.sendto(data, to)

    async def answers(self) -> int:
        """Answers received until nothing comes for 0.3 s (read off the event loop)."""
        return await asyncio.to_thread(self._answers)

    def _answers(self) -> int:
        count = 0
        try:
            while True:
                count += self.sock.recv(65536)[:1] == b"\x01"  # not the node's own pings
        except TimeoutError:
            return count

    def close(self) -> None:
        self.sock.close()


@given(st.recursive(st.none() | st.binary() | st.integers() | st.text(), st.lists, max_leaves=30))
def test_valid_contacts_never_raises(value: object) -> None:
    contacts = valid_contacts(value, 20)
    assert contacts is None or len(contacts) <= 20


def test_valid_contacts_takes_only_well_formed_ones() -> None:
    good = [(os.urandom(20), "127.0.0.1", 4000), [os.urandom(20), "::1", 1]]
    assert valid_contacts(good, 20) is not None
    for bad in (
        [(b"short", "127.0.0.1", 4000)],
        [(os.urandom(20), "localhost", 4000)],
        [(os.urandom(20), "127.0.0.1", 0)],
        [(os.urandom(20), "127.0.0.1", True)],
        [(os.urandom(20), "127.0.0.1")],
        "not a list",
        good * 11,  # more than ksize
    ):
        assert valid_contacts(bad, 20) is None


async def test_garbage_datagrams_are_counted_and_the_node_keeps_answering(
    node: GuardedServer,
) -> None:
    raw = Raw("127.0.3.2")
    to = address(node)
    try:
        raw.raw(to, b"\x00" + os.urandom(20) + b"\xc1\xc1\xc1")  # not msgpack
        raw.raw(to, b"\x07" + os.urandom(40))  # no such kind
        raw.raw(to, b"\x01" + os.urandom(40))  # an answer to nothing asked
        raw.raw(to, b"\x00" + os.urandom(9000))  # too long
        raw.raw(to, b"\x00")  # too short
        raw.request(to, "ping", [b"short id"])
        raw.request(to, "store", [os.urandom(20), b"short key", os.urandom(9)])
        raw.request(to, "find_node", [os.urandom(20), 12345])
        raw.request(to, "find_value", [os.urandom(20)])
        raw.request(to, "shutdown", [os.urandom(20)])
        raw.request(to, ["ping"], 5)
        assert await raw.answers() == 0
        raw.request(to, "ping", [os.urandom(20)])
        assert await raw.answers() == 1
        counters = protocol(node).counters
        assert counters["dropped.undecodable"] == 1
        assert counters["dropped.kind"] == 1
        assert counters["dropped.unasked"] == 1
        assert counters["dropped.size"] == 2
        assert counters["dropped.malformed"] == 6
    finally:
        raw.close()


async def test_requests_are_rate_limited_per_source(node: GuardedServer) -> None:
    flooder, other = Raw("127.0.3.3"), Raw("127.0.3.4")
    to = address(node)
    try:
        for _ in range(200):
            flooder.request(to, "find_node", [os.urandom(20), os.urandom(20)])
        await asyncio.sleep(0.2)
        answered = await flooder.answers()
        assert 40 <= answered < 100  # the burst, and what the rate refilled meanwhile
        assert protocol(node).counters["dropped.rate"] >= 100
        other.request(to, "ping", [os.urandom(20)])
        assert await other.answers() == 1  # another address is not held back
    finally:
        flooder.close()
        other.close()


async def test_a_flood_from_many_addresses_does_not_shut_out_known_contacts() -> None:
    limits = GuardLimits(total_rate=1, total_burst=5, rpc_timeout=0.5)
    guarded = GuardedServer(20, 3, RecordStorage(), limits)
    await guarded.listen(0, interface=HOST)
    friend = Server()
    await friend.listen(0, interface="127.0.3.9")
    flooders = [Raw(f"127.0.4.{i}") for i in range(1, 11)]
    try:
        await friend.bootstrap([address(guarded)])
        await until(lambda: len(guarded.bootstrappable_neighbors()) == 1)
        assert [ip for ip, _ in guarded.bootstrappable_neighbors()] == ["127.0.3.9"]
        await asyncio.sleep(1.1)  # the node's list of contact sources is refreshed
        for flooder in flooders:
            for _ in range(5):
                flooder.request(address(guarded), "find_node", [os.urandom(20), os.urandom(20)])
        ok, answer = await friend.protocol.ping(address(guarded), friend.node.id)
        assert ok and answer == guarded.node.id  # a contact is still answered
        answered = sum([await f.answers() for f in flooders])
        assert answered <= 10  # the total budget (5), and what it refilled meanwhile
    finally:
        for flooder in flooders:
            flooder.close()
        friend.stop()
        guarded.stop()


async def test_fresh_ids_from_an_address_that_does_not_answer_add_no_contact(
    node: GuardedServer,
) -> None:
    raw = Raw("127.0.3.5")
    try:
        for _ in range(30):
            raw.request(address(node), "find_value", [os.urandom(20), os.urandom(20)])
        await asyncio.sleep(1.0)  # the pings that would admit it time out (0.5 s)
        assert node.bootstrappable_neighbors() == []
        assert protocol(node).counters.get("refused.verifying", 0) >= 1
    finally:
        raw.close()


async def test_one_address_gets_at_most_two_places_in_the_routing_table(
    node: GuardedServer,
) -> None:
    sybils = [Server() for _ in range(6)]
    honest = Server()
    try:
        for sybil in sybils:
            await sybil.listen(0, interface="127.0.3.6")
        await honest.listen(0, interface="127.0.3.7")
        for peer in (*sybils, honest):
            await peer.bootstrap([address(node)])
        await until(lambda: len(node.bootstrappable_neighbors()) >= 3)
        await asyncio.sleep(0.2)  # any further admission would have happened by now
        table = node.bootstrappable_neighbors()
        assert sorted(ip for ip, _ in table) == ["127.0.3.6", "127.0.3.6", "127.0.3.7"]
        assert protocol(node).counters.get("refused.per-ip", 0) >= 4
    finally:
        for peer in (*sybils, honest):
            peer.stop()


class Liar(KademliaProtocol):  # type: ignore[misc]
    def rpc_find_node(self, sender: object, nodeid: bytes, key: bytes) -> object:
        return [[b"short", "127.0.0.1", 1]]

    def rpc_find_value(self, sender: object, nodeid: bytes, key: bytes) -> object:
        return {"value": os.urandom(5000)}


class LiarServer(Server):  # type: ignore[misc]
    protocol_class = Liar


async def test_a_malformed_answer_counts_as_none_and_drops_the_liar(node: GuardedServer) -> None:
    liar = LiarServer()
    await liar.listen(0, interface="127.0.3.8")
    try:
        await liar.bootstrap([address(node)])
        await asyncio.sleep(0.2)
        contact = Node(liar.node.id, *address(liar))
        ours = protocol(node)
        assert await ours.call_find_node(contact, Node(os.urandom(20))) == (False, None)
        assert await ours.call_find_value(contact, Node(os.urandom(20))) == (False, None)
        assert node.bootstrappable_neighbors() == []
        assert ours.counters["dropped.answer.find_node"] == 1
        assert ours.counters["dropped.answer.find_value"] == 1
        assert await node.get_checked(os.urandom(20), lambda v: True) == []
    finally:
        liar.stop()
