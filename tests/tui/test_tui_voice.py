"""``/voice`` and ``/play`` on the chat screen, between two real nodes linked in memory: a
voice note made from espeak-ng speech reaches the other screen, and /play writes a WAV file of
its length there (no sound card here); recording says "no microphone"."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from urwid.testing import render_text

from meshchat.errors import UsageError
from meshchat.files.manifest import FileKind
from meshchat.identity import Identity
from meshchat.node import Node, NodeOptions
from meshchat.node._filestate import State
from meshchat.node._types import FileOptions
from meshchat.store import Store
from meshchat.store.records import Contact, Trust
from meshchat.transports.memory import MemoryHub, MemoryTransport
from meshchat.tui.commands import parse_line
from meshchat.tui.controller import ChatController
from meshchat.tui.voice import MAX_PLAY_BACK, Play, TalkLive, VoiceFile, VoiceRecord, parse_voice
from meshchat.voice import pcm_from_wav, read_audio
from tests.voice.speech import speak

WIDE = (160, 40)


def test_the_grammar() -> None:
    assert parse_line("/voice 12") == VoiceRecord(12.0)
    assert parse_line("/voice 2.5") == VoiceRecord(2.5)
    assert parse_line("/voice notes/hello.wav") == VoiceFile("notes/hello.wav")
    assert parse_line("/play") == Play(1)
    assert parse_line("/play 3") == Play(3)
    for bad in ("/voice", "/voice 0", "/voice 301", "/voice -5", "/play x", "/play 0"):
        with pytest.raises(UsageError):
            parse_line(bad)
    with pytest.raises(UsageError):
        parse_line(f"/play {MAX_PLAY_BACK + 1}")


@settings(max_examples=300)
@given(word=st.sampled_from(["voice", "play"]), rest=st.text(max_size=60))
def test_any_arguments_parse_or_are_refused_plainly(word: str, rest: str) -> None:
    try:
        command = parse_voice(word, rest)
    except UsageError as exc:
        assert str(exc)
        return
    if isinstance(command, VoiceRecord):
        assert 0 < command.seconds <= 300
    elif isinstance(command, Play):
        assert 1 <= command.back <= MAX_PLAY_BACK
    else:
        assert command.path


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
    ctl = ChatController(
        node, redraw=lambda: None, on_quit=lambda: None, tz=UTC, voice_dir=home / "voice"
    )
    await ctl.start()
    return Side(node, store, transport, ctl, home)


@pytest.fixture
async def pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Side, Side]]:
    monkeypatch.setenv("MESHCHAT_NO_SOUND", "1")  # this machine has no sound card anyway
    hub = MemoryHub()
    alice = await make_side(tmp_path, hub, "alice")
    bob = await make_side(tmp_path, hub, "bob")
    for x, y in ((alice, bob), (bob, alice)):
        ident = y.node.identity.public
        contact = Contact(
            ident.node_id, ident.sign_public, ident.box_public, y.node.name, Trust.VERIFIED, 0
        )
        await x.node.add_contact(contact)
        await x.ctl.refresh_list()
    hub.connect(alice.transport, bob.transport)
    yield alice, bob
    for side in (alice, bob):
        await side.ctl.close()
        await side.node.stop()
        side.store.close()


async def test_voice_then_play_on_the_other_screen(pair: tuple[Side, Side], tmp_path: Path) -> None:
    alice, bob = pair
    wav = speak(tmp_path / "speech.wav", "The bridge is closed. Go round by the market.")
    source_seconds = read_audio(wav).duration
    alice.type("/msg bob")
    await alice.ctl.idle()
    alice.type(f"/voice {wav}")
    await alice.ctl.idle()
    assert "voice note sent: " in alice.text(), alice.text()
    (kept,) = (alice.home / "voice").iterdir()
    assert kept.suffix == ".ogg"

    async with asyncio.timeout(15):
        while not any(
            t.state is State.DONE and t.manifest.kind is FileKind.VOICE
            for t in await bob.node.files.transfers()
        ):
            await asyncio.sleep(0.05)
    bob.type("/msg alice")
    await bob.ctl.idle()
    bob.type("/play")
    await bob.ctl.idle()
    screen = bob.text()
    assert "no sound card: wrote " in screen, screen
    (written,) = (bob.home / "downloads").glob("*.wav")
    played = pcm_from_wav(written.read_bytes())
    assert abs(played.duration - source_seconds) <= 0.05 * source_seconds
    bob.type("/play 2")
    await bob.ctl.idle()
    assert "only 1 voice notes to play in this conversation" in bob.text()


async def test_voice_record_without_a_microphone(pair: tuple[Side, Side]) -> None:
    alice, _bob = pair
    alice.type("/msg bob")
    await alice.ctl.idle()
    alice.type("/voice 3")
    await alice.ctl.idle()
    screen = alice.text()
    assert "!! no microphone" in screen, screen
    assert not (alice.home / "voice").exists()


async def test_voice_of_a_file_that_is_not_audio(pair: tuple[Side, Side], tmp_path: Path) -> None:
    alice, bob = pair
    text = tmp_path / "list.txt"
    text.write_text("milk\neggs\n" * 100)
    alice.type("/msg bob")
    await alice.ctl.idle()
    alice.type(f"/voice {text}")
    await alice.ctl.idle()
    assert f"!! {text} is not audio" in alice.text()
    assert await bob.node.files.transfers() == []


def test_the_talk_grammar() -> None:
    assert parse_line("/talk 12") == TalkLive(seconds=12.0)
    assert parse_line("/talk notes/hello.wav") == TalkLive(path="notes/hello.wav")
    for bad in ("/talk", "/talk 0", "/talk 601", "/talk -1", "/talk nan"):
        with pytest.raises(UsageError):
            parse_line(bad)


@settings(max_examples=200)
@given(rest=st.text(max_size=60))
def test_any_talk_arguments_parse_or_are_refused_plainly(rest: str) -> None:
    try:
        command = parse_voice("talk", rest)
    except UsageError as exc:
        assert str(exc)
        return
    assert isinstance(command, TalkLive)
    assert command.path or 0 < command.seconds <= 600


async def test_talk_needs_a_lan_link(pair: tuple[Side, Side], tmp_path: Path) -> None:
    alice, _bob = pair  # linked in memory only
    wav = speak(tmp_path / "speech.wav", "Hello.")
    alice.type("/msg bob")
    await alice.ctl.idle()
    alice.type(f"/talk {wav}")
    await alice.ctl.idle()
    assert "push-to-talk needs a direct LAN link" in alice.text(), alice.text()
    alice.type("/msg #mesh")
    await alice.ctl.idle()
    alice.type("/talk 2")
    await alice.ctl.idle()
    assert "/talk goes to a contact or a group" in alice.text()


async def test_talk_over_a_lan_link_is_heard(tmp_path: Path) -> None:
    from tests.talk.lan_pair import lan_pair

    wav = speak(tmp_path / "speech.wav", "North gate.")
    async with lan_pair(tmp_path) as pair:
        ctl = ChatController(pair.talker, redraw=lambda: None, on_quit=lambda: None, tz=UTC)
        await ctl.start()
        ear = ChatController(pair.listener, redraw=lambda: None, on_quit=lambda: None, tz=UTC)
        await ear.start()
        other = Side(pair.listener, pair.stores[0], None, ear, tmp_path)  # type: ignore[arg-type]
        side = Side(pair.talker, pair.stores[1], None, ctl, tmp_path)  # type: ignore[arg-type]
        side.type("/msg listener")
        await ctl.idle()
        side.type(f"/talk {wav}")
        await ctl.idle()
        async with asyncio.timeout(10):
            while not any(h.why for h in pair.listener.talk.heard.values()):
                await asyncio.sleep(0.05)
        assert "talked " in side.text() and " s live (" in side.text(), side.text()
        (heard,) = pair.listener.talk.heard.values()
        await ear.idle()
        screen = other.text()
        assert "talker is talking live..." in screen, screen
        assert f"heard talker live for {heard.seconds:.1f} s (ended): " in screen, screen
        await ear.close()
        assert heard.wav is not None
        assert (
            abs(pcm_from_wav(Path(heard.wav).read_bytes()).duration - read_audio(wav).duration)
            < 0.05
        )
        await ctl.close()


async def test_talk_without_a_microphone(pair: tuple[Side, Side]) -> None:
    alice, bob = pair
    alice.type("/msg bob")
    await alice.ctl.idle()
    alice.type("/talk 3")
    await alice.ctl.idle()
    assert "!! no microphone" in alice.text(), alice.text()
    assert bob.node.talk.heard == {}
