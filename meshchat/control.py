"""The local control socket: how ``meshchat send``/``log``/``peers`` reach a running node.

A Unix stream socket in the node's home, mode 0600 (only the owner can connect, which is the
authentication). Each request is one JSON object on one line; each reply is one JSON object on
one line: ``{"ok": true, ...}`` or ``{"ok": false, "error": "...", "kind": "UsageError"}`` (the
error's class). Requests are bounded in size; a malformed request gets an error reply, never
a crash. While a node runs, the command line makes every change through these ops (the node is
the only writer of its store).

==========  ==============================  ============================================
op          request fields                  reply fields
==========  ==============================  ============================================
send        to, text                        message
log         conversation, limit, read       conversation, messages (in the causal order,
            (optional: true also marks it   held ones last; each with its history fields,
            read, here and, by sync, on     see meshchat.logview.entry_json)
            my other devices)
delete      conversation, msg_ids (hex      conversation, messages (those the prefixes
            prefixes; none: all of it),     named), count (how many there are) or deleted
            dry_run                         (how many were erased; not with dry_run)
peers       (none)                          peers (name: as announced, unchecked;
                                            contact: our name for them, or null),
                                            transports
status      backlog (optional: true also    node_id, short_id, name, fingerprint,
            counts queued and carried       sign_public, box_public, links (a count),
            messages, which reads the       neighbours and gateways (as in peers),
            store)                          transports (name, up, state, detail, reason),
                                            gateway, counters, sync (as sync_status);
                                            queued and carried (null unless backlog was
                                            asked)
card        (none)                          card (our contact card, current signed prekey)
join        channel, passphrase (optional)  channel
contacts    (none)                          contacts (name, node_id, trust, fingerprint,
                                            safety_number, account_id)
contact     contact                         contact
add_card    card, name, replace             added, outcome, contact, compromised; or added
                                            false, key_change, new, conflicts
distrust    contact                         contact (its keys marked compromised)
verify      contact, safety_number or       contact, safety_number, marked (verified only if
            payloads (scanned QR texts) or  the number or a code matches, or on confirm;
            confirm (true), or none         with none, the number is only shown)
group       action (list, show, create,     groups (group_id, name, conversation, epoch,
            add, remove, admin, leave),     member, admin, members)
            name or group, members
panic       (none)                          erased, failed, seconds; then the node stops
link_start  (none)                          code, qr (its QR text), expires_ms
link_join   code, device_name, timeout      the exchange (role, state, string, peer,
                                            peer_name, reason), once the request is sent
link_wait   role (existing or new),         the exchange once its string is shown (or,
            timeout, answered               answered, once it is over), or as it stands
link_confirm role, answer (y, n or the      the exchange after the answer
            other device's string)
link_devices (none)                         account_id, version, devices (node_id, name,
                                            this), revoked
sync_status (none)                          sync: per device of mine (device, name, session,
                                            started_ms, last_ms, rounds, sent, received,
                                            left, done, error); newest first
link_revoke device (name or id prefix)      the new list, as link_devices
send_file,  see :mod:`meshchat.node._filecontrol`
transfers,
accept_file
talk        to, path (absolute: an audio    talk (talk_id, peers, frames,
            file sent live) or seconds      seconds, wire_bytes) when it ends
            (the microphone)
talks       (none)                          talks heard (talk_id, sender, seconds,
                                            played, gaps, concealed, recovered,
                                            refused, wav, device, ended)
==========  ==============================  ============================================
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from meshchat.errors import MeshchatError, NodeUnreachable, TransportError
from meshchat.group.book import Group, group_conversation
from meshchat.identity import ContactCard, PublicIdentity
from meshchat.logview import entries, entry_json, pick
from meshchat.node import Node
from meshchat.node._filecontrol import FILE_OPS
from meshchat.node._filecontrol import control_op as file_control_op
from meshchat.node._link import control_op as link_control_op
from meshchat.node._talk import control_op as talk_control_op
from meshchat.safety import safety_number
from meshchat.store.records import Contact, Delivery, Message, Trust
from meshchat.store.trust import KeyChangeError

__all__ = [
    "ControlServer",
    "contact_from_json",
    "contact_json",
    "group_json",
    "history_json",
    "message_json",
    "request",
]

log = logging.getLogger(__name__)
MAX_REQUEST = 16 * 1024
MAX_REPLY = 8 * 1024 * 1024
#: every message of a conversation (the store's cap on one query), to pick ids from
ALL_MESSAGES = 1_000_000


def message_json(message: Message) -> dict[str, Any]:
    return {
        "conversation": message.conversation,
        "msg_id": message.msg_id.hex(),
        "outgoing": message.outgoing,
        "sender": message.sender.hex(),
        "sender_name": message.sender_name,
        "text": message.text,
        "created_ms": message.created_ms,
        "state": message.state.value,
        "updated_ms": message.updated_ms,
    }


def history_json(
    messages: Sequence[Message], deliveries: Mapping[bytes, Sequence[Delivery]] | None = None
) -> list[dict[str, Any]]:
    """A conversation's messages as ``log --json`` and the control op ``log`` show them: in
    the store's order, each with its place in the history (:func:`meshchat.logview.entry_json`).
    With ``deliveries``, each outgoing direct message lists its devices: which device of the
    recipient's account has it (``delivered``) and which copies are still tried or failed.
    """
    out = []
    for e in entries(messages):
        item = entry_json(e, message_json(e.message))
        if deliveries is not None and e.message.outgoing and e.message.msg_id in deliveries:
            item["devices"] = [
                {"device": d.device.hex(), "state": d.state.value, "updated_ms": d.updated_ms}
                for d in deliveries[e.message.msg_id]
            ]
        out.append(item)
    return out


def contact_json(contact: Contact, me: PublicIdentity) -> dict[str, Any]:
    """A contact as ``contacts list --json`` and the control op ``contacts`` show it."""
    them = PublicIdentity(contact.sign_public, contact.box_public)
    return {
        "name": contact.name,
        "node_id": contact.node_id.hex(),
        "trust": contact.trust.value,
        "added_ms": contact.added_ms,
        "fingerprint": them.fingerprint(),
        "safety_number": safety_number(me, them),
        "has_card": bool(contact.card),
        "sign_public": contact.sign_public.hex(),
        "box_public": contact.box_public.hex(),
        "account_id": contact.account_id.hex(),
    }


def contact_from_json(data: dict[str, Any]) -> Contact:
    """The contact :func:`contact_json` showed (without its card). Raises ValueError."""
    return Contact(
        bytes.fromhex(str(data["node_id"])),
        bytes.fromhex(str(data["sign_public"])),
        bytes.fromhex(str(data["box_public"])),
        str(data["name"]),
        Trust(str(data["trust"])),
        int(data["added_ms"]),
        account_id=bytes.fromhex(str(data.get("account_id", ""))),
    )


def group_json(
    group: Group, me: bytes, names: dict[bytes, str], contacts: Collection[bytes] = ()
) -> dict[str, Any]:
    """A group as ``group list --json`` and the control op ``group`` show it.

    ``names`` holds contacts' names and strangers' announced ones; ``contacts`` says which
    members are contacts (a stranger's name is theirs to choose, and is shown marked).
    """
    roster = group.roster
    return {
        "group_id": group.group_id.hex(),
        "name": group.name,
        "conversation": group_conversation(group.group_id),
        "epoch": roster.epoch,
        "member": group.current is not None,
        "admin": group.current is not None and me in roster.admins,
        "members": [
            {
                "node_id": m.node_id.hex(),
                "name": names.get(m.node_id, ""),
                "admin": m.node_id in roster.admins,
                "me": m.node_id == me,
                "contact": m.node_id in contacts,
                # as this group's admin: "applied", "pending" or "not applied" (else "")
                "update": group.delivery.get(m.node_id, ""),
            }
            for m in roster.members
        ],
    }


class ControlServer:
    """Serves the control protocol for one node."""

    def __init__(self, node: Node, path: Path) -> None:
        self.node = node
        self.path = path
        self._server: asyncio.AbstractServer | None = None

    def ensure_not_running(self) -> None:
        """Raise :class:`TransportError` if a node already serves this socket."""
        with contextlib.suppress(FileNotFoundError):
            if self._answers(self.path):
                raise TransportError(f"another node is running for this home ({self.path})")

    async def start(self) -> None:
        self.ensure_not_running()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        old_umask = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(
                self._client, path=str(self.path), limit=MAX_REQUEST
            )
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)

    @staticmethod
    def _answers(path: Path) -> bool:
        if not path.exists():
            raise FileNotFoundError
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(path))
            except OSError:
                return False
        return True

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    await self._reply(writer, {"ok": False, "error": "request too large"})
                    break
                if not line:
                    break
                await self._reply(writer, await self._dispatch(line))
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, reply: dict[str, Any]) -> None:
        writer.write(json.dumps(reply).encode() + b"\n")
        await writer.drain()

    async def _dispatch(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
            if not isinstance(request, dict) or not isinstance(request.get("op"), str):
                raise ValueError("request must be an object with an 'op'")
            return {"ok": True, **await self._op(request)}
        except MeshchatError as exc:
            return {"ok": False, "error": str(exc), "kind": type(exc).__name__}
        except (ValueError, TypeError, KeyError) as exc:
            return {"ok": False, "error": f"bad request: {exc}"}
        except Exception as exc:
            log.exception("control request failed")
            return {"ok": False, "error": f"internal error: {type(exc).__name__}"}

    async def _op(self, request: dict[str, Any]) -> dict[str, Any]:
        node = self.node
        op = request["op"]
        if op.startswith("link_"):
            return await link_control_op(node, request)
        if op in FILE_OPS:
            return await file_control_op(node, request)
        if op in ("talk", "talks"):
            return await talk_control_op(node, request)
        if op == "sync_status":
            return {"sync": node.sync.status()}
        if op == "send":
            message = await node.send_text(str(request["to"]), str(request["text"]))
            return {"message": message_json(message)}
        if op == "log":
            conversation = await node.resolve_conversation(str(request["conversation"]))
            limit = int(request.get("limit", 200))
            messages = await node.history(conversation, max(1, min(limit, 10000)))
            if request.get("read") is True:
                await node.mark_read(conversation)  # a Read record for my other devices
            deliveries = await node.deliveries(m.msg_id for m in messages if m.outgoing)
            return {"conversation": conversation, "messages": history_json(messages, deliveries)}
        if op == "delete":
            return await self._delete(request)
        if op == "peers":
            return await self._peers()
        if op == "status":
            peers = await self._peers()
            queued = carried = None
            if request.get("backlog"):
                queued, carried = await node.backlog()
            return {
                "node_id": node.identity.node_id.hex(),
                "short_id": node.identity.public.short_id,
                "name": node.name,
                "fingerprint": node.identity.public.fingerprint(),
                "sign_public": node.identity.public.sign_public.hex(),
                "box_public": node.identity.public.box_public.hex(),
                "account_id": node.account_id.hex(),
                "devices": len(node.device_list().devices),
                "links": len(node.links),
                "neighbours": peers["peers"],
                "transports": peers["transports"],
                "gateway": peers["gateway"],
                "gateway_reason": peers["gateway_reason"],
                "gateways": peers["gateways"],
                "queued": queued,
                "carried": carried,
                "counters": node.counter_totals(),
                "sync": node.sync.status(),
                "bridges": [
                    shown
                    for shown in (bridge.status() for bridge in node.bridges.values())
                    if shown.get("network") != "bitchat-dm"  # listed by the bitchat bridge
                ],
            }
        if op == "card":
            return {"card": (await node.card()).to_text()}
        if op == "join":
            passphrase = request.get("passphrase")
            channel = await node.join(str(request["channel"]), passphrase or None)
            return {"channel": channel.name, "private": channel.key is not None}
        if op == "contacts":
            me = node.identity.public
            return {"contacts": [contact_json(c, me) for c in await node.contacts()]}
        if op == "contact":
            contact = await node.find_contact(str(request["contact"]))
            return {"contact": contact_json(contact, node.identity.public)}
        if op == "add_card":
            return await self._add_card(request)
        if op == "announced":
            event = await node.announced_peer(str(request["peer"]))
            them = event.identity
            return {
                "name": event.name,
                "node_id": them.node_id.hex(),
                "sign_public": them.sign_public.hex(),
                "box_public": them.box_public.hex(),
                "fingerprint": them.fingerprint(),
                "prekey": event.prekey is not None,
                "hops": event.hops,
            }
        if op == "distrust":
            contact = await node.find_contact(str(request["contact"]))
            contact = await node.set_trust(contact.node_id, Trust.COMPROMISED)
            return {"contact": contact_json(contact, node.identity.public)}
        if op == "verify":
            return await self._verify(request)
        if op == "group":
            return await self._group(request)
        if op == "panic":
            report = await node.panic()
            return {
                "erased": [str(p) for p in report.erased],
                "failed": [[str(p), why] for p, why in report.failed],
                "seconds": report.seconds,
            }
        raise ValueError(f"unknown op {op!r}")

    async def _peers(self) -> dict[str, Any]:
        node = self.node
        contacts = {c.node_id: c.name for c in await node.contacts()}
        return {
            "peers": [
                {
                    "link": p.link_id,
                    "transport": p.transport,
                    "node_id": p.node_id.hex(),
                    "name": p.name,
                    "contact": contacts.get(p.node_id),
                    "address": p.describe,
                    "since_ms": p.since_ms,
                }
                for p in node.neighbours()
            ],
            "transports": [
                {
                    "name": t.name,
                    "up": t.up,
                    "state": t.state or ("up" if t.up else "down"),
                    "detail": t.detail,
                    "reason": t.reason or None,
                }
                for t in node.transport_status()
            ],
            "gateway": node.is_gateway,
            "gateway_reason": node.gateway_reason() or None,
            "gateways": [
                {"node_id": n.hex(), "name": name, "contact": contacts.get(n)}
                for n, name in node.gateways().items()
            ],
        }

    async def _group(self, request: dict[str, Any]) -> dict[str, Any]:
        node = self.node
        action = str(request.get("action", "list"))
        members = [str(m) for m in request.get("members", [])]
        if action == "list":
            groups = node.groups()
        elif action == "create":
            groups = [await node.create_group(str(request["name"]), members)]
        elif action in ("add", "remove", "admin"):
            groups = [await node.change_group(str(request["group"]), **{action: members})]
        elif action == "show":
            groups = [node.find_group(str(request["group"]))]
        elif action == "leave":
            groups = [await node.leave_group(str(request["group"]))]
        else:
            raise ValueError(f"unknown group action {action!r}")
        contacts = {c.node_id: c.name for c in await node.contacts()}
        names = {**node.announced_peers(), **contacts, node.identity.node_id: node.name}
        me = node.identity.node_id
        return {"groups": [group_json(g, me, names, contacts) for g in groups]}

    async def _delete(self, request: dict[str, Any]) -> dict[str, Any]:
        node = self.node
        conversation = await node.resolve_conversation(str(request["conversation"]))
        prefixes = request.get("msg_ids") or []
        if not isinstance(prefixes, list):
            raise ValueError("msg_ids must be a list of hex prefixes")
        every = await node.history(conversation, ALL_MESSAGES)
        picked = {m.msg_id for m in pick(every, [str(p) for p in prefixes])}
        reply: dict[str, Any] = {
            "conversation": conversation,
            "messages": [m for m in history_json(every) if bytes.fromhex(m["msg_id"]) in picked],
        }
        if request.get("dry_run"):
            return {**reply, "count": len(picked) if prefixes else len(every)}
        deleted = await node.delete(conversation, list(picked))
        return {**reply, "deleted": deleted}

    async def _add_card(self, request: dict[str, Any]) -> dict[str, Any]:
        node = self.node
        name = request.get("name")
        label = str(name) if name else None
        replace_keys = bool(request.get("replace"))
        try:
            if "peer" in request:  # a peer that announced itself, by name or id prefix
                result = await node.add_from_peer(
                    str(request["peer"]), label, replace_keys=replace_keys
                )
            else:
                card = ContactCard.from_text(str(request["card"]))
                result = await node.add_card(card, label, replace_keys=replace_keys)
        except KeyChangeError as exc:
            me = node.identity.public
            return {
                "added": False,
                "key_change": True,
                "new": contact_json(exc.new, me),
                "conflicts": [contact_json(c, me) for c in exc.conflicts],
            }
        return {
            "added": True,
            "outcome": result.outcome.value,
            "contact": contact_json(result.contact, node.identity.public),
            "compromised": [contact_json(c, node.identity.public) for c in result.compromised],
        }

    async def _verify(self, request: dict[str, Any]) -> dict[str, Any]:
        number = request.get("safety_number")
        payloads = request.get("payloads") or []
        if not isinstance(payloads, list):
            raise ValueError("payloads must be a list of texts")
        verdict = await self.node.verify(
            str(request["contact"]),
            number=str(number) if number is not None else None,
            payloads=[str(p) for p in payloads],
            confirmed=bool(request.get("confirm")),
        )
        return {
            "contact": contact_json(verdict.contact, self.node.identity.public),
            "safety_number": verdict.number,
            "marked": verdict.mark,
        }


def request(path: Path, payload: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    """Send one request to a running node (blocking; for the CLI).

    Raises :class:`NodeUnreachable` when no node took the connection (nothing was sent: the
    caller may do the work offline), and :class:`TransportError` once the request may have
    reached the node but no whole reply came back (the caller must not do it a second time).
    """
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    except OSError as exc:
        raise NodeUnreachable(f"cannot open a socket: {exc}") from exc
    with sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except OSError as exc:
            raise NodeUnreachable(f"no node answers at {path}: {exc}") from exc
        buffer = b""
        try:
            sock.sendall(json.dumps(payload).encode() + b"\n")
            while not buffer.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buffer += chunk
                if len(buffer) > MAX_REPLY:
                    raise TransportError("reply from node too large")
        except OSError as exc:
            raise TransportError(
                f"the running node may have taken the request, but its reply was lost: {exc}"
            ) from exc
    try:
        reply = json.loads(buffer)
    except ValueError as exc:
        raise TransportError(
            "the running node may have taken the request, but sent no readable reply"
        ) from exc
    if not isinstance(reply, dict):
        raise TransportError("the running node sent an unreadable reply")
    return reply
