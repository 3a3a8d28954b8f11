"""How conversations from other networks are marked wherever they are shown (no bridge code
is imported: the faces use this on nodes that run no bridge too)."""

from __future__ import annotations

__all__ = [
    "BITCHAT_CONVERSATION",
    "BITCHAT_DM_MARK",
    "BITCHAT_DM_PREFIX",
    "BITCHAT_MARK",
    "bitchat_dm_conversation",
    "network_mark",
]

BITCHAT_CONVERSATION = "#bitchat"
#: How a bridged bitchat conversation is marked wherever it is shown.
BITCHAT_MARK = "bitchat: public, not end-to-end encrypted, other network"
#: A bitchat DM's conversation: ``#bitchat:dm:<peer id hex>`` (``:`` is in no channel name,
#: so no meshchat channel can ever share it).
BITCHAT_DM_PREFIX = "#bitchat:dm:"
BITCHAT_DM_MARK = (
    "bitchat DM: Noise-encrypted between this node and one bitchat peer, other network, "
    "not a meshchat contact"
)
MESHTASTIC_PREFIX = "#meshtastic-"
MESHTASTIC_MARK = "Meshtastic: other network, not end-to-end encrypted"


def network_mark(conversation: str) -> str | None:
    """The mark of a conversation bridged to another network, or None for meshchat's own."""
    name = conversation.lower()
    if name == BITCHAT_CONVERSATION:
        return BITCHAT_MARK
    if name.startswith(BITCHAT_DM_PREFIX):
        return BITCHAT_DM_MARK
    if name.startswith(MESHTASTIC_PREFIX):
        return MESHTASTIC_MARK
    return None


def bitchat_dm_conversation(peer_id: bytes) -> str:
    """The conversation of direct messages with one bitchat peer."""
    return BITCHAT_DM_PREFIX + peer_id.hex()
