"""``meshchat init`` and ``meshchat id``."""

from __future__ import annotations

import argparse
import asyncio
import os

from meshchat.app import offline_card
from meshchat.cli.common import card_of, emit_json, read_passphrase, say
from meshchat.config import write_default
from meshchat.home import Home
from meshchat.identity import ContactCard, KdfProfile, clean_name

__all__ = ["cmd_id", "cmd_init", "create_identity"]


def create_identity(home: Home, name: str, passphrase: str, profile: KdfProfile) -> str:
    """Make a new identity in ``home``; returns its card text.

    The card carries a first signed prekey, made by starting the node once offline. It is not
    written anywhere in clear: ``meshchat id`` makes it again when asked. A commented default
    ``config.toml`` is left in the home unless one is there (it holds no name).
    """
    home.create_identity(clean_name(name), passphrase, profile)
    write_default(home.config)
    return asyncio.run(offline_card(home, passphrase)).to_text()


def cmd_init(args: argparse.Namespace, home: Home) -> int:
    name = args.name or os.environ.get("USER") or "anonymous"
    passphrase = read_passphrase("Choose a passphrase: ", confirm=True)
    if getattr(args, "link", None):
        from meshchat.account.link import LinkCode

        LinkCode.parse(args.link)  # a mistyped code is told before the identity is made
    card = create_identity(home, name, passphrase, KdfProfile(args.kdf))
    shown = _show(args, home, ContactCard.from_text(card))
    if getattr(args, "link", None):
        from meshchat.cli.link_cmds import run_join

        return run_join(args, home, args.link, passphrase)
    return shown


def cmd_id(args: argparse.Namespace, home: Home) -> int:
    return _show(args, home, card_of(home))


def _show(args: argparse.Namespace, home: Home, card: ContactCard) -> int:
    public = card.identity
    if args.json:
        emit_json(
            {
                "name": card.name,
                "node_id": public.node_id.hex(),
                "fingerprint": public.fingerprint(),
                "card": card.to_text(),
                "home": str(home.path),
            }
        )
        return 0
    say(f"name:        {card.name}")
    say(f"node id:     {public.node_id.hex()}")
    say(f"fingerprint: {public.fingerprint()}")
    say(f"card:        {card.to_text()}")
    if getattr(args, "qr", False):
        import segno

        segno.make(card.to_text(), error="m").terminal(compact=True)
    return 0
