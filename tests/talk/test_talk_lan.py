"""Push-to-talk between two nodes on a real LAN link (TCP on 127.0.0.1): espeak-ng speech
sent live arrives whole and alike; strangers, replays and links other than LAN are refused.

Measures as for voice notes (tests/voice/test_voice_codec.py): the heard sound's duration
within 5 % of the source's, and the Pearson correlation of the RMS envelopes in 20 ms
windows at least 0.9. The listener has no sound card (MESHCHAT_NO_SOUND), so what it hears is
written as a WAV file, which is compared with the source.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from meshchat.errors import UsageError
from meshchat.identity import Identity
from meshchat.node import Node
from meshchat.node._talk import Heard, paced
from meshchat.store.records import Contact, Trust
from meshchat.transports.base import Link
from meshchat.voice import Pcm, pcm_from_wav, read_audio
from tests.talk.lan_pair import LanPair, lan_pair
from tests.talk.lossy import frame_rms as rms
from tests.voice.speech import speak
from tests.voice.test_voice_codec import envelope_correlation

SHORT = "Push to talk over the mesh. One, two, three."


@pytest.fixture(scope="module")
def short_speech(tmp_path_factory: pytest.TempPathFactory) -> Pcm:
    return read_audio(speak(tmp_path_factory.mktemp("talk") / "short.wav", SHORT))


async def heard_one(node: Node, timeout: float = 5.0) -> Heard:
    async with asyncio.timeout(timeout):
        while True:
            done = [h for h in node.talk.heard.values() if h.why]
            if done:
                return done[0]
            await asyncio.sleep(0.05)


def lan_link(node: Node) -> Link:
    return next(link for link in node.links.values() if link.transport == "lan")


def tap(node: Node, times: int = 1) -> list[bytes]:
    """Record what ``node`` sends on its LAN link (each frame sent ``times`` times)."""
    link = lan_link(node)
    original: Callable[[bytes], bool] = link.send
    sent: list[bytes] = []

    def send(frame: bytes) -> bool:
        if len(frame) > 2 and frame[2] == 5:
            sent.append(frame)
        ok = True
        for _ in range(times):
            ok = original(frame) and ok
        return ok

    link.send = send  # type: ignore[method-assign]
    return sent


async def test_speech_sent_live_arrives_whole_and_alike(tmp_path: Path, short_speech: Pcm) -> None:
    async with lan_pair(tmp_path) as pair:
        said = await pair.talker.talk.talk("listener", paced(short_speech))
        heard = await heard_one(pair.listener)
        conversation = await pair.listener.resolve_conversation("talker")
        assert await pair.listener.messages(conversation) == []  # live sound is not history
    assert heard.why == "ended" and heard.sender == pair.talker.identity.node_id
    assert heard.wav is not None and heard.played + heard.gaps == said.frames + 1  # + the end
    assert abs(heard.seconds - said.seconds) < 0.001
    received = pcm_from_wav(Path(heard.wav).read_bytes())
    assert abs(received.duration - short_speech.duration) <= 0.05 * short_speech.duration
    assert envelope_correlation(short_speech, received) >= 0.9


async def test_frames_sent_twice_play_once(tmp_path: Path, short_speech: Pcm) -> None:
    async with lan_pair(tmp_path) as pair:
        tap(pair.talker, times=2)
        second = Pcm(short_speech.samples[: len(short_speech.samples) // 3], short_speech.rate)
        said = await pair.talker.talk.talk("listener", paced(second))
        heard = await heard_one(pair.listener)
    # each frame played once (or, on a stalled machine, as a gap), every second copy refused
    assert heard.played + heard.gaps == said.frames + 1
    assert heard.refused.get("duplicate", 0) + heard.refused.get("late", 0) >= said.frames


async def test_a_replayed_talk_is_refused(tmp_path: Path, short_speech: Pcm) -> None:
    async with lan_pair(tmp_path) as pair:
        sent = tap(pair.talker)
        part = Pcm(short_speech.samples[:16000], short_speech.rate)  # half a second
        await pair.talker.talk.talk("listener", paced(part))
        await heard_one(pair.listener)
        link = lan_link(pair.listener)
        for frame in sent:  # the whole talk again, as an attacker on the LAN would send it
            pair.listener.talk.frame(link, frame)
        await asyncio.sleep(0.3)
        assert len(pair.listener.talk.heard) == 1
        assert pair.listener.talk.listener.counters["drop.ended"] == len(sent)


async def test_a_stranger_is_not_heard(tmp_path: Path, short_speech: Pcm) -> None:
    async with lan_pair(tmp_path, contacts=False) as pair:
        await pair.talker.add_card(await pair.listener.card(), "listener")  # one way only
        part = Pcm(short_speech.samples[:16000], short_speech.rate)
        said = await pair.talker.talk.talk("listener", paced(part))
        await asyncio.sleep(0.5)
        assert pair.listener.talk.heard == {}
        assert pair.listener.counters["talk.drop.stranger"] == said.frames + 1
        assert not list((tmp_path / "listener" / "downloads").glob("*.wav"))


async def test_a_talk_needs_a_lan_link(tmp_path: Path) -> None:
    async with lan_pair(tmp_path) as pair:
        far = Identity.generate().public
        contact = Contact(far.node_id, far.sign_public, far.box_public, "far", Trust.VERIFIED, 0)
        await pair.talker.add_contact(contact)
        with pytest.raises(UsageError, match="LAN link"):
            await pair.talker.talk.talk("far", paced(Pcm(bytes(640), 16000)))
        with pytest.raises(UsageError):
            await pair.talker.talk.talk("#mesh", paced(Pcm(bytes(640), 16000)))


def test_frames_from_a_link_that_is_not_lan_are_dropped(tmp_path: Path) -> None:
    async def run() -> LanPair | None:
        async with lan_pair(tmp_path) as pair:
            link = lan_link(pair.listener)
            link.transport = "ble"  # as if it had come over Bluetooth
            pair.listener.talk.frame(link, b"\x8b\x01\x05" + os.urandom(100))
            assert pair.listener.counters["talk.drop.slow-link"] == 1
            link.transport = "lan"
        return None

    asyncio.run(run())


async def test_a_group_talk_reaches_the_members_on_the_lan(
    tmp_path: Path, short_speech: Pcm
) -> None:
    async with lan_pair(tmp_path) as pair:
        await pair.talker.create_group("crew", ["listener"])
        async with asyncio.timeout(10):
            while not pair.listener.groups():
                await asyncio.sleep(0.05)
        part = Pcm(short_speech.samples[:32000], short_speech.rate)  # one second
        said = await pair.talker.talk.talk("+crew", paced(part))
        heard = await heard_one(pair.listener)
    assert said.peers == (pair.listener.identity.node_id,)
    assert heard.why == "ended" and heard.played + heard.gaps == said.frames + 1
    assert heard.played > said.frames // 2


async def test_a_talk_that_cannot_be_written_ends_plainly(
    tmp_path: Path, short_speech: Pcm
) -> None:
    async with lan_pair(tmp_path) as pair:
        downloads = tmp_path / "listener" / "downloads"
        downloads.write_bytes(b"a file where the folder should be")
        part = Pcm(short_speech.samples[:16000], short_speech.rate)
        await pair.talker.talk.talk("listener", paced(part))
        heard = await heard_one(pair.listener)
        assert heard.why == "could not write" and heard.wav is None
        assert pair.listener.counters["talk.sink-failed"] == 1
        again = await pair.talker.talk.talk("listener", paced(part))  # the node goes on
        await asyncio.sleep(0.3)
        assert again.talk_id in pair.listener.talk.heard


async def test_frames_lost_on_the_link_are_concealed_in_what_is_heard(
    tmp_path: Path, short_speech: Pcm
) -> None:
    async with lan_pair(tmp_path) as pair:
        link = lan_link(pair.talker)
        original: Callable[[bytes], bool] = link.send
        talk_frames = 0
        lost: list[int] = []

        def lossy(frame: bytes) -> bool:  # every tenth live frame lost (not the end frame)
            nonlocal talk_frames
            if len(frame) > 2 and frame[2] == 5:
                talk_frames += 1
                if talk_frames % 10 == 4 and talk_frames < 150:
                    lost.append(talk_frames - 1)  # its seq
                    return True
            return original(frame)

        link.send = lossy  # type: ignore[method-assign]
        said = await pair.talker.talk.talk("listener", paced(short_speech))
        heard = await heard_one(pair.listener)
    assert len(lost) == 15 and heard.gaps >= len(lost) and heard.concealed >= len(lost)
    assert heard.recovered >= len(lost)  # each lost frame's next one came: FEC has it
    assert abs(heard.seconds - said.seconds) < 0.001  # the sound keeps its length
    assert heard.wav is not None
    received = pcm_from_wav(Path(heard.wav).read_bytes())
    frames = [received.samples[i * 1920 : (i + 1) * 1920] for i in range(said.frames)]
    voiced = [seq for seq in lost if rms(frames[seq - 1]) > 500]
    assert voiced  # some losses fell in speech: there, something plays, not silence
    assert all(rms(frames[seq]) > 0 for seq in voiced)
    assert envelope_correlation(short_speech, received) >= 0.9
