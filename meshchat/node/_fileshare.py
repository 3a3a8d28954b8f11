"""Who else may hold a file of a group or channel: the sources a download asks besides its sender.

Theory of operation. A member that holds a file of a group or channel serves it to whoever
asks with its root hash (:class:`~meshchat.files.serve.Seeder`): while pulling it (the pieces
held so far) and once it is complete (read from the saved file and checked against the tree
again before each chunk leaves). So a download asks, besides the sender of the announcement
(first), every other member of the group (the roster's node ids, whether linked now or reached
over the mesh) or, for a channel, whose members are not listed, the nodes linked to this one
now. Who holds nothing answers nothing (an unknown root gets no answer), who holds part says
which pieces it lacks; :class:`~meshchat.files.transfer.Download` moves a piece asked of a
silent source to one that answers after ``hedge_ms``, and drops a source after
``max_strikes`` pieces that failed their hash. Every piece is checked against the tree, so a
member or stranger can waste this node's requests, never change the file.

My own devices are sources in every conversation, a direct one included: a file I sent or
received on one device is announced to my other devices by its carbon or by history sync, and
they pull it from the device that holds it (or from its sender). A file announced by one of my
devices is taken as from a verified contact (auto-accepted up to the size limit).

At most ``Limits.max_sources`` sources (16) are asked per download, the sender first.

:class:`Sharing` keeps the :data:`MAX_SHARED` newest completed downloads served (their trees
are in memory; the oldest goes out first). After a restart a completed download is not
served until someone asks for it: the first request for its root hashes the saved file again
on a thread (at most :data:`MAX_REHASHED` per run) and serves it if it is still the announced
file. The requests that come while it is hashed (at most :data:`MAX_DEFERRED` per file) wait
for it and are served as soon as it is done, so the first asker is served at once rather than
after its retry; if the file changed or is gone, they are answered *missing*. A request for a
root this node knows but does not serve (a file it was announced and did not pull, one hashed
before and no longer served) is answered *missing* for every piece, within the asker's
allowance, so the asker turns elsewhere at once; so is one from my own device for any root.
Anyone else asking for a root this node does not know gets no answer.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from meshchat.errors import MeshchatError
from meshchat.files.effects import Effect, Peer
from meshchat.files.serve import Holder, SentFile
from meshchat.files.sink import FileSource
from meshchat.files.wire import Request
from meshchat.node._filestate import Direction, State
from meshchat.target import GROUP_PREFIX

if TYPE_CHECKING:
    from meshchat.node import Node
    from meshchat.node._files import NodeFiles

__all__ = ["MAX_SHARED", "Sharing", "own_devices", "sources_for"]

#: completed downloads a node goes on serving (each keeps its file open), the newest
MAX_SHARED = 32
#: completed downloads served again after a restart, at most, per run (each is hashed again)
MAX_REHASHED = 256
#: requests that wait for a file being hashed again, at most, per file
MAX_DEFERRED = 16


def _group_members(node: Node, conversation: str) -> list[bytes]:
    try:
        group_id = bytes.fromhex(conversation[len(GROUP_PREFIX) :])
    except ValueError:
        return []
    group = node.engine.groups.groups.get(group_id)
    if group is None or group.current is None:
        return []
    return [member.node_id for member in group.roster.members]


def _linked(node: Node) -> list[bytes]:
    return [link.peer.node_id for link in node.links.values()]


def own_devices(node: Node) -> list[bytes]:
    """My account's other devices (node ids)."""
    return [device.node_id for device in node.engine.accounts.own_devices()]


def sources_for(node: Node, conversation: str, first: Iterable[bytes]) -> list[bytes]:
    """The nodes a download of a file announced in ``conversation`` asks: ``first`` (the
    sender), then my other devices (which hold what I sent or received there), then the
    group's other members, or for a channel the nodes linked now. Unique, never this node, at
    most ``Limits.max_sources``."""
    more = own_devices(node)
    if conversation.startswith(GROUP_PREFIX):
        more += _group_members(node, conversation)
    elif conversation.startswith("#"):
        more += _linked(node)
    own = node.identity.node_id
    out: list[bytes] = []
    for peer in (*first, *more):
        if len(peer) == 16 and peer != own and peer not in out:
            out.append(peer)
    return out[: node.files.downloads.limits.max_sources]


class Sharing:
    """Completed downloads served to others; answers for roots known and not served."""

    def __init__(self, files: NodeFiles) -> None:
        self.files = files
        self._shared: OrderedDict[bytes, None] = OrderedDict()
        self._rehashed: set[bytes] = set()
        #: requests waiting for the roots being hashed again
        self._deferred: dict[bytes, list[tuple[Peer, Request]]] = {}

    @property
    def waiting(self) -> int:
        """Requests waiting for a file being hashed again."""
        return sum(len(requests) for requests in self._deferred.values())

    async def completed(self, holder: Holder, path: Path) -> None:
        """Serve a completed download from its saved file (on the worker)."""
        files = self.files
        root = holder.manifest.root
        files._sources[root] = FileSource(path, holder.manifest)
        self._shared[root] = None
        while len(self._shared) > MAX_SHARED:  # the oldest completed file is served no more
            old, _ = self._shared.popitem(last=False)
            files.seeder.remove(old)
            source = files._sources.pop(old, None)
            if source is not None:
                source.close()
        files._share(holder)

    def may_ask(self, peer: Peer, root: bytes) -> bool:
        """Whether ``peer`` may be served (or told about) file ``root``: anyone for a
        channel's file (a channel is public) or a root this node has no transfer of (the
        seeder decides), else only my other devices and the nodes this node knows (contacts
        and group members): a stranger who learnt the root of a direct or group file (a relay
        sees roots) is not served it."""
        transfer = self.files._transfers.get(root)
        if transfer is None or transfer.conversation.startswith("#"):
            return True
        if not isinstance(peer, bytes):
            return False
        engine = self.files.node.engine
        return engine.direct.knows(peer) or engine.accounts.is_own_device(peer)

    def unheld(self, peer: Peer, body: Request, now_ms: int) -> list[Effect] | None:
        """A request for a root the seeder does not serve: a missing answer if this node
        knows the root (or the asker is my device), else None (no answer)."""
        files = self.files
        transfer = files._transfers.get(body.root)
        if transfer is None:
            mine = isinstance(peer, bytes) and files.node.engine.accounts.is_own_device(peer)
            if not mine:
                return None
        elif transfer.direction is Direction.IN and transfer.state is State.DONE:
            self._rehash(body.root)
            waiting = self._deferred.get(body.root)
            if waiting is not None and len(waiting) < MAX_DEFERRED:
                waiting.append((peer, body))  # answered when the file is hashed
                return []
        return files.seeder.lacks(peer, body, now_ms)

    def _rehash(self, root: bytes) -> None:
        if root in self._rehashed or len(self._rehashed) >= MAX_REHASHED:
            return
        self._rehashed.add(root)
        self._deferred[root] = []
        task = asyncio.get_running_loop().create_task(self._serve_again(root))
        self.files._finishing.add(task)
        task.add_done_callback(self.files._finishing.discard)

    async def _serve_again(self, root: bytes) -> None:
        files = self.files
        transfer = files._transfers.get(root)
        holder: SentFile | None = None
        try:
            if transfer is not None and transfer.path:
                holder = SentFile(transfer.manifest, await files.rehash(transfer))
        except MeshchatError:
            files.node.count("files.reshare-failed")  # moved, changed or unreadable
        if transfer is not None and holder is not None:
            await files.node.submit(self.completed, holder, Path(transfer.path))
        await files.node.submit(self._answer_deferred, root)

    async def _answer_deferred(self, root: bytes) -> None:
        """Serve the requests that waited for ``root`` to be hashed (or tell them it is
        missing, if it could not be served)."""
        files = self.files
        now = files.node.clock()
        effects: list[Effect] = []
        for peer, body in self._deferred.pop(root, []):
            if files.seeder.holder(root):
                effects += files.seeder.request(peer, body, now)
            else:
                effects += files.seeder.lacks(peer, body, now)
        await files.node.effects.run(files._carry_out(effects))
        files._pace()
