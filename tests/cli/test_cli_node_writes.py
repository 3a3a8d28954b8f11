"""While a node runs, every change goes through it: contacts, trust and verify from the CLI.

A real daemon for Alice on loopback TCP, and Bob as a node in this process linked to it over a
real LAN link; Bob records every frame Alice sends him. ``meshchat contacts add``, ``contacts
distrust``, ``verify`` and ``send`` run as child processes while the daemon runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from clirun import cli_env, run_cli

from meshchat.home import Home
from meshchat.identity import ContactCard, Identity
from meshchat.node import Node, NodeOptions
from meshchat.store import Store
from meshchat.transports.base import Link, Transport
from meshchat.transports.lan import LanTransport
from meshchat.wire import PacketKind, Suite, codec

PASS = "node writes passphrase"
MESHCHAT = [sys.executable, "-m", "meshchat.cli.main"]


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(home, PASS, *args)


def ok(home: Path, *args: str) -> str:
    done = cli(home, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def cli_json(home: Path, *args: str) -> Any:
    return json.loads(ok(home, *args, "--json"))


async def acli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(cli, home, *args)


async def aok(home: Path, *args: str) -> str:
    done = await acli(home, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def eventually(check: Callable[[], Awaitable[bool] | bool], timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            result = check()
            if result if isinstance(result, bool) else await result:
                return
            await asyncio.sleep(0.1)


@contextlib.contextmanager
def daemon(home: Home, port: int, log: Path) -> Iterator[None]:
    args = ["--lan-host", "127.0.0.1", "--lan-port", str(port), "--no-mdns"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*MESHCHAT, "--home", str(home.path), "daemon", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=cli_env(PASS),
            stdin=subprocess.DEVNULL,
        )
        try:
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@dataclass
class Bob:
    """A node in this process that records the kind and suite of every frame it receives."""

    node: Node
    store: Store
    seen: list[tuple[PacketKind, Suite]] = field(default_factory=list)

    def tap(self) -> None:
        node = self.node
        receive = node.frame_received

        def frame_received(link: Link, frame: bytes) -> None:
            # the transport hands every frame to the node: note what it is first
            with contextlib.suppress(Exception):
                packet = codec.parse(frame)
                self.seen.append((packet.kind, packet.suite))
            receive(link, frame)

        node.frame_received = frame_received  # type: ignore[method-assign]

    def messages(self) -> list[Suite]:
        return [suite for kind, suite in self.seen if kind is PacketKind.MESSAGE]


@dataclass
class World:
    alice: Home
    bob: Bob
    port: int
    tmp: Path


@contextlib.asynccontextmanager
async def bob_node(tmp: Path, name: str, port: int | None) -> AsyncIterator[Bob]:
    identity = Identity.generate()
    store = Store.open(tmp / f"{name}.db", key=os.urandom(32))
    peers = [("127.0.0.1", port)] if port is not None else []
    transports: list[Transport] = []
    if port is not None:
        lan = LanTransport(
            identity, host="127.0.0.1", discovery=False, static_peers=peers, dial_delay=0
        )
        transports.append(lan)
    node = Node(identity, name, store, transports, options=NodeOptions(announce=False))
    bob = Bob(node, store)
    bob.tap()
    await node.start()
    try:
        yield bob
    finally:
        await node.stop()
        store.close()


@contextlib.asynccontextmanager
async def make_world(tmp: Path, *, contacts: bool) -> AsyncIterator[World]:
    """Alice's daemon and Bob; with ``contacts``, Alice has Bob and Carol (a node that is
    never linked) as contacts from before her daemon started."""
    alice = Home(tmp / "alice")
    await aok(alice.path, "init", "--name", "alice", "--kdf", "interactive")
    port = free_port()
    async with bob_node(tmp, "bob", port) as bob, bob_node(tmp, "carol", None) as carol:
        alice_card = ContactCard.from_text(str(cli_json(alice.path, "id")["card"]))
        await bob.node.add_card(alice_card, "alice")
        if contacts:
            for who in (bob, carol):
                card = (await who.node.card()).to_text()
                await aok(alice.path, "contacts", "add", card, "--name", who.node.name)
        with daemon(alice, port, tmp / "alice.log"):
            await eventually(alice.control_socket.exists)
            await eventually(lambda: len(bob.node.links) == 1)
            yield World(alice, bob, port, tmp)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with make_world(tmp_path, contacts=False) as world:
        yield world


@pytest.fixture
async def friends(tmp_path: Path) -> AsyncIterator[World]:
    async with make_world(tmp_path, contacts=True) as world:
        yield world


async def test_a_contact_added_while_the_node_runs_gets_forward_secret_messages(
    world: World,
) -> None:
    card = (await world.bob.node.card()).to_text()
    await aok(world.alice.path, "contacts", "add", card, "--name", "bob")
    await aok(world.alice.path, "send", "bob", "hello bob")
    conversation = await world.bob.node.resolve_conversation("alice")

    async def arrived() -> bool:
        return [m.text for m in await world.bob.node.messages(conversation)] == ["hello bob"]

    await eventually(arrived)
    # The running engine learnt Bob's card (and its signed prekey) at once: no restart, no BOX.
    assert world.bob.messages() and set(world.bob.messages()) == {Suite.RATCHET}


async def test_a_distrusted_contact_gets_no_more_group_keys(friends: World) -> None:
    alice, bob = friends.alice.path, friends.bob
    await aok(alice, "group", "create", "crew", "bob", "carol")

    def bob_epoch() -> int:
        groups = bob.node.groups()
        return groups[0].roster.epoch if groups and groups[0].current else 0

    await eventually(lambda: bob_epoch() == 1)
    await aok(alice, "contacts", "distrust", "bob", "--yes")
    await aok(alice, "group", "remove", "crew", "carol")  # a re-key
    assert cli_json(alice, "group", "list")["groups"][0]["epoch"] == 2
    await asyncio.sleep(4)  # a control part would leave at once (and be retried within 4 s)
    assert bob_epoch() == 1  # the new keys never reached the distrusted key


async def test_verify_while_the_node_runs_goes_through_it(world: World) -> None:
    card = (await world.bob.node.card()).to_text()
    await aok(world.alice.path, "contacts", "add", card, "--name", "bob")
    # No passphrase: a running node is asked over its socket, its store is not opened again.
    env = cli_env(PASS)
    del env["MESHCHAT_PASSPHRASE"]
    done = await asyncio.to_thread(
        subprocess.run,
        [*MESHCHAT, "--home", str(world.alice.path), "verify", "bob", "--yes", "--no-qr"],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "bob is now verified" in done.stdout
    listed = json.loads(await aok(world.alice.path, "contacts", "list", "--json"))
    assert [c["trust"] for c in listed] == ["verified"]


def test_a_send_whose_reply_was_lost_is_not_queued_again(tmp_path: Path) -> None:
    """The node took the request (it may have sent the message) and then no reply came: the
    CLI says so and does not queue a second copy in the offline outbox."""
    alice, bob = Home(tmp_path / "alice"), Home(tmp_path / "bob")
    for home in (alice, bob):
        ok(home.path, "init", "--name", home.path.name, "--kdf", "interactive")
    ok(alice.path, "contacts", "add", str(cli_json(bob.path, "id")["card"]))
    taken: list[bytes] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(alice.control_socket))
        server.listen(1)

        def node_that_dies() -> None:
            conn, _ = server.accept()
            with conn:
                taken.append(conn.recv(65536))  # takes the request, never replies

        thread = threading.Thread(target=node_that_dies)
        thread.start()
        done = cli(alice.path, "send", "bob", "only once")
        thread.join(10)
    alice.control_socket.unlink()
    assert taken and b"only once" in taken[0]
    assert done.returncode != 0
    assert "reply was lost" in done.stderr or "no readable reply" in done.stderr
    logged = cli_json(alice.path, "log", "bob")["messages"]
    assert logged == []  # nothing queued offline


def test_with_no_node_listening_a_send_is_queued_offline(tmp_path: Path) -> None:
    alice, bob = Home(tmp_path / "alice"), Home(tmp_path / "bob")
    for home in (alice, bob):
        ok(home.path, "init", "--name", home.path.name, "--kdf", "interactive")
    ok(alice.path, "contacts", "add", str(cli_json(bob.path, "id")["card"]))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stale:
        stale.bind(str(alice.control_socket))  # a socket file left behind, nobody listening
    ok(alice.path, "send", "bob", "queued")
    alice.control_socket.unlink()
    logged = cli_json(alice.path, "log", "bob")["messages"]
    assert [m["text"] for m in logged] == ["queued"]
