"""The chat controller and screen over real nodes linked in memory, rendered without a terminal."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path

import pytest
from urwid.testing import render_runs, render_text

from meshchat.identity import Identity
from meshchat.node import Node, NodeNotice, NodeOptions
from meshchat.store import Store
from meshchat.store.records import Contact, MessageState, Trust
from meshchat.transports.memory import MemoryHub, MemoryTransport
from meshchat.tui.controller import ChatController

WIDE = (160, 40)
NARROW = (80, 24)


@dataclass
class Side:
    node: Node
    store: Store
    transport: MemoryTransport
    ctl: ChatController
    quits: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def short(self) -> str:
        return self.node.identity.node_id.hex()[:8]

    def text(self, size: tuple[int, int] = WIDE) -> str:
        return "\n".join(render_text(self.ctl.screen, size, focus=True))

    def type(self, line: str) -> None:
        screen = self.ctl.screen
        screen.focus_pane("input")
        for ch in line:
            screen.keypress(WIDE, ch)
        screen.keypress(WIDE, "enter")

    def key(self, key: str, size: tuple[int, int] = WIDE) -> None:
        self.ctl.screen.keypress(size, key)


async def make_side(tmp_path: Path, hub: MemoryHub, name: str) -> Side:
    identity = Identity.generate()
    store = Store.open(tmp_path / f"{name}.db", key=os.urandom(32))
    transport = hub.transport(identity.public)
    # A short announce interval is not needed: the node announces soon after a link comes up.
    node = Node(identity, name, store, [transport], options=NodeOptions())
    await node.start()
    quits: list[int] = []
    ctl = ChatController(node, redraw=lambda: None, on_quit=lambda: quits.append(1), tz=UTC)
    await ctl.start()
    return Side(node, store, transport, ctl, quits)


async def befriend(a: Side, b: Side) -> None:
    for x, y in ((a, b), (b, a)):
        ident = y.node.identity.public
        await x.node.add_contact(
            Contact(ident.node_id, ident.sign_public, ident.box_public, y.name, Trust.UNVERIFIED, 0)
        )
        await x.ctl.refresh_list()


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[MemoryHub, Side, Side]]:
    hub = MemoryHub()
    alice = await make_side(tmp_path, hub, "alice")
    bob = await make_side(tmp_path, hub, "bob")
    yield hub, alice, bob
    for side in (alice, bob):
        await side.ctl.close()
        await side.node.stop()
        side.store.close()


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


def line_with(text: str, screen: str) -> str:
    lines = [line for line in screen.splitlines() if text in line]
    assert len(lines) == 1, f"{text!r} on {len(lines)} lines:\n{screen}"
    return lines[0]


async def test_start_shows_header_list_and_empty_neighbours(pair) -> None:  # type: ignore[no-untyped-def]
    _hub, alice, bob = pair
    await befriend(alice, bob)
    screen = alice.text()
    assert f"alice {alice.short}  0 links" in screen
    assert "▸ #mesh" in screen and "  bob" in screen
    assert "no neighbours yet" in screen
    assert screen.splitlines()[-1].startswith("[#mesh]> ")


async def test_neighbours_pane_and_header_follow_links(pair) -> None:  # type: ignore[no-untyped-def]
    hub, alice, bob = pair
    hub.connect(alice.transport, bob.transport)
    await until(lambda: "1 link" in alice.text() and f"mem {bob.short} ~bob" in alice.text())
    hub.disconnect(alice.transport, bob.transport)
    await until(lambda: "0 links" in alice.text() and "no neighbours yet" in alice.text())


async def test_msg_opens_the_conversation_and_the_mark_turns_delivered(pair) -> None:  # type: ignore[no-untyped-def]
    hub, alice, bob = pair
    await befriend(alice, bob)
    alice.type("/msg bob hello before a link")
    await until(lambda: "hello before a link" in alice.text())
    assert "…  alice: hello before a link" in line_with("hello before a link", alice.text())
    assert alice.ctl.current == "dm:" + bob.node.identity.node_id.hex()
    assert f"bob ({bob.short})" in alice.text() and "[bob]> " in alice.text()
    hub.connect(alice.transport, bob.transport)
    await until(lambda: "✓✓ alice: hello before a link" in alice.text())
    runs = render_runs(alice.ctl.screen, WIDE)
    assert any(
        attr == "state_delivered" and text.startswith("✓✓") for row in runs for attr, text in row
    )
    got = await bob.node.messages(await bob.node.resolve_conversation("alice"))
    assert [m.text for m in got] == ["hello before a link"]
    # Plain text goes to the open conversation; every message is shown once.
    alice.type("and again")
    await until(lambda: "✓✓ alice: and again" in alice.text())
    line_with("hello before a link", alice.text())


async def test_unread_counts_and_switching_conversations(pair) -> None:  # type: ignore[no-untyped-def]
    hub, alice, bob = pair
    await befriend(alice, bob)
    hub.connect(alice.transport, bob.transport)
    await bob.node.send_text("alice", "one")
    await bob.node.send_text("alice", "two")
    await until(lambda: "bob (2)" in alice.text())
    alice.key("ctrl n")
    await until(lambda: "bob: two" in alice.text())
    await alice.ctl.idle()
    assert "bob (2)" not in alice.text() and "▸ bob" in alice.text()
    # While the conversation is open, new messages are read at once.
    await bob.node.send_text("alice", "three")
    await until(lambda: "bob: three" in alice.text())
    await alice.ctl.idle()
    summaries = await alice.node.store.call(alice.store.conversations)
    assert [s.unread for s in summaries if s.name.startswith("dm:")] == [0]
    alice.key("ctrl p")
    await until(lambda: alice.ctl.current == "#mesh")
    alice.key("ctrl p")
    await until(lambda: alice.ctl.current.startswith("dm:"))


async def test_channel_messages_reach_the_other_screen(pair) -> None:  # type: ignore[no-untyped-def]
    hub, alice, bob = pair
    hub.connect(alice.transport, bob.transport)
    alice.type("hello mesh")
    await until(lambda: "alice: hello mesh" in bob.text())
    await until(lambda: "✓  alice: hello mesh" in alice.text())


async def test_private_channel_join_and_talk(pair) -> None:  # type: ignore[no-untyped-def]
    hub, alice, bob = pair
    hub.connect(alice.transport, bob.transport)
    alice.type("/join #Team correct horse")
    bob.type("/join team correct horse")
    for side in (alice, bob):
        await until(lambda s=side: "joined #team (private channel" in s.text())  # type: ignore[misc]
        assert side.ctl.current == "#team" and "▸ #team" in side.text()
    alice.type("secret plans")
    await until(lambda: "alice: secret plans" in bob.text())
    assert "/join" not in " ".join(alice.ctl.screen.input.history)  # passphrases are not kept


async def test_errors_are_red_lines_never_tracebacks(pair) -> None:  # type: ignore[no-untyped-def]
    _hub, alice, _bob = pair
    alice.type("/msg nobody hi")
    alice.type("/bogus")
    alice.type("/msg #nothere hi")
    alice.type("/add mc1:notacard")
    await alice.ctl.idle()
    screen = alice.text()
    assert "!! no contact is named 'nobody'" in screen
    assert "!! unknown command /bogus: try /help" in screen
    assert "!! not in #nothere: /join #nothere first" in screen
    assert "!! " in line_with("card", screen)
    assert "Traceback" not in screen
    runs = render_runs(alice.ctl.screen, WIDE)
    assert any(attr == "error" and "unknown command" in text for row in runs for attr, text in row)


async def test_who_id_add_help_and_quit(pair, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    hub, alice, bob = pair
    hub.connect(alice.transport, bob.transport)
    await until(lambda: f"mem {bob.short} ~bob" in alice.text())
    alice.type("/who")
    await until(lambda: "neighbours (1):" in alice.text())
    assert f"mem  {bob.short}  ~bob" in alice.text()
    alice.type("/id")
    await until(lambda: "fingerprint:" in alice.text())
    assert alice.node.identity.public.fingerprint() in alice.text()
    card = bob.node.identity.card("bob").to_text()
    alice.type(f"/add {card} Bobby")
    await until(lambda: "added Bobby" in alice.text())
    assert "  Bobby" in alice.text()
    contact = await alice.node.store.call(alice.store.find_contact, "Bobby")
    assert contact.node_id == bob.node.identity.node_id
    own = alice.node.identity.card("alice").to_text()
    alice.type(f"/add {own}")
    await until(lambda: "!! that is your own card" in alice.text())
    alice.type("/help")
    await until(lambda: "/join #chan [passphrase]" in alice.text())
    alice.type("/quit")
    await until(lambda: alice.quits == [1])
    alice.key("ctrl q")
    alice.key("ctrl c")
    assert alice.quits == [1, 1, 1]


async def test_tab_paging_and_typing_from_another_pane(pair) -> None:  # type: ignore[no-untyped-def]
    _hub, alice, _bob = pair
    screen = alice.ctl.screen
    alice.text()
    assert screen.pane() == "input"
    seen = []
    for _ in range(4):
        alice.key("tab")
        seen.append(screen.pane())
    assert seen == ["conversations", "messages", "neighbours", "input"]
    alice.key("shift tab")
    assert screen.pane() == "neighbours"
    alice.key("x")  # typing elsewhere goes to the input line
    assert screen.pane() == "input" and screen.input.edit_text == "x"
    for i in range(60):
        alice.ctl.note(f"line {i}")
    alice.text()
    assert "line 59" in alice.text() and "line 0 " not in alice.text()
    alice.key("page up")
    alice.key("page up")
    assert "line 59" not in alice.text()
    alice.key("page down")
    alice.key("page down")
    assert "line 59" in alice.text()


async def test_narrow_terminal_drops_the_neighbours_pane(pair) -> None:  # type: ignore[no-untyped-def]
    _hub, alice, _bob = pair
    screen = alice.ctl.screen
    assert "Neighbours" in alice.text(WIDE)
    alice.key("tab", WIDE)
    alice.key("tab", WIDE)
    alice.key("tab", WIDE)
    assert screen.pane() == "neighbours"
    assert "Neighbours" not in alice.text(NARROW)
    assert screen.pane() == "input"
    assert screen.panes() == ["input", "conversations", "messages"]


async def test_input_history_walks_back_and_forth(pair) -> None:  # type: ignore[no-untyped-def]
    _hub, alice, _bob = pair
    alice.type("/help")
    alice.type("/who")
    screen = alice.ctl.screen
    for ch in "draft":
        alice.key(ch)
    alice.key("up")
    assert screen.input.edit_text == "/who"
    alice.key("up")
    alice.key("up")
    assert screen.input.edit_text == "/help"
    alice.key("down")
    alice.key("down")
    assert screen.input.edit_text == "draft"
    await alice.ctl.idle()


async def test_state_notice_never_moves_a_mark_backwards(pair) -> None:  # type: ignore[no-untyped-def]
    hub, alice, bob = pair
    await befriend(alice, bob)
    hub.connect(alice.transport, bob.transport)
    alice.type("/msg bob ping")
    await until(lambda: "✓✓ alice: ping" in alice.text())
    msg_id = next(iter(alice.ctl.lines))
    alice.ctl.on_notice(NodeNotice("state", msg_id=msg_id, state=MessageState.SENT))
    assert "✓✓ alice: ping" in alice.text()


async def test_verify_shows_the_safety_number_then_marks_the_contact_verified(pair) -> None:  # type: ignore[no-untyped-def]
    _hub, alice, bob = pair
    await befriend(alice, bob)
    alice.type("/msg bob")
    await until(lambda: "unverified: /verify bob" in alice.text())
    alice.type("/verify bob")
    from meshchat.safety import safety_number

    number = safety_number(alice.node.identity.public, bob.node.identity.public)
    await until(lambda: number.split()[0] in alice.text())
    assert "/verify bob confirm" in alice.text()
    alice.type("/verify bob confirm")
    await until(lambda: "bob is verified" in alice.text())
    [contact] = await alice.node.contacts()
    assert contact.trust is Trust.VERIFIED
    assert "unverified" not in alice.text().splitlines()[1]


async def test_a_key_change_is_refused_loudly_until_replaced(pair) -> None:  # type: ignore[no-untyped-def]
    _hub, alice, bob = pair
    await befriend(alice, bob)
    impostor = Identity.generate().card("bob").to_text()
    alice.type(f"/add {impostor}")
    await until(lambda: "KEY CHANGE" in alice.text())
    assert "/replace" in alice.text()
    contacts = await alice.node.contacts()
    assert [c.trust for c in contacts] == [Trust.UNVERIFIED]  # nothing changed
    alice.type(f"/replace {impostor}")
    await until(lambda: len(alice.ctl.trust) == 2)
    trust = {c.node_id: c.trust for c in await alice.node.contacts()}
    assert trust[bob.node.identity.node_id] is Trust.COMPROMISED
    alice.type(f"/msg {bob.short}")
    await until(lambda: "KEYS COMPROMISED" in alice.text())


async def test_panic_needs_confirm_then_erases_and_quits(pair) -> None:  # type: ignore[no-untyped-def]
    _hub, alice, _bob = pair
    erased: list[int] = []
    alice.node.set_eraser(lambda: erased.append(1))
    alice.type("/panic")
    await until(lambda: "erases your keys" in alice.text())
    assert erased == [] and alice.quits == []
    alice.type("/panic confirm")
    await until(lambda: erased == [1] and len(alice.quits) >= 1)


@pytest.fixture
async def trio(tmp_path: Path) -> AsyncIterator[tuple[MemoryHub, Side, Side, Side]]:
    hub = MemoryHub()
    sides = [await make_side(tmp_path, hub, name) for name in ("alice", "bob", "carol")]
    yield hub, sides[0], sides[1], sides[2]
    for side in sides:
        await side.ctl.close()
        await side.node.stop()
        side.store.close()


async def test_a_group_from_creation_to_removal(trio) -> None:  # type: ignore[no-untyped-def]
    hub, alice, bob, carol = trio
    # A group invitation is accepted from a contact only.
    for x in (alice, bob, carol):
        for y in (alice, bob, carol):
            if x is not y:
                await x.node.add_card(await y.node.card())
        await x.ctl.refresh_list()
    hub.connect(alice.transport, bob.transport)
    hub.connect(bob.transport, carol.transport)

    alice.type("/group create crew bob carol")
    await until(lambda: "you created +crew with bob, carol" in alice.text())
    gid = alice.node.find_group("+crew").group_id
    await until(lambda: alice.ctl.current == "grp:" + gid.hex())
    await alice.ctl.idle()
    screen = alice.text()
    assert "▸ +crew" in screen and "[+crew]> " in screen
    assert "+crew  private group, 3 members" in screen

    # bob is told where he is, whatever is on his screen; the list shows the group.
    await until(lambda: "you were added to +crew by alice" in bob.text())
    await bob.ctl.idle()
    assert bob.ctl.current == "#mesh" and "  +crew" in bob.text()
    await until(lambda: "you were added to +crew by alice" in carol.text())

    # A message to the group reaches both other screens, under its sender's name.
    bob.type("/msg +crew Periwinkle kazoo at nine")
    await until(lambda: "bob: Periwinkle kazoo at nine" in alice.text())
    carol.type("/msg +Crew")
    await until(lambda: "Periwinkle kazoo at nine" in carol.text(), timeout=15)
    assert carol.ctl.current == "grp:" + gid.hex()

    # Only an admin changes the group.
    bob.type("/group add +crew alice")
    await until(lambda: "!! only an admin of +crew can change it" in bob.text())

    # carol is removed: her screen says so, marks the group, and refuses to send there.
    alice.type("/group remove +crew carol")
    await until(lambda: "you removed carol from +crew" in alice.text())
    await until(lambda: "you were removed from +crew by alice" in carol.text())
    await carol.ctl.idle()
    screen = carol.text()
    assert "nothing sent to it from now on can be read by you" in screen
    assert "+crew (removed)" in screen and "you were removed: nothing new" in screen
    carol.type("still there?")
    await until(lambda: "!! you were removed from +crew: nothing can be sent" in carol.text())
    # bob, reading the group, sees the roster change as a line of its own.
    await until(lambda: "alice removed carol from +crew" in bob.text())

    alice.type("/group")
    await until(lambda: "groups (1):" in alice.text())
    assert f"+crew  grp:{gid.hex()[:8]}  2 members, you are an admin" in alice.text()
    alice.type("/group show +crew")
    await until(lambda: f"id {gid.hex()}, epoch 2" in alice.text())
    screen = alice.text()
    assert f"{alice.short}  you (admin)" in screen and f"{bob.short}  bob" in screen
    assert carol.short not in screen
    alice.type("/group show +nope")
    await until(lambda: "!! no group '+nope': see /group list" in alice.text())

    # Added back, carol is told so and may write again.
    alice.type("/group add +crew carol")
    await until(lambda: "you were added again to +crew by alice" in carol.text())
    await carol.ctl.idle()
    assert "(removed)" not in carol.text() and "+crew  private group, 3 members" in carol.text()
    carol.type("back again")
    await until(lambda: "carol: back again" in alice.text())


async def test_an_invitation_from_a_stranger_is_refused_and_said(pair) -> None:  # type: ignore[no-untyped-def]
    hub, alice, bob = pair
    await alice.node.add_card(await bob.node.card())  # bob never took alice's card
    await alice.ctl.refresh_list()
    hub.connect(alice.transport, bob.transport)
    alice.type("/group create crew bob")
    await until(lambda: "you created +crew" in alice.text())
    await until(lambda: "tried to add you to +crew: refused" in bob.text(), timeout=15)
    assert alice.short in bob.text()
    assert bob.node.groups() == []


async def test_a_lookalike_card_is_refused_then_added_on_request_and_marked(pair) -> None:  # type: ignore[no-untyped-def]
    hub, alice, bob = pair
    await befriend(alice, bob)
    fake = Identity.generate()
    card = fake.card("b\u043eb").to_text()  # bob with a Cyrillic o
    alice.type(f"/add {card}")
    await until(lambda: "looks like 'bob'" in alice.text())
    assert "/add-lookalike" in alice.text()
    assert [c.name for c in await alice.node.contacts()] == ["bob"]
    alice.type(f"/add-lookalike {card}")
    await until(lambda: "added b\u043eb" in alice.text())
    # Marked in the conversation list, and as a neighbour once linked.
    await until(lambda: "b\u043eb (!! looks like bob)" in [e.label for e in alice.ctl.entries])
    assert "bob (!! looks like b\u043eb)" in [e.label for e in alice.ctl.entries]
    hub.connect(alice.transport, bob.transport)
    await until(lambda: f"mem {bob.short} bob (!!" in alice.text())
