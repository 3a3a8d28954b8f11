"""mDNS/DNS-SD advertising and browsing for the LAN transport (python-zeroconf).

A node registers one service instance ``mc-<first 16 hex digits of its node id>`` of type
``_meshchat._tcp.local.`` pointing at its TCP listener, with TXT records ``id=<node id hex>``
and ``v=1``. It browses the same type; every service found (other than its own) is resolved to
addresses and a port and reported as a :class:`ServiceRecord`; a service that says goodbye or
expires is reported removed. The TXT id is only a hint: the link handshake proves who answers.

Everything zeroconf raises is turned into :class:`TransportError` here, and zeroconf is not
imported anywhere else in meshchat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from zeroconf import Error as ZeroconfError
from zeroconf import InterfaceChoice, IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from meshchat.errors import TransportError
from meshchat.identity import NODE_ID_SIZE

__all__ = [
    "SERVICE_TYPE",
    "TXT_VERSION",
    "Discovery",
    "ServiceRecord",
    "instance_name",
    "parse_txt",
]

logger = logging.getLogger(__name__)

SERVICE_TYPE = "_meshchat._tcp.local."
TXT_VERSION = b"1"
#: most services tracked at once; more are ignored (a flood of fake adverts stays bounded)
MAX_SERVICES = 256
#: most addresses taken from one service record
MAX_ADDRESSES = 8
RESOLVE_TIMEOUT_MS = 3000
#: how long stop() waits for the goodbye packets to go out
GOODBYE_TIMEOUT = 1.0


@dataclass(frozen=True, slots=True)
class ServiceRecord:
    """A resolved peer advertisement. ``node_id`` is what the peer claims, not yet proven."""

    name: str
    node_id: bytes
    addresses: tuple[str, ...]
    port: int

    def __post_init__(self) -> None:
        if len(self.node_id) != NODE_ID_SIZE:
            raise TransportError("service record node id has the wrong size")
        if not 0 < self.port < 65536:
            raise TransportError(f"service record port {self.port} out of range")
        if not self.addresses or len(self.addresses) > MAX_ADDRESSES:
            raise TransportError("service record needs 1..8 addresses")


def instance_name(node_id: bytes, service_type: str = SERVICE_TYPE) -> str:
    """The full service instance name a node advertises under."""
    return f"mc-{node_id.hex()[:16]}.{service_type}"


def parse_txt(properties: Mapping[bytes, bytes | None]) -> bytes:
    """The node id claimed by a TXT record. Raises :class:`TransportError` unless it is ours, v1."""
    version = properties.get(b"v")
    if version != TXT_VERSION:
        raise TransportError(f"unsupported meshchat service version {version!r:.20}")
    hint = properties.get(b"id")
    if hint is None or len(hint) != 2 * NODE_ID_SIZE:
        raise TransportError("service TXT id missing or of the wrong length")
    try:
        text = hint.decode("ascii")
        node_id = bytes.fromhex(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise TransportError("service TXT id is not hex") from exc
    if text != node_id.hex():  # only lower-case, no spaces: one spelling per id
        raise TransportError("service TXT id is not lower-case hex")
    return node_id


FoundCallback = Callable[[ServiceRecord], None]
RemovedCallback = Callable[[str], None]


class Discovery:
    """Owns one AsyncZeroconf: advertises this node and reports peers' services."""

    def __init__(
        self,
        *,
        service_type: str,
        interfaces: Sequence[str] | None,
        on_found: FoundCallback,
        on_removed: RemovedCallback,
    ) -> None:
        self._service_type = service_type
        self._interfaces = list(interfaces) if interfaces is not None else None
        self._on_found = on_found
        self._on_removed = on_removed
        self._zc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._own_name = ""
        self._info: AsyncServiceInfo | None = None
        self._registered = False
        self._register_task: asyncio.Task[None] | None = None
        self._announce: Awaitable[object] | None = None
        self._resolving: dict[str, asyncio.Task[None]] = {}
        self._known: set[str] = set()

    @property
    def advertised(self) -> bool:
        """True once the service passed mDNS probing and is registered."""
        return self._registered

    async def start(self, node_id: bytes, port: int, addresses: Sequence[str]) -> None:
        """Open the mDNS sockets, start browsing, and begin registering in the background.

        Registering takes about a second (mDNS probing), so it is not awaited here.
        """
        self._own_name = instance_name(node_id, self._service_type)
        label = self._own_name.split(".", 1)[0]
        try:
            self._info = AsyncServiceInfo(
                self._service_type,
                self._own_name,
                port=port,
                properties={b"id": node_id.hex().encode(), b"v": TXT_VERSION},
                server=f"{label}.local.",
                addresses=[socket.inet_aton(a) for a in addresses],
            )
            interfaces = self._interfaces if self._interfaces is not None else InterfaceChoice.All
            self._zc = AsyncZeroconf(interfaces=interfaces, ip_version=IPVersion.V4Only)
            self._browser = AsyncServiceBrowser(
                self._zc.zeroconf, self._service_type, handlers=[self._on_state_change]
            )
        except (ZeroconfError, OSError, ValueError) as exc:
            await self.stop()
            raise TransportError(f"cannot start mDNS: {exc!r}") from exc
        self._register_task = asyncio.create_task(self._register(), name="lan-mdns-register")

    async def _register(self) -> None:
        assert self._zc is not None and self._info is not None
        try:
            self._announce = await self._zc.async_register_service(self._info)
            self._registered = True
            logger.info("advertising %s", self._own_name)
            await self._announce
        except (ZeroconfError, OSError) as exc:
            logger.error("cannot advertise %s: %r", self._own_name, exc)

    async def stop(self) -> None:
        """Say goodbye, stop browsing and close the mDNS sockets. Idempotent."""
        if self._register_task is not None:
            self._register_task.cancel()
            await asyncio.gather(self._register_task, return_exceptions=True)
            self._register_task = None
        if isinstance(self._announce, asyncio.Future):
            self._announce.cancel()
            await asyncio.gather(self._announce, return_exceptions=True)
        self._announce = None
        tasks = list(self._resolving.values())
        self._resolving.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        zc, self._zc = self._zc, None
        if zc is None:
            return
        if self._registered and self._info is not None:
            self._registered = False
            with contextlib.suppress(ZeroconfError, OSError, TimeoutError):
                goodbye = await zc.async_unregister_service(self._info)
                async with asyncio.timeout(GOODBYE_TIMEOUT):
                    await goodbye
        if self._browser is not None:
            await self._browser.async_cancel()
            self._browser = None
        with contextlib.suppress(ZeroconfError, OSError):
            await zc.async_close()

    def _on_state_change(
        self,
        zeroconf: Zeroconf,
        service_type: str,
        name: str,
        state_change: ServiceStateChange,
    ) -> None:
        if name == self._own_name or self._zc is None:
            return
        logger.debug("mdns: %s %s", name, state_change.name)
        if state_change is ServiceStateChange.Removed:
            self._known.discard(name)
            task = self._resolving.pop(name, None)
            if task is not None:
                task.cancel()
            self._on_removed(name)
            return
        if name not in self._known and len(self._known) >= MAX_SERVICES:
            logger.warning("ignoring service %s: already tracking %d", name, MAX_SERVICES)
            return
        self._known.add(name)
        previous = self._resolving.pop(name, None)
        if previous is not None:
            previous.cancel()
        task = asyncio.create_task(self._resolve(service_type, name), name=f"lan-resolve-{name}")
        self._resolving[name] = task
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        for name, running in list(self._resolving.items()):
            if running is task:
                del self._resolving[name]

    async def _resolve(self, service_type: str, name: str) -> None:
        if self._zc is None:
            return
        info = AsyncServiceInfo(service_type, name)
        try:
            found = await info.async_request(self._zc.zeroconf, RESOLVE_TIMEOUT_MS)
        except (ZeroconfError, OSError) as exc:
            logger.debug("resolving %s failed: %r", name, exc)
            return
        if not found or info.port is None:
            logger.debug("service %s did not resolve", name)
            return
        try:
            node_id = parse_txt(info.properties)
            addresses = tuple(info.parsed_addresses(IPVersion.V4Only)[:MAX_ADDRESSES])
            record = ServiceRecord(name, node_id, addresses, info.port)
        except TransportError as exc:
            logger.info("ignoring service %s: %s", name, exc)
            return
        if name in self._known:
            self._on_found(record)
