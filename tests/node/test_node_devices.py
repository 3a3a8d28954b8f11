"""Device lists between real nodes on the in-memory medium: a contact's new device becomes a
contact row with the account's trust (loudly told while the contact is unverified), trust is
per account, and a revoked device is dropped everywhere: rows, sessions, groups."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from meshchat.errors import UsageError
from meshchat.identity import Identity
from meshchat.node import Node
from meshchat.node._link import EXISTING, NEW
from meshchat.node._types import DevicesNotice, NodeNotice
from meshchat.store import Store
from meshchat.store.records import Trust
from meshchat.transports.memory import MemoryHub, MemoryTransport

Make = Callable[[str], Awaitable[Node]]


@pytest.fixture
async def mesh(tmp_path: Path) -> AsyncIterator[Make]:
    hub = MemoryHub()
    nodes: list[tuple[Node, Store, MemoryTransport]] = []

    async def make(name: str) -> Node:
        identity = Identity.generate()
        store = Store.open(tmp_path / f"{name}.db", key=os.urandom(32))
        transport = hub.transport(identity.public)
        node = Node(identity, name, store, [transport])
        await node.start()
        for _, _, other in nodes:
            hub.connect(other, transport)
        nodes.append((node, store, transport))
        return node

    yield make  # type: ignore[misc]
    for node, store, _ in nodes:
        await node.stop()
        store.close()


async def until(check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    for _ in range(int(timeout_s / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


async def link(e: Node, n: Node) -> None:
    offer = await e.link_start()
    await n.link_join(offer.code, "laptop", timeout_s=10)
    assert await n.link_wait(NEW, 10) is not None
    await e.link_confirm(EXISTING, "y")
    await n.link_confirm(NEW, "y")
    final = await n.link_wait(NEW, 10, answered=True)
    assert final is not None and final.state == "linked"


async def befriend(a: Node, b: Node) -> None:
    await a.add_card(await b.card())
    await b.add_card(await a.card())


def notices(node: Node) -> list[DevicesNotice]:
    seen: list[DevicesNotice] = []

    def listen(notice: NodeNotice) -> None:
        if notice.devices is not None:
            seen.append(notice.devices)

    node.subscribe(listen)
    return seen


async def test_a_contacts_new_device_and_its_revocation(mesh: Make) -> None:
    alice, laptop, bob = await mesh("alice"), await mesh("laptop"), await mesh("bob")
    await befriend(alice, bob)
    told = notices(bob)
    told_laptop = notices(laptop)
    await link(alice, laptop)
    laptop_id = laptop.identity.node_id

    async def bob_has_laptop() -> bool:
        return any(c.node_id == laptop_id for c in await bob.contacts())

    await until(bob_has_laptop)
    row = {c.node_id: c for c in await bob.contacts()}[laptop_id]
    assert row.account_id == alice.account_id and row.trust is Trust.UNVERIFIED
    assert row.name == "alice"  # the account's name, not what the device calls itself
    assert told and told[0].added == (laptop_id,) and told[0].name == "alice"
    assert told[0].loud  # alice is not verified: a new device is worth a look
    # trust is per account: verifying alice verifies both of her devices
    await bob.set_trust(alice.identity.node_id, Trust.VERIFIED)
    assert {c.trust for c in await bob.contacts() if c.account_id == alice.account_id} == {
        Trust.VERIFIED
    }
    # a group alice administers holds bob and her laptop; revoking the laptop re-keys it
    group = await alice.create_group("crew", ["bob", "laptop"])
    assert group.roster.member(laptop_id) is not None
    epoch = group.roster.epoch
    with pytest.raises(UsageError):
        await alice.devices.revoke("alice")  # this device itself
    with pytest.raises(UsageError):
        await alice.devices.revoke("nobody")
    revoked = await alice.devices.revoke("laptop")
    assert laptop_id in revoked.revoked and laptop_id not in revoked.node_ids
    held = alice.engine.groups.groups[group.group_id]
    assert held.roster.member(laptop_id) is None and held.roster.epoch > epoch

    async def bob_dropped_laptop() -> bool:
        return not await bob_has_laptop()

    await until(bob_dropped_laptop)
    assert laptop_id not in bob.engine.direct.records
    assert await bob.store.call(bob.store.store.get_state, "session", laptop_id) is None
    assert bob.engine.accounts.account_of(laptop_id) == laptop_id
    assert told[-1].revoked == (laptop_id,) and not told[-1].loud  # signed by verified alice

    async def laptop_knows() -> bool:
        return any(n.this_device_revoked for n in told_laptop)

    await until(laptop_knows)


async def test_a_card_of_a_linked_device_brings_its_accounts_list(mesh: Make) -> None:
    alice, laptop, bob = await mesh("alice"), await mesh("laptop"), await mesh("bob")
    await link(alice, laptop)
    card = await laptop.card()
    assert card.version == 3 and card.account == (alice.account_id, 2)
    # bob adds the laptop's card: he asks it for alice's list, and keeps both of her devices
    await bob.add_card(card)

    async def bob_has_both() -> bool:
        rows = {c.node_id: c for c in await bob.contacts()}
        return alice.identity.node_id in rows

    await until(bob_has_both)
    rows = {c.node_id: c for c in await bob.contacts()}
    assert {r.account_id for r in rows.values()} == {alice.account_id}
    assert bob.engine.accounts.account_of(laptop.identity.node_id) == alice.account_id
    # a home's own card stays version 2 while it is an account of one device
    assert (await bob.card()).version == 2
    # marking one device compromised marks the account: no group key goes to either device
    await bob.set_trust(laptop.identity.node_id, Trust.COMPROMISED)
    rows = {c.node_id: c for c in await bob.contacts()}
    assert {r.trust for r in rows.values()} == {Trust.COMPROMISED}
    assert {alice.identity.node_id, laptop.identity.node_id} <= bob.engine._group_glue._distrusted


async def test_a_new_home_holds_its_genesis_list(mesh: Make) -> None:
    node = await mesh("solo")
    await node.card()  # any flush will do
    stored = await node.store.call(node.store.store.device_lists)
    assert stored == {node.identity.node_id: node.engine.accounts.own.encode()}
    assert node.engine.accounts.own.version == 1


async def test_a_contact_added_after_linking_is_sent_the_accounts_list(mesh: Make) -> None:
    alice, bob = await mesh("alice"), await mesh("bob")
    old_card = await alice.card()  # taken before alice had a second device: no account in it
    assert old_card.account is None
    laptop = await mesh("laptop")
    await link(alice, laptop)
    await bob.add_card(old_card)
    # alice adds bob after the link: adding him is what tells him her devices (no announce
    # comes in between: the only way bob learns of the laptop is alice's share)
    await alice.add_card(await bob.card())
    laptop_id = laptop.identity.node_id

    async def bob_knows_laptop() -> bool:
        return bob.engine.accounts.account_of(laptop_id) == alice.account_id

    await until(bob_knows_laptop)
    rows = {c.node_id: c for c in await bob.contacts()}
    assert rows[laptop_id].account_id == alice.account_id
