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
from meshchat.transports.relay._limits import Limits
from meshchat.transports.relay._outbox import Outbox, Publish
from meshchat.transports.relay._tokens import TokenBook, add_token, token_hash
from meshchat.transports.relay._transport import RelayLink, RelayTransport

__all__ = [
    "DEFAULT_RETENTION_S",
    "Limits",
    "Outbox",
    "Publish",
    "RelayConfig",
    "RelayLink",
    "RelayTransport",
    "TokenBook",
    "add_token",
    "client_id_for",
    "parse_relay_url",
    "token_hash",
]
