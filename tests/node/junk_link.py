"""A stranger's link that writes 1-byte junk frames as fast as it can (run as a process).

Usage: python junk_link.py PORT. Dials the node listening on 127.0.0.1:PORT over a real LAN
link (handshake with a throw-away identity), prints ``up`` once the link is up, then floods it
until killed.
"""

from __future__ import annotations

import asyncio
import sys

from meshchat.identity import Identity
from meshchat.transports.base import Link
from meshchat.transports.lan import LanTransport


class FirstLink:
    """A link handler that resolves ``up`` with the first link and ignores what it carries."""

    def __init__(self) -> None:
        self.up: asyncio.Future[Link] = asyncio.get_running_loop().create_future()

    def link_up(self, link: Link) -> None:
        if not self.up.done():
            self.up.set_result(link)

    def link_down(self, link: Link) -> None:
        pass

    def frame_received(self, link: Link, frame: bytes) -> None:
        pass


async def flood(port: int) -> None:
    transport = LanTransport(
        Identity.generate(),
        host="127.0.0.1",
        discovery=False,
        static_peers=[("127.0.0.1", port)],
        dial_delay=0.0,
    )
    handler = FirstLink()
    await transport.start(handler)
    link = await handler.up
    print("up", flush=True)
    while True:
        while link.send(b"\x00"):
            pass
        await asyncio.sleep(0)


if __name__ == "__main__":
    asyncio.run(flood(int(sys.argv[1])))
