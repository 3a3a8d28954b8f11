"""Bridges to networks people already carry: bitchat (BLE) and Meshtastic (over MQTT).

Each bridge is a subpackage with a pure codec and, where it talks to the network, a thin
asyncio adapter; nothing here is imported unless a bridge is switched on.
"""

__all__: list[str] = []
