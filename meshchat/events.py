"""What the engine tells the application: messages in, delivery progress, peers heard."""

from __future__ import annotations

from dataclasses import dataclass, field

from meshchat.account.book import ListChange
from meshchat.account.carbon import Carbon
from meshchat.identity import PublicIdentity, SignedPrekey

__all__ = [
    "AttemptMade",
    "CarbonReceived",
    "DeviceListChanged",
    "DeviceListUpdated",
    "ErasedArrived",
    "Event",
    "FileArrived",
    "GroupChanged",
    "GroupStateUpdated",
    "HistoryReceived",
    "LinkProgress",
    "MessageDelivered",
    "MessageExpired",
    "MessageReceived",
    "MessageRejected",
    "MessageSent",
    "PeerAnnounced",
    "PrekeysUpdated",
    "SessionUpdated",
    "SyncArrived",
]


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A message for this node or one of its channels, decrypted and authenticated.

    The owner must store it before executing the actions that follow it (the ack).
    """

    conversation: str
    msg_id: bytes
    sender: PublicIdentity | None  # None on a channel: only the signing key is known
    #: the sender's Ed25519 identity key: the key that signed the packet, or for a sealed
    #: direct message (whose packet is signed by a one-packet key) the key authenticated
    #: inside the ciphertext
    sender_key: bytes
    text: str
    created_ms: int
    packet_id: bytes
    #: hops the relays *claim* the packet took: not signed, any relay may rewrite it (and
    #: raise the TTL within the cap), so it is untrusted and never a distance to show as fact
    hops: int
    #: the sender's clock when it wrote the message (the same in every retry); the packet's
    #: creation time for a body from an older node, which carries none
    sent_ms: int
    #: the messages it follows in the conversation (blocking), and those it names without
    #: waiting for them (files, voice): checked bounds, but the sender's claim
    parents: tuple[bytes, ...] = ()
    loose: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class HistoryReceived:
    """A group member or channel sender summed up its history: the newest messages it shows
    (``heads``) and the ones it lacks (``wants``). Never acked; the owner decides whether
    to answer (see :meth:`~meshchat.engine.Engine.send_history`)."""

    #: the conversation, named as :class:`MessageReceived` names it
    conversation: str
    #: the sender's Ed25519 identity key (a group member), or the packet's signing key (a
    #: channel: only that key is known)
    sender_key: bytes
    heads: tuple[bytes, ...]
    wants: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class MessageSent:
    """A packet carrying the message left on at least one link."""

    msg_id: bytes
    packet_id: bytes
    #: the device whose copy left (b"": a channel or group message)
    device: bytes = field(default=b"", compare=False)


@dataclass(frozen=True, slots=True)
class MessageDelivered:
    """The recipient's end-to-end ack for a direct message arrived (from ``device``: the
    message is delivered once any device of the recipient's account acked)."""

    msg_id: bytes
    device: bytes = field(default=b"", compare=False)
    #: no other copy of the message is in flight (its outbox row can end)
    last: bool = field(default=True, compare=False)


@dataclass(frozen=True, slots=True)
class MessageExpired:
    """A copy of the message expired (or could not be built) before any ack; the message
    failed when ``last`` (no other copy in flight)."""

    msg_id: bytes
    device: bytes = field(default=b"", compare=False)
    last: bool = field(default=True, compare=False)


@dataclass(frozen=True, slots=True)
class AttemptMade:
    """A retry was scheduled; the owner persists it so a restart keeps the backoff."""

    msg_id: bytes
    attempts: int
    next_try_ms: int
    #: the device whose copy was tried
    device: bytes = field(default=b"", compare=False)


@dataclass(frozen=True, slots=True)
class MessageRejected:
    """A packet for us that did not open or parse. Logged locally; nothing goes on the wire."""

    reason: str
    packet_id: bytes
    link: str | None


@dataclass(frozen=True, slots=True)
class PeerAnnounced:
    identity: PublicIdentity
    name: str
    #: untrusted, as :attr:`MessageReceived.hops`
    hops: int
    #: the signed prekey it announced (its signature is not checked here)
    prekey: SignedPrekey | None = None
    #: it says it is a gateway to the internet
    gateway: bool = False


@dataclass(frozen=True, slots=True)
class SessionUpdated:
    """The session state kept for a peer changed; ``blob`` replaces what is stored for it.

    The owner must store it before executing the actions that follow it: a packet sent with a
    ratchet step that is then lost in a crash would reuse a message key after the restart,
    and an ack sent before the state is stored could confirm a message the restarted node
    can no longer account for.
    """

    peer_node_id: bytes
    blob: bytes


@dataclass(frozen=True, slots=True)
class PrekeysUpdated:
    """This node's signed prekeys (or their replay caches) changed; store ``blob`` before
    going on, under the node's own id (:meth:`~meshchat.engine.Engine.load_sessions`)."""

    blob: bytes


@dataclass(frozen=True, slots=True)
class GroupChanged:
    """A group this node is in changed: ``what`` is ``joined``, ``changed``, ``removed`` (this
    node was taken off the roster; its keys for the group are erased), ``left``, ``refused``
    (an invitation from someone who is not a contact: nothing was kept), or ``not applied``
    (as the roster's admin: member ``by`` did not apply our latest roster update)."""

    group_id: bytes
    name: str
    what: str
    by: PublicIdentity | None = None


@dataclass(frozen=True, slots=True)
class GroupStateUpdated:
    """A group's state (roster, epoch keys, sender chains) changed; store ``blob`` under
    ``key`` before going on, as with :class:`SessionUpdated`."""

    key: bytes
    blob: bytes


@dataclass(frozen=True, slots=True)
class DeviceListUpdated:
    """An account's device list (this node's own or a peer's) changed; store ``blob`` under
    ``account_id`` before going on, as with :class:`SessionUpdated`."""

    account_id: bytes
    blob: bytes


@dataclass(frozen=True, slots=True)
class DeviceListChanged:
    """An account's devices changed (added or revoked): a notice for the user. ``loud``
    when the change was not signed by a device the viewer already held and trusted on the
    account's list."""

    change: ListChange
    loud: bool


@dataclass(frozen=True, slots=True)
class LinkProgress:
    """A link exchange moved on (:mod:`meshchat.engine._link`): for the faces.

    ``role`` is ``existing`` (this device showed the code) or ``new`` (it was given one);
    ``state`` a :class:`~meshchat.account.linking.LinkState` value; ``string`` the
    confirmation string once both nonces are known; ``peer`` the other device and
    ``peer_name`` the new device's name as it gave it (unchecked: sanitize before showing);
    ``reason`` a :class:`~meshchat.errors.LinkReason` value once it ended."""

    role: str
    state: str
    string: str
    peer: PublicIdentity | None
    peer_name: str
    reason: str | None


@dataclass(frozen=True, slots=True)
class CarbonReceived:
    """Another device of this person copied a direct message to this one (control blob 18,
    :mod:`meshchat.account.carbon`); the owner stores it in ``carbon.conversation`` (a sent
    one as this person's own, with no outbox row)."""

    carbon: Carbon
    #: the device of mine that sent the carbon (the session's authenticated peer)
    device: PublicIdentity


@dataclass(frozen=True, slots=True)
class SyncArrived:
    """Sync bytes (control blob 19) from one of my own devices, for the node's sync."""

    device: PublicIdentity
    data: bytes


@dataclass(frozen=True, slots=True)
class ErasedArrived:
    """My ``device`` deleted these messages of ``conversation`` (none: all of it); blob 20."""

    device: PublicIdentity
    conversation: str
    msg_ids: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class FileArrived:
    """A file body (request, piece or missing; :mod:`meshchat.files.wire`) for this node, from
    the node ``peer`` (its id, bound to the packet's signing key), on ``link``."""

    peer: bytes
    body: bytes
    link: str | None


Event = (
    MessageReceived
    | FileArrived
    | CarbonReceived
    | SyncArrived
    | ErasedArrived
    | HistoryReceived
    | MessageSent
    | MessageDelivered
    | MessageExpired
    | AttemptMade
    | MessageRejected
    | PeerAnnounced
    | SessionUpdated
    | PrekeysUpdated
    | GroupChanged
    | GroupStateUpdated
    | DeviceListUpdated
    | DeviceListChanged
    | LinkProgress
)
