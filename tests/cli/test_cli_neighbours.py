"""``meshchat send NAME`` and ``meshchat contacts add --from-peer NAME`` to a neighbour that
only announced itself: a real daemon for Alice on loopback TCP, Bob a node in this process
linked to it, announcing his name; the commands run as child processes."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

from test_cli_node_writes import (
    Bob,
    acli,
    aok,
    cli,
    cli_json,
    daemon,
    eventually,
    free_port,
)

from meshchat.home import Home
from meshchat.identity import Identity
from meshchat.node import Node
from meshchat.store import Store
from meshchat.transports.lan import LanTransport
from meshchat.wire import Suite


@contextlib.asynccontextmanager
async def announcing_bob(tmp: Path, port: int) -> AsyncIterator[Bob]:
    identity = Identity.generate()
    store = Store.open(tmp / "bob.db", key=os.urandom(32))
    lan = LanTransport(
        identity,
        host="127.0.0.1",
        discovery=False,
        static_peers=[("127.0.0.1", port)],
        dial_delay=0,
    )
    node = Node(identity, "bob", store, [lan])
    bob = Bob(node, store)
    bob.tap()
    await node.start()
    try:
        yield bob
    finally:
        await node.stop()
        store.close()


async def test_send_and_add_a_neighbour_by_its_announced_name(tmp_path: Path) -> None:
    alice = Home(tmp_path / "alice")
    await aok(alice.path, "init", "--name", "alice", "--kdf", "interactive")
    port = free_port()
    # with no node running, --from-peer cannot know who is around, and says so
    offline = cli(alice.path, "contacts", "add", "--from-peer", "bob")
    assert offline.returncode != 0 and "needs the running node" in offline.stderr
    queued = cli(alice.path, "send", "bob", "nobody to queue for")
    assert queued.returncode != 0 and "known only to a running node" in queued.stderr
    async with announcing_bob(tmp_path, port) as bob:
        with daemon(alice, port, tmp_path / "alice.log"):
            await eventually(alice.control_socket.exists)

            async def sent() -> bool:
                done = await acli(alice.path, "send", "bob", "hello neighbour")
                return done.returncode == 0

            await eventually(sent)  # once Bob's announce has reached Alice's daemon
            conversation = dm_of(alice)
            await eventually(lambda: _texts(bob, conversation) == ["hello neighbour"])
            # forward secret from the first message: the prekey came with the announce
            assert bob.messages() and set(bob.messages()) == {Suite.RATCHET}
            added = await acli(alice.path, "contacts", "add", "--from-peer", "BOB")
            assert added.returncode == 0, added.stderr
            assert "added bob" in added.stdout and "unverified" in added.stdout
            assert "verify in person (safety number or QR)" in added.stdout
            [contact] = cli_json(alice.path, "contacts", "list")
            assert contact["name"] == "bob"
            assert contact["node_id"] == bob.node.identity.node_id.hex()
            assert contact["trust"] == "unverified"
            again = cli(alice.path, "contacts", "add", "--from-peer", "bob")
            assert again.returncode != 0 and "already a contact" in again.stderr


def dm_of(alice: Home) -> str:
    return "dm:" + str(cli_json(alice.path, "status")["identity"]["node_id"])


def _texts(bob: Bob, conversation: str) -> list[str]:
    return [m.text for m in bob.store.messages(conversation)]
