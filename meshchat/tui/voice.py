"""``/voice``, ``/play`` and ``/talk``: voice from the chat screen (the grammar, and what it
does).

    /voice <seconds>     VoiceRecord(seconds)   record from the microphone, send it here
    /voice <file>        VoiceFile(path)        send an audio file as a voice note here
    /play [N]            Play(back)             play the Nth voice note from the end of the
                                                conversation on screen (1, the default: the last)
    /talk <seconds>      TalkLive(seconds)      push-to-talk: the microphone, live, to the
                                                contact or group on screen (LAN links only)
    /talk <file>         TalkLive(path=...)     an audio file, live, paced as if spoken

Encoding, decoding, recording and playing run on worker threads, so the screen stays live. A
note made here is kept in the home's voice folder, from which the node serves it. Without a
sound card ``/play`` writes a WAV file beside the note and says where; without a microphone
``/voice <seconds>`` says "no microphone".
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from meshchat.errors import UsageError
from meshchat.files.manifest import FileKind
from meshchat.node._filestate import Direction, State, Transfer
from meshchat.node._talk import microphone, paced
from meshchat.talk.params import MAX_SECONDS as TALK_SECONDS
from meshchat.voice import (
    MAX_SECONDS,
    MEDIA_TYPE,
    Pcm,
    decode,
    encode_file,
    encode_pcm,
    read_audio,
)
from meshchat.voice import play as play_pcm
from meshchat.voice import record as record_pcm
from meshchat.voice.device import Played
from meshchat.voice.saved import free_path, keep_note, read_note

if TYPE_CHECKING:
    from meshchat.tui.actions import Actions
    from meshchat.tui.controller import ChatController

__all__ = [
    "MAX_PLAY_BACK",
    "VOICE_HELP",
    "Play",
    "TalkLive",
    "VoiceActions",
    "VoiceCommand",
    "VoiceFile",
    "VoiceRecord",
    "parse_voice",
]

VOICE_HELP = """\
  /voice <seconds>|<file>      record a voice note (at most 300 s) or send an audio file as
                               one, to this conversation
  /play [N]                    play this conversation's last voice note (N: the Nth from
                               the end); with no sound card, write a WAV file
  /talk <seconds>|<file>       push-to-talk: the microphone (or a file) live to this contact
                               or group, over LAN links"""

#: the furthest back /play counts
MAX_PLAY_BACK = 1000


@dataclass(frozen=True, slots=True)
class VoiceRecord:
    """Record ``seconds`` from the microphone and send it to the conversation on screen."""

    seconds: float


@dataclass(frozen=True, slots=True)
class VoiceFile:
    """Send the audio file at ``path`` as a voice note to the conversation on screen."""

    path: str


@dataclass(frozen=True, slots=True)
class Play:
    """Play the ``back``-th voice note from the end of the conversation on screen."""

    back: int = 1


@dataclass(frozen=True, slots=True)
class TalkLive:
    """Talk live to the contact on screen: ``seconds`` of the microphone, or the audio file
    at ``path``."""

    seconds: float = 0.0
    path: str = ""


VoiceCommand = VoiceRecord | VoiceFile | Play | TalkLive


def parse_voice(name: str, rest: str) -> VoiceCommand:
    """``/voice``, ``/play`` or ``/talk`` (``name``) with its arguments."""
    rest = rest.strip()
    if name == "talk":
        if not rest:
            raise UsageError("usage: /talk <seconds> | /talk <audio file>")
        try:
            seconds = float(rest)
        except ValueError:
            said = parse_voice("voice", rest)
            return TalkLive(path=said.path if isinstance(said, VoiceFile) else "")
        if not 0 < seconds <= TALK_SECONDS:
            raise UsageError(f"/talk sends up to {TALK_SECONDS} seconds (more than 0)")
        return TalkLive(seconds=seconds)
    if name == "play":
        if not rest:
            return Play()
        # isdigit() alone takes "²", which int() refuses
        if not (rest.isascii() and rest.isdigit()) or not 1 <= int(rest) <= MAX_PLAY_BACK:
            raise UsageError(f"usage: /play [N] (N: 1 to {MAX_PLAY_BACK}, 1 is the last note)")
        return Play(int(rest))
    if not rest:
        raise UsageError("usage: /voice <seconds> | /voice <audio file>")
    try:
        seconds = float(rest)
    except ValueError:
        try:
            return VoiceFile(str(Path(rest).expanduser()))
        except (RuntimeError, ValueError) as exc:  # "~nobody/x": no such user; a NUL
            raise UsageError(f"no such home folder in {rest!r}") from exc
    if not 0 < seconds <= MAX_SECONDS:
        raise UsageError(f"/voice records for up to {MAX_SECONDS} seconds (more than 0)")
    return VoiceRecord(seconds)


class VoiceActions:
    """``/voice`` and ``/play`` for one chat screen."""

    def __init__(self, controller: ChatController, actions: Actions) -> None:
        self.ctl = controller
        self.actions = actions
        self.node = controller.node
        #: talks heard and what was last said of each ("live", "ended")
        self._told: dict[bytes, str] = {}

    async def execute(self, command: VoiceCommand) -> None:
        if isinstance(command, Play):
            await self._play(command.back)
            return
        if isinstance(command, TalkLive):
            await self._talk(command)
            return
        key = self.ctl.current
        self.actions._check_can_send(key)
        if self.ctl.voice_dir is None:
            raise UsageError("voice notes need a home folder to be kept in")
        if isinstance(command, VoiceRecord):
            self.ctl.note(f"recording {command.seconds:g} s...")
            pcm: Pcm = await asyncio.to_thread(record_pcm, command.seconds)
            note = await asyncio.to_thread(encode_pcm, pcm)
        else:
            note = await asyncio.to_thread(encode_file, Path(command.path))
        path = keep_note(self.ctl.voice_dir, note)
        target = key[len("dm:") :] if key.startswith("dm:") else key
        try:
            await self.node.files.send(target, path, kind=FileKind.VOICE, media_type=MEDIA_TYPE)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        rate = len(note.data) * 8 / note.duration / 1000
        self.ctl.note(
            f"voice note sent: {note.duration:.1f} s, {len(note.data)} bytes ({rate:.1f} kbit/s)"
        )

    async def notes(self, conversation: str) -> list[Transfer]:
        """The voice notes of ``conversation`` that can be played (received whole, or sent
        from here), oldest first."""
        return [
            t
            for t in await self.node.files.transfers()
            if t.conversation == conversation
            and t.manifest.kind is FileKind.VOICE
            and t.path
            and (t.state is State.DONE or t.direction is Direction.OUT)
        ]

    async def _play(self, back: int) -> None:
        notes = await self.notes(self.ctl.current)
        if len(notes) < back:
            have = f"only {len(notes)}" if notes else "no"
            raise UsageError(f"{have} voice notes to play in this conversation")
        path = Path(notes[-back].path)
        pcm = await asyncio.to_thread(lambda: decode(read_note(path)))
        fallback = free_path(path.with_suffix(".wav"))
        played: Played = await asyncio.to_thread(play_pcm, pcm, fallback)
        if played.wav is not None:
            self.ctl.note(f"{played.why}: wrote {pcm.duration:.1f} s to {played.wav}")
        else:
            self.ctl.note(f"played {pcm.duration:.1f} s")

    async def _talk(self, command: TalkLive) -> None:
        key = self.ctl.current
        if not key.startswith(("dm:", "grp:")):
            raise UsageError("/talk goes to a contact or a group: open its conversation")
        if command.path:
            pcm = await asyncio.to_thread(read_audio, Path(command.path))
            sound = paced(Pcm(pcm.samples[: TALK_SECONDS * pcm.rate * 2], pcm.rate))
            self.ctl.note(f"talking {pcm.duration:.1f} s live...")
        else:
            sound = microphone(command.seconds)
            self.ctl.note(f"talking for {command.seconds:g} s: speak now")
        try:
            said = await self.node.talk.talk(key.removeprefix("dm:"), sound)
        finally:
            await sound.aclose()
        self.ctl.note(f"talked {said.seconds:.1f} s live ({said.frames} frames)")

    def on_talk(self) -> None:
        """A talk to this node began or ended: say so in the conversation on screen."""
        for heard in list(self.node.talk.heard.values()):
            state = "ended" if heard.why else "live"
            if self._told.get(heard.talk_id) == state:
                continue
            self._told[heard.talk_id] = state
            while len(self._told) > 64:
                del self._told[next(iter(self._told))]
            who = self.ctl.contacts.get(heard.sender) or heard.sender.hex()[:8]
            if not heard.why:
                self.ctl.note(f"{who} is talking live...")
                continue
            where = heard.device or heard.wav or "nowhere"
            self.ctl.note(f"heard {who} live for {heard.seconds:.1f} s ({heard.why}): {where}")
