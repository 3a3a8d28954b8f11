"""Helpers for the attack tests: a sealed conversation over a chain, and frame captures."""

from __future__ import annotations

import itertools

from mesh import Mesh, link_id

from meshchat.crypto.tags import epoch_of, pair_key, pair_tag, prekey_tag
from meshchat.engine import dm_conversation
from meshchat.events import MessageDelivered, MessageReceived, MessageRejected
from meshchat.router.actions import Transmit
from meshchat.wire import codec
from meshchat.wire.packet import Packet

__all__ = [
    "Capture",
    "chain",
    "delivered",
    "pair_tag_to",
    "prekey_tag_of",
    "rejected",
    "texts",
    "transmitted",
]


def chain(*names: str, seed: int = 0, **kwargs: object) -> Mesh:
    """A line of nodes, neighbours linked, direct messages sealed (contacts exchange cards)."""
    mesh = Mesh(seed=seed, cards=True, **kwargs)  # type: ignore[arg-type]
    mesh.add_many(names)
    for a, b in itertools.pairwise(names):
        mesh.connect(a, b)
    return mesh


class Capture:
    """Every frame delivered to ``node`` (what that node, as a relay, sees on its links)."""

    def __init__(self, mesh: Mesh, node: str) -> None:
        self.frames: list[bytes] = []
        self.node = node
        self.on = True
        mesh.filter = self._filter

    def _filter(self, node: str, link: str, frame: bytes) -> bool:
        if self.on and node == self.node:
            self.frames.append(frame)
        return True

    def packets(self) -> list[Packet]:
        return [codec.parse(f) for f in self.frames]


def texts(mesh: Mesh, node: str, peer: str) -> list[str]:
    conversation = dm_conversation(mesh.engines[peer].identity.node_id)
    return [r.text for r in mesh.events(node, MessageReceived) if r.conversation == conversation]


def delivered(mesh: Mesh, node: str) -> list[bytes]:
    return [d.msg_id for d in mesh.events(node, MessageDelivered)]


def rejected(mesh: Mesh, node: str) -> list[str]:
    return [r.reason for r in mesh.events(node, MessageRejected)]


def transmitted(outputs: list[object]) -> list[Packet]:
    return [codec.parse(o.frame) for o in outputs if isinstance(o, Transmit)]


def pair_tag_to(mesh: Mesh, sender: str, recipient: str, at_ms: int) -> bytes:
    """The tag ``sender`` uses for ``recipient`` at ``at_ms`` (what an observer may see)."""
    s = mesh.engines[sender].identity
    r = mesh.engines[recipient].identity.public
    return pair_tag(pair_key(bytes(s.box_key), r.box_public), r.node_id, epoch_of(at_ms))


def prekey_tag_of(mesh: Mesh, node: str, at_ms: int) -> bytes:
    return prekey_tag(mesh.engines[node].prekey(at_ms).public, epoch_of(at_ms))


def link(a: str, b: str) -> str:
    return link_id(a, b)
