"""Habits from other chat apps on the chat screen: /block, /unblock, /nick, /me, /clear and
/help CMD, over real nodes linked in memory, and their grammar."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from test_tui_controller import Side, make_side, until

from meshchat.engine import dm_conversation
from meshchat.errors import UsageError
from meshchat.transports.memory import MemoryHub
from meshchat.tui.commands import (
    AddContact,
    Block,
    Clear,
    Help,
    Me,
    Msg,
    Nick,
    Unblock,
    Who,
    parse_line,
)
from meshchat.tui.helptext import help_for


@pytest.fixture
async def duo(tmp_path: Path) -> AsyncIterator[tuple[MemoryHub, Side, Side]]:
    hub = MemoryHub()
    alice = await make_side(tmp_path, hub, "alice")
    bob = await make_side(tmp_path, hub, "bob")
    yield hub, alice, bob
    for side in (alice, bob):
        await side.ctl.close()
        await side.node.stop()
        side.store.close()


def test_grammar_keeps_the_irc_spellings() -> None:
    assert parse_line("/block @bob") == Block("bob")
    assert parse_line("/block") == Block(None)
    assert parse_line("/unblock bob") == Unblock("bob")
    assert parse_line("/nick  Zed ") == Nick("Zed")
    assert parse_line("/me waves") == Me("waves")
    assert parse_line("/clear") == Clear()
    assert parse_line("/help /msg") == Help("msg")
    assert parse_line("/help m") == Help("msg")
    assert parse_line("/w") == Who()
    assert parse_line("/m @alice hi") == Msg("alice", "hi")
    assert parse_line("/add @alice") == AddContact("alice")
    for bad in ("/unblock", "/nick", "/me", "/clear now", "/help nosuch", "/nick #chan"):
        with pytest.raises(UsageError):
            parse_line(bad)


@pytest.mark.parametrize(
    "topic",
    [
        *("msg", "join", "who", "id", "add", "replace", "add-lookalike", "verify", "group"),
        *("delete", "yes", "panic", "block", "unblock", "nick", "me", "clear", "help", "quit"),
    ],
)
def test_every_command_has_its_help(topic: str) -> None:
    text = help_for(topic)
    assert f"/{topic}" in text and "see /help" not in text


async def test_block_hides_a_neighbour_and_unblock_lets_them_back(duo) -> None:  # type: ignore[no-untyped-def]
    hub, alice, bob = duo
    hub.connect(alice.transport, bob.transport)
    await until(lambda: alice.node.identity.node_id in bob.node.announced_peers())
    await until(lambda: bob.node.identity.node_id in alice.node.announced_peers())
    bob.type("/block alice")
    await bob.ctl.idle()
    assert "blocked ~alice" in bob.text()
    bob.type("/block")
    await bob.ctl.idle()
    assert f"~alice ({alice.node.identity.public.sign_public.hex()[:8]})" in bob.text()
    await alice.node.send_text("bob", "you cannot see this")
    await until(lambda: bob.node.counter_totals().get("drop.blocked", 0) == 1)
    assert bob.store.messages(dm_conversation(alice.node.identity.node_id)) == []
    assert "you cannot see this" not in bob.text()
    bob.type("/unblock alice")
    await bob.ctl.idle()
    assert "unblocked ~alice" in bob.text()
    await alice.node.send_text("bob", "now you can")
    conversation = dm_conversation(alice.node.identity.node_id)
    await until(lambda: [m.text for m in bob.store.messages(conversation)] == ["now you can"])


async def test_nick_is_announced_and_me_sends_an_action(duo) -> None:  # type: ignore[no-untyped-def]
    hub, alice, bob = duo
    hub.connect(alice.transport, bob.transport)
    await until(lambda: alice.node.identity.node_id in bob.node.announced_peers())
    alice.type("/nick alicia")
    await alice.ctl.idle()
    assert "alicia" in alice.text().splitlines()[0]  # the header
    await until(lambda: bob.node.announced_peers().get(alice.node.identity.node_id) == "alicia")
    alice.type("/me waves")
    await until(lambda: "* alicia waves" in [m.text for m in bob.store.messages("#mesh")])


async def test_clear_empties_the_view_not_the_store(duo) -> None:  # type: ignore[no-untyped-def]
    _hub, alice, _bob = duo
    alice.type("first words")
    await until(lambda: "first words" in alice.text())
    alice.type("/clear")
    await alice.ctl.idle()
    await until(lambda: "first words" not in alice.text())
    assert [m.text for m in alice.store.messages("#mesh")] == ["first words"]
    alice.type("after the clear")
    await until(lambda: "after the clear" in alice.text())
    assert "first words" not in alice.text()
    alice.type("/help block")
    await alice.ctl.idle()
    assert "still relayed for others" in alice.text()
