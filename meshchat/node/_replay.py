"""The router's long dedupe horizon, saved to the store and loaded back at start.

The router remembers the ids of packets it accepted for the whole 7-day acceptance window in
time-bucketed Bloom filters (:mod:`meshchat.router.replay`); this module writes the buckets
changed since the last save (and deletes expired ones) every :data:`SAVE_EVERY_MS` and at stop,
so a packet replayed after a restart is still a duplicate. Ids accepted after the last save
are lost by a crash.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from meshchat.store import Store

if TYPE_CHECKING:
    from meshchat.node import Node

__all__ = ["SAVE_EVERY_MS", "load", "save"]

#: the store's state kind for the dedupe horizon: one blob per time bucket
REPLAY_STATE = "replay"
#: how often the dedupe horizon is saved
SAVE_EVERY_MS = 60_000


def _write(store: Store, puts: dict[bytes, bytes], drops: list[bytes]) -> None:
    """Write changed buckets and delete expired ones, in one commit."""
    if not puts and not drops:
        return
    with store.transaction():
        for key, blob in puts.items():
            store.put_state(REPLAY_STATE, key, blob)
        for key in drops:
            store.delete_state(REPLAY_STATE, key)


async def load(node: Node, now: int) -> None:
    store = node.store.store
    blobs = await node.store.call(store.states, REPLAY_STATE)
    expired, unreadable = node.engine.router.load_replay_state(blobs, now)
    await node.store.call(_write, store, {}, expired)
    for key in unreadable:
        reason = "the dedupe bucket could not be decoded at start"
        await node.store.call(store.set_aside_state, REPLAY_STATE, key, reason, now)


async def save(node: Node, now: int) -> None:
    puts, drops = node.engine.router.take_replay_updates(now)
    await node.store.call(_write, node.store.store, puts, drops)
