"""The engine's sync glue: sync and erasure blobs between my own devices.

:class:`SyncGlue` registers control blob kinds 19 (SyncMessage) and 20 (Erased) with the
account glue, which passes them on only when the session's authenticated peer is one of this
account's other devices (``AccountBook.is_own_device``); the glue checks it once more, so a
blob from anyone else never becomes an event. What arrives comes out as
:class:`~meshchat.events.SyncArrived` / :class:`~meshchat.events.ErasedArrived` for the node,
which runs the reconciliation against its store (:mod:`meshchat.node._sync`); what the node
sends goes back through :meth:`SyncGlue.send` and :meth:`SyncGlue.erased`, sealed to that
device and retried until acked like every account blob.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from meshchat.errors import SyncError, SyncReason
from meshchat.events import ErasedArrived, SyncArrived
from meshchat.identity import PublicIdentity
from meshchat.sync.wire import (
    KIND_ERASED,
    KIND_SYNC,
    MAX_ERASED_IDS,
    Erased,
    decode_sync_blob,
    sync_blob,
)

if TYPE_CHECKING:
    from meshchat.engine import Engine, Output

__all__ = ["SyncGlue"]


class SyncGlue:
    """Sync blobs inside one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        engine.account_glue.register(KIND_SYNC, self._on_sync, own_devices_only=True)
        engine.account_glue.register(KIND_ERASED, self._on_erased, own_devices_only=True)

    def _mine(self, sender: PublicIdentity) -> None:
        if not self.engine.accounts.is_own_device(sender.node_id):
            raise SyncError(SyncReason.NOT_MY_DEVICE, f"{sender.short_id} is not my device")

    def _on_sync(self, sender: PublicIdentity, blob: bytes, now_ms: int) -> list[Output]:
        self._mine(sender)
        return [SyncArrived(sender, decode_sync_blob(blob))]

    def _on_erased(self, sender: PublicIdentity, blob: bytes, now_ms: int) -> list[Output]:
        self._mine(sender)
        erased = Erased.decode(blob)
        return [ErasedArrived(sender, erased.conversation, erased.msg_ids)]

    def own_devices(self) -> tuple[PublicIdentity, ...]:
        """My other devices (on this account's current list)."""
        return self.engine.accounts.own_devices()

    def send(self, device: PublicIdentity, data: bytes, now_ms: int) -> list[Output]:
        """Send sync bytes to my ``device`` (refused for any other device)."""
        self._mine(device)
        return self.engine.account_glue.send(device, sync_blob(data), now_ms)

    def erased(self, conversation: str, msg_ids: Sequence[bytes], now_ms: int) -> list[Output]:
        """Tell each of my other devices that these messages (none: the whole conversation)
        were deleted here."""
        ids = list(dict.fromkeys(msg_ids))
        chunks = [ids[i : i + MAX_ERASED_IDS] for i in range(0, len(ids), MAX_ERASED_IDS)]
        blobs = [Erased(conversation, tuple(c)).encode() for c in chunks or [[]]]
        out: list[Output] = []
        for device in self.own_devices():
            for blob in blobs:
                out.extend(self.engine.account_glue.send(device, blob, now_ms))
        return out
