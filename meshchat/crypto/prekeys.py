"""This device's signed prekeys: rotation, grace period and the initial-message replay cache.

Theory of operation. X3DH lets anyone who holds our card (or heard our announcement) start a
session with us while we are offline, using our **signed prekey**: an X25519 key signed by our
Ed25519 identity key. A mesh cannot hand out one-time prekeys (there is no server to count them
down), so:

* the current prekey is **rotated** every :data:`ROTATE_MS` (a week); a replaced prekey is kept
  for :data:`GRACE_MS` more (four weeks) so that messages and cards made with it still open,
  then its private key is deleted. Deleting it is what gives the first messages of a session
  forward secrecy: until then, someone who steals this device can redo the key agreement. At
  most :data:`MAX_PREKEYS` are held; past that the oldest retired one goes early.
* the initial (key-agreement) message of every session started with a prekey is remembered
  by (a 12-byte hash of) its ephemeral key, per prekey, in a **replay cache**: a replay of an
  initial message that already started a session is refused instead of starting it again.
  An entry holds the newest creation time of a packet that carried its key agreement, and is
  kept for :data:`REPLAY_HORIZON_MS` after it: a packet older than the packet horizon (a week,
  signed by a key made for that one packet, so nobody can date it anew) is refused by every
  router, so the entry can protect nothing beyond it. No entry is evicted before then.
* the cache cannot be filled by strangers to lock anyone out. Key agreements of peers we know
  (contacts and group members, authenticated by the agreement itself) are always taken; at most
  :data:`MAX_CONTACT_AGREEMENTS` of their entries are kept, the oldest going first past it.
  Strangers' agreements share :data:`MAX_STRANGER_AGREEMENTS` entries over all prekeys (and
  the rates of :mod:`.admission`); when they are used up, further strangers are refused until
  entries age out, and contacts are not affected.

State events: every change (rotation, deletion, a cache entry) makes :meth:`PrekeyState.blob`
differ; the engine emits it for the store before anything that depends on it goes out.

Blob layout (CBOR): ``[2, [[priv(32), sig(64), created_ms, retired_ms|null, entries]...]]``,
newest prekey first, where ``entries`` is the concatenation of 17-byte entries ``hash(12) ||
seconds(4, big-endian) || contact(1)``; at most ``MAX_STRANGER_AGREEMENTS +
MAX_CONTACT_AGREEMENTS`` entries in all, about 31 KB. Blobs of format 1 (hashes without
times) still load; their entries are dated when the state is next maintained.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import cbor2
from nacl.public import PrivateKey

from meshchat.errors import StoreError
from meshchat.identity import Identity, SignedPrekey
from meshchat.wire.packet import MAX_AGE_MS, MAX_FUTURE_SKEW_MS

__all__ = [
    "GRACE_MS",
    "MAX_CONTACT_AGREEMENTS",
    "MAX_PREKEYS",
    "MAX_STRANGER_AGREEMENTS",
    "REPLAY_HORIZON_MS",
    "ROTATE_MS",
    "OwnPrekey",
    "PrekeyState",
]

ROTATE_MS = 7 * 24 * 3600 * 1000
GRACE_MS = 28 * 24 * 3600 * 1000
MAX_PREKEYS = 5
#: strangers' key agreements remembered, all prekeys together
MAX_STRANGER_AGREEMENTS = 768
#: known peers' key agreements remembered, all prekeys together (the oldest go first)
MAX_CONTACT_AGREEMENTS = 1024
#: how long after the newest packet that carried it a key agreement is remembered
REPLAY_HORIZON_MS = MAX_AGE_MS + 2 * MAX_FUTURE_SKEW_MS
_REPLAY_ID = 12
_AGE_EVERY_MS = 60_000
_ENTRY = _REPLAY_ID + 5
_MAX_BLOB = 256 * 1024


def _replay_id(ephemeral: bytes) -> bytes:
    return hashlib.blake2b(ephemeral, digest_size=_REPLAY_ID, person=b"mc-x3dh-replay").digest()


@dataclass(slots=True)
class OwnPrekey:
    """One of our signed prekeys with its private half and its replay cache."""

    private: bytes
    signed: SignedPrekey
    retired_ms: int | None = None
    #: replay id -> (newest packet time seen, in seconds, 0 if not known yet; from a known peer)
    replay: dict[bytes, tuple[int, bool]] = field(default_factory=dict)

    @property
    def public(self) -> bytes:
        return self.signed.public

    def entries(self) -> bytes:
        return b"".join(
            rid + t.to_bytes(4, "big") + (b"\x01" if known else b"\x00")
            for rid, (t, known) in sorted(self.replay.items())
        )


class PrekeyState:
    """Our signed prekeys, newest first. Times come only from the ``now_ms`` arguments."""

    __slots__ = ("_aged_ms", "_identity", "keys")

    def __init__(self, identity: Identity, keys: list[OwnPrekey] | None = None) -> None:
        self._identity = identity
        self.keys: list[OwnPrekey] = keys or []
        self._aged_ms: int | None = None

    @property
    def current(self) -> OwnPrekey | None:
        return self.keys[0] if self.keys else None

    def get(self, public: bytes) -> OwnPrekey | None:
        for key in self.keys:
            if key.public == public:
                return key
        return None

    def _new(self, now_ms: int) -> OwnPrekey:
        private = PrivateKey.generate()
        signed = self._identity.sign_prekey(bytes(private.public_key), now_ms)
        return OwnPrekey(bytes(private), signed)

    def maintain(self, now_ms: int) -> bool:
        """Create, rotate and delete prekeys as due; True when anything changed."""
        changed = False
        current = self.current
        if current is None or now_ms >= current.signed.created_ms + ROTATE_MS:
            if current is not None:
                # Retired when it was due, even if nobody asked until later: a node that was
                # off for weeks must not stretch the grace period of its old keys.
                current.retired_ms = min(now_ms, current.signed.created_ms + ROTATE_MS)
            self.keys.insert(0, self._new(now_ms))
            changed = True
        keep = [k for k in self.keys if k.retired_ms is None or now_ms < k.retired_ms + GRACE_MS]
        del keep[MAX_PREKEYS:]
        if len(keep) != len(self.keys):
            self.keys = keep
            changed = True
        return self._age(now_ms) or changed

    def _age(self, now_ms: int) -> bool:
        """Date undated entries now; forget those past :data:`REPLAY_HORIZON_MS`. Runs at
        most once a minute (every packet received maintains the state)."""
        if self._aged_ms is not None and 0 <= now_ms - self._aged_ms < _AGE_EVERY_MS:
            return False
        self._aged_ms = now_ms
        changed = False
        now_s = max(1, now_ms // 1000)
        oldest = (now_ms - REPLAY_HORIZON_MS) // 1000
        for key in self.keys:
            for rid, (t, known) in list(key.replay.items()):
                if t == 0:
                    key.replay[rid] = (now_s, known)
                    changed = True
                elif t < oldest:
                    del key.replay[rid]
                    changed = True
        return changed

    def _count(self, known: bool) -> int:
        return sum(1 for k in self.keys for _, kn in k.replay.values() if kn is known)

    def seen_initial(self, prekey: OwnPrekey, ephemeral: bytes) -> bool:
        """Whether this key agreement was taken before (while its entry lives)."""
        return _replay_id(ephemeral) in prekey.replay

    def touch_initial(self, prekey: OwnPrekey, ephemeral: bytes, created_ms: int) -> bool:
        """A packet created at ``created_ms`` carried this key agreement: keep its entry until
        that packet is past the horizon too; True when the entry changed."""
        rid = _replay_id(ephemeral)
        entry = prekey.replay.get(rid)
        if entry is None or created_ms // 1000 <= entry[0]:
            return False
        prekey.replay[rid] = (created_ms // 1000, entry[1])
        return True

    def can_accept(self, prekey: OwnPrekey, known: bool = False) -> bool:
        """Whether a new session may start with ``prekey``: always for a known peer; for a
        stranger while the strangers' entries have room."""
        del prekey  # every prekey shares the budget
        return known or self._count(False) < MAX_STRANGER_AGREEMENTS

    def remember_initial(
        self, prekey: OwnPrekey, ephemeral: bytes, created_ms: int = 0, known: bool = False
    ) -> None:
        """Remember a key agreement taken with ``prekey`` (``known``: from a known peer)."""
        if known and self._count(True) >= MAX_CONTACT_AGREEMENTS:
            entries = [(t, k, rid) for k in self.keys for rid, (t, kn) in k.replay.items() if kn]
            _, key, rid = min(entries, key=lambda e: e[0])
            del key.replay[rid]
        prekey.replay[_replay_id(ephemeral)] = (max(0, created_ms // 1000), known)

    # -- persistence ---------------------------------------------------------------------

    def blob(self) -> bytes:
        return cbor2.dumps(
            [
                2,
                [
                    [
                        k.private,
                        k.signed.signature,
                        k.signed.created_ms,
                        k.retired_ms,
                        k.entries(),
                    ]
                    for k in self.keys
                ],
            ],
            canonical=True,
        )

    @classmethod
    def from_blob(cls, identity: Identity, blob: bytes) -> PrekeyState:
        """Rebuild the state; raises :class:`StoreError` if the blob is not one of ours."""
        if len(blob) > _MAX_BLOB:
            raise StoreError("prekey state too large")
        try:
            version, entries = cbor2.loads(blob)
            if version not in (1, 2) or not isinstance(entries, list):
                raise ValueError("layout")
            keys = []
            for private, sig, created, retired, replay in entries:
                public = bytes(PrivateKey(private).public_key)
                signed = SignedPrekey(public, sig, created)
                if not signed.verify(identity.public):
                    raise ValueError("a prekey not signed by this identity")
                if retired is not None and type(retired) is not int:
                    raise ValueError("retired")
                keys.append(OwnPrekey(private, signed, retired, _read_replay(version, replay)))
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"unreadable prekey state: {exc}") from exc
        return cls(identity, keys)


def _read_replay(version: int, replay: object) -> dict[bytes, tuple[int, bool]]:
    """A prekey's replay cache as stored (format 1: a list of hashes, not yet dated)."""
    if version == 1:
        if not isinstance(replay, list):
            raise ValueError("replay cache")
        if not all(isinstance(e, bytes) and len(e) == _REPLAY_ID for e in replay):
            raise ValueError("replay cache")
        return dict.fromkeys(replay, (0, False))
    if not isinstance(replay, bytes) or len(replay) % _ENTRY:
        raise ValueError("replay cache")
    out: dict[bytes, tuple[int, bool]] = {}
    for i in range(0, len(replay), _ENTRY):
        entry = replay[i : i + _ENTRY]
        if entry[-1] not in (0, 1):
            raise ValueError("replay cache flag")
        out[entry[:_REPLAY_ID]] = (int.from_bytes(entry[_REPLAY_ID:-1], "big"), entry[-1] == 1)
    return out
