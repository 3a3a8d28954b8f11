"""The embedded MQTT broker behind ``meshchat relay``: amqtt with meshchat's mailbox policy.

amqtt speaks MQTT 3.1.1 only, so it knows no per-message expiry interval. What it offers is a
plugin interface; :class:`MailboxPolicyPlugin` uses it to enforce what the relay promises:

* **Topics.** Only exact meshchat topics (``<prefix>/m/<32 hex>`` mailboxes and
  ``<prefix>/c/<32 hex>`` channels) may be published or subscribed to. Wildcard
  subscriptions are refused, so no client can collect every mailbox with ``#``.
* **Retention.** amqtt queues QoS 1 messages for a disconnected persistent session. The plugin
  notes when each was queued and a sweep drops those older than ``retention_s`` (default 7
  days). Sessions disconnected for longer than the retention are dropped by amqtt itself.
* **Quota.** At most ``mailbox_quota`` messages are queued per session and topic (one
  gateway's copy of one mailbox); beyond it a message of the largest publisher is dropped,
  anonymous ones first (see :mod:`._limits`).
* **No retained topic messages.** meshchat never publishes with the retain flag; a retained
  message someone else publishes is removed at once, so the broker keeps no data forever.
* **Who may connect.** A client presents a token the operator handed out (``token_file``,
  ``name:hash`` lines, see :mod:`._tokens`) or, with ``password_file``, a password amqtt's
  ``FileAuthPlugin`` checks. Clients without either are refused unless ``allow_anonymous``.
* **Per-client limits** (:class:`~meshchat.transports.relay._limits.Limits`): sessions per
  principal, subscriptions per client id, publish rate, and queued messages and bytes per
  offline session, with anonymous publishers confined to a small share so that they can never
  evict mail from a known gateway; idle anonymous sessions are removed.

The sweep and quota work on amqtt's session queues (``Session.retained_messages``, an
``asyncio.Queue``) through its public ``get_nowait``/``put_nowait``, on the broker's loop.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from meshchat.errors import TransportError
from meshchat.transports.relay._config import DEFAULT_RETENTION_S
from meshchat.transports.relay._limits import Limits

if TYPE_CHECKING:
    from meshchat.transports.relay._plugins import MailboxPolicyPlugin

__all__ = ["BrokerSettings", "EmbeddedBroker"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """What ``meshchat relay`` can set."""

    binds: tuple[str, ...] = ("127.0.0.1",)
    port: int = 1883
    retention_s: int = DEFAULT_RETENTION_S
    mailbox_quota: int = 1000
    topic_prefix: str = "mc1"
    #: token file (``name:hash`` lines, :mod:`._tokens`): clients connect as name:token
    token_file: str | None = None
    #: amqtt password file (``user:hash`` lines), checked instead of tokens
    password_file: str | None = None
    #: accept clients without a token or password too (with the anonymous limits)
    allow_anonymous: bool = False
    limits: Limits = field(default_factory=Limits)
    certfile: str | None = None
    keyfile: str | None = None
    sweep_s: float = 60.0
    max_connections: int = 0
    extra_plugins: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.binds:
            raise TransportError("the relay needs at least one address to bind")
        if self.retention_s < 1 or self.mailbox_quota < 1 or self.sweep_s <= 0:
            raise TransportError("retention, quota and sweep interval must be positive")
        if self.limits.mailbox_quota != self.mailbox_quota:
            limits = replace(self.limits, mailbox_quota=self.mailbox_quota)
            object.__setattr__(self, "limits", limits)
        if (self.certfile is None) != (self.keyfile is None):
            raise TransportError("TLS needs both a certificate and a key file")


def _amqtt_config(settings: BrokerSettings) -> dict[str, Any]:
    listeners: dict[str, Any] = {}
    for i, address in enumerate(settings.binds):
        host = f"[{address}]" if ":" in address else address
        listener: dict[str, Any] = {
            "type": "tcp",
            "bind": f"{host}:{settings.port}",
            "max_connections": settings.max_connections,
        }
        if settings.certfile is not None:
            listener.update(ssl=True, certfile=settings.certfile, keyfile=settings.keyfile)
        listeners["default" if i == 0 else f"listener{i}"] = listener
    auth: dict[str, Any] = {}
    if settings.password_file is not None:
        auth = {
            "amqtt.plugins.authentication.FileAuthPlugin": {"password_file": settings.password_file}
        }
    limits = {f: getattr(settings.limits, f) for f in settings.limits.__dataclass_fields__}
    return {
        "listeners": listeners,
        "session_expiry_interval": settings.retention_s,
        "plugins": {
            **auth,
            "meshchat.transports.relay._plugins.MailboxPolicyPlugin": {
                "topic_prefix": settings.topic_prefix,
                "retention_s": settings.retention_s,
                "sweep_s": float(settings.sweep_s),
                "token_file": settings.token_file,
                "password_file": settings.password_file is not None,
                "allow_anonymous": settings.allow_anonymous,
                "limits": limits,
            },
            **settings.extra_plugins,
        },
    }


class EmbeddedBroker:
    """An amqtt broker with meshchat's policy, started and stopped on the running loop."""

    def __init__(self, settings: BrokerSettings | None = None) -> None:
        self.settings = settings or BrokerSettings()
        self._broker: Any = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        from amqtt.broker import Broker
        from amqtt.errors import BrokerError

        self._broker = Broker(_amqtt_config(self.settings))
        self._wrap_connections(self._broker)
        try:
            await self._broker.start()
        except BrokerError as exc:
            self._broker = None
            raise TransportError(f"relay broker did not start: {exc}") from exc

    def _wrap_connections(self, broker: Any) -> None:
        """Close every client connection's socket once amqtt is done with it.

        amqtt does not always close the server side of a connection it has finished with
        (for instance after a persistent client's session was taken over by its reconnect),
        which leaks a socket per such connection. The broker looks ``stream_connected`` up
        when it starts its listeners, so an instance attribute wraps every connection.
        """
        original = broker.stream_connected
        writers = self._writers

        async def stream_connected(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, listener_name: str
        ) -> None:
            writers.add(writer)
            try:
                await original(reader, writer, listener_name=listener_name)
            finally:
                writers.discard(writer)
                writer.close()

        broker.stream_connected = stream_connected

    async def stop(self) -> None:
        broker, self._broker = self._broker, None
        if broker is not None:
            await broker.shutdown()
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def __aenter__(self) -> EmbeddedBroker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """Every (host, port) the broker listens on (the real port when 0 was asked)."""
        if self._broker is None:
            return []
        found: list[tuple[str, int]] = []
        for server in self._broker._servers.values():  # amqtt keeps its listeners here
            for sock in getattr(server.instance, "sockets", None) or []:
                host, port = sock.getsockname()[:2]
                found.append((str(host), int(port)))
        return found

    @property
    def policy(self) -> MailboxPolicyPlugin | None:
        """The running policy plugin (for status and tests)."""
        from meshchat.transports.relay._plugins import MailboxPolicyPlugin

        if self._broker is None:
            return None
        plugin = self._broker.plugins_manager.get_plugin("MailboxPolicyPlugin")
        return plugin if isinstance(plugin, MailboxPolicyPlugin) else None
