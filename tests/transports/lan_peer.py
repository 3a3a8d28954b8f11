"""One LAN node for the namespace test: run inside a namespace, print what happened as JSON.

It starts a LanTransport with default interfaces and addresses, waits for one link, sends one
frame, waits for the peer's frame, and reports the time from start to link up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from meshchat.identity import Identity
from meshchat.transports.base import Link
from meshchat.transports.lan import LanTransport


class Handler:
    def __init__(self) -> None:
        self.up: asyncio.Future[tuple[Link, float]] = asyncio.get_running_loop().create_future()
        self.frame: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def link_up(self, link: Link) -> None:
        if not self.up.done():
            self.up.set_result((link, time.monotonic()))

    def link_down(self, link: Link) -> None:
        pass

    def frame_received(self, link: Link, frame: bytes) -> None:
        if not self.frame.done():
            self.frame.set_result(frame)


async def main(seed: str, service_type: str, timeout: float) -> dict[str, object]:
    identity = Identity.from_seeds(bytes.fromhex(seed[:64]), bytes.fromhex(seed[64:]))
    handler = Handler()
    transport = LanTransport(identity, service_type=service_type)
    began = time.monotonic()
    await transport.start(handler)
    try:
        async with asyncio.timeout(timeout):
            link, up_at = await handler.up
            link.send(f"hello from {identity.node_id.hex()[:8]}".encode())
            received = await handler.frame
            # Stay a moment so our own frame is read before the link closes.
            await asyncio.sleep(0.2)
    finally:
        await transport.stop()
    return {
        "peer": link.peer.node_id.hex(),
        "received": received.decode(),
        "link_up_ms": (up_at - began) * 1000,
        "advertised": transport.advertised_addresses,
        "remote": link.describe(),
        "initiator": link.initiator,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", required=True)
    parser.add_argument("--service-type", required=True)
    parser.add_argument("--timeout", type=float, default=8.0)
    args = parser.parse_args()
    result = asyncio.run(main(args.seed, args.service_type, args.timeout))
    json.dump(result, sys.stdout)
