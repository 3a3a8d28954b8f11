"""Which files a node takes, by size, sender and the links that reach the sender. Pure.

A file over the limit of every medium that reaches its sender is refused: a 5 MB file over a
BLE-only path would hold the radio for minutes (bitchat's limit there is 1 MiB). Below the
limit, a file from a verified contact that is small enough is taken at once; anything else
waits for the person's yes. The defaults are stated here; a node may pass its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from meshchat.files.manifest import MAX_FILE_SIZE, FileManifest

__all__ = ["Decision", "FilePolicy", "Verdict"]

_MIB = 1 << 20


class Verdict(Enum):
    ACCEPT = "accept"  #: start pulling now
    ASK = "ask"  #: show it, and pull when the person says yes
    REFUSE = "refuse"  #: too large for the links that reach the sender


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    #: the size limit that applied (the largest of the media that reach the sender)
    limit: int
    why: str


@dataclass(frozen=True, slots=True)
class FilePolicy:
    """Size limits per medium (the names links report: ``ble``, ``lan``, ``relay``, ``dht``,
    ``mem``) and the auto-accept threshold. A medium not named gets ``other``."""

    ble: int = _MIB
    lan: int = 256 * _MIB
    relay: int = 16 * _MIB
    dht: int = 16 * _MIB
    other: int = 16 * _MIB
    #: files up to this size from a verified contact are taken without asking
    auto_accept: int = 5 * _MIB

    def __post_init__(self) -> None:
        for name in ("ble", "lan", "relay", "dht", "other", "auto_accept"):
            value = getattr(self, name)
            if type(value) is not int or not 0 <= value <= MAX_FILE_SIZE:
                raise ValueError(f"{name} must be a size in 0..{MAX_FILE_SIZE}, not {value!r}")

    def limit(self, media: Iterable[str]) -> int:
        """The largest file the given media may carry (0 when there is none)."""
        known = {"ble": self.ble, "lan": self.lan, "relay": self.relay, "dht": self.dht}
        return max((known.get(m, self.other) for m in media), default=0)

    def decide(self, manifest: FileManifest, *, verified: bool, media: Iterable[str]) -> Decision:
        """What to do with an announced file from a sender reached over ``media``."""
        limit = self.limit(media)
        if manifest.size > limit:
            why = f"{manifest.size} bytes over the {limit}-byte limit of the links to the sender"
            return Decision(Verdict.REFUSE, limit, why)
        if verified and manifest.size <= self.auto_accept:
            return Decision(Verdict.ACCEPT, limit, "small, from a verified contact")
        why = "not from a verified contact" if not verified else "larger than auto-accept"
        return Decision(Verdict.ASK, limit, why)
