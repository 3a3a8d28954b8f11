"""What the file-transfer state machines ask their driver to do: typed values, no callbacks.

The driver (a node) carries them out with a ``match``: ``Send*`` go to the named peer at file
priority (after text and acks), ``ServeChunk`` reads a chunk of plaintext from the served file
and turns it into a piece with :meth:`meshchat.files.serve.Seeder.seal`, ``WriteChunk`` and
``KeepHashes`` go to the transfer's sink, ``Completed`` lets the sink check the whole file and
give it its final name, ``Abandoned`` erases the partial data, ``Dropped`` is counted.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from meshchat.errors import TransferReason
from meshchat.files.wire import Missing, Piece, Request

__all__ = [
    "Abandoned",
    "Completed",
    "Dropped",
    "Effect",
    "KeepHashes",
    "Peer",
    "SendMissing",
    "SendPiece",
    "SendRequest",
    "ServeChunk",
    "WriteChunk",
]

#: Whatever the driver names a peer by (a node id, a link id); only compared and hashed.
Peer = Hashable


@dataclass(frozen=True, slots=True)
class SendRequest:
    peer: Peer
    body: Request


@dataclass(frozen=True, slots=True)
class SendPiece:
    peer: Peer
    body: Piece


@dataclass(frozen=True, slots=True)
class SendMissing:
    peer: Peer
    body: Missing


@dataclass(frozen=True, slots=True)
class ServeChunk:
    """Read plaintext chunk ``index`` of the file ``root`` names and send it to ``peer``."""

    peer: Peer
    root: bytes
    index: int


@dataclass(frozen=True, slots=True)
class WriteChunk:
    """Write a checked chunk's plaintext at ``offset`` of the transfer's partial file."""

    root: bytes
    index: int
    offset: int
    plaintext: bytes


@dataclass(frozen=True, slots=True)
class KeepHashes:
    """Keep a checked hash piece with the partial file (so a restart need not pull it)."""

    root: bytes
    level: int
    index: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Completed:
    """Every chunk is held and checked: check the whole file, then give it its name."""

    root: bytes


@dataclass(frozen=True, slots=True)
class Abandoned:
    """The transfer is over without the file: erase its partial data."""

    root: bytes
    reason: TransferReason


@dataclass(frozen=True, slots=True)
class Dropped:
    """A body was refused (for counters and logs); nothing else to do."""

    peer: Peer
    reason: TransferReason
    root: bytes | None = None


Effect = (
    SendRequest
    | SendPiece
    | SendMissing
    | ServeChunk
    | WriteChunk
    | KeepHashes
    | Completed
    | Abandoned
    | Dropped
)
