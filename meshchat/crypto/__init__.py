"""Payload crypto: one module per suite, all on libsodium through PyNaCl."""

from meshchat.crypto.box import BoxSuite
from meshchat.crypto.channel import PUBLIC_CHANNEL, ChannelKey, derive_channel_key

__all__ = ["PUBLIC_CHANNEL", "BoxSuite", "ChannelKey", "derive_channel_key"]
