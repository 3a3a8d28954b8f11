"""Strangers' half-sent control blobs cannot stop a node from following its groups.

The attack, as found on live daemons: 256 throw-away identities each sent one part of a
two-part group-control blob and never the other. The node then dropped every multi-part roster
update (it never joined a new five-member group and missed the re-key of a group it was in)
while still acking the parts, so the admin listed it as a member; the half-blobs were stored
and survived a restart. Here the same 256 parts arrive (the rate limits on strangers' key
agreements are lifted, as if they came slowly over many links), the node restarts, and then a
new five-member group and a re-key must both be applied, and the admin must see them applied.
A member that does not apply an update must not ack it: the admin sees "not applied".
"""

from __future__ import annotations

import hashlib
import itertools
import os

from mesh import Mesh, link_id

from meshchat.control import group_json
from meshchat.crypto.admission import Admission
from meshchat.crypto.direct import DirectSuite
from meshchat.events import GroupChanged, GroupStateUpdated
from meshchat.group.book import group_conversation
from meshchat.identity import Identity
from meshchat.wire import codec
from meshchat.wire.payloads import CONTROL_CHUNK_BYTES, ControlPart

MEMBERS = ("victim", "m1", "m2", "m3")


def _stranger(tag: str, n: int) -> Identity:
    def seed(part: str) -> bytes:
        return hashlib.blake2b(f"{tag}:{n}:{part}".encode(), digest_size=32).digest()

    return Identity.from_seeds(seed("sign"), seed("box"))


def _mesh() -> Mesh:
    mesh = Mesh(cards=True)
    names = ("admin", *MEMBERS)
    mesh.add_many(names)
    mesh.connect_all(itertools.pairwise(names))
    unlimited = (1e6, 1e6)
    mesh.engines["victim"].direct.admission = Admission(
        per_link=unlimited, per_origin=unlimited, overall=unlimited
    )
    return mesh


def poison(mesh: Mesh, victim: str, tag: str, count: int = 256) -> None:
    """``count`` strangers each send part 1 of 2 of a control blob, never part 2."""
    target = mesh.engines[victim]
    prekey = target.prekey(mesh.now_ms)
    for n in range(count):
        suite = DirectSuite(_stranger(tag, n))
        suite.add_peer(target.identity.public, prekey)
        part = ControlPart(os.urandom(16), os.urandom(16), 0, 2, os.urandom(CONTROL_CHUNK_BYTES))
        packet = suite.build_message(
            target.identity.public, part.msg_id, part.encode(), mesh.now_ms, 4
        )
        mesh.inject(victim, codec.encode(packet), link_id(victim, "admin"))
        mesh.run(10)  # 256 parts in 2.6 s


def _texts(mesh: Mesh, node: str, group_id: bytes) -> list[str]:
    conversation = group_conversation(group_id)
    return [r.text for r in mesh.received(node) if r.conversation == conversation]


def _epoch(mesh: Mesh, node: str, group_id: bytes) -> int | None:
    group = mesh.engines[node].groups.groups.get(group_id)
    return None if group is None or group.current is None else group.current.roster.epoch


def test_half_sent_blobs_of_strangers_do_not_stop_roster_updates() -> None:
    mesh = _mesh()
    poison(mesh, "victim", "first")
    stored = mesh.group_state("victim")
    assert all(len(blob) <= 65536 for blob in stored.values())
    mesh.restart("victim")
    mesh.engines["victim"].direct.admission = Admission(
        per_link=(1e6, 1e6), per_origin=(1e6, 1e6), overall=(1e6, 1e6)
    )

    start = mesh.now_ms
    group_id = mesh.create_group("admin", "five", MEMBERS)
    mesh.run(30_000)
    joined = [e for e in mesh.events("victim", GroupChanged) if e.group_id == group_id]
    assert [e.what for e in joined] == ["joined"]
    admin_group = mesh.engines["admin"].groups.groups[group_id]
    victim_id = mesh.engines["victim"].identity.node_id
    assert admin_group.delivery.get(victim_id) == "applied"
    del start

    mesh.send_group("admin", group_id, "before the re-key")
    mesh.run(5_000)
    assert _texts(mesh, "victim", group_id) == ["before the re-key"]

    # Poisoned again, then a re-key (m3 removed): the victim must follow it.
    poison(mesh, "victim", "second")
    m3 = mesh.engines["m3"].identity.node_id
    mesh._handle("admin", mesh.engines["admin"].change_group(group_id, mesh.now_ms, remove=[m3]))
    mesh.run(30_000)
    assert _epoch(mesh, "victim", group_id) == _epoch(mesh, "admin", group_id) == 2
    assert admin_group.delivery.get(victim_id) == "applied"
    mesh.send_group("admin", group_id, "after the re-key")
    mesh.run(5_000)
    assert _texts(mesh, "victim", group_id) == ["before the re-key", "after the re-key"]


def test_strangers_half_blobs_are_not_stored() -> None:
    mesh = _mesh()
    before = mesh.group_state("victim")
    poison(mesh, "victim", "stored")
    after = mesh.group_state("victim")
    # Nothing of theirs reaches the store: it would survive a restart.
    assert after == before or all(len(b) < 1024 for b in after.values())
    assert not [o for o in mesh.outputs["victim"] if isinstance(o, GroupStateUpdated)]


def test_an_update_a_member_does_not_apply_shows_as_not_applied_to_the_admin() -> None:
    mesh = Mesh(cards=True)
    mesh.add_many(("admin", "friend", "outsider"))
    mesh.connect("admin", "friend")
    mesh.connect("friend", "outsider")
    # The admin holds the outsider's card, but the outsider does not hold the admin's: the
    # outsider refuses the invitation (only a contact may add you to a group).
    for holder, card_of in (("admin", "friend"), ("friend", "admin"), ("admin", "outsider")):
        mesh.introduce(holder, card_of)
    admin = mesh.engines["admin"]
    members = [mesh.engines[n].identity.public for n in ("friend", "outsider")]
    group, outputs = admin.create_group("g", members, mesh.now_ms)
    mesh._handle("admin", outputs)
    mesh.run(30_000)
    refused = [e.what for e in mesh.events("outsider", GroupChanged)]
    assert refused == ["refused"]
    outsider_id = mesh.engines["outsider"].identity.node_id
    friend_id = mesh.engines["friend"].identity.node_id
    assert group.delivery.get(outsider_id) == "not applied"
    assert group.delivery.get(friend_id) == "applied"
    notices = [e for e in mesh.events("admin", GroupChanged) if e.what == "not applied"]
    assert [n.by.node_id for n in notices if n.by is not None] == [outsider_id]
    # What `meshchat group show` (and --json) tells the admin.
    shown = group_json(group, admin.identity.node_id, {})
    updates = {m["node_id"]: m["update"] for m in shown["members"]}
    assert updates[outsider_id.hex()] == "not applied"
    assert updates[friend_id.hex()] == "applied"
