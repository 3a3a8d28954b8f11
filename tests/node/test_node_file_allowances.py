"""The node's default file allowances leave room for a 100 Mbit/s LAN.

A node serves each asker at most ``NODE_SERVE.rate`` chunks a second and its router takes at
most ``file_rate`` file frames a second from one link: below 12.5 MB/s of chunks either one
alone would cap a transfer between two nodes on a LAN (it did: 2,048 chunks/s, 3.1 MB/s).
"""

from __future__ import annotations

from meshchat.files.manifest import DEFAULT_CHUNK_SIZE
from meshchat.node._types import NODE_SERVE
from meshchat.router.flood import RouterConfig

LAN = 12.5e6  # bytes per second: 100 Mbit/s


def test_one_asker_may_be_served_at_lan_speed() -> None:
    assert NODE_SERVE.rate * DEFAULT_CHUNK_SIZE >= LAN
    assert NODE_SERVE.total_rate >= NODE_SERVE.rate


def test_one_link_may_bring_chunks_at_lan_speed() -> None:
    assert RouterConfig().file_rate * DEFAULT_CHUNK_SIZE >= LAN
