"""Push-to-talk in a running node: live Opus frames to a contact or a group's members over LAN
links, and the talks it hears played (or written as WAV files).

Theory of operation. Talking (:meth:`NodeTalk.talk`): the target is a contact, or a ``+group``
whose other members are the listeners; only those with a direct LAN link
(:data:`~meshchat.talk.params.FAST_TRANSPORTS`) hear it. The node draws a talk id and key and
sends the offer to each as an account control blob, sealed in the pairwise forward-secret
session and retried until acked, then encodes the sound 20 ms at a time as it comes (a file is
paced to real time, the microphone paces itself), seals each Opus packet once under the
talk's key and sends it in a signed TALK packet to each listener, straight onto the LAN link:
not through the router (never relayed, never carried), and not through the inbox.

Hearing: a TALK frame is taken on the loop as the link hands it over (:meth:`NodeTalk.frame`),
before the inbox, so live sound never waits behind a batch of stored messages: only from a
LAN link, at most :data:`~meshchat.talk.params.RATE_PER_S` a second per link, only from the
link of a contact or group member who is not blocked, only signed by that link's proven peer
and addressed to this node; then the :class:`~meshchat.talk.listen.Listener` opens it and
puts it in the talk's jitter buffer. A timer hands out due frames, decodes them (a lost frame
concealed by the decoder, as :mod:`~meshchat.talk.conceal` plans) and writes
the samples to the sound card, or, where there is none (or ``MESHCHAT_NO_SOUND`` is set), to
a WAV file in the downloads folder. Nothing of a talk is written to the store: live sound is
not history (no message, no per-frame write); the faces hear of a talk by ``talk`` notices
and :attr:`heard`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import wave
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meshchat.errors import PacketError, PacketReason, UsageError
from meshchat.identity import PublicIdentity
from meshchat.node._types import NodeNotice
from meshchat.router.ratelimit import TokenBucket
from meshchat.talk.listen import Ended, Listener, Out, Talk
from meshchat.talk.params import (
    DECODE_RATE,
    ENCODE_RATE,
    FAST_TRANSPORTS,
    FRAME_MS,
    MAX_SECONDS,
    RATE_PER_S,
)
from meshchat.talk.wire import KIND_TALK, LiveFrame, TalkOffer, seal_sound
from meshchat.target import Target, TargetKind
from meshchat.transports.base import Link
from meshchat.voice.device import check_microphone, input_stream, output_stream
from meshchat.voice.live import FRAME_BYTES, LiveDecoder, LiveEncoder
from meshchat.voice.pcm import SAMPLE_BYTES, Pcm
from meshchat.voice.saved import free_path
from meshchat.wire import codec
from meshchat.wire.packet import Destination, Packet, PacketKind, Suite

if TYPE_CHECKING:
    from meshchat.node import Node

__all__ = ["Heard", "NodeTalk", "Said", "microphone", "paced"]

#: (talk id, seq, the time the frame entered the encoder, as time.perf_counter())
SentHook = Callable[[bytes, int, float], None]
#: (talk id, seq, the decoded samples leaving the jitter buffer)
PlayedHook = Callable[[bytes, int, bytes], None]
_KEEP_HEARD = 32
_MAX_BUCKETS = 256


@dataclass(frozen=True, slots=True)
class Said:
    """A talk this node sent: to which devices, how many frames, seconds and bytes on the
    wire (all devices together)."""

    talk_id: bytes
    #: the devices it went to (a contact's, or a group's members with a LAN link)
    peers: tuple[bytes, ...]
    frames: int
    seconds: float
    wire_bytes: int

    def to_json(self) -> dict[str, Any]:
        return {
            "talk_id": self.talk_id.hex(),
            "peers": [p.hex() for p in self.peers],
            "frames": self.frames,
            "seconds": round(self.seconds, 3),
            "wire_bytes": self.wire_bytes,
        }


@dataclass(slots=True)
class Heard:
    """A talk this node heard (or is hearing): where its sound went and what was refused."""

    talk_id: bytes
    sender: bytes
    started_ms: int
    seconds: float = 0.0
    played: int = 0
    gaps: int = 0
    #: gaps played as the decoder's estimate of the lost sound (the others: silence), and of
    #: those, how many were decoded from the next packet (its in-band FEC; libopus conceals
    #: where that packet carries none)
    concealed: int = 0
    recovered: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    wav: str | None = None
    device: str | None = None
    why: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "talk_id": self.talk_id.hex(),
            "sender": self.sender.hex(),
            "started_ms": self.started_ms,
            "seconds": round(self.seconds, 3),
            "played": self.played,
            "gaps": self.gaps,
            "concealed": self.concealed,
            "recovered": self.recovered,
            "refused": dict(self.refused),
            "wav": self.wav,
            "device": self.device,
            "ended": self.why,
        }


class _Sink:
    """Where one talk's sound goes: the sound card (written on a thread of its own, in
    order) or a WAV file."""

    def __init__(self, folder: str | None, talk: Talk) -> None:
        self._stream: Any = None
        self._wav: wave.Wave_write | None = None
        self._file: Any = None
        self._thread: ThreadPoolExecutor | None = None
        self.device: str | None = None
        self.path: str | None = None
        opened = output_stream(DECODE_RATE)
        if opened is not None:
            self._stream, self.device = opened
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="meshchat-talk")
            return
        if folder is None:
            return
        directory = Path(folder)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(talk.started_ms / 1000))
        path = free_path(directory / f"talk-{talk.sender.hex()[:8]}-{stamp}.wav")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._file = os.fdopen(fd, "wb")
        wav = wave.open(self._file, "wb")  # noqa: SIM115 - closed in close()
        wav.setnchannels(1)
        wav.setsampwidth(SAMPLE_BYTES)
        wav.setframerate(DECODE_RATE)
        self._wav, self.path = wav, str(path)

    def write(self, samples: bytes) -> None:
        if self._thread is not None:
            self._thread.submit(self._stream.write, samples)
        elif self._wav is not None:
            self._wav.writeframes(samples)

    def close(self) -> None:
        if self._thread is not None:
            self._thread.submit(self._stream.stop)
            self._thread.submit(self._stream.close)
            self._thread.shutdown(wait=False)
        if self._wav is not None:
            self._wav.close()  # (the WAV writer leaves the file it was given open)
            self._file.close()


async def paced(pcm: Pcm) -> AsyncGenerator[bytes, None]:
    """The samples of ``pcm`` (at the encode rate) 20 ms at a time, each when it would have
    been spoken: frame ``i`` is handed out ``(i + 1) * 20 ms`` after the first (a frame must
    be whole before it is encoded)."""
    if pcm.rate != ENCODE_RATE:
        raise UsageError(f"live sound is taken at {ENCODE_RATE} Hz")
    start = time.perf_counter()
    for i, offset in enumerate(range(0, len(pcm.samples), FRAME_BYTES)):
        wait = start + (i + 1) * FRAME_MS / 1000 - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        yield pcm.samples[offset : offset + FRAME_BYTES]


def microphone(seconds: float) -> AsyncGenerator[bytes, None]:
    """``seconds`` of the default microphone, 20 ms at a time as it is spoken. A machine
    without a microphone raises :class:`VoiceError` (``NO_MICROPHONE``) here, before any talk
    starts; the microphone itself is opened when the first frame is asked for (and closed
    when the generator is)."""
    if not 0 < seconds <= MAX_SECONDS:
        raise UsageError(f"talk for 0 to {MAX_SECONDS} seconds")
    check_microphone()
    return _spoken(seconds)


async def _spoken(seconds: float) -> AsyncGenerator[bytes, None]:
    stream: Any = input_stream(ENCODE_RATE)
    loop = asyncio.get_running_loop()
    frames = FRAME_BYTES // SAMPLE_BYTES
    try:
        for _ in range(round(seconds * 1000 / FRAME_MS)):
            data, _overflowed = await loop.run_in_executor(None, stream.read, frames)
            yield bytes(data)
    finally:
        stream.stop()
        stream.close()


class NodeTalk:
    """Push-to-talk of one node; see the module's theory of operation."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.listener = Listener()
        #: talks heard, the last few (live ones included)
        self.heard: dict[bytes, Heard] = {}
        #: called with each decoded frame as it leaves the jitter buffer (benchmarks)
        self.played_hooks: list[PlayedHook] = []
        self._buckets: dict[str, TokenBucket] = {}
        self._decoders: dict[bytes, LiveDecoder] = {}
        self._sinks: dict[bytes, _Sink] = {}
        self._written: dict[bytes, int] = {}  # bytes of samples each talk played
        self._timer: asyncio.TimerHandle | None = None
        self._wake_ms: int | None = None
        node.engine.account_glue.register(KIND_TALK, self._on_offer, own_devices_only=False)

    # -- talking ---------------------------------------------------------------------------

    def fast_links(self, node_id: bytes) -> list[Link]:
        """The links that carry live frames to device ``node_id``."""
        return [
            link
            for link in self.node.links.values()
            if link.transport in FAST_TRANSPORTS and link.peer.node_id == node_id
        ]

    async def talk(
        self,
        target: str,
        sound: AsyncIterator[bytes],
        *,
        sent_hook: SentHook | None = None,
    ) -> Said:
        """Send ``sound`` (frames of 20 ms at 16 kHz, as :func:`paced` or :func:`microphone`
        give them) live to the contact or ``+group`` ``target``: to each of its devices with a
        direct LAN link. Raises :class:`UsageError` for a channel, or when none has a LAN link
        (push-to-talk needs one: send a voice note)."""
        node = self.node
        peers = self._listeners(await node.resolve(target), target)
        offer = TalkOffer.new()

        async def send_offer() -> None:
            glue, now = node.engine.account_glue, node.clock()
            for identity in peers:
                await node.effects.run(glue.send(identity, offer.encode(), now))

        await node.submit(send_offer)
        ids = [p.node_id for p in peers]
        encoder = LiveEncoder()
        frames = wire = 0
        limit = MAX_SECONDS * 1000 // FRAME_MS
        async for samples in sound:
            if sent_hook is not None:
                sent_hook(offer.talk_id, frames, time.perf_counter())
            wire += self._send(ids, offer, frames, encoder.encode(samples), end=False)
            frames += 1
            if frames >= limit:
                break
        # then an end frame without sound: a listener ends the talk when it plays
        wire += self._send(ids, offer, frames, b"", end=True)
        return Said(offer.talk_id, tuple(ids), frames, frames * FRAME_MS / 1000, wire)

    def _listeners(self, resolved: Target, target: str) -> list[PublicIdentity]:
        """The devices a talk to ``resolved`` goes to: the contact, or the group's other
        members, that have a direct LAN link."""
        me = self.node.identity.node_id
        if resolved.kind is TargetKind.DIRECT and resolved.contact is not None:
            c = resolved.contact
            everyone = [PublicIdentity(c.sign_public, c.box_public)]
        elif resolved.kind is TargetKind.GROUP and resolved.group is not None:
            everyone = [m for m in resolved.group.roster.members if m.node_id != me]
        else:
            raise UsageError("push-to-talk goes to a contact or a +group (not a channel)")
        peers = [p for p in everyone if self.fast_links(p.node_id)]
        if not peers:
            raise UsageError(
                f"no LAN link to {target}: push-to-talk needs a direct LAN link "
                "(send a voice note instead)"
            )
        return peers

    def _send(
        self, peers: list[bytes], offer: TalkOffer, seq: int, opus: bytes, *, end: bool
    ) -> int:
        node = self.node
        sealed = seal_sound(offer.key, offer.talk_id, seq, opus, end=end)
        body = LiveFrame(offer.talk_id, seq, sealed, end).encode()
        sent = 0
        for peer in peers:
            packet = codec.build(
                node.identity, PacketKind.TALK, Destination.node(peer), Suite.SIGNED, body,
                node.clock(), 1,
            )  # fmt: skip
            frame = codec.encode(packet)
            links = self.fast_links(peer)
            if not links and len(peers) == 1:
                raise UsageError("the LAN link to the contact went down")
            for link in links:
                if link.send(frame):
                    sent += len(frame)
                else:
                    node.count("talk.drop.link-send")
        return sent

    # -- hearing ---------------------------------------------------------------------------

    def _on_offer(self, sender: PublicIdentity, blob: bytes, now_ms: int) -> list[Any]:
        """A talk offer (on the worker, from the sealed session's authenticated sender)."""
        node = self.node
        offer = TalkOffer.decode(blob)
        if not node.engine.direct.knows(sender.node_id) or node.blocklist.blocks(
            sender.sign_public
        ):
            node.count("talk.drop.offer-stranger")
            return []
        for out in self.listener.offer(sender.node_id, offer, node.clock()):
            if isinstance(out, Ended):  # the sender's earlier talk, replaced by this one
                self._end(out)
                continue
            talk = out.talk
            self.heard[talk.talk_id] = Heard(talk.talk_id, talk.sender, talk.started_ms)
            while len(self.heard) > _KEEP_HEARD:
                del self.heard[next(iter(self.heard))]
            node.notify(NodeNotice("talk"))
        self._schedule()
        return []

    def frame(self, link: Link, frame: bytes) -> None:
        """A TALK frame straight from a link (see the module's theory of operation)."""
        node = self.node
        now = node.clock()
        if link.transport not in FAST_TRANSPORTS:
            node.count("talk.drop.slow-link")
            return
        bucket = self._buckets.get(link.link_id)
        if bucket is None:
            if len(self._buckets) >= _MAX_BUCKETS:
                self._buckets.clear()
            bucket = self._buckets[link.link_id] = TokenBucket(RATE_PER_S, RATE_PER_S, now)
        if not bucket.take(now):
            node.count("talk.drop.rate-limited")
            return
        peer = link.peer
        if not node.engine.direct.knows(peer.node_id) or node.blocklist.blocks(peer.sign_public):
            node.count("talk.drop.stranger")
            return
        try:
            live = self._checked(codec.parse(frame), peer, now)
        except PacketError as exc:
            node.count(f"talk.drop.{exc.reason.value}")
            return
        self.listener.frame(peer.node_id, live, now)
        self._schedule()

    def _checked(self, packet: Packet, peer: PublicIdentity, now: int) -> LiveFrame:
        me = Destination.node(self.node.identity.node_id)
        if packet.kind is not PacketKind.TALK or packet.suite is not Suite.SIGNED:
            raise PacketError(PacketReason.BAD_FIELD, "not a live frame")
        if packet.destination != me or packet.origin != peer.sign_public:
            raise PacketError(PacketReason.BAD_FIELD, "not from the link's peer to me")
        codec.check_time(packet, now)
        codec.verify(packet)
        return LiveFrame.decode(packet.payload)

    def _schedule(self) -> None:
        """Wake when the next frame is due (at least every frame while a talk is live)."""
        if not self.listener.talks:
            return
        now = self.node.clock()
        due = self.listener.next_due_ms()
        wake = now + FRAME_MS if due is None or due <= now else min(due, now + FRAME_MS)
        if self._timer is not None and self._wake_ms is not None and self._wake_ms <= wake:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._wake_ms = wake
        self._timer = asyncio.get_running_loop().call_later((wake - now) / 1000, self._play)

    def _play(self) -> None:
        self._timer = self._wake_ms = None
        now = self.node.clock()
        for out in self.listener.pop(now):
            self._out(out)
        for ended in self.listener.expire(now):
            self._end(ended)
        self._schedule()

    def _out(self, out: Out) -> None:
        talk = out.talk
        if talk.talk_id not in self.listener.talks:
            return  # ended earlier in this turn (its sound could not be written)
        decoder = self._decoders.get(talk.talk_id)
        if decoder is None:
            decoder = self._decoders[talk.talk_id] = LiveDecoder()
        samples = decoder.play(out.opus, out.conceal)
        for hook in list(self.played_hooks):
            hook(talk.talk_id, out.seq, samples)
        try:
            sink = self._sinks.get(talk.talk_id)
            if sink is None:
                sink = self._sinks[talk.talk_id] = _Sink(self.node.options.files.downloads, talk)
            if samples:
                sink.write(samples)
        except OSError:  # no folder, the disk is full...: the talk ends, its WAV as it got
            self.node.count("talk.sink-failed")
            self.listener.end(talk.talk_id)
            self._end(Ended(talk, "could not write"))
            return
        self._written[talk.talk_id] = self._written.get(talk.talk_id, 0) + len(samples)

    def _end(self, ended: Ended) -> None:
        talk = ended.talk
        decoder = self._decoders.pop(talk.talk_id, None)
        written = self._written.pop(talk.talk_id, 0)
        sink = self._sinks.pop(talk.talk_id, None)
        if sink is not None:
            try:
                sink.close()
            except OSError:
                self.node.count("talk.sink-failed")
        heard = self.heard.get(talk.talk_id)
        if heard is not None:
            stats = talk.buffer.stats
            heard.seconds = written / SAMPLE_BYTES / DECODE_RATE
            heard.played, heard.gaps = stats.played, stats.gaps
            heard.concealed = talk.concealer.concealed
            heard.recovered = decoder.recovered if decoder is not None else 0
            heard.refused, heard.why = dict(talk.refused), ended.why
            if sink is not None:
                heard.wav, heard.device = sink.path, sink.device
        self.node.count(f"talk.heard.{ended.why}")
        self.node.notify(NodeNotice("talk"))

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for talk in list(self.listener.talks.values()):
            self.listener.end(talk.talk_id)
            self._end(Ended(talk, "stopped"))
        for key, value in self.listener.counters.items():
            self.node.counters[f"talk.{key}"] = value


async def control_op(node: Node, request: dict[str, Any]) -> dict[str, Any]:
    """The control socket's ``talk`` op (``to``, and ``path`` of an audio file or ``seconds``
    of the microphone) and ``talks`` (the talks heard)."""
    if request["op"] == "talks":
        return {"talks": [h.to_json() for h in node.talk.heard.values()]}
    from meshchat.voice.encode import read_audio

    seconds = float(request.get("seconds") or MAX_SECONDS)
    path = request.get("path")
    if path:
        if not Path(str(path)).is_absolute():
            raise UsageError("the path must be absolute (the node may run in another folder)")
        loop = asyncio.get_running_loop()
        pcm = await loop.run_in_executor(None, read_audio, Path(str(path)))
        cut = round(min(seconds, MAX_SECONDS) * ENCODE_RATE) * SAMPLE_BYTES
        sound = paced(Pcm(pcm.samples[:cut], pcm.rate))
    else:
        sound = microphone(seconds)
    try:
        said = await node.talk.talk(str(request["to"]), sound)
    finally:
        with contextlib.suppress(Exception):
            await sound.aclose()
    return {"talk": said.to_json()}
