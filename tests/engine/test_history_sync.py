"""History summaries recover what a lossy, reordering mesh lost, through the engine's API only.

Three members of a group, fully linked, with 30% of all frames lost and deliveries jittered
(so frames overtake each other). Each member writes messages naming its current heads as
parents. A small policy written here, like the node's, repairs the gaps: every few seconds each
member sends a summary (its heads, and the ids it lacks: parents it saw named and heads it saw
summarised), and answers wants for its own messages by sending them again with the same id,
time and parents. In the end every member holds every message, each with the parents and sent
time its author gave it.
"""

from __future__ import annotations

import random

from mesh import Mesh

from meshchat.causal import MAX_PARENTS, MAX_WANTS
from meshchat.events import HistoryReceived, MessageReceived
from meshchat.group.book import group_conversation

NAMES = "abc"
PER_SENDER = 30
SUMMARY_EVERY_MS = 3_000


class Member:
    """What a member's node would keep: the messages it has, and its own ones to answer with."""

    def __init__(self, mesh: Mesh, name: str, group_id: bytes) -> None:
        self.mesh, self.name, self.group_id = mesh, name, group_id
        self.engine = mesh.engines[name]
        #: msg id -> (parents, sent_ms), for every message this member holds
        self.have: dict[bytes, tuple[tuple[bytes, ...], int]] = {}
        self.own: dict[bytes, tuple[str, tuple[bytes, ...], int]] = {}
        self.heard_heads: set[bytes] = set()
        self._read = 0

    def heads(self) -> tuple[bytes, ...]:
        named = {p for parents, _ in self.have.values() for p in parents}
        newest = sorted(
            (m for m in self.have if m not in named), key=lambda m: (self.have[m][1], m)
        )
        return tuple(reversed(newest[-MAX_PARENTS:]))

    def missing(self) -> tuple[bytes, ...]:
        named = {p for parents, _ in self.have.values() for p in parents} | self.heard_heads
        return tuple(sorted(named - self.have.keys()))[:MAX_WANTS]

    def write(self, text: str) -> None:
        msg_id = self.mesh.new_msg_id()
        parents, now = self.heads(), self.mesh.now_ms
        self.have[msg_id] = (parents, now)
        self.own[msg_id] = (text, parents, now)
        out = self.engine.send_group(self.group_id, msg_id, text, now, parents=parents)
        self.mesh._handle(self.name, out)

    def summarise(self) -> None:
        out = self.engine.send_history(
            self.group_id, self.heads(), self.missing(), self.mesh.now_ms
        )
        self.mesh._handle(self.name, out)

    def read(self) -> None:
        """Take what the engine reported since the last call, and answer wants."""
        outputs = self.mesh.outputs[self.name]
        new, self._read = outputs[self._read :], len(outputs)
        conversation = group_conversation(self.group_id)
        for out in new:
            if isinstance(out, MessageReceived) and out.conversation == conversation:
                self.have.setdefault(out.msg_id, (out.parents, out.sent_ms))
                assert self.have[out.msg_id] == (out.parents, out.sent_ms)
            elif isinstance(out, HistoryReceived) and out.conversation == conversation:
                self.heard_heads.update(out.heads)
                for msg_id in out.wants:
                    if msg_id in self.own:
                        text, parents, sent_ms = self.own[msg_id]
                        resend = self.engine.send_group(
                            self.group_id,
                            msg_id,
                            text,
                            self.mesh.now_ms,
                            parents=parents,
                            sent_ms=sent_ms,
                        )
                        self.mesh._handle(self.name, resend)


def test_summaries_recover_every_message_under_loss_and_reordering() -> None:
    mesh = Mesh(cards=True, jitter_ms=40, seed=3)
    mesh.add_many(NAMES)
    for i, a in enumerate(NAMES):
        for b in NAMES[i + 1 :]:
            mesh.connect(a, b)
    group_id = mesh.create_group("a", "g", "bc")
    mesh.run(20_000)  # keys go out over a lossless mesh
    members = {name: Member(mesh, name, group_id) for name in NAMES}
    loss = random.Random(7)
    lost = 0

    def lossy(node: str, link: str, frame: bytes) -> bool:
        nonlocal lost
        keep = loss.random() >= 0.3
        lost += not keep
        return keep

    mesh.filter = lossy
    for round_ in range(PER_SENDER):
        for name in NAMES:
            members[name].write(f"{name}{round_}")
            mesh.run(loss.randrange(0, 30))
            for member in members.values():
                member.read()
    everything = {m for member in members.values() for m in member.own}
    # Loss left holes (about one message in eight, in this run): summaries must mend them.
    assert any(member.have.keys() != everything for member in members.values())
    for _ in range(40):
        if all(member.have.keys() == everything for member in members.values()):
            break
        for member in members.values():
            member.summarise()
        for _ in range(SUMMARY_EVERY_MS // 100):
            mesh.run(100)
            for member in members.values():
                member.read()
    assert lost > 50  # the mesh really lost frames
    authored = {m: (p, t) for member in members.values() for m, (_, p, t) in member.own.items()}
    for member in members.values():
        assert member.have == authored
    assert len(everything) == len(NAMES) * PER_SENDER
