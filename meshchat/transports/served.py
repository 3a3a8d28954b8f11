"""Which mailboxes an internet transport collects for its island (the relay and the DHT share it).

A gateway collects the mailbox of its own node and of every node heard on a local link within
``serve_window_s``, most recently heard first, at most ``most`` of them; it takes the nodes heard
within ``local_window_s`` to be reachable by the local flood (:attr:`ServedMailboxes.local`, what
:func:`meshchat.gateway.route` keeps in the mesh). With a ``state_path`` the served list is kept
on disk (JSON, written atomically off the loop when it changed), so that mail queued for a local
node while the gateway was offline can still be collected after a restart, before that node is
heard again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from pathlib import Path

from meshchat.gateway import GatewayHost

__all__ = ["ServedMailboxes"]

log = logging.getLogger(__name__)

#: a state file larger than this is not read
_MAX_STATE = 1_000_000


class ServedMailboxes:
    """The served mailboxes and the local nodes of one gateway (see the module docstring)."""

    __slots__ = (
        "_dirty",
        "_heard",
        "_lock",
        "local",
        "local_window_s",
        "most",
        "own",
        "serve_window_s",
        "state_path",
    )

    def __init__(
        self,
        own: bytes,
        *,
        local_window_s: float,
        serve_window_s: float,
        most: int,
        state_path: Path | None = None,
    ) -> None:
        self.own = own
        self.local_window_s = local_window_s
        self.serve_window_s = serve_window_s
        self.most = most
        self.state_path = state_path
        #: node ids heard on local links within ``local_window_s``
        self.local: frozenset[bytes] = frozenset()
        #: node id -> when it was last heard (ms), for every served mailbox
        self._heard: dict[bytes, int] = {}
        self._dirty = False
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._heard)

    def refresh(self, host: GatewayHost | None, now_ms: int) -> None:
        """Take up the nodes ``host`` heard, and forget those not heard for ``serve_window_s``."""
        if host is not None:
            self.local = frozenset(host.local_nodes(now_ms - int(self.local_window_s * 1000)))
            for node_id in host.local_nodes(now_ms - int(self.serve_window_s * 1000)):
                if self._heard.get(node_id, -1) < now_ms:
                    self._heard[node_id] = now_ms
                    self._dirty = True
        horizon = now_ms - int(self.serve_window_s * 1000)
        for node_id in [n for n, t in self._heard.items() if t < horizon]:
            del self._heard[node_id]
            self._dirty = True

    def mailboxes(self) -> list[bytes]:
        """Own node first, then the most recently heard, at most ``most``."""
        ranked = sorted(self._heard, key=lambda n: self._heard[n], reverse=True)
        return [self.own, *(n for n in ranked if n != self.own)][: self.most]

    async def load(self) -> None:
        """Read the saved list (an unreadable file is ignored with a warning)."""
        if self.state_path is None:
            return
        try:
            raw = await asyncio.to_thread(self.state_path.read_bytes)
            served = json.loads(raw[:_MAX_STATE])["served"]
            for node_hex, heard in list(served.items())[: self.most]:
                node_id = bytes.fromhex(node_hex)
                if len(node_id) == 16 and type(heard) is int:
                    self._heard[node_id] = heard
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("ignoring unreadable gateway state %s: %s", self.state_path, exc)

    async def save(self) -> None:
        """Write the list if it changed (atomically, off the loop).

        The flag is cleared only after a write completed, so a write cut short (a transport
        stopping) is simply done again; the thread lock keeps two writes apart.
        """
        if self.state_path is None or not self._dirty:
            return
        data = json.dumps({"served": {n.hex(): t for n, t in self._heard.items()}}).encode()
        path = self.state_path
        lock = self._lock

        def write() -> None:
            with lock:
                tmp = path.with_suffix(".tmp")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                try:
                    os.write(fd, data)
                finally:
                    os.close(fd)
                os.replace(tmp, path)

        try:
            await asyncio.to_thread(write)
        except OSError as exc:
            log.warning("cannot save gateway state %s: %s", path, exc)
            return
        self._dirty = False
