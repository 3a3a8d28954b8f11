"""The Meshtastic bridge over MQTT: channel crypto and envelopes (``codec``), the sans-IO
bridge state (``bridge``) and the asyncio adapter (``mqtt``). Importing it loads the
``meshtastic`` package's protobufs (about 0.1 s), so the node imports it only when asked."""

from meshchat.bridges.meshtastic.bridge import Heard, MeshtasticBridge, Publish, node_number
from meshchat.bridges.meshtastic.codec import Channel, build_envelope, decode_envelope, expand_key

__all__ = [
    "Channel",
    "Heard",
    "MeshtasticBridge",
    "Publish",
    "build_envelope",
    "decode_envelope",
    "expand_key",
    "node_number",
]
