"""The LAN transport: mDNS (DNS-SD) discovery of ``_meshchat._tcp.local.`` and TCP links."""

from meshchat.transports.lan._discovery import SERVICE_TYPE
from meshchat.transports.lan._transport import LanTransport

__all__ = ["SERVICE_TYPE", "LanTransport"]
