"""How conversations from other networks are marked wherever they are shown (no bridge code
is imported: the faces use this on nodes that run no bridge too)."""

from __future__ import annotations

__all__ = ["BITCHAT_CONVERSATION", "BITCHAT_MARK", "network_mark"]

BITCHAT_CONVERSATION = "#bitchat"
#: How a bridged bitchat conversation is marked wherever it is shown.
BITCHAT_MARK = "bitchat: public, not end-to-end encrypted, other network"
MESHTASTIC_PREFIX = "#meshtastic-"
MESHTASTIC_MARK = "Meshtastic: other network, not end-to-end encrypted"


def network_mark(conversation: str) -> str | None:
    """The mark of a conversation bridged to another network, or None for meshchat's own."""
    name = conversation.lower()
    if name == BITCHAT_CONVERSATION:
        return BITCHAT_MARK
    if name.startswith(MESHTASTIC_PREFIX):
        return MESHTASTIC_MARK
    return None
