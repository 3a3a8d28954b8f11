"""The engine's carbons glue: what I send and receive copied to my other devices (blob 18).

:class:`CarbonGlue` belongs to one :class:`~meshchat.engine.Engine`. When the engine queues a
new direct message (:meth:`~meshchat.engine.Engine.send_direct`), :meth:`CarbonGlue.sent`
seals a :class:`~meshchat.account.carbon.Carbon` of it to each of this account's other devices
as an account control blob (the account glue cuts it into parts, retried until acked and kept
across restarts; the mesh carries them store-and-forward to a device that is offline). A
message reloaded from the outbox at start gets none again: its carbons are in flight already.

A direct message *received* (:meth:`CarbonGlue.received`) reaches my other devices by the
sender's own fan-out when the sender holds my account's current list; the account glue knows
that a device does once it acked a share of that list (followed in memory, so after a restart
until the next ack), and takes a message sent two minutes after that ack (clocks differ) as
fanned out. A message from a device not known to hold it is copied to my other
devices as a received carbon, and the list is shared with that device again.

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

    def received(self, sender: PublicIdentity, body: MessageBody, now_ms: int) -> list[Output]:
        """Copy a direct message just received from ``sender`` to my other devices, unless
        ``sender`` is known to hold this account's current list (its fan-out sealed a copy
        to each of them already). Such a sender, when a contact, is also sent the list, so
        that it fans out itself from then on (and its messages stop costing a carbon each)."""
        engine = self.engine
        own = engine.directory.own_devices()
        glue = engine.account_glue
        peer = engine.directory.account_of(sender.node_id)
        if not own or peer == engine.directory.account_of(engine.identity.node_id):
            return []  # no other device, or a note from one of my own devices
        if glue.holds_own_list(sender.node_id, body.sent_ms):
            return []
        blob = Carbon(peer, Direction.RECEIVED, sender.node_id, body).encode()
        out: list[Output] = []
        for device in own:
            out.extend(glue.send(device, blob, now_ms))
        if sender.node_id in engine.router.contacts and not glue.sharing_own_list(sender.node_id):
            out.extend(glue.share_own(now_ms, [sender]))
        return out

    def on_blob(self, sender: PublicIdentity, blob: bytes, now_ms: int) -> list[Output]:
        """A carbon from ``sender``, one of my devices (the account glue checked that)."""
        carbon = Carbon.decode(blob)
        if carbon.direction is Direction.SENT and carbon.sender != sender.node_id:
            raise PacketError(PacketReason.BAD_FIELD, "carbon: a sent message of another device")
        return [CarbonReceived(carbon, sender)]
