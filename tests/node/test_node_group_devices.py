"""A group joined on one device is usable on the account's other device after they meet: real
nodes on the in-memory medium (alice, her laptop linked later, bob who runs the group)."""

from __future__ import annotations

from meshchat.group.book import group_conversation
from tests.node.test_node_sync import Make, link, mesh, until

__all__ = ["mesh"]


async def test_a_group_joined_on_a1_is_usable_on_a2_after_sync(mesh: Make) -> None:
    alice, _ = await mesh("alice")
    bob, _ = await mesh("bob")
    await alice.add_card(await bob.card())
    await bob.add_card(await alice.card())
    group = await bob.create_group("crew", ["alice"])
    conversation = group_conversation(group.group_id)

    async def alice_in() -> bool:
        held = alice.engine.groups.groups.get(group.group_id)
        return held is not None and held.current is not None

    await until(alice_in)
    await bob.send_text("+crew", "before the laptop")

    async def alice_read() -> bool:
        return any(m.text == "before the laptop" for m in await alice.messages(conversation))

    await until(alice_read)
    laptop, _ = await mesh("alice-laptop")
    await link(alice, laptop)

    async def laptop_usable() -> bool:
        held = laptop.engine.groups.groups.get(group.group_id)
        return held is not None and held.current is not None

    await until(laptop_usable)

    # the laptop has the group's history (synced) and reads and writes in it from now on
    async def laptop_has(text: str) -> bool:
        return any(m.text == text for m in await laptop.messages(conversation))

    await until(lambda: laptop_has("before the laptop"))
    assert [g.name for g in laptop.groups()] == ["crew"]
    await bob.send_text("+crew", "after the laptop")
    await until(lambda: laptop_has("after the laptop"))
    await laptop.send_text("+crew", "hello from the laptop")

    async def bob_and_alice_read() -> bool:
        got = [[m.text for m in await n.messages(conversation)] for n in (bob, alice)]
        return all("hello from the laptop" in t for t in got)

    await until(bob_and_alice_read)
