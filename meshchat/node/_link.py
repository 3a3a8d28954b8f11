"""Linking devices, as the node carries it out: codes, waiting for the other device, answers.

The exchange itself is the engine's (:mod:`meshchat.engine._link`); this module runs its steps
on the node's worker, finds the device a code names among the devices heard announcing
themselves, and lets faces wait for the next step (:meth:`NodeLink.wait`). Every step also
reaches the faces as a ``link`` notice.
"""

from __future__ import annotations

import asyncio
import platform
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from meshchat.account.devicelist import DeviceList
from meshchat.account.link import LinkCode
from meshchat.engine._link import EXISTING, NEW
from meshchat.errors import IdentityError, LinkError, LinkReason, UsageError
from meshchat.events import LinkProgress
from meshchat.identity import clean_name

if TYPE_CHECKING:
    from meshchat.node import Node

__all__ = [
    "EXISTING",
    "NEW",
    "LinkOffer",
    "NodeLink",
    "control_op",
    "default_device_name",
    "devices_json",
    "progress_json",
]

#: states after which nothing more happens on that side
FINAL = frozenset({"accepted", "linked", "ended"})
#: states in which the person is asked
ASKING = frozenset({"confirming"})


@dataclass(frozen=True, slots=True)
class LinkOffer:
    """A code this device shows: as typed, as a QR code's text, and when it ends."""

    code: str
    qr: str
    expires_ms: int


def default_device_name() -> str:
    """This machine's host name, as a device name (``device`` if it has none usable)."""
    try:
        name = clean_name(platform.node().split(".")[0])
    except IdentityError:
        name = ""
    return name or "device"


def progress_json(progress: LinkProgress | None) -> dict[str, Any]:
    """A link exchange's state as the control socket and ``--json`` show it."""
    if progress is None:
        return {"state": "none"}
    peer = progress.peer
    return {
        "role": progress.role,
        "state": progress.state,
        "string": progress.string,
        "peer": None if peer is None else peer.node_id.hex(),
        "peer_name": progress.peer_name,
        "reason": progress.reason,
    }


class NodeLink:
    """The link steps of one node."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.last: dict[str, LinkProgress] = {}
        self._changed = asyncio.Event()

    def progress(self, event: LinkProgress) -> None:
        """A step of the engine's (called by the effects, after the commit)."""
        self.last[event.role] = event
        self._changed.set()
        self._changed = asyncio.Event()

    async def start(self) -> LinkOffer:
        """Show a new one-time code on this (existing) device."""

        async def go() -> LinkOffer:
            inviter = self.node.engine.link.start(self.node.clock())
            self.last.pop(EXISTING, None)
            return LinkOffer(inviter.code.to_text(), inviter.code.qr_text(), inviter.expires_ms)

        return await self.node.submit(go)

    async def join(self, text: str, device_name: str = "", timeout_s: float = 60.0) -> LinkProgress:
        """Join the account of the device that showed the code ``text``: wait (up to
        ``timeout_s``) until that device is heard announcing itself, then send it the request.
        Raises :class:`LinkError` (``BAD_CODE``, ``NOT_FOUND``) or :class:`UsageError`."""
        code = LinkCode.parse(text)
        name = clean_name(device_name) if device_name else default_device_name()
        node = self.node
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    heard = node.neighbourhood.announces.values()
                    found = [e for e in heard if code.names(e.identity.node_id)]
                    if found:
                        break
                    await asyncio.sleep(0.1)
        except TimeoutError as exc:
            raise LinkError(
                LinkReason.NOT_FOUND,
                "the device that showed this code was not heard (is it running, announcing "
                "itself, on this network?)",
            ) from exc
        if len(found) > 1:
            raise LinkError(LinkReason.BAD_CODE, "two devices match this code: ask for a new one")
        event = found[0]

        async def go() -> None:
            self.last.pop(NEW, None)
            outputs = node.engine.link.join(code, event.identity, event.prekey, name, node.clock())
            await node.effects.run(outputs)

        await node.submit(go)
        return self.status(NEW) or LinkProgress(NEW, "requested", "", event.identity, "", None)

    def status(self, role: str) -> LinkProgress | None:
        """The last step of ``role``'s exchange, or None."""
        return self.last.get(role) or self.node.engine.link.status(role)

    async def wait(
        self, role: str, timeout_s: float, *, answered: bool = False
    ) -> LinkProgress | None:
        """The exchange of ``role`` once the person must answer (unless ``answered``) or it
        is over; or where it stands after ``timeout_s``."""
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    current = self.status(role)
                    if current is not None and (
                        current.state in FINAL
                        or (not answered and current.state in ASKING and current.string)
                    ):
                        return current
                    await self._changed.wait()
        except TimeoutError:
            return self.status(role)

    async def answer(self, role: str, answer: str) -> LinkProgress | None:
        """The person's answer on this device: ``y``, ``n``, or the other device's string."""
        if role not in (EXISTING, NEW):
            raise UsageError("role is existing or new")
        node = self.node

        async def go() -> None:
            await node.effects.run(node.engine.link.answer(role, answer, node.clock()))

        await node.submit(go)
        return self.status(role)


#: the longest one control request waits (the client asks again)
MAX_WAIT_S = 20.0


async def control_op(node: Node, request: dict[str, Any]) -> dict[str, Any]:
    """The control socket's link ops (``link_start``, ``link_join``, ``link_wait``,
    ``link_confirm``); see :mod:`meshchat.control`."""
    op = request["op"]
    timeout = max(0.0, min(float(request.get("timeout", MAX_WAIT_S)), MAX_WAIT_S))
    if op == "link_devices":
        return devices_json(node.engine.accounts.own, node.identity.node_id)
    if op == "link_revoke":
        revoked = await node.devices.revoke(str(request["device"]))
        return devices_json(revoked, node.identity.node_id)
    if op == "link_start":
        offer = await node.link_start()
        return {"code": offer.code, "qr": offer.qr, "expires_ms": offer.expires_ms}
    if op == "link_join":
        code, name = str(request["code"]), str(request.get("device_name", ""))
        try:
            joined = await node.link_join(code, name, timeout)
        except LinkError as exc:
            if exc.reason is not LinkReason.NOT_FOUND:
                raise
            return {"state": "not-found", "reason": exc.reason.value, "error": str(exc)}
        return {**progress_json(joined), "account_id": node.account_id.hex()}
    role = str(request.get("role", ""))
    if role not in (EXISTING, NEW):
        raise UsageError("role is existing or new")
    if op == "link_wait":
        answered = bool(request.get("answered", False))
        waited = await node.link_wait(role, timeout, answered=answered)
        return {**progress_json(waited), "account_id": node.account_id.hex()}
    if op == "link_confirm":
        confirmed = await node.link_confirm(role, str(request["answer"]))
        return {**progress_json(confirmed), "account_id": node.account_id.hex()}
    raise UsageError(f"unknown op {op!r}")


def devices_json(own: DeviceList, me: bytes) -> dict[str, Any]:
    """This account's device list as ``device list --json`` and the control op ``devices``
    show it (names as the devices gave them: sanitize before showing)."""
    return {
        "account_id": own.account_id.hex(),
        "version": own.version,
        "devices": [
            {"node_id": d.node_id.hex(), "name": d.name, "this": d.node_id == me}
            for d in own.devices
        ],
        "revoked": [r.hex() for r in own.revoked],
    }
