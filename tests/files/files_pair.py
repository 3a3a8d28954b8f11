"""A deterministic in-memory harness for file transfer: seeders and a receiver joined by a
queue, every body passing through its wire encoding. No mocks: the real state machines."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from meshchat.files import (
    Downloads,
    FileKind,
    FileManifest,
    HashTree,
    Seeder,
    SentFile,
    decode_body,
    new_key,
    prepare,
    split,
)
from meshchat.files.effects import (
    Abandoned,
    Completed,
    Dropped,
    Effect,
    KeepHashes,
    SendMissing,
    SendPiece,
    SendRequest,
    ServeChunk,
    WriteChunk,
)
from meshchat.files.wire import Missing, Piece, Request

RECEIVER = "receiver"


def make_file(data: bytes, chunk_size: int = 1536) -> tuple[FileManifest, HashTree]:
    return prepare(
        split(data, chunk_size),
        kind=FileKind.FILE,
        name="data.bin",
        size=len(data),
        media_type="application/octet-stream",
        key=new_key(),
        chunk_size=chunk_size,
    )


@dataclass
class Harness:
    """Seeders by peer name (each serving ``data``), one receiver with ``downloads``."""

    downloads: Downloads
    data: bytes
    seeders: dict[str, Seeder] = field(default_factory=dict)
    written: dict[int, bytes] = field(default_factory=dict)
    hashes: list[tuple[int, int, bytes]] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)
    #: a peer's pieces pass through this before they are sent (to corrupt or drop them)
    tamper: dict[str, Callable[[Piece], Piece | None]] = field(default_factory=dict)
    now_ms: int = 0
    max_in_flight: int = 0
    queue: deque[tuple[str, str, bytes]] = field(default_factory=deque)

    def seed(self, peer: str, manifest: FileManifest, tree: HashTree) -> Seeder:
        seeder = Seeder(self.now_ms)
        seeder.add(SentFile(manifest, tree))
        self.seeders[peer] = seeder
        return seeder

    def apply(self, origin: str, effects: list[Effect]) -> None:
        for effect in effects:
            self.effects.append(effect)
            match effect:
                case SendRequest(peer, body):
                    self.queue.append((RECEIVER, str(peer), body.encode()))
                case SendPiece(peer, body) | SendMissing(peer, body):
                    self.send_piece(origin, str(peer), body)
                case ServeChunk(peer, root, index):
                    seeder = self.seeders[origin]
                    holder = seeder.holder(root)
                    assert holder is not None
                    manifest = holder.manifest
                    start = index * manifest.chunk_size
                    plain = self.data[start : start + manifest.chunk_length(index)]
                    self.send_piece(origin, str(peer), seeder.seal(root, index, plain))
                case WriteChunk(_, index, _, plaintext):
                    self.written[index] = plaintext
                case KeepHashes(_, level, index, data):
                    self.hashes.append((level, index, data))
                case Completed() | Abandoned() | Dropped():
                    pass

    def send_piece(self, origin: str, to: str, body: Piece | Missing) -> None:
        if isinstance(body, Piece) and origin in self.tamper:
            tampered = self.tamper[origin](body)
            if tampered is None:
                return
            body = tampered
        self.queue.append((origin, to, body.encode()))

    def run(self, rounds: int = 1_000_000, step_ms: int = 5) -> None:
        """Deliver queued bodies in order, the clock moving ``step_ms`` per body (slower
        than the seeders' rate limit, so none is refused)."""
        for _ in range(rounds):
            if not self.queue:
                return
            self.now_ms += step_ms
            origin, to, wire = self.queue.popleft()
            body = decode_body(wire)
            if isinstance(body, Request):
                self.apply(to, self.seeders[to].request(origin, body, self.now_ms))
            else:
                self.apply(RECEIVER, self.downloads.receive(origin, body, self.now_ms))
            for download in self.downloads.active():
                self.max_in_flight = max(self.max_in_flight, download.in_flight)

    def tick(self, ms: int) -> None:
        self.now_ms += ms
        self.apply(RECEIVER, self.downloads.tick(self.now_ms))

    def assembled(self) -> bytes:
        return b"".join(self.written[i] for i in sorted(self.written))

    def of(self, kind: type) -> list[Effect]:
        return [e for e in self.effects if isinstance(e, kind)]
