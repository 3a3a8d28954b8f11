"""Forward secrecy: the keys and state a thief takes today do not open yesterday's traffic.

The attacker captured every frame a relay carried yesterday. Today it steals *both* devices:
their identity keys (signing and box keys) and everything their stores hold (sessions, signed
prekeys). It then tries every key it has on every captured frame: it opens the sealed boxes it
can, tries every stolen session (a fresh copy each time, so nothing is "used up"), and redoes
the X3DH key agreement with every stolen signed prekey.
"""

from __future__ import annotations

from mesh import Mesh
from sealed_mesh import Capture, chain, texts

from meshchat.crypto.prekeys import ROTATE_MS, PrekeyState
from meshchat.crypto.sealed import Envelope, open_sealed
from meshchat.crypto.sessions import KIND_ACK, KIND_MESSAGE, PeerRecord, respond
from meshchat.errors import DecryptionError, StoreError
from meshchat.identity import Identity
from meshchat.wire import codec

DAY_MS = 24 * 3_600_000


class Thief:
    """Everything stolen from one device today."""

    def __init__(self, mesh: Mesh, name: str) -> None:
        self.identity: Identity = mesh.identity_of(name)
        state = mesh.state(name)
        own = self.identity.node_id
        self.prekeys = PrekeyState.from_blob(self.identity, state[own])
        self.records = {k: v for k, v in state.items() if k != own}

    def secrets(self) -> list[bytes]:
        return [bytes(self.identity.box_key), *(k.private for k in self.prekeys.keys)]

    def open(self, frame: bytes) -> bytes | None:
        """The plaintext of ``frame`` if anything stolen opens it, else None."""
        packet = codec.parse(frame)
        for key in self.secrets():
            try:
                envelope = open_sealed(packet.payload, key)
            except DecryptionError:
                continue
            plaintext = self._decrypt(envelope)
            if plaintext is not None:
                return plaintext
        return None

    def _decrypt(self, envelope: Envelope) -> bytes | None:
        for kind in (KIND_MESSAGE, KIND_ACK):
            for blob in self.records.values():
                for index in range(len(PeerRecord.from_blob(blob).sessions)):
                    session = PeerRecord.from_blob(blob).sessions[index]  # a fresh copy
                    try:
                        return session.decrypt(envelope.message, kind)
                    except DecryptionError:
                        pass
            if envelope.x3dh is not None and envelope.sender is not None:
                ephemeral, spk = envelope.x3dh
                prekey = self.prekeys.get(spk)
                if prekey is not None:
                    try:
                        return respond(
                            self.identity,
                            prekey,
                            envelope.sender,
                            ephemeral,
                            envelope.message,
                            kind,
                        )[1]
                    except DecryptionError:
                        pass
        return None


def _first_messages(frames: list[bytes], thieves: list[Thief]) -> set[bytes]:
    """Frames whose envelope carries an X3DH header (the key agreement's first messages)."""
    found = set()
    for frame in frames:
        packet = codec.parse(frame)
        for thief in thieves:
            for key in thief.secrets():
                try:
                    if open_sealed(packet.payload, key).x3dh is not None:
                        found.add(frame)
                except (DecryptionError, StoreError):
                    continue
    return found


def test_keys_and_state_of_today_do_not_open_yesterdays_messages() -> None:
    mesh = chain("alice", "relay", "bob")
    yesterday = Capture(mesh, "relay")
    for i in range(3):
        mesh.send_direct("alice", "bob", f"yesterday alice {i}")
        mesh.run(2_000)
        mesh.send_direct("bob", "alice", f"yesterday bob {i}")
        mesh.run(2_000)
    yesterday.on = False
    assert len(texts(mesh, "bob", "alice")) == 3
    mesh.run(DAY_MS)
    for i in range(2):
        mesh.send_direct("alice", "bob", f"today alice {i}")
        mesh.run(2_000)
        mesh.send_direct("bob", "alice", f"today bob {i}")
        mesh.run(2_000)
    thieves = [Thief(mesh, "alice"), Thief(mesh, "bob")]

    opened = {f: p for f in yesterday.frames for t in thieves if (p := t.open(f)) is not None}
    first = _first_messages(yesterday.frames, thieves)
    # Only the key agreement's first message opens: its signed prekey is still kept (for
    # the grace period), and without one-time prekeys that prekey is all X3DH needs.
    assert len(yesterday.frames) >= 12
    assert len(first) == 1
    assert set(opened) == first
    assert b"yesterday alice 0" in next(iter(opened.values()))
    # Everything after the first reply is out of reach.
    later = [f for f in yesterday.frames if f not in first]
    assert later and all(thieves[0].open(f) is None and thieves[1].open(f) is None for f in later)


def test_first_messages_close_once_the_signed_prekey_is_deleted() -> None:
    mesh = chain("alice", "relay", "bob")
    capture = Capture(mesh, "relay")
    mesh.send_direct("alice", "bob", "the very first message")
    mesh.run(2_000)
    mesh.send_direct("bob", "alice", "reply")
    mesh.run(2_000)
    capture.on = False
    assert texts(mesh, "bob", "alice") == ["the very first message"]
    # Five weeks on (a week of use, four of grace) the prekey that message used is gone.
    mesh.run(5 * ROTATE_MS + 3_600_000)
    mesh.tick()
    thieves = [Thief(mesh, "alice"), Thief(mesh, "bob")]
    assert all(t.open(f) is None for f in capture.frames for t in thieves)
