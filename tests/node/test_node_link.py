"""Linking a second device between real nodes on the in-memory medium, and the bad inputs:
a code used twice, a code past its time, a wrong confirmation string, a wrong secret."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from meshchat.account.link import LINK_TTL_MS, LinkCode
from meshchat.account.linking import Inviter
from meshchat.errors import LinkError, LinkReason
from meshchat.identity import Identity
from meshchat.node import Node, wall_clock_ms
from meshchat.store import Store
from meshchat.store.records import Trust
from meshchat.transports.memory import MemoryHub, MemoryTransport

Make = Callable[[str], Awaitable[Node]]


class Clock:
    def __init__(self) -> None:
        self.skew = 0

    def __call__(self) -> int:
        return wall_clock_ms() + self.skew


@pytest.fixture
async def mesh(tmp_path: Path) -> AsyncIterator[Make]:
    hub = MemoryHub()
    nodes: list[tuple[Node, Store, MemoryTransport]] = []

    async def make(name: str, clock: Clock | None = None) -> Node:
        identity = Identity.generate()
        store = Store.open(tmp_path / f"{name}.db", key=os.urandom(32))
        transport = hub.transport(identity.public)
        node = Node(identity, name, store, [transport], clock=clock or Clock())
        await node.start()
        for _, _, other in nodes:
            hub.connect(other, transport)
        nodes.append((node, store, transport))
        return node

    yield make  # type: ignore[misc]
    for node, store, _ in nodes:
        await node.stop()
        store.close()


async def strings(e: Node, n: Node, code: str) -> tuple[str, str]:
    await n.link_join(code, "laptop", timeout_s=10)
    shown_n = await n.link_wait("new", 10)
    shown_e = await e.link_wait("existing", 10)
    assert shown_n is not None and shown_e is not None
    return shown_e.string, shown_n.string


async def test_two_devices_link_and_hold_one_list(mesh: Make) -> None:
    e = await mesh("alice")
    n = await mesh("alice-laptop")
    offer = await e.link_start()
    shown_e, shown_n = await strings(e, n, offer.code)
    assert shown_e == shown_n and len(shown_e) == 7
    progress_e = await e.link_confirm("existing", shown_n)
    progress_n = await n.link_confirm("new", "y")
    assert progress_n is not None and progress_n.state in ("confirming", "linked")
    assert progress_e is not None and progress_e.state == "accepted"
    assert progress_e.peer_name == "laptop"
    final = await n.link_wait("new", 10, answered=True)
    assert final is not None and final.state == "linked"
    assert n.account_id == e.account_id == e.identity.node_id
    assert n.engine.accounts.own == e.engine.accounts.own
    assert {d.name for d in e.engine.accounts.own.devices} == {"alice", "laptop"}
    assert n.engine.accounts.is_own_device(e.identity.node_id)
    assert e.engine.accounts.is_own_device(n.identity.node_id)
    # each keeps the other as a contact row of trust OWN, on the one account
    on_e = {c.node_id: c for c in await e.contacts()}[n.identity.node_id]
    on_n = {c.node_id: c for c in await n.contacts()}[e.identity.node_id]
    assert on_e.trust is Trust.OWN and on_n.trust is Trust.OWN
    assert on_e.account_id == on_n.account_id == e.account_id
    assert (on_e.name, on_n.name) == ("laptop", "alice")


async def test_the_new_device_keeps_its_account_after_a_restart(mesh: Make, tmp_path: Path) -> None:
    e = await mesh("alice")
    n = await mesh("alice-laptop")
    offer = await e.link_start()
    await strings(e, n, offer.code)
    await e.link_confirm("existing", "y")
    await n.link_confirm("new", "y")
    await n.link_wait("new", 10, answered=True)
    assert n.account_id == e.account_id
    await asyncio.sleep(0.1)
    blobs = await n.store.call(n.store.store.device_lists)
    again = Node(n.identity, n.name, Store.open(tmp_path / "unused.db", key=os.urandom(32)), [])
    again.engine.accounts.load(blobs)
    assert again.account_id == e.account_id
    assert again.engine.accounts.is_own_device(e.identity.node_id)
    again.store.shutdown()


async def test_a_code_used_twice_links_only_the_first_device(mesh: Make) -> None:
    e = await mesh("alice")
    n = await mesh("alice-laptop")
    m = await mesh("mallory")
    offer = await e.link_start()
    await strings(e, n, offer.code)
    await m.link_join(offer.code, "evil", timeout_s=10)
    told = await m.link_wait("new", 10, answered=True)  # told at once, not left waiting
    assert told is not None and told.state == "ended" and told.reason == "used"
    await e.link_confirm("existing", "y")
    await n.link_confirm("new", "y")
    await n.link_wait("new", 10, answered=True)
    listed = set(e.engine.accounts.own.node_ids)
    assert listed == {e.identity.node_id, n.identity.node_id}
    assert m.account_id == m.identity.node_id
    assert e.counters.get("rejected", 0) >= 1  # refused in the log, nothing else happened


async def test_a_code_past_its_time_is_refused(mesh: Make) -> None:
    clock = Clock()
    e = await mesh("alice", clock)  # type: ignore[call-arg]
    n = await mesh("alice-laptop")
    clock.skew = -(LINK_TTL_MS + 1000)  # the code was made eleven minutes ago
    offer = await e.link_start()
    clock.skew = 0
    await n.link_join(offer.code, "laptop", timeout_s=10)
    ended = await e.link_wait("existing", 10)
    assert ended is not None and ended.state == "ended" and ended.reason == "expired"
    told = await n.link_wait("new", 10, answered=True)
    assert told is not None and told.state == "ended" and told.reason == "expired"
    assert len(e.engine.accounts.own.devices) == 1


async def test_a_wrong_confirmation_string_links_nothing(mesh: Make) -> None:
    e = await mesh("alice")
    n = await mesh("alice-laptop")
    offer = await e.link_start()
    shown, _ = await strings(e, n, offer.code)
    wrong = "000 000" if shown != "000 000" else "111 111"
    progress = await n.link_confirm("new", wrong)
    assert progress is not None and progress.state == "ended" and progress.reason == "mismatch"
    ended = await e.link_wait("existing", 10, answered=True)
    assert ended is not None and ended.state == "ended" and ended.reason == "declined"
    assert len(e.engine.accounts.own.devices) == 1
    assert n.account_id == n.identity.node_id


async def test_a_wrong_confirmation_on_the_existing_side_refuses_the_new_one(mesh: Make) -> None:
    e = await mesh("alice")
    n = await mesh("alice-laptop")
    offer = await e.link_start()
    shown, _ = await strings(e, n, offer.code)
    await n.link_confirm("new", "y")
    wrong = "000 000" if shown != "000 000" else "111 111"
    await e.link_confirm("existing", wrong)
    ended = await n.link_wait("new", 10, answered=True)
    assert ended is not None and ended.state == "ended" and ended.reason == "declined"
    assert len(e.engine.accounts.own.devices) == 1
    assert n.account_id == n.identity.node_id


async def test_a_request_with_a_wrong_secret_is_refused(mesh: Make) -> None:
    e = await mesh("alice")
    n = await mesh("alice-laptop")
    offer = await e.link_start()
    real = LinkCode.parse(offer.code)
    forged = dataclasses.replace(real, secret=bytes(x ^ 1 for x in real.secret))
    await n.link_join(forged.to_text(), "laptop", timeout_s=10)
    await n.link_wait("new", 10, answered=True)
    status_e = e.linking.status("existing")
    assert status_e is not None and status_e.state == "waiting"  # still usable by the real one
    told = await n.link_wait("new", 10, answered=True)
    assert told is not None and told.state == "ended" and told.reason == "bad-mac"
    assert e.counters.get("rejected", 0) >= 1
    assert len(e.engine.accounts.own.devices) == 1


async def test_a_code_nobody_announces_is_not_found(mesh: Make) -> None:
    await mesh("alice")
    n = await mesh("alice-laptop")
    code = LinkCode.generate(Identity.generate().node_id).to_text()
    with pytest.raises(LinkError) as caught:
        await n.link_join(code, "laptop", timeout_s=1)
    assert caught.value.reason is LinkReason.NOT_FOUND


async def test_a_mitm_who_learnt_the_code_shows_the_two_devices_different_strings(
    mesh: Make,
) -> None:
    """M saw the code on E's screen and sits between E and N (it runs one exchange with each;
    that N takes M for E is granted here by giving N a code with M's node id prefix, which
    in the field takes 2^40 work). The strings E and N show differ, so the person says no."""
    e = await mesh("alice")
    m = await mesh("mallory")
    n = await mesh("alice-laptop")
    offer = await e.link_start()
    secret = LinkCode.parse(offer.code).secret
    fake = LinkCode(m.identity.node_id[:5], secret)
    m.engine.link.inviter = Inviter(m.identity.public, fake, m.clock())  # M poses as E to N
    await m.link_join(offer.code, "laptop", timeout_s=10)  # and as N to E
    await n.link_join(fake.to_text(), "laptop", timeout_s=10)
    on_e = await e.link_wait("existing", 10)
    on_n = await n.link_wait("new", 10)
    assert on_e is not None and on_n is not None and on_e.string and on_n.string
    assert on_e.string != on_n.string
    await n.link_confirm("new", on_e.string)  # the person types what E shows: refused
    await e.link_confirm("existing", "n")
    assert len(e.device_list().devices) == 1 and m.account_id == m.identity.node_id


async def test_a_no_on_the_new_device_after_the_existing_said_yes_revokes_it(mesh: Make) -> None:
    e = await mesh("alice")
    n = await mesh("alice-laptop")
    offer = await e.link_start()
    await strings(e, n, offer.code)
    await e.link_confirm("existing", "y")
    await until_accept_came(n)
    await n.link_confirm("new", "n")
    async with asyncio.timeout(10):  # "accepted" is final for the CLI; the refuse ends it
        while (ended := e.link_status("existing")) is None or ended.state != "ended":
            await asyncio.sleep(0.02)
    assert ended.reason == "declined"
    listed = e.device_list()
    assert n.identity.node_id in listed.revoked and n.identity.node_id not in listed.node_ids
    assert n.identity.node_id not in {c.node_id for c in await e.contacts()}
    assert n.account_id == n.identity.node_id


async def until_accept_came(n: Node) -> None:
    async with asyncio.timeout(10):
        while n.engine.link.joiner is None or n.engine.link.joiner.device_list is None:
            await asyncio.sleep(0.02)
