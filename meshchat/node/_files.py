"""Files in a running node: announcing, serving, pulling, saving (the driver of meshchat.files).

Theory of operation. Sending a file (:meth:`NodeFiles.send`) reads it once to seal its chunks
and build its hash tree (off the loop), hands it to the :class:`~meshchat.files.serve.Seeder`,
and sends its announcement as a message of the conversation (:mod:`meshchat.files.announce`):
sealed to a contact, group- or channel-encrypted, queued, retried and placed in the causal
history like any text. A node that stores an incoming announcement decides by the
:class:`~meshchat.files.policy.FilePolicy` (size limit of the links that reach the sender,
auto-accept of small files from verified contacts) to pull it now, to ask the person
(:meth:`NodeFiles.accept`), or to refuse it. Pulling is the
:class:`~meshchat.files.transfer.Downloads` state machine: its requests and the pieces they
bring are file packets (:mod:`meshchat.engine._files`), sent at file priority on every link, so
text and acks leave first. Checked chunks are written to the partial file
(:class:`~meshchat.files.sink.Sink`), which gets its final name in the downloads folder only
once the whole file matches its root hash.

Every step runs on the node's worker, in turn with the traffic; only hashing a whole file
(sending, and the final check) runs on a thread. Transfers are kept in a JSON file of the home
(:mod:`._filestate`) at each change of state, so after a restart a sender serves its files
again (each re-read and checked against its root) and a receiver resumes from the chunks its
partial file holds (each checked again); a download that makes no progress for
``Limits.idle_ms`` is abandoned and its partial data erased.
"""

from __future__ import annotations

import asyncio
import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from meshchat.engine import Output
from meshchat.errors import MeshchatError, PacketError, TransferError, TransferReason, UsageError
from meshchat.events import FileArrived
from meshchat.files.announce import announce_text, parse_text
from meshchat.files.chunks import new_key
from meshchat.files.effects import (
    Abandoned,
    Completed,
    Dropped,
    Effect,
    KeepHashes,
    SendMissing,
    SendPiece,
    SendRequest,
    ServeChunk,
    WriteChunk,
)
from meshchat.files.manifest import FileKind, FileManifest
from meshchat.files.media import announced_name, media_type_of
from meshchat.files.policy import Verdict
from meshchat.files.serve import Holder, Seeder, SentFile
from meshchat.files.sink import FileSource, Sink, prepare_file
from meshchat.files.transfer import Downloads
from meshchat.files.tree import HashTree
from meshchat.files.wire import Missing, Piece, Request, decode_body
from meshchat.node._fileshare import Sharing, sources_for
from meshchat.node._filestate import Direction, State, Transfer, load_transfers, save_transfers
from meshchat.node._types import NodeNotice
from meshchat.store.records import Message, Trust

if TYPE_CHECKING:
    from meshchat.node import Node

__all__ = ["NodeFiles"]

#: a download that got no piece for this long asks again at once (a path came back through
#: a relay that restarted, say), then again each time this passes
STALL_MS = 3000
MAX_STALL_MS = 60_000  #: (doubling while nothing comes, so a sender away long costs little)
#: how often the faces are told a download's progress (besides each change of its state)
PROGRESS_MS = 1000
#: how often chunks waiting for their askers' allowances are served
PACE_S = 0.01
#: Files announced and waiting for the user's answer, at most (the oldest is refused beyond)
MAX_ASKING = 64


class NodeFiles:
    """The files of one node; see the module's theory of operation."""

    def __init__(self, node: Node) -> None:
        self.node = node
        options = node.options.files
        self.options = options
        now = node.clock()
        self.seeder = Seeder(now, options.serve)
        self.downloads = Downloads(options.limits)
        self._sinks: dict[bytes, Sink] = {}
        self._sources: dict[bytes, FileSource] = {}
        self._transfers: OrderedDict[bytes, Transfer] = OrderedDict()
        self.sharing = Sharing(self)
        self._finishing: set[asyncio.Task[None]] = set()
        self._paced = False
        self._kicked_ms = 0
        self._kick_gap = STALL_MS
        #: when progress was last told to the faces (tick runs after every batch of frames)
        self._progress_ms = 0
        node.subscribe(self._notice)

    def _notice(self, notice: NodeNotice) -> None:
        if notice.kind == "message" and notice.message is not None:
            self.message(notice.message)
        elif notice.kind == "peer" and len(self.downloads):
            # a node announced itself: perhaps a relay that came back, and with it a path to
            # a source (at most once a second)
            now = self.node.clock()
            if now - self._kicked_ms >= 1000:
                self._kicked_ms = now
                self._kick_gap = STALL_MS
                task = asyncio.get_running_loop().create_task(self._kick())
                self._finishing.add(task)
                task.add_done_callback(self._finishing.discard)

    async def _kick(self) -> None:
        await self.node.submit(lambda: self.node.effects.run(self.link_up()))

    # -- the faces' API --------------------------------------------------------------------

    async def send(
        self,
        target: str,
        path: str | os.PathLike[str],
        *,
        kind: FileKind = FileKind.FILE,
        caption: str = "",
        media_type: str | None = None,
        name: str | None = None,
    ) -> Transfer:
        """Announce the file at ``path`` to ``target`` (contact, ``#channel`` or ``+group``) and
        serve it to whoever the announcement reaches; the transfer, once announced.

        ``kind`` tells the recipient's faces how to show it (``FileKind.VOICE``: a voice
        note, whose ``media_type`` must be ``audio/...``). Raises :class:`TransferError`
        (unreadable, over 1 GiB or over the largest limit of this node's media),
        :class:`PacketError` (a caption too long for the announcement) or
        :class:`UsageError` (an unknown target)."""
        node = self.node
        source = Path(path)
        if not source.is_file():
            raise TransferError(TransferReason.IO, "not a readable file", path=str(source))
        limit = max(self.options.policy.limit(["lan", "relay", "ble", "dht", "other"]), 0)
        size = source.stat().st_size
        if size > limit:
            raise TransferError(TransferReason.TOO_LARGE, f"{size} bytes > {limit}")
        conversation = await node.resolve_conversation(target)  # a bad target fails first
        manifest, tree = await asyncio.get_running_loop().run_in_executor(
            None,
            lambda: prepare_file(
                source,
                kind=kind,
                media_type=media_type or media_type_of(source.name, kind),
                key=new_key(),
                name=announced_name(name or source.name),
                caption=caption,
            ),
        )
        text = announce_text(manifest, node.identity.node_id)
        await node.submit(self._serve, manifest, tree, source)
        message = await node.send_text(target, text)
        transfer = Transfer(
            manifest,
            Direction.OUT,
            State.ACTIVE,
            message.conversation or conversation,
            message.msg_id,
            target,
            node.clock(),
            path=str(source.resolve()),
        )
        await node.submit(self._add, transfer)
        return transfer

    async def transfers(self) -> list[Transfer]:
        """Every transfer known, live and finished (oldest first), with its progress."""

        async def listed() -> list[Transfer]:
            now = self.node.clock()
            for transfer in self._transfers.values():
                download = self.downloads.get(transfer.root)
                if download is not None:
                    transfer.progress = download.progress(now)
            return [replace(t) for t in self._transfers.values()]

        return await self.node.submit(listed)

    async def accept(self, which: str) -> Transfer:
        """Pull a file the node asked about (``which``: a prefix of its root hash or of its
        message id, in hex). Raises :class:`UsageError` if none or several match."""
        return await self.node.submit(self._accept, which)

    def transfer_of(self, msg_id: bytes) -> Transfer | None:
        """The transfer a message announced (for a conversation line's progress marker)."""
        for transfer in self._transfers.values():
            if transfer.msg_id == msg_id:
                download = self.downloads.get(transfer.root)
                if download is not None:
                    transfer.progress = download.progress(self.node.clock())
                return replace(transfer)
        return None

    # -- life cycle (on the worker) ----------------------------------------------------------

    async def start(self) -> None:
        """Serve the files sent before and resume the downloads a restart cut."""
        for transfer in load_transfers(self.options.state):
            self._transfers[transfer.root] = transfer
            if transfer.state is not State.ACTIVE:
                continue
            try:
                if transfer.direction is Direction.OUT:
                    await self._reserve(transfer)
                else:
                    await self.node.effects.run(self._pull(transfer, resume=True))
            except MeshchatError as exc:
                self._end(transfer, State.FAILED, str(exc))

    def stop(self) -> None:
        for sink in self._sinks.values():
            sink.close()
        for source in self._sources.values():
            source.close()
        self._save()

    def link_up(self) -> list[Output]:
        """A link came up: ask at once for the pieces asked for while there was none (they
        would otherwise wait for their timeout)."""
        if not len(self.downloads):
            return []
        return self._carry_out(self.downloads.ask_again(self.node.clock()))

    async def tick(self, now: int) -> None:
        """Ask again for late pieces, abandon downloads that stalled (housekeeping)."""
        if len(self.downloads):
            active = self.downloads.active()
            if any(d.progress_ms > self._kicked_ms for d in active):
                self._kick_gap = STALL_MS  # pieces come: the next stall is kicked soon
            stalled = any(
                now - max(d.progress_ms, self._kicked_ms) >= self._kick_gap for d in active
            )
            if stalled:  # no piece for a while: ask again now, not at the request timeout
                self._kicked_ms = now
                self._kick_gap = min(2 * self._kick_gap, MAX_STALL_MS)
                await self.node.effects.run(self.link_up())
            else:
                await self.node.effects.run(self._carry_out(self.downloads.tick(now)))
        if now - self._progress_ms < PROGRESS_MS:
            return
        self._progress_ms = now
        for download in self.downloads.active():  # progress for the faces, once a second
            transfer = self._transfers.get(download.root)
            if transfer is not None:
                notice = NodeNotice(
                    "transfer", msg_id=transfer.msg_id, conversation=transfer.conversation
                )
                self.node.notify(notice)

    # -- what the node feeds in (on the worker) ------------------------------------------------

    def arrived(self, event: FileArrived) -> list[Output]:
        """A file packet for this node: a request to serve, or a piece or missing answer."""
        node = self.node
        try:
            body = decode_body(event.body)
        except PacketError:
            node.count("files.drop.malformed")
            return []
        now = node.clock()
        if isinstance(body, Request):
            if not self.sharing.may_ask(event.peer, body.root):
                node.count("files.drop.not-allowed")
                return []
            told = (
                None
                if self.seeder.holder(body.root)
                else self.sharing.unheld(event.peer, body, now)
            )
            if told is not None:
                return self._carry_out(told)
            out = self._carry_out(self.seeder.request(event.peer, body, now))
            self._pace()
            return out
        return self._carry_out(self.downloads.receive(event.peer, body, now))

    def message(self, message: Message) -> None:
        """A message was stored (received, or copied from my other device by carbon or sync):
        if it announces a file this node does not hold, take it up."""
        if message.outgoing and message.sender == self.node.identity.node_id:
            return
        try:
            announced = parse_text(message.text)
        except PacketError:
            self.node.count("files.drop.announcement")
            return
        if announced is None or announced.manifest.root in self._transfers:
            return
        task = asyncio.get_running_loop().create_task(
            self.node.submit(self._offered, message, announced.manifest, announced.sender)
        )
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)

    # -- internals ------------------------------------------------------------------------------

    def _pace(self) -> None:
        """Chunks wait for their askers' allowances: serve them in 10 ms steps."""
        if self._paced or not self.seeder.waiting:
            return
        self._paced = True

        def kick() -> None:
            task = asyncio.get_running_loop().create_task(self.node.submit(self._serve_waiting))
            self._finishing.add(task)
            task.add_done_callback(self._finishing.discard)

        asyncio.get_running_loop().call_later(PACE_S, kick)

    async def _serve_waiting(self) -> None:
        self._paced = False
        await self.node.effects.run(self._carry_out(self.seeder.tick(self.node.clock())))
        self._pace()

    async def _serve(self, manifest: FileManifest, tree: HashTree, path: Path) -> None:
        self.seeder.add(SentFile(manifest, tree))
        self._sources[manifest.root] = FileSource(path, manifest)

    async def _add(self, transfer: Transfer) -> None:
        self._transfers[transfer.root] = transfer
        self._changed(transfer)

    async def _reserve(self, transfer: Transfer) -> None:
        """Serve a file sent before a restart, if it is still the announced one."""
        await self._serve(transfer.manifest, await self.rehash(transfer), Path(transfer.path))

    async def rehash(self, transfer: Transfer) -> HashTree:
        """The tree of the file at ``transfer.path`` (on a thread). Raises
        :class:`TransferError` (``CHANGED``) if it is not the announced file any more."""
        m = transfer.manifest
        path = Path(transfer.path)
        again, tree = await asyncio.get_running_loop().run_in_executor(
            None,
            lambda: prepare_file(
                path, kind=m.kind, media_type=m.media_type, key=m.key, name=m.name,
                caption=m.caption, chunk_size=m.chunk_size,
            ),
        )  # fmt: skip
        if again.root != m.root:
            raise TransferError(TransferReason.CHANGED, "the file changed since it was sent")
        return tree

    async def _offered(self, message: Message, manifest: FileManifest, sender: bytes) -> None:
        node = self.node
        if manifest.root in self._transfers:
            return
        sources = [sender]
        if len(message.sender) == 16 and message.sender != sender:
            sources.insert(0, message.sender)
        sources = sources_for(node, message.conversation, sources)
        # Verified only by the key that authenticated the message: on a channel (the sender
        # known by its signing key) the node id in the announcement is the sender's claim.
        store = node.store.store
        if len(message.sender) == 16:
            contact = await node.store.call(store.get_contact, message.sender)
        else:
            contact = await node.store.call(store.contact_by_sign_key, message.sender)
        verified = (
            contact is not None
            and contact.trust is Trust.VERIFIED
            and contact.node_id in (message.sender, sender)
        ) or node.engine.accounts.is_own_device(message.sender)
        media = [
            link.transport for link in node.links.values() if link.peer.node_id in sources
        ] or [link.transport for link in node.links.values()]
        decision = self.options.policy.decide(manifest, verified=verified, media=media or ["lan"])
        transfer = Transfer(
            manifest,
            Direction.IN,
            State.ASKING,
            message.conversation,
            message.msg_id,
            message.sender_name,
            node.clock(),
            sources=sources,
        )
        self._transfers[manifest.root] = transfer
        if self.options.downloads is None:
            self._end(transfer, State.REFUSED, "this node saves no files")
        elif decision.verdict is Verdict.REFUSE:
            self._end(transfer, State.REFUSED, decision.why)
        elif decision.verdict is Verdict.ACCEPT:
            await self._start(transfer)
        else:
            transfer.error = f"asking: {decision.why}"
            asking = [t for t in self._transfers.values() if t.state is State.ASKING]
            for old in asking[: max(0, len(asking) - MAX_ASKING)]:  # the oldest first
                node.count("files.asking-full")
                self._end(old, State.REFUSED, "too many files waiting for an answer")
            self._changed(transfer)

    async def _accept(self, which: str) -> Transfer:
        prefix = which.lower().strip()
        if not prefix:
            raise UsageError("name a transfer by its root or message id (hex)")
        found = [
            t
            for t in self._transfers.values()
            if t.direction is Direction.IN
            and (t.root.hex().startswith(prefix) or t.msg_id.hex().startswith(prefix))
        ]
        if len(found) != 1:
            raise UsageError(f"{len(found)} transfers match {which!r}")
        transfer = found[0]
        if transfer.state is State.ASKING:
            if self.options.downloads is None:
                raise UsageError("this node saves no files")
            await self._start(transfer)
        return replace(transfer)

    async def _start(self, transfer: Transfer) -> None:
        transfer.error = ""
        transfer.started_ms = self.node.clock()  # pulling starts now (after a yes, say)
        try:
            await self.node.effects.run(self._pull(transfer, resume=False))
        except MeshchatError as exc:
            self._end(transfer, State.FAILED, str(exc))

    def _pull(self, transfer: Transfer, *, resume: bool) -> list[Output]:
        """Open the partial file, take back what it holds, ask the sources."""
        folder = self.options.downloads
        if folder is None or self.node.panicked:
            raise UsageError("this node saves no files")
        manifest = transfer.manifest
        now = self.node.clock()
        sink = Sink.open(folder, manifest)
        self._sinks[manifest.root] = sink
        transfer.state = State.ACTIVE
        self._changed(transfer)
        effects: list[Effect] = list(
            self.downloads.resume(manifest, sink.held_hash_pieces(), sink.held_chunks(), now)
        )
        download = self.downloads.get(manifest.root)
        if download is not None:
            self._share(download)  # members of a group pull from each other
            for source in sources_for(self.node, transfer.conversation, transfer.sources):
                effects += self.downloads.offer(manifest, source, now)
        return self._carry_out(effects)

    def _share(self, holder: Holder) -> None:
        try:
            self.seeder.add(holder)
        except TransferError:
            self.node.count("files.serve-full")  # max_files served: this one is not

    def _carry_out(self, effects: list[Effect]) -> list[Output]:
        """The transfer machines' effects: file packets to send (returned), disk writes."""
        node = self.node
        engine = node.engine
        now = node.clock()
        out: list[Output] = []
        more: list[Effect] = []
        for effect in effects:
            match effect:
                case SendRequest(peer, body) | SendPiece(peer, body):
                    out += engine.files.send(_node_id(peer), _encode(body), now)
                case SendMissing(peer, body):
                    node.count("files.told-missing")
                    out += engine.files.send(_node_id(peer), _encode(body), now)
                case ServeChunk(peer, root, index):
                    piece = self._chunk(root, index)
                    if piece is not None:
                        self._served(root)
                        out += engine.files.send(_node_id(peer), piece.encode(), now)
                case WriteChunk(root, _, offset, plaintext):
                    more += self._write(root, lambda s: s.write(offset, plaintext))
                case KeepHashes(root, level, index, data):
                    more += self._write(root, lambda s: s.keep_hashes(level, index, data))
                case Completed(root):
                    self._finish(root)
                case Abandoned(root, reason):
                    self._abandon(root, reason)
                case Dropped(reason=reason):
                    node.count(f"files.drop.{reason.value}")
        if more:
            out += self._carry_out(more)
        return out

    def _chunk(self, root: bytes, index: int) -> Piece | None:
        try:
            sink = self._sinks.get(root)  # a download in progress, else a file held whole
            reader = sink if sink is not None else self._sources[root]
            plaintext = reader.read(index)
            return self.seeder.seal(root, index, plaintext)
        except (TransferError, KeyError) as exc:
            self.node.count("files.serve-failed")
            transfer = self._transfers.get(root)
            if transfer is not None and transfer.direction is Direction.OUT:
                self.seeder.remove(root)
                self._end(transfer, State.FAILED, str(exc))
            elif transfer is not None and transfer.state is State.DONE:
                self.seeder.remove(root)  # the saved file was moved or changed: stop serving
                source = self._sources.pop(root, None)
                if source is not None:
                    source.close()
            return None

    def _served(self, root: bytes) -> None:
        transfer = self._transfers.get(root)
        if transfer is not None and transfer.direction is Direction.OUT:
            transfer.served += 1

    def _write(self, root: bytes, write: Callable[[Sink], None]) -> list[Effect]:
        sink = self._sinks.get(root)
        if sink is None or self.node.panicked:
            return []
        try:
            write(sink)
        except TransferError as exc:
            transfer = self._transfers.get(root)
            if transfer is not None:
                transfer.error = str(exc)
            return self.downloads.abandon(root, exc.reason)
        return []

    def _finish(self, root: bytes) -> None:
        """Every chunk is held: check the whole file and name it (on a thread)."""
        sink = self._sinks.pop(root, None)
        holder = self.seeder.holder(root)
        self.seeder.remove(root)
        transfer = self._transfers.get(root)
        if sink is None or transfer is None:
            return

        async def finish() -> None:
            loop = asyncio.get_running_loop()
            try:
                final = await loop.run_in_executor(None, sink.finish)
            except TransferError as exc:
                await self.node.submit(self._ended, transfer, State.FAILED, str(exc), "")
                sink.close()
                return
            await self.node.submit(self._ended, transfer, State.DONE, "", str(final))
            if holder is not None:  # a member goes on serving what it has (its tree is held)
                await self.node.submit(self.sharing.completed, holder, final)

        task = asyncio.get_running_loop().create_task(finish())
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)

    async def _ended(self, transfer: Transfer, state: State, error: str, path: str) -> None:
        transfer.path = path
        self._end(transfer, state, error)

    def _abandon(self, root: bytes, reason: TransferReason) -> None:
        self.seeder.remove(root)
        sink = self._sinks.pop(root, None)
        if sink is not None:
            try:
                sink.erase()
            except TransferError:
                self.node.count("files.erase-failed")
        transfer = self._transfers.get(root)
        if transfer is not None:
            self._end(transfer, State.FAILED, transfer.error or reason.value)

    def _end(self, transfer: Transfer, state: State, error: str) -> None:
        transfer.state = state
        transfer.error = error
        transfer.finished_ms = self.node.clock()
        self.node.count(f"files.{transfer.direction.value}.{state.value}")
        self._changed(transfer)

    def _changed(self, transfer: Transfer) -> None:
        finished = [t for t in self._transfers.values() if not t.state.live]
        for old in finished[: max(0, len(finished) - self.options.keep_finished)]:
            del self._transfers[old.root]
        self._save()
        self.node.notify(
            NodeNotice("transfer", msg_id=transfer.msg_id, conversation=transfer.conversation)
        )

    def _save(self) -> None:
        if self.node.panicked:
            return  # the home is being erased: write nothing back (the files' keys least)
        kept = list(self._transfers.values())
        save_transfers(self.options.state, kept, self.options.downloads)


def _node_id(peer: object) -> bytes:
    if not isinstance(peer, bytes):
        raise TypeError(peer)
    return peer


def _encode(body: Request | Piece | Missing) -> bytes:
    return body.encode()
