"""``/device``: linking devices from the chat screen (the grammar, and what it does).

    /device link               DeviceLink()           show a one-time code (and its QR code)
    /device join <code>        DeviceJoin(code)       link this device to the code's account
    /device confirm <answer>   DeviceConfirm(answer)  y, n, or the string the other device shows
    /device list               DeviceList()           this account's devices
    /device revoke <device>    DeviceRevoke(device)   take a lost or stolen device off for good

Both devices show the same confirmation string once the new one asked; the person compares
them and answers on each device. The steps of an exchange reach the screen as ``link`` notices
(:meth:`DeviceActions.on_link`), whatever started it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

from meshchat.account.link import LinkCode
from meshchat.display import safe_line
from meshchat.errors import LinkError, UsageError
from meshchat.events import LinkProgress
from meshchat.node._types import DevicesNotice

if TYPE_CHECKING:
    from meshchat.tui.controller import ChatController

__all__ = [
    "DEVICE_HELP",
    "DeviceActions",
    "DeviceCommand",
    "DeviceConfirm",
    "DeviceJoin",
    "DeviceLink",
    "DeviceList",
    "DeviceRevoke",
    "parse_device",
]

DEVICE_HELP = """\
  /device link | list          show a code to link a new device to you | list your devices
  /device join <code>          link this device (from its code) | /device confirm y|n|string
  /device revoke <device>      take another device (name or id prefix) off your account"""

_USAGE = "usage: /device link | join <code> | confirm <y|n|string> | list | revoke <device>"

_ENDED = {
    "expired": "the code expired (ten minutes): /device link makes a new one",
    "used": "that code was used already",
    "withdrawn": "too many wrong attempts: the code was withdrawn",
    "declined": "the other device said no, or the strings differed: nothing was linked",
    "mismatch": "the strings differ: nothing was linked (someone may be between the devices)",
    "bad-mac": "the other device does not know the code: nothing was linked",
}


@dataclass(frozen=True, slots=True)
class DeviceLink:
    """Show a one-time code to link a new device to this account."""


@dataclass(frozen=True, slots=True)
class DeviceJoin:
    """Link this device to the account of the device that shows ``code``."""

    code: str


@dataclass(frozen=True, slots=True)
class DeviceConfirm:
    """The person's answer to the confirmation string: y, n, or the other device's string."""

    answer: str


@dataclass(frozen=True, slots=True)
class DeviceList:
    """Show this account's devices."""


@dataclass(frozen=True, slots=True)
class DeviceRevoke:
    """Take another device of this account (its name or node id prefix) off the list."""

    device: str


DeviceCommand = DeviceLink | DeviceJoin | DeviceConfirm | DeviceList | DeviceRevoke


def parse_device(rest: str) -> DeviceCommand:
    """The words after ``/device``; raises :class:`UsageError`."""
    words = rest.split(maxsplit=1)
    action = words[0].lower() if words else ""
    arg = words[1].strip() if len(words) > 1 else ""
    if action == "link" and not arg:
        return DeviceLink()
    if action == "list" and not arg:
        return DeviceList()
    if action == "join" and arg:
        try:
            LinkCode.parse(arg)
        except LinkError as exc:
            raise UsageError(f"/device join: {exc}") from exc
        return DeviceJoin(arg)
    if action == "confirm" and arg:
        return DeviceConfirm(arg)
    if action == "revoke" and arg:
        return DeviceRevoke(arg)
    raise UsageError(_USAGE)


def _qr_text(text: str) -> str:
    import segno

    out = io.StringIO()
    segno.make(text, error="m").terminal(out=out, compact=True)
    return out.getvalue().rstrip("\n")


def _peer(progress: LinkProgress) -> str:
    short = progress.peer.short_id if progress.peer is not None else "?"
    return f"{safe_line(progress.peer_name)} ({short})" if progress.peer_name else short


class DeviceActions:
    """``/device`` for one chat screen."""

    def __init__(self, controller: ChatController) -> None:
        self.ctl = controller
        self.node = controller.node

    async def execute(self, command: DeviceCommand) -> None:
        node = self.node
        if isinstance(command, DeviceLink):
            offer = await node.link_start()
            self.ctl.note(
                f"link code: {offer.code}  (one use, ten minutes)\n"
                f"{_qr_text(offer.qr)}\n"
                f"on the new device: meshchat device join {offer.code}  "
                f"(or meshchat init --link {offer.code}, or /device join {offer.code})"
            )
        elif isinstance(command, DeviceJoin):
            self.ctl.note("looking for the device that shows this code...")
            self.ctl.spawn(self._join(command.code))
        elif isinstance(command, DeviceRevoke):
            own = await node.devices.revoke(command.device)
            self.ctl.note(
                f"revoked {safe_line(command.device)}: your account now has "
                f"{len(own.devices)} device(s); contacts and your devices are told"
            )
        elif isinstance(command, DeviceConfirm):
            role = self._asking()
            if role is None:
                raise UsageError("no link waits for an answer: /device link or /device join")
            await node.link_confirm(role, command.answer)
        else:
            devices = node.device_list().devices
            me = node.identity.node_id
            lines = [f"account {node.account_id.hex()[:16]}: {len(devices)} device(s)"]
            for device in devices:
                this = "  (this device)" if device.node_id == me else ""
                lines.append(f"  {device.node_id.hex()[:8]}  {safe_line(device.name)}{this}")
            self.ctl.note("\n".join(lines))

    async def _join(self, code: str) -> None:
        await self.node.link_join(code, timeout_s=120.0)

    def _asking(self) -> str | None:
        for role in ("existing", "new"):
            progress = self.node.link_status(role)
            if progress is not None and progress.state == "confirming" and progress.string:
                return role
        return None

    def on_link(self, progress: LinkProgress) -> None:
        """A step of a link exchange: tell the person what to do next."""
        state, new = progress.state, progress.role == "new"
        if state == "confirming" and progress.string:
            who = "the device you link to" if new else f"new device {_peer(progress)}"
            self.ctl.note(
                f"{who}: confirmation string {progress.string}. Compare it with the other "
                "device's, then /device confirm y (or the string it shows), or "
                "/device confirm n"
            )
        elif state == "requested":
            self.ctl.note(f"asked {_peer(progress)} to link this device; waiting...")
        elif state == "accepted":
            self.ctl.note(f"linked: {_peer(progress)} is now a device of your account")
        elif state == "linked":
            self.ctl.note(
                f"linked: this device is now on account {self.node.account_id.hex()[:16]}"
            )
        elif state == "ended":
            reason = progress.reason or ""
            self.ctl.note(f"not linked: {_ENDED.get(reason, reason)}", error=True)
        elif progress.reason:
            self.ctl.note(f"a link attempt was refused ({progress.reason})", error=True)

    def on_devices(self, notice: DevicesNotice) -> None:
        """An account's devices changed: said loudly when the change was not signed by a
        device already trusted on that account."""
        if notice.this_device_revoked:
            self.ctl.note(
                "!! THIS DEVICE WAS REVOKED by another device of your account: your contacts "
                "no longer write to it",
                error=True,
            )
            return
        whose = "your account" if notice.own else (safe_line(notice.name) or "a contact")
        parts = []
        if notice.added:
            parts.append("added " + ", ".join(n.hex()[:8] for n in notice.added))
        if notice.revoked:
            parts.append("revoked " + ", ".join(n.hex()[:8] for n in notice.revoked))
        text = f"device list changed for {whose}: {'; '.join(parts)}"
        if notice.loud:
            text = (
                f"!! {text.upper()[:1]}{text[1:]} -- not signed by a device you trusted: "
                "compare safety numbers before trusting the new devices"
            )
        self.ctl.note(text, error=notice.loud)
