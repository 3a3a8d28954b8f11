"""Whether members applied the roster updates this node sent them as an admin.

Theory of operation. A roster update travels to each member as a blob cut into acked parts. A
member acks a part it keeps, and the part that completes a blob only once it applied the blob;
a blob it cannot keep or refuses it does not ack, and it answers with ``NotApplied``
(:mod:`.control`). So the admin counts a member's update as :data:`~._state.APPLIED` once every
part is acked, as :data:`~._state.NOT_APPLIED` when the member says so or a part expires (or is
dropped, e.g. when the member's keys are distrusted), and as :data:`~._state.PENDING` until
then. Only the latest roster's updates are followed: a new roster starts afresh. A change to
not applied comes out as a :class:`~meshchat.events.GroupChanged` notice (``what`` is
``"not applied"``, ``by`` the member).

A member that could not keep the parts (``NotApplied`` with reason ``DROPPED``: its
reassembly budget was taken) is sent the latest update once more, as a new blob, while this
node still holds it in memory (not after a restart); if that one is dropped too, it is not
applied.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from meshchat.events import GroupChanged
from meshchat.group._state import (
    APPLIED,
    NOT_APPLIED,
    PENDING,
    BookState,
    ControlSend,
    Group,
    Tracked,
)
from meshchat.group.control import DROPPED, NotApplied

__all__ = ["Deliveries"]

#: blob ids of updates sent again, remembered at most (so each is sent again only once)
_MAX_RESENT = 1024


class Deliveries:
    """Follows the roster updates of one book (the book hands its state to every call)."""

    def __init__(self) -> None:
        self._notices: list[GroupChanged] = []
        #: group id -> (epoch, update blob) of the latest roster this node made
        self._latest: dict[bytes, tuple[int, bytes]] = {}
        self._resent: OrderedDict[bytes, None] = OrderedDict()

    def remember(self, group: Group, blob: bytes) -> None:
        """The update blob of ``group``'s latest roster (to send again if a member drops it)."""
        self._latest[group.group_id] = (group.roster.epoch, blob)

    def resend(
        self, state: BookState, groups: dict[bytes, Group], sender: bytes, message: NotApplied
    ) -> tuple[Group, list[bytes], bytes] | None:
        """If ``sender`` dropped our latest update (once): the group, the msg ids of the parts
        to stop and the blob to send again; else None."""
        tracked = state.tracked.get(message.blob_id)
        if message.reason != DROPPED or tracked is None or tracked.recipient != sender:
            return None
        group = groups.get(tracked.group_id)
        latest = self._latest.get(tracked.group_id)
        if group is None or latest is None or message.blob_id in self._resent:
            return None
        if not latest[0] == tracked.epoch == group.roster.epoch:
            return None
        del state.tracked[message.blob_id]
        return group, sorted(tracked.parts), latest[1]

    def resent(self, blob_id: bytes) -> None:
        """``blob_id`` is an update sent again: if it is dropped too, it is not applied."""
        self._resent[blob_id] = None
        while len(self._resent) > _MAX_RESENT:
            self._resent.popitem(last=False)

    def start(self, state: BookState, group: Group) -> None:
        """A new roster of ``group`` by this node: forget how the older ones went."""
        for blob_id, tracked in list(state.tracked.items()):
            if tracked.group_id == group.group_id:
                del state.tracked[blob_id]
        group.delivery = {}

    def track(self, state: BookState, group: Group, sends: Iterable[ControlSend]) -> None:
        """The parts of one member's update are on their way."""
        parts = list(sends)
        if not parts:
            return
        recipient = parts[0].recipient.node_id
        state.tracked[parts[0].part.blob_id] = Tracked(
            recipient, group.group_id, group.roster.epoch, {s.part.msg_id for s in parts}
        )
        group.delivery[recipient] = PENDING

    def acked(self, state: BookState, groups: dict[bytes, Group], msg_id: bytes) -> bytes | None:
        """A part was acked; returns the group id whose delivery states changed, if any."""
        for blob_id, tracked in state.tracked.items():
            if msg_id in tracked.parts:
                tracked.parts.discard(msg_id)
                if tracked.parts:
                    return None
                del state.tracked[blob_id]
                return self._set(groups, tracked, APPLIED)
        return None

    def failed(self, state: BookState, groups: dict[bytes, Group], msg_id: bytes) -> bytes | None:
        """A part ended without an ack (expired or dropped); returns the changed group id."""
        for blob_id, tracked in state.tracked.items():
            if msg_id in tracked.parts:
                del state.tracked[blob_id]
                return self._set(groups, tracked, NOT_APPLIED)
        return None

    def not_applied(
        self, state: BookState, groups: dict[bytes, Group], sender: bytes, blob_id: bytes
    ) -> tuple[list[bytes], bytes | None]:
        """``sender`` says it did not apply our blob ``blob_id``: the msg ids of its parts
        still being sent (to stop), and the changed group id."""
        tracked = state.tracked.get(blob_id)
        if tracked is None or tracked.recipient != sender:
            return [], None
        del state.tracked[blob_id]
        return sorted(tracked.parts), self._set(groups, tracked, NOT_APPLIED)

    def _set(self, groups: dict[bytes, Group], tracked: Tracked, what: str) -> bytes | None:
        group = groups.get(tracked.group_id)
        if group is None or group.roster.epoch != tracked.epoch:
            return None
        if tracked.recipient not in group.delivery:
            return None
        group.delivery[tracked.recipient] = what
        if what == NOT_APPLIED:
            member = group.roster.member(tracked.recipient)
            self._notices.append(GroupChanged(group.group_id, group.name, NOT_APPLIED, member))
        return group.group_id

    def take_notices(self) -> list[GroupChanged]:
        notices, self._notices = self._notices, []
        return notices
