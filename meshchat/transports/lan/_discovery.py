"""mDNS/DNS-SD advertising and browsing for the LAN transport (python-zeroconf).

A node registers one service instance of type ``_meshchat._tcp.local.`` pointing at its TCP
listener, under a random name ``mc-<16 random hex digits>`` (host name alike) that is drawn
afresh at every start and every ``rotate_every`` seconds, with the single TXT record ``v=2``.
Nothing in the advertisement names the node: a passive listener cannot follow a device from
network to network by its adverts (who a node is shows only to a peer that completes the
encrypted link handshake with it).

It browses the same type; every service found (other than its own) is resolved to addresses
and a port and reported as a :class:`ServiceRecord`; a service that says goodbye or expires is
reported removed. Anyone can advertise, so what is tracked is bounded: at most
``MAX_SERVICES`` services, and at most ``MAX_SERVICES_PER_ADDRESS`` whose first address is the
same host; services beyond that are ignored (and not resolved again), so a host advertising
hundreds of fakes holds a few places and honest services still fit.

Everything zeroconf raises is turned into :class:`TransportError` here, and zeroconf is not
imported anywhere else in meshchat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from zeroconf import Error as ZeroconfError
from zeroconf import InterfaceChoice, IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from meshchat.errors import TransportError

__all__ = [
    "SERVICE_TYPE",
    "TXT_VERSION",
    "Discovery",
    "ServiceRecord",
    "parse_txt",
    "random_label",
]

logger = logging.getLogger(__name__)

SERVICE_TYPE = "_meshchat._tcp.local."
TXT_VERSION = b"2"
#: most services tracked at once; more are ignored (a flood of fake adverts stays bounded)
MAX_SERVICES = 256
#: most services tracked whose first address is one host
MAX_SERVICES_PER_ADDRESS = 8
#: most names remembered as ignored (then the memory starts again)
MAX_IGNORED = 4096
#: how often the advertised name changes (seconds)
ROTATE_EVERY = 15 * 60.0
#: most addresses taken from one service record
MAX_ADDRESSES = 8
RESOLVE_TIMEOUT_MS = 3000
#: how long stop() waits for the goodbye packets to go out
GOODBYE_TIMEOUT = 1.0


@dataclass(frozen=True, slots=True)
class ServiceRecord:
    """A resolved peer advertisement: where a meshchat node says it listens (not who it is)."""

    name: str
    addresses: tuple[str, ...]
    port: int

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise TransportError(
                f"service record port {self.port} out of range", transport="lan", reason="advert"
            )
        if not self.addresses or len(self.addresses) > MAX_ADDRESSES:
            raise TransportError(
                "service record needs 1..8 addresses", transport="lan", reason="advert"
            )


def random_label() -> str:
    """A fresh random instance label, e.g. ``mc-3f9a0c1d2e4b5a69``."""
    return f"mc-{secrets.token_hex(8)}"


def parse_txt(properties: Mapping[bytes, bytes | None]) -> None:
    """Check a service's TXT record. Raises :class:`TransportError` unless it is ours, v2.

    Other keys (an older node's ``id``, say) are ignored: nothing in an advertisement is trusted.
    """
    version = properties.get(b"v")
    if version != TXT_VERSION:
        raise TransportError(
            f"unsupported meshchat service version {version!r:.20}",
            transport="lan",
            reason="advert",
        )


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
        rotate_every: float = ROTATE_EVERY,
    ) -> None:
        if rotate_every <= 0:
            raise ValueError("rotate_every must be positive")
        self._service_type = service_type
        self._interfaces = list(interfaces) if interfaces is not None else None
        self._on_found = on_found
        self._on_removed = on_removed
        self._rotate_every = rotate_every
        self._zc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._port = 0
        self._addresses: list[bytes] = []
        #: names this node advertised under (the current one last), never taken for peers
        self._own_names: list[str] = []
        self._info: AsyncServiceInfo | None = None
        self._registered = False
        self._register_task: asyncio.Task[None] | None = None
        self._resolving: dict[str, asyncio.Task[None]] = {}
        #: tracked services and the host of each once resolved
        self._known: dict[str, str | None] = {}
        self._ignored: set[str] = set()

    @property
    def advertised(self) -> bool:
        """True once the service passed mDNS probing and is registered."""
        return self._registered

    @property
    def name(self) -> str:
        """The instance name advertised now (empty before start)."""
        return self._own_names[-1] if self._own_names else ""

    @property
    def tracked(self) -> int:
        """Services tracked now."""
        return len(self._known)

    async def start(self, port: int, addresses: Sequence[str]) -> None:
        """Open the mDNS sockets, start browsing, and begin registering in the background.

        Registering takes about a second (mDNS probing), so it is not awaited here.
        """
        try:
            self._port = port
            self._addresses = [socket.inet_aton(a) for a in addresses]
            interfaces = self._interfaces if self._interfaces is not None else InterfaceChoice.All
            self._zc = AsyncZeroconf(interfaces=interfaces, ip_version=IPVersion.V4Only)
            self._browser = AsyncServiceBrowser(
                self._zc.zeroconf, self._service_type, handlers=[self._on_state_change]
            )
        except (ZeroconfError, OSError, ValueError) as exc:
            await self.stop()
            raise TransportError(
                f"cannot start mDNS: {exc!r}", transport="lan", reason="mdns-failed"
            ) from exc
        self._register_task = asyncio.create_task(self._advertise(), name="lan-mdns-register")

    def _new_info(self) -> AsyncServiceInfo:
        label = random_label()
        name = f"{label}.{self._service_type}"
        self._own_names = [*self._own_names[-7:], name]
        return AsyncServiceInfo(
            self._service_type,
            name,
            port=self._port,
            properties={b"v": TXT_VERSION},
            server=f"{label}.local.",
            addresses=self._addresses,
        )

    async def _advertise(self) -> None:
        """Register under a random name; each ``rotate_every`` s, say goodbye, take a new one."""
        while self._zc is not None:
            info = self._new_info()
            try:
                announce = await self._zc.async_register_service(info)
                self._info, self._registered = info, True
                logger.info("advertising %s", info.name)
                await announce
            except (ZeroconfError, OSError, ValueError) as exc:
                logger.error("cannot advertise %s: %r", info.name, exc)
                return
            await asyncio.sleep(self._rotate_every)
            await self._unregister()

    async def _unregister(self) -> None:
        zc, info = self._zc, self._info
        self._registered, self._info = False, None
        if zc is None or info is None:
            return
        with contextlib.suppress(ZeroconfError, OSError, TimeoutError):
            goodbye = await zc.async_unregister_service(info)
            async with asyncio.timeout(GOODBYE_TIMEOUT):
                await goodbye

    async def stop(self) -> None:
        """Say goodbye, stop browsing and close the mDNS sockets. Idempotent."""
        if self._register_task is not None:
            self._register_task.cancel()
            await asyncio.gather(self._register_task, return_exceptions=True)
            self._register_task = None
        tasks = list(self._resolving.values())
        self._resolving.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._zc is None:
            return
        await self._unregister()
        zc, self._zc = self._zc, None
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
        if name in self._own_names or self._zc is None:
            return
        logger.debug("mdns: %s %s", name, state_change.name)
        if state_change is ServiceStateChange.Removed:
            self._ignored.discard(name)
            if name in self._known:
                del self._known[name]
                task = self._resolving.pop(name, None)
                if task is not None:
                    task.cancel()
                self._on_removed(name)
            return
        if name in self._ignored:
            return
        if name not in self._known and len(self._known) >= MAX_SERVICES:
            logger.warning("ignoring service %s: already tracking %d", name, MAX_SERVICES)
            return
        self._known.setdefault(name, None)
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

    def _ignore(self, name: str, why: str) -> None:
        logger.info("ignoring service %s: %s", name, why)
        if self._known.pop(name, None) is not None:
            self._on_removed(name)  # it was reported found before
        if len(self._ignored) >= MAX_IGNORED:
            self._ignored.clear()
        self._ignored.add(name)

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
            parse_txt(info.properties)
            addresses = tuple(info.parsed_addresses(IPVersion.V4Only)[:MAX_ADDRESSES])
            record = ServiceRecord(name, addresses, info.port)
        except TransportError as exc:
            self._ignore(name, str(exc))
            return
        if name not in self._known:
            return
        host = record.addresses[0]
        same_host = sum(1 for n, h in self._known.items() if h == host and n != name)
        if self._known[name] != host and same_host >= MAX_SERVICES_PER_ADDRESS:
            self._ignore(name, f"{same_host} services of {host} tracked already")
            return
        self._known[name] = host
        self._on_found(record)
