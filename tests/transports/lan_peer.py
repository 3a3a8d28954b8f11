"""One LAN node in a process of its own, for the namespace and crash tests.

Default mode: start a LanTransport, wait for one link, send one frame, wait for the peer's
frame, and print what happened as one JSON object (with the time from start to link up).

``--echo`` mode: run until killed, sending every received frame back with ``echo:`` prefixed,
and print a JSON line each time a link comes up.
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
    def __init__(self, echo: bool) -> None:
        loop = asyncio.get_running_loop()
        self.echo = echo
        self.up: asyncio.Future[tuple[Link, float]] = loop.create_future()
        self.frame: asyncio.Future[bytes] = loop.create_future()

    def link_up(self, link: Link) -> None:
        if not self.up.done():
            self.up.set_result((link, time.monotonic()))
        if self.echo:
            print(json.dumps({"up": link.peer.node_id.hex()}), flush=True)

    def link_down(self, link: Link) -> None:
        pass

    def frame_received(self, link: Link, frame: bytes) -> None:
        if self.echo:
            link.send(b"echo:" + frame)
        elif not self.frame.done():
            self.frame.set_result(frame)


def _transport(identity: Identity, args: argparse.Namespace) -> LanTransport:
    return LanTransport(
        identity,
        host=args.host,
        interfaces=args.interfaces,
        advertised_addresses=args.advertise,
        service_type=args.service_type,
    )


async def exchange_once(identity: Identity, args: argparse.Namespace) -> dict[str, object]:
    handler = Handler(echo=False)
    transport = _transport(identity, args)
    began = time.monotonic()
    await transport.start(handler)
    try:
        async with asyncio.timeout(args.timeout):
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


async def echo_forever(identity: Identity, args: argparse.Namespace) -> None:
    transport = _transport(identity, args)
    await transport.start(Handler(echo=True))
    print(json.dumps({"port": transport.listening_port}), flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", required=True, help="128 hex digits: signing seed, box key")
    parser.add_argument("--service-type", required=True)
    parser.add_argument("--timeout", type=float, default=8.0)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--interfaces", nargs="*", default=None)
    parser.add_argument("--advertise", nargs="*", default=None)
    parser.add_argument("--echo", action="store_true")
    args = parser.parse_args()
    identity = Identity.from_seeds(bytes.fromhex(args.seed[:64]), bytes.fromhex(args.seed[64:]))
    if args.echo:
        asyncio.run(echo_forever(identity, args))
    else:
        json.dump(asyncio.run(exchange_once(identity, args)), sys.stdout)


if __name__ == "__main__":
    main()
