"""Transports: thin asyncio adapters that discover peers and carry frames over links."""

from meshchat.transports.base import Link, LinkHandler, Transport, TransportStatus

__all__ = ["Link", "LinkHandler", "Transport", "TransportStatus"]
