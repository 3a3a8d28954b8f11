"""The node's small public types and its constants."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from meshchat.catchup import CatchupTimings
from meshchat.crypto.channel import ChannelKey
from meshchat.errors import IdentityError
from meshchat.events import GroupChanged, LinkProgress
from meshchat.files.policy import FilePolicy
from meshchat.files.serve import ServeLimits
from meshchat.files.transfer import Limits
from meshchat.identity import ContactCard, PublicIdentity, SignedPrekey
from meshchat.router.flood import RouterConfig
from meshchat.store.history import DEFAULT_HISTORY, HistoryBudget
from meshchat.store.records import Channel, Contact, Message, MessageState
from meshchat.target import GROUP_MARK, GROUP_PREFIX
from meshchat.wire.packet import DEFAULT_TTL, MAX_AGE_MS

__all__ = [
    "ANNOUNCE_EVERY_MS",
    "GROUP_MARK",
    "GROUP_PREFIX",
    "HOUSEKEEPING_S",
    "LINK_QUEUE",
    "MAX_ANNOUNCED",
    "MAX_BATCH",
    "MAX_HEARD",
    "Bridge",
    "DevicesNotice",
    "FileOptions",
    "LinkInfo",
    "NodeNotice",
    "NodeOptions",
    "channel_key",
    "contact_keys",
    "wall_clock_ms",
]

ANNOUNCE_EVERY_MS = 10 * 60 * 1000
HOUSEKEEPING_S = 1.0
#: most node ids remembered as heard on local links (for gateways; oldest forgotten first)
MAX_HEARD = 1024
#: most announced identities a node remembers in memory (see NodeOptions.max_announced)
MAX_ANNOUNCED = 4096
#: most queued frames the worker takes into one batch (one commit)
MAX_BATCH = 256
#: most frames queued from one link (or from the internet transports together)
LINK_QUEUE = 1024

#: the store's crypto-state kinds: one ratchet record per peer, this node's prekeys, groups
SESSION_STATE = "session"
PREKEY_STATE = "prekeys"
GROUP_STATE = "group"


NODE_SERVE = ServeLimits(rate=10240, burst=256, total_rate=20480, total_burst=1024)
#: a node pulls with more pieces in flight than the core's default (32 from one source, 51 kB:
#: 5 s of a slow BLE link, within the request timeout): between two processes a round trip
#: includes each end's turn on a CPU, and with 16 the pipe was empty for much of it (each
#: end spent 15-20% more CPU per chunk, in smaller batches)
NODE_LIMITS = Limits(window=64, per_source=32)


@dataclass(frozen=True, slots=True)
class FileOptions:
    """Where received files go and the bounds of transfers. ``downloads`` None: files are
    neither received nor resumed (a node without a home); ``state`` is the file that keeps
    transfers across restarts (None: kept in memory only)."""

    downloads: str | None = None
    state: str | None = None
    policy: FilePolicy = field(default_factory=FilePolicy)
    limits: Limits = field(default_factory=lambda: NODE_LIMITS)
    #: per asker about 15.7 MB/s, 31 MB/s to all (above a 100 Mbit/s LAN; BLE is far slower)
    serve: ServeLimits = field(default_factory=lambda: NODE_SERVE)
    #: finished transfers listed by ``meshchat transfers`` (the oldest are forgotten)
    keep_finished: int = 200


@dataclass(frozen=True, slots=True)
class NodeOptions:
    ttl: int = DEFAULT_TTL
    announce: bool = True
    #: most frames queued in the inbox, all links together
    inbox_size: int = 4096
    router: RouterConfig = field(default_factory=RouterConfig)
    message_lifetime_ms: int = MAX_AGE_MS
    #: most frames queued from one link (see :mod:`meshchat.node._inbox`)
    link_queue: int = LINK_QUEUE
    #: how much incoming history each channel keeps, per channel and per sender, and for
    #: how long (see :mod:`meshchat.store.history`; defaults 8 MiB, 512 KiB, 30 days)
    history: HistoryBudget = DEFAULT_HISTORY
    #: most announced identities remembered (names, gateways); the least recent go first
    max_announced: int = MAX_ANNOUNCED
    #: how often group and channel members ask for, tell and resend history
    #: (see :mod:`meshchat.catchup`)
    catchup: CatchupTimings = field(default_factory=CatchupTimings)
    #: files: where they are saved and what is taken (see :mod:`meshchat.node._files`)
    files: FileOptions = field(default_factory=FileOptions)


class Bridge(Protocol):
    """A conversation bridged to another network (bitchat, Meshtastic): what the node asks."""

    async def send_text(self, text: str) -> Message: ...

    def status(self) -> dict[str, Any]: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True, slots=True)
class LinkInfo:
    """A neighbour as the UI and ``meshchat peers`` show it."""

    link_id: str
    transport: str
    node_id: bytes
    name: str
    describe: str
    since_ms: int


@dataclass(frozen=True, slots=True)
class DevicesNotice:
    """An account's devices changed (see :mod:`meshchat.node._devices`)."""

    account_id: bytes
    #: the account's contact name ("" for the user's own account or an unknown one)
    name: str
    own: bool
    added: tuple[bytes, ...]
    revoked: tuple[bytes, ...]
    #: not signed by a device the user already trusted on that account: show it loudly
    loud: bool
    #: this very device was revoked by another device of the account
    this_device_revoked: bool = False


@dataclass(frozen=True, slots=True)
class NodeNotice:
    """Something the faces may want to redraw: ``kind`` is message, state, links, peer, sync,
    group, history (the order of ``conversation`` changed: messages were deleted or
    released; re-read it) or read (the user read ``conversation``: bridges send receipts)."""

    kind: str
    message: Message | None = None
    msg_id: bytes | None = None
    state: MessageState | None = None
    #: for kind ``group``: what changed, when the engine said (None for this node's own edits)
    group: GroupChanged | None = None
    #: for kind ``history``: the conversation to re-read
    conversation: str | None = None
    #: for kind ``link``: the step a link exchange took
    link: LinkProgress | None = None
    #: for kind ``devices``: whose devices changed, and how loudly to say it
    devices: DevicesNotice | None = None


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def contact_keys(contact: Contact) -> tuple[PublicIdentity, SignedPrekey | None]:
    """A contact's keys and the signed prekey of the card it was added from (if any)."""
    prekey = None
    if contact.card:
        try:
            prekey = ContactCard.from_text(contact.card).prekey
        except IdentityError:
            prekey = None
    return PublicIdentity(contact.sign_public, contact.box_public), prekey


def channel_key(channel: Channel) -> ChannelKey:
    if channel.key is None:
        return ChannelKey.public(channel.name)
    return ChannelKey.from_key(channel.name, channel.key)
