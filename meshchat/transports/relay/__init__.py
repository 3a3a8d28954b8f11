"""The relay transport: gateways exchange sealed envelopes through an MQTT broker.

Only :mod:`meshchat.transports.relay.broker` (the embedded amqtt broker behind
``meshchat relay``) and the transport itself import the MQTT libraries, and only when used.
"""

from meshchat.transports.relay._config import (
    DEFAULT_RETENTION_S,
    RelayConfig,
    client_id_for,
    parse_relay_url,
)
from meshchat.transports.relay._outbox import Outbox, Publish
from meshchat.transports.relay._transport import RelayLink, RelayTransport

__all__ = [
    "DEFAULT_RETENTION_S",
    "Outbox",
    "Publish",
    "RelayConfig",
    "RelayLink",
    "RelayTransport",
    "client_id_for",
    "parse_relay_url",
]
