"""Group messages: sealing ours and opening members' in the sender chains of their epoch.

A mixin of :class:`~meshchat.group.book.GroupBook` (the book's own state is declared below).
A message whose sender's chain has not arrived yet is held in its group (at most
:data:`MAX_WAITING`) and handed out again by :meth:`GroupMessages.take_waiting` once it has.
"""

from __future__ import annotations

from nacl.signing import SigningKey

from meshchat.crypto.direct import anonymous_packet
from meshchat.errors import DecryptionError, PacketError, UsageError
from meshchat.group._state import Epoch, Group
from meshchat.group.sender_keys import open_body, open_header, seal_message
from meshchat.identity import PublicIdentity
from meshchat.wire import codec
from meshchat.wire.packet import Destination, Packet, PacketKind, Suite

__all__ = ["MAX_WAITING", "GroupMessages", "KeyPending"]

#: Messages held per group while their sender's chain has not arrived.
MAX_WAITING = 64


class KeyPending(DecryptionError):
    """A group message from a member whose sender key has not arrived yet: it is held."""


class GroupMessages:
    """Sealing and opening group messages (mixed into the group book)."""

    groups: dict[bytes, Group]
    _addresses: dict[bytes, tuple[Group, Epoch]]
    _dirty: set[bytes]

    @property
    def me(self) -> bytes:
        raise NotImplementedError

    def _group(self, group_id: bytes) -> Group:
        raise NotImplementedError

    def seal(self, group_id: bytes, body: bytes, now_ms: int, ttl: int) -> Packet:
        """A suite GROUP packet carrying ``body`` in the group's current epoch."""
        group = self._group(group_id)
        epoch = group.current
        if epoch is None:
            raise UsageError(f"no longer a member of {group.name}")
        key = SigningKey.generate()
        origin = bytes(key.verify_key)
        payload, after = seal_message(
            epoch.keys, epoch.own_chain, SigningKey(epoch.own_signing), self.me, origin, body
        )
        epoch.own_chain = after
        self._dirty.add(group_id)
        return anonymous_packet(
            key,
            PacketKind.MESSAGE,
            Destination.channel(epoch.keys.address),
            payload,
            now_ms,
            ttl,
            Suite.GROUP,
        )

    def is_group_address(self, address: bytes) -> bool:
        return address in self._addresses

    def open(self, packet: Packet) -> tuple[Group, PublicIdentity, bytes]:
        """Open a GROUP packet to one of our addresses: (group, sender, body).

        Raises :class:`KeyPending` (and holds the packet) when the sender's chain has not
        arrived yet, :class:`DecryptionError` for anything that does not open.
        """
        target = self._addresses.get(packet.destination.value)
        if target is None:
            raise DecryptionError("not one of our group addresses")
        group, epoch = target
        header = open_header(epoch.keys, packet.origin, packet.payload)
        member = epoch.roster.member(header.sender_node_id)
        if (
            member is None
            or member.node_id == self.me
            or group.roster.member(member.node_id) is None
        ):
            # (also in an older epoch: from someone the latest roster dropped)
            raise DecryptionError("group message from someone not a member")
        entry = epoch.peers.get(member.node_id)
        if entry is None:
            frame = codec.encode(packet)
            if frame not in group.waiting:
                group.waiting.append(frame)
                del group.waiting[:-MAX_WAITING]
                self._dirty.add(group.group_id)
            raise KeyPending("sender key not received yet; message held")
        chain, signing = entry
        message_key, after = chain.key_for(header.iteration)
        body = open_body(epoch.keys, message_key, signing, packet.origin, header, packet.payload)
        epoch.peers[member.node_id] = (after, signing)
        self._dirty.add(group.group_id)
        return group, member, body

    def take_waiting(self) -> list[Packet]:
        """Held messages whose sender's chain is now here, removed from the hold."""
        ready: list[Packet] = []
        for group in self.groups.values():
            keep: list[bytes] = []
            for frame in group.waiting:
                try:
                    packet = codec.parse(frame)
                except PacketError:
                    continue
                target = self._addresses.get(packet.destination.value)
                if target is None:
                    continue  # its epoch is gone
                try:
                    header = open_header(target[1].keys, packet.origin, packet.payload)
                except DecryptionError:
                    continue
                if header.sender_node_id in target[1].peers:
                    ready.append(packet)
                else:
                    keep.append(frame)
            if keep != group.waiting:
                group.waiting = keep
                self._dirty.add(group.group_id)
        return ready
