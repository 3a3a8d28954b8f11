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
  initial message that already started a session is refused instead of starting it again. The
  cache of a prekey is bounded (:data:`REPLAY_CAPACITY`); when the current prekey's cache fills
  up, the prekey is rotated early, and an old prekey whose cache is full accepts no new
  sessions. No entry is ever evicted while its prekey lives, so the protection has no gap; it
  goes with the prekey.

State events: every change (rotation, deletion, a cache entry) makes :meth:`PrekeyState.blob`
differ; the engine emits it for the store before anything that depends on it goes out.

Blob layout (CBOR): ``[1, [[priv(32), sig(64), created_ms, retired_ms|null, [hash(12)...]]...]]``,
newest prekey first; at most ``MAX_PREKEYS * REPLAY_CAPACITY`` hashes, under 70 KB in all.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import cbor2
from nacl.public import PrivateKey

from meshchat.errors import StoreError
from meshchat.identity import Identity, SignedPrekey

__all__ = [
    "GRACE_MS",
    "MAX_PREKEYS",
    "REPLAY_CAPACITY",
    "ROTATE_MS",
    "OwnPrekey",
    "PrekeyState",
]

ROTATE_MS = 7 * 24 * 3600 * 1000
GRACE_MS = 28 * 24 * 3600 * 1000
REPLAY_CAPACITY = 1024
MAX_PREKEYS = 5
_REPLAY_ID = 12
_MAX_BLOB = 256 * 1024


def _replay_id(ephemeral: bytes) -> bytes:
    return hashlib.blake2b(ephemeral, digest_size=_REPLAY_ID, person=b"mc-x3dh-replay").digest()


@dataclass(slots=True)
class OwnPrekey:
    """One of our signed prekeys with its private half and its replay cache."""

    private: bytes
    signed: SignedPrekey
    retired_ms: int | None = None
    replay: set[bytes] = field(default_factory=set)

    @property
    def public(self) -> bytes:
        return self.signed.public


class PrekeyState:
    """Our signed prekeys, newest first. Times come only from the ``now_ms`` arguments."""

    __slots__ = ("_identity", "keys")

    def __init__(self, identity: Identity, keys: list[OwnPrekey] | None = None) -> None:
        self._identity = identity
        self.keys: list[OwnPrekey] = keys or []

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
        if current is None or (
            now_ms >= current.signed.created_ms + ROTATE_MS
            or len(current.replay) >= REPLAY_CAPACITY
        ):
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
        return changed

    def seen_initial(self, prekey: OwnPrekey, ephemeral: bytes) -> bool:
        return _replay_id(ephemeral) in prekey.replay

    def can_accept(self, prekey: OwnPrekey) -> bool:
        """Whether a new session may still start with ``prekey`` (its cache has room)."""
        return len(prekey.replay) < REPLAY_CAPACITY

    def remember_initial(self, prekey: OwnPrekey, ephemeral: bytes) -> None:
        prekey.replay.add(_replay_id(ephemeral))

    # -- persistence ---------------------------------------------------------------------

    def blob(self) -> bytes:
        return cbor2.dumps(
            [
                1,
                [
                    [
                        k.private,
                        k.signed.signature,
                        k.signed.created_ms,
                        k.retired_ms,
                        sorted(k.replay),
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
            if version != 1 or not isinstance(entries, list):
                raise ValueError("layout")
            keys = []
            for private, sig, created, retired, replay in entries:
                public = bytes(PrivateKey(private).public_key)
                signed = SignedPrekey(public, sig, created)
                if not signed.verify(identity.public):
                    raise ValueError("a prekey not signed by this identity")
                if retired is not None and type(retired) is not int:
                    raise ValueError("retired")
                if not all(isinstance(e, bytes) and len(e) == _REPLAY_ID for e in replay):
                    raise ValueError("replay cache")
                keys.append(OwnPrekey(private, signed, retired, set(replay)))
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"unreadable prekey state: {exc}") from None
        return cls(identity, keys)
