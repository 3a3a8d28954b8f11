"""A node's file transfers as a person sees them, and kept across restarts.

One :class:`Transfer` per file sent or received, by root hash. The live ones (a file being
served, a download under way or waiting for the person's yes) and the last finished ones are
written to one JSON file in the node's home (mode 0600, replaced atomically) whenever one
changes state (not for every chunk), so a node that restarts serves its files again and
resumes its downloads from the chunks its partial files hold.

The file holds each transfer's announcement, which has the file's key: the key of a file
whose plaintext is on the same disk (the file sent, or the partial file received), so it adds
nothing to what a reader of the disk has. ``meshchat panic`` erases it with the home.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from meshchat.errors import MeshchatError
from meshchat.files.manifest import FileManifest
from meshchat.files.progress import Progress

__all__ = ["Direction", "State", "Transfer", "load_transfers", "save_transfers"]

log = logging.getLogger(__name__)


class Direction(Enum):
    OUT = "out"  #: a file this node announced and serves
    IN = "in"  #: a file announced to this node


class State(Enum):
    ASKING = "asking"  #: waiting for the person's yes (``meshchat accept``, ``/accept``)
    ACTIVE = "active"  #: being pulled (in) or served (out)
    DONE = "done"  #: saved under its final name (in)
    FAILED = "failed"  #: ended without the file: ``error`` says why; partial data erased
    REFUSED = "refused"  #: over the size limit of the links that reach the sender

    @property
    def live(self) -> bool:
        return self in (State.ASKING, State.ACTIVE)


@dataclass(slots=True)
class Transfer:
    """One file sent or received. Peer-controlled texts (``manifest.name``, ``caption``,
    ``peer_name``) are shown only escaped."""

    manifest: FileManifest
    direction: Direction
    state: State
    conversation: str
    msg_id: bytes
    #: who sent it (in) or where it was sent (out), as the faces name them
    peer_name: str
    started_ms: int
    #: node ids that may hold the file (in): the sender first
    sources: list[bytes] = field(default_factory=list)
    #: the file served (out) or the file saved (in, once done)
    path: str = ""
    error: str = ""
    finished_ms: int | None = None
    #: bytes held (in) and the rate, filled in when the transfer is listed
    progress: Progress | None = None
    #: pieces served to others (out)
    served: int = 0

    @property
    def root(self) -> bytes:
        return self.manifest.root

    def to_json(self, *, secret: bool = False) -> dict[str, Any]:
        """The transfer as ``transfers --json`` shows it (``secret``: with the announcement,
        key included, for the state file)."""
        m = self.manifest
        held = self.progress.held if self.progress is not None else None
        out: dict[str, Any] = {
            "root": m.root.hex(),
            "direction": self.direction.value,
            "state": self.state.value,
            "name": m.name,
            "size": m.size,
            "media_type": m.media_type,
            "kind": m.kind.name.lower(),
            "caption": m.caption,
            "conversation": self.conversation,
            "msg_id": self.msg_id.hex(),
            "peer": self.peer_name,
            "path": self.path,
            "error": self.error,
            "started_ms": self.started_ms,
            "finished_ms": self.finished_ms,
            "held": m.size if self.state is State.DONE else held,
            "rate": self.progress.rate if self.progress is not None else None,
            "eta_s": self.progress.eta_s if self.progress is not None else None,
            "served": self.served,
        }
        if secret:
            out["manifest"] = m.encode().hex()
            out["sources"] = [s.hex() for s in self.sources]
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Transfer:
        return cls(
            manifest=FileManifest.decode(bytes.fromhex(data["manifest"])),
            direction=Direction(data["direction"]),
            state=State(data["state"]),
            conversation=str(data["conversation"]),
            msg_id=bytes.fromhex(data["msg_id"]),
            peer_name=str(data["peer"]),
            started_ms=int(data["started_ms"]),
            sources=[bytes.fromhex(s) for s in data.get("sources", [])],
            path=str(data.get("path", "")),
            error=str(data.get("error", "")),
            finished_ms=data.get("finished_ms"),
            served=int(data.get("served", 0)),
        )


def load_transfers(path: str | None) -> list[Transfer]:
    """The transfers kept in ``path`` (none if it is missing; a damaged entry is skipped)."""
    if path is None:
        return []
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        log.warning("cannot read the transfers file %s: %s", path, exc)
        return []
    transfers = []
    for entry in data.get("transfers", []) if isinstance(data, dict) else []:
        try:
            transfers.append(Transfer.from_json(entry))
        except (MeshchatError, ValueError, KeyError, TypeError) as exc:
            log.warning("skipping a damaged transfer record: %s", exc)
    return transfers


def save_transfers(
    path: str | None, transfers: list[Transfer], downloads: str | None = None
) -> None:
    """Write ``transfers`` to ``path`` atomically, mode 0600, with the folder files are saved
    in (``downloads``: where ``meshchat panic`` finds the partial files to erase)."""
    if path is None:
        return
    target = Path(path)
    temp = target.with_name(target.name + ".tmp")
    kept: dict[str, Any] = {"transfers": [t.to_json(secret=True) for t in transfers]}
    if downloads is not None:
        kept["downloads"] = str(Path(downloads).resolve())
    blob = json.dumps(kept)
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(blob)
        os.replace(temp, target)
    except OSError as exc:
        log.warning("cannot keep the transfers in %s: %s", path, exc)
        with contextlib.suppress(OSError):
            temp.unlink()
