"""``/file`` and ``/accept`` on the chat screen, between two real nodes linked in memory: the
announcement shows as the file it announces (its hostile name escaped), with a marker that
asks for /accept, then says where the file was saved."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

import pytest
from urwid.testing import render_text

from meshchat.errors import UsageError
from meshchat.files.announce import announce_text
from meshchat.files.manifest import FileKind, FileManifest
from meshchat.identity import Identity
from meshchat.node import Node, NodeOptions
from meshchat.node._filestate import State
from meshchat.node._types import FileOptions
from meshchat.store import Store
from meshchat.store.records import Contact, Trust
from meshchat.transports.memory import MemoryHub, MemoryTransport
from meshchat.tui.commands import parse_line
from meshchat.tui.controller import ChatController
from meshchat.tui.files import Accept, SendFile, shown_text

WIDE = (160, 40)


def test_the_grammar() -> None:
    assert parse_line("/file ~/map.png") == SendFile(str(Path("~/map.png").expanduser()))
    assert parse_line('/file "a b.pdf" the plan') == SendFile("a b.pdf", "the plan")
    assert parse_line("/accept") == Accept("")
    assert parse_line("/accept 3fa2") == Accept("3fa2")
    with pytest.raises(UsageError):
        parse_line("/file")
    with pytest.raises(UsageError):
        parse_line('/file "unclosed')


def test_an_announcement_shows_as_its_file_and_other_texts_as_they_are() -> None:
    manifest = FileManifest(
        FileKind.IMAGE, "IMG_1.jpg", 1_234_567, "image/jpeg", 1536, bytes(32), bytes(32), "hi"
    )
    assert shown_text(announce_text(manifest, bytes(16))) == "[picture] IMG_1.jpg (1.2 MB) hi"
    assert shown_text("just text") == "just text"
    assert shown_text("\x01F1:!!!not base64") == "\x01F1:!!!not base64"  # shown escaped


@dataclass
class Side:
    node: Node
    store: Store
    transport: MemoryTransport
    ctl: ChatController
    home: Path

    def type(self, line: str) -> None:
        self.ctl.screen.focus_pane("input")
        for ch in line:
            self.ctl.screen.keypress(WIDE, ch)
        self.ctl.screen.keypress(WIDE, "enter")

    def text(self) -> str:
        return "\n".join(render_text(self.ctl.screen, WIDE, focus=True))


async def make_side(tmp_path: Path, hub: MemoryHub, name: str) -> Side:
    home = tmp_path / name
    home.mkdir()
    identity = Identity.generate()
    store = Store.open(home / "db", key=os.urandom(32))
    transport = hub.transport(identity.public)
    files = FileOptions(downloads=str(home / "downloads"), state=str(home / "t.json"))
    node = Node(identity, name, store, [transport], options=NodeOptions(files=files))
    await node.start()
    ctl = ChatController(node, redraw=lambda: None, on_quit=lambda: None, tz=UTC)
    await ctl.start()
    return Side(node, store, transport, ctl, home)


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[Side, Side]]:
    hub = MemoryHub()
    alice = await make_side(tmp_path, hub, "alice")
    bob = await make_side(tmp_path, hub, "bob")
    for x, y in ((alice, bob), (bob, alice)):
        ident = y.node.identity.public
        contact = Contact(
            ident.node_id, ident.sign_public, ident.box_public, y.node.name, Trust.UNVERIFIED, 0
        )
        await x.node.add_contact(contact)
        await x.ctl.refresh_list()
    hub.connect(alice.transport, bob.transport)
    yield alice, bob
    for side in (alice, bob):
        await side.ctl.close()
        await side.node.stop()
        side.store.close()


async def wait_state(side: Side, state: State, count: int = 1) -> None:
    async with asyncio.timeout(15):
        while [t.state for t in await side.node.files.transfers()].count(state) < count:
            await asyncio.sleep(0.05)


async def test_file_then_accept_on_the_other_screen(
    pair: tuple[Side, Side], tmp_path: Path
) -> None:
    alice, bob = pair
    plain = tmp_path / "plan b.pdf"
    plain.write_bytes(os.urandom(3000))
    alice.type("/msg bob")
    await alice.ctl.idle()
    alice.type(f'/file "{plain}" the plan')
    await alice.ctl.idle()
    assert "file announced: [file] plan b.pdf (3.0 kB) the plan" in alice.text()
    # a name no keyboard types, through the node's API (what a hostile sender may announce)
    hostile = tmp_path / "h.txt"
    hostile.write_bytes(os.urandom(20_000))
    await alice.node.files.send("bob", hostile, name="evil\x1b[2Jname.txt", caption="for you")

    await wait_state(bob, State.ASKING, 2)
    bob.type("/msg alice")
    await bob.ctl.idle()
    screen = bob.text()
    assert "[file] evil\\x1b[2Jname.txt (20.0 kB) for you" in screen, screen
    assert "\x1b" not in screen
    assert "[/accept " in screen
    bob.type("/accept")  # the last one asked about here
    await bob.ctl.idle()
    await wait_state(bob, State.DONE)
    assert [t.manifest.name for t in await bob.node.files.transfers() if t.state is State.DONE] == [
        "evil\x1b[2Jname.txt"
    ]
    bob.ctl.request_reload()
    await bob.ctl.idle()
    saved = bob.home / "downloads" / "evil[2Jname.txt"
    assert saved.read_bytes() == hostile.read_bytes()
    shown = bob.text()
    assert "[saved: " in shown and "[/accept " in shown  # the first file still asks
