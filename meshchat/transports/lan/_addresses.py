"""Which IPv4 addresses a node advertises for its TCP listener.

python-zeroconf does not fill in a service's addresses, so without a list peers would resolve
the service but find no address to dial. The choice, most specific first: the addresses the
caller gave; the listening host if it is a single address; the IPv4 addresses among the
interfaces mDNS runs on; every IPv4 address of the machine. Loopback addresses are left out
unless mDNS runs on loopback alone (then they are the only ones a peer can reach), and a machine
with nothing but loopback advertises loopback.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import ifaddr

__all__ = ["choose_addresses", "is_loopback_only"]

_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})


def _ipv4(text: str) -> ipaddress.IPv4Address | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return address if isinstance(address, ipaddress.IPv4Address) else None


def is_loopback_only(interfaces: Sequence[str] | None) -> bool:
    """True when every interface named is a loopback address (and at least one is named)."""
    if not interfaces:
        return False
    for name in interfaces:
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            return False
        if not address.is_loopback:
            return False
    return True


def _machine_ipv4() -> list[str]:
    found: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if ip.is_IPv4 and isinstance(ip.ip, str) and ip.ip not in found:
                found.append(ip.ip)
    return found


def choose_addresses(
    host: str,
    interfaces: Sequence[str] | None,
    advertised: Sequence[str] | None,
) -> list[str]:
    """The IPv4 addresses to put in the service record."""
    if advertised:
        return list(advertised)
    if host not in _WILDCARD_HOSTS:
        return [host]
    keep_loopback = is_loopback_only(interfaces)
    candidates = [name for name in interfaces or () if _ipv4(name) is not None]
    if not candidates:
        candidates = _machine_ipv4()
    chosen = [a for a in candidates if keep_loopback or not _ipv4_is_loopback(a)]
    if not chosen:
        chosen = [a for a in candidates if _ipv4_is_loopback(a)] or ["127.0.0.1"]
    return chosen


def _ipv4_is_loopback(text: str) -> bool:
    address = _ipv4(text)
    return address is not None and address.is_loopback
