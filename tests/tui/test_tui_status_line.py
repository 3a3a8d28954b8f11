"""The chat screen as ``meshchat status`` in one line, the bell, and a /nick that is kept:
real nodes linked in memory, a real home for the keystore."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC
from functools import partial
from pathlib import Path

import pytest
from test_tui_controller import WIDE, befriend, until
from urwid.testing import render_text

from meshchat.app import keep_name
from meshchat.config import load, set_value
from meshchat.home import Home
from meshchat.identity import Identity, KdfProfile
from meshchat.node import NO_INTERNET_HINT, Node, NodeOptions
from meshchat.store import Store
from meshchat.transports.memory import MemoryHub, MemoryTransport
from meshchat.tui.controller import ChatController

PASS = "status line passphrase"


@dataclass
class Side:
    node: Node
    store: Store
    transport: MemoryTransport
    ctl: ChatController
    bells: list[int]
    name: str

    def text(self) -> str:
        return "\n".join(render_text(self.ctl.screen, WIDE, focus=True))

    def header(self) -> str:
        return self.text().splitlines()[0]

    def type(self, line: str) -> None:
        screen = self.ctl.screen
        screen.focus_pane("input")
        for ch in line:
            screen.keypress(WIDE, ch)
        screen.keypress(WIDE, "enter")


async def side(
    tmp_path: Path, hub: MemoryHub, name: str, *, bell: bool = True, home: Home | None = None
) -> Side:
    identity = Identity.generate()
    if home is not None:
        identity = home.unlock_all(PASS).identity
    store = Store.open(tmp_path / f"{name}.db", key=os.urandom(32))
    transport = hub.transport(identity.public)
    node = Node(identity, name, store, [transport], options=NodeOptions())
    await node.start()
    bells: list[int] = []
    ctl = ChatController(
        node,
        redraw=lambda: None,
        on_quit=lambda: None,
        tz=UTC,
        bell=(lambda: bells.append(1)) if bell else None,
        keep_name=partial(keep_name, home, PASS) if home is not None else None,
        header_every_s=0.05,
    )
    await ctl.start()
    return Side(node, store, transport, ctl, bells, name)


@pytest.fixture
async def sides() -> AsyncIterator[list[Side]]:
    made: list[Side] = []
    yield made
    for one in made:
        await one.ctl.close()
        await one.node.stop()
        one.store.close()


async def test_the_header_counts_queued_and_carried_messages(
    tmp_path: Path, sides: list[Side]
) -> None:
    hub = MemoryHub()
    alice, bob = await side(tmp_path, hub, "alice"), await side(tmp_path, hub, "bob")
    sides += [alice, bob]
    await until(lambda: " 0 queued 0 carried" in alice.header())
    await befriend(alice, bob)  # type: ignore[arg-type]
    alice.type("/msg bob are you there?")  # no link: it waits in the outbox
    await until(lambda: " 1 queued 0 carried" in alice.header())
    carol = await side(tmp_path, hub, "carol")
    sides.append(carol)
    hub.connect(alice.transport, carol.transport)  # carol, between them, carries it for bob
    await until(lambda: " 0 queued 1 carried" in carol.header(), timeout=20)
    assert " 1 queued" in alice.header()  # until bob acknowledges it
    hub.connect(carol.transport, bob.transport)
    await until(lambda: " 0 queued" in alice.header(), timeout=20)
    assert "are you there?" in [
        m.text for m in bob.store.messages(f"dm:{alice.node.identity.node_id.hex()}")
    ]


async def test_a_direct_message_rings_the_bell_once_and_a_channel_message_does_not(
    tmp_path: Path, sides: list[Side]
) -> None:
    hub = MemoryHub()
    alice = await side(tmp_path, hub, "alice")
    bob = await side(tmp_path, hub, "bob")
    quiet = await side(tmp_path, hub, "carol", bell=False)
    sides += [alice, bob, quiet]
    hub.connect(alice.transport, bob.transport)
    hub.connect(bob.transport, quiet.transport)
    await befriend(alice, bob)  # type: ignore[arg-type]
    await befriend(bob, quiet)  # type: ignore[arg-type]
    bob.type("hello everyone")
    await until(lambda: "hello everyone" in [m.text for m in alice.store.messages("#mesh")])
    await until(lambda: "hello everyone" in [m.text for m in quiet.store.messages("#mesh")])
    assert alice.bells == []
    bob.type("/msg alice just for you")
    bob.type("/msg carol and you")
    await until(lambda: alice.bells == [1])
    dm = f"dm:{bob.node.identity.node_id.hex()}"
    await until(lambda: "and you" in [m.text for m in quiet.store.messages(dm)])
    await alice.ctl.idle()
    assert alice.bells == [1] and quiet.bells == []  # carol turned it off
    # her own messages never ring
    alice.type("/msg bob got it")
    await until(
        lambda: (
            "got it"
            in [m.text for m in bob.store.messages(f"dm:{alice.node.identity.node_id.hex()}")]
        )
    )
    await until(lambda: bob.bells == [1])
    assert alice.bells == [1]


async def test_nick_is_kept_in_the_keystore_and_the_config(
    tmp_path: Path, sides: list[Side]
) -> None:
    home = Home(tmp_path / "home")
    home.create_identity("alice", PASS, KdfProfile.INTERACTIVE)
    hub = MemoryHub()
    alice = await side(tmp_path, hub, "alice", home=home)
    bob = await side(tmp_path, hub, "bob")
    sides += [alice, bob]
    hub.connect(alice.transport, bob.transport)
    alice.type("/nick alicia")
    await alice.ctl.idle()
    assert "kept in the keystore" in alice.text() and "alicia" in alice.header()
    assert home.unlock_all(PASS).name == "alicia"  # the next run starts as alicia
    await until(lambda: bob.node.announced_peers().get(alice.node.identity.node_id) == "alicia")
    assert not home.config.exists()  # the name stays out of clear text unless it was there
    # a name set in config.toml would win over the keystore: it is changed there too
    set_value(home.config, "name", "alicia")
    alice.type("/nick ally")
    await alice.ctl.idle()
    assert "kept in the keystore and config.toml" in alice.text()
    assert home.unlock_all(PASS).name == "ally" and load(home.config).text("name") == "ally"


async def test_with_no_internet_configured_the_chat_says_how_to_add_it(
    tmp_path: Path, sides: list[Side]
) -> None:
    alice = await side(tmp_path, MemoryHub(), "alice")
    sides.append(alice)
    text = alice.text()
    assert "messages reach only the people of this mesh" in text
    assert "internet.relays" in text
    assert alice.node.gateway_reason() == NO_INTERNET_HINT
