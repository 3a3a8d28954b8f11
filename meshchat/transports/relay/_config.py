"""Relay settings: the broker URL, TLS, credentials, retention, and names derived from them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from meshchat.errors import UsageError

__all__ = [
    "DEFAULT_RETENTION_S",
    "RelayConfig",
    "client_id_for",
    "parse_relay_url",
]

#: how long a broker keeps a message for an offline mailbox unless configured otherwise
DEFAULT_RETENTION_S = 7 * 24 * 3600
_SCHEMES = {"mqtt": (False, 1883), "tcp": (False, 1883), "mqtts": (True, 8883), "ssl": (True, 8883)}


def parse_relay_url(url: str) -> tuple[str, int, bool, str | None, str | None]:
    """``mqtt://[user[:password]@]host[:port]`` -> (host, port, tls, user, password).

    ``mqtts://`` turns TLS on (default port 8883). Raises :class:`UsageError` for anything else.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"bad relay URL {url!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES or not parts.hostname:
        raise UsageError(
            f"a relay URL looks like mqtt://host:1883 or mqtts://host:8883, not {url!r}"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise UsageError(f"a relay URL has no path or query: {url!r}")
    tls, default_port = _SCHEMES[scheme]
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return parts.hostname, port or default_port, tls, user, password


@dataclass(frozen=True, slots=True)
class RelayConfig:
    """How a gateway uses one MQTT broker."""

    url: str
    #: force TLS even for ``mqtt://`` (``mqtts://`` always uses it)
    tls: bool = False
    #: CA bundle to verify the broker with (None: the system's)
    ca_file: str | None = None
    username: str | None = None
    password: str | None = None
    #: ``"auto"`` tries MQTT 5 and falls back to 3.1.1; or ``"5"`` / ``"3.1.1"``
    protocol: str = "auto"
    #: how long the broker should keep a message for an offline mailbox (MQTT 5 expiry)
    retention_s: int = DEFAULT_RETENTION_S
    topic_prefix: str = "mc1"
    #: channels (by name) whose packets this gateway bridges; others never leave the mesh
    bridge_channels: tuple[str, ...] = ()
    #: a node heard on a local link this recently is taken to be reachable by the local flood
    local_window_s: float = 15 * 60
    #: collect the mailboxes of local nodes heard this recently (and of this node)
    serve_window_s: float = DEFAULT_RETENTION_S
    max_mailboxes: int = 256
    #: frames waiting for the broker while it is unreachable (the oldest are dropped beyond)
    outbox_limit: int = 10_000
    max_inflight: int = 64
    reconnect_initial_s: float = 0.5
    reconnect_max_s: float = 60.0
    #: how often the set of mailboxes and local nodes is refreshed
    refresh_s: float = 2.0
    #: a bridged channel id this new here (a channel just joined, a group's new epoch) may
    #: not be subscribed to yet by the other gateways, and a broker keeps nothing for a topic
    #: nobody subscribes to: frames sent to it are published again after these delays
    fresh_s: float = 30.0
    republish_after_s: tuple[float, ...] = (3.0, 20.0)
    #: publish sealed direct messages on the shared sealed topic too, and collect it for the
    #: island (nodes behind this gateway); without it, only this node's own tags are collected
    shared_sealed: bool = True
    #: frames a second (burst: twice that) read on the shared sealed topic that go on to the
    #: island; the rest of the relay link's rate stays for this node's own mail
    shared_rate: float = 50.0
    #: epochs after the current one whose sealed topics a gateway already collects (so that
    #: its persistent session catches mail for it while it is offline that long)
    sealed_ahead: int = 24
    #: most sealed topics collected at once (nearest epochs first)
    max_sealed_topics: int = 2048
    keepalive_s: int = 30
    connect_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        parse_relay_url(self.url)
        if self.protocol not in ("auto", "5", "3.1.1"):
            raise UsageError("relay protocol must be auto, 5 or 3.1.1")
        if self.retention_s < 1 or self.max_mailboxes < 1 or self.outbox_limit < 1:
            raise UsageError("relay retention, mailbox and outbox limits must be positive")
        if not self.topic_prefix or any(c in self.topic_prefix for c in "#+\x00"):
            raise UsageError("relay topic prefix must be non-empty and without wildcards")

    @property
    def endpoint(self) -> tuple[str, int, bool]:
        host, port, tls, _, _ = parse_relay_url(self.url)
        return host, port, tls or self.tls

    @property
    def credentials(self) -> tuple[str | None, str | None]:
        _, _, _, user, password = parse_relay_url(self.url)
        return self.username or user, self.password or password

    @property
    def display(self) -> str:
        """The URL without credentials, for logs and status lines."""
        host, port, tls = self.endpoint
        return f"{'mqtts' if tls else 'mqtt'}://{host}:{port}"


def client_id_for(secret: bytes, config: RelayConfig) -> str:
    """A stable MQTT client id: a keyed hash of a device secret and the broker address.

    Stable, so the broker keeps this gateway's persistent session (its subscriptions and the
    messages queued while it is offline) across reconnects and restarts; derived from a secret
    rather than the node id, so the broker cannot link it to a node id; different per broker,
    so two brokers cannot match their clients.
    """
    digest = hashlib.blake2b(
        config.display.encode(), key=secret[:64], digest_size=12, person=b"mc-mqtt-client"
    ).hexdigest()
    return f"mc-{digest}"
