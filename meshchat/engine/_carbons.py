"""The engine's carbons glue: my sent messages copied to my other devices (control blob 18).

:class:`CarbonGlue` belongs to one :class:`~meshchat.engine.Engine`. When the engine queues a
new direct message (:meth:`~meshchat.engine.Engine.send_direct`), :meth:`CarbonGlue.sent`
seals a :class:`~meshchat.account.carbon.Carbon` of it to each of this account's other devices
as an account control blob (the account glue cuts it into parts, retried until acked and kept
across restarts; the mesh carries them store-and-forward to a device that is offline). A
message reloaded from the outbox at start gets none again: its carbons are in flight already.

Receiving: the account glue hands blob 18 here only from a device on this account's own list
(a stranger's carbon is refused there); :meth:`CarbonGlue.on_blob` also refuses a carbon of a
*sent* message that names another device as its sender (a device speaks only for itself) and
reports the rest as :class:`~meshchat.events.CarbonReceived`, which the node stores in
``dm:<peer account>``: as this person's own message for a sent one (no outbox row), as
received from its sender for a received one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from meshchat.account.carbon import KIND_CARBON, Carbon, Direction
from meshchat.errors import PacketError, PacketReason
from meshchat.events import CarbonReceived
from meshchat.identity import PublicIdentity
from meshchat.wire.payloads import MessageBody

if TYPE_CHECKING:
    from meshchat.engine import Engine, Output

__all__ = ["CarbonGlue"]


class CarbonGlue:
    """Carbons inside one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        engine.account_glue.register(KIND_CARBON, self.on_blob)

    def sent(self, recipient: PublicIdentity, body: MessageBody, now_ms: int) -> list[Output]:
        """Copy a direct message just queued for ``recipient`` to my other devices."""
        engine = self.engine
        own = engine.directory.own_devices()
        peer = engine.directory.account_of(recipient.node_id)
        if not own or peer == engine.directory.account_of(engine.identity.node_id):
            return []  # no other device, or a note to one of my own devices
        blob = Carbon(peer, Direction.SENT, engine.identity.node_id, body).encode()
        out: list[Output] = []
        for device in own:
            out.extend(engine.account_glue.send(device, blob, now_ms))
        return out

    def on_blob(self, sender: PublicIdentity, blob: bytes, now_ms: int) -> list[Output]:
        """A carbon from ``sender``, one of my devices (the account glue checked that)."""
        carbon = Carbon.decode(blob)
        if carbon.direction is Direction.SENT and carbon.sender != sender.node_id:
            raise PacketError(PacketReason.BAD_FIELD, "carbon: a sent message of another device")
        return [CarbonReceived(carbon, sender)]
