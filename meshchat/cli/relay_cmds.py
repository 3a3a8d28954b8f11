"""``meshchat relay``: run the embedded MQTT broker that gateways meet through.

The relay needs no identity and stores only sealed envelopes under hashed topic names (see
``docs/internet.md``). It runs until interrupted. Only clients holding a token the operator
handed out (``meshchat relay --add-token NAME`` prints one) may connect, unless the operator
opts in to anonymous clients with ``--allow-anonymous``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from meshchat.display import SafeFormatter
from meshchat.errors import UsageError
from meshchat.home import Home

if TYPE_CHECKING:
    from meshchat.transports.relay.broker import BrokerSettings

__all__ = ["add_relay_arguments", "cmd_relay"]


def add_relay_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bind",
        action="append",
        metavar="ADDR",
        help="address to listen on (repeatable; default 127.0.0.1)",
    )
    parser.add_argument("--port", type=int, default=1883, help="TCP port (default 1883)")
    parser.add_argument(
        "--retention-days",
        type=float,
        default=7.0,
        metavar="DAYS",
        help="drop a message not collected after this long (default 7)",
    )
    parser.add_argument(
        "--quota",
        type=int,
        default=1000,
        metavar="N",
        help="most messages kept per mailbox for one offline gateway (default 1000)",
    )
    parser.add_argument(
        "--token-file",
        metavar="FILE",
        help="tokens clients connect with (default: relay-tokens in the meshchat home)",
    )
    parser.add_argument(
        "--add-token",
        metavar="NAME",
        help="add a token for NAME to the token file, print it and exit",
    )
    parser.add_argument(
        "--allow-anonymous",
        action="store_true",
        help="also accept clients without a token (with small per-address limits)",
    )
    parser.add_argument(
        "--password-file", metavar="FILE", help="amqtt password file (user:hash) instead of tokens"
    )
    parser.add_argument("--certfile", metavar="FILE", help="TLS certificate (with --keyfile)")
    parser.add_argument("--keyfile", metavar="FILE", help="TLS private key")
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning"])


def cmd_relay(args: argparse.Namespace, home: Home) -> int:
    from meshchat.transports.relay import TokenBook, add_token
    from meshchat.transports.relay.broker import BrokerSettings

    token_file = Path(args.token_file) if args.token_file else home.path / "relay-tokens"
    if args.add_token:
        if not args.token_file:
            home.ensure()
        token = add_token(token_file, args.add_token)
        print(f"token for {args.add_token} (gateways use mqtt://{args.add_token}:TOKEN@host):")
        print(token)
        return 0
    if not 0 < args.retention_days <= 365:
        raise UsageError("--retention-days must be more than 0 and at most 365")
    if not 0 <= args.port < 65536:
        raise UsageError("--port must be 0..65535")
    settings = BrokerSettings(
        binds=tuple(args.bind or ["127.0.0.1"]),
        port=args.port,
        retention_s=max(1, int(args.retention_days * 24 * 3600)),
        mailbox_quota=args.quota,
        token_file=None if args.password_file else str(token_file),
        password_file=args.password_file,
        allow_anonymous=args.allow_anonymous,
        certfile=args.certfile,
        keyfile=args.keyfile,
    )
    handler = logging.StreamHandler()
    # Log records may carry names and texts from other nodes: no terminal controls get out.
    handler.setFormatter(SafeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper(), logging.WARNING), handlers=[handler]
    )
    if not (args.password_file or args.allow_anonymous or TokenBook.load(token_file).hashes):
        print(
            f"no tokens in {token_file}: nobody can connect yet; add one with "
            "'meshchat relay --add-token NAME' (or run with --allow-anonymous)",
            flush=True,
        )
    asyncio.run(_serve(settings))
    return 0


async def _serve(settings: BrokerSettings) -> None:
    from meshchat.transports.relay.broker import EmbeddedBroker

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with EmbeddedBroker(settings) as broker:
        where = ", ".join(f"{h}:{p}" for h, p in broker.addresses)
        days = settings.retention_s / 86400
        access = "anyone (anonymous allowed)" if settings.allow_anonymous else "token holders"
        print(
            f"meshchat relay listening on {where} (messages kept {days:g} days, "
            f"{settings.mailbox_quota} per mailbox; open to {access})",
            flush=True,
        )
        await stop.wait()
