"""``meshchat contacts add|list`` and ``meshchat join``."""

from __future__ import annotations

import argparse
import time

from meshchat.cli.common import card_of, emit_json, node_request, open_store, read_passphrase
from meshchat.crypto.channel import ChannelKey, derive_channel_key
from meshchat.errors import UsageError
from meshchat.home import Home
from meshchat.identity import ContactCard, clean_name
from meshchat.store.records import Channel, Contact, Trust

__all__ = ["cmd_contacts_add", "cmd_contacts_list", "cmd_join"]


def cmd_contacts_add(args: argparse.Namespace, home: Home) -> int:
    card = ContactCard.from_text(args.card)
    if card.identity == card_of(home).identity:
        raise UsageError("that is your own card")
    name = clean_name(args.name) if args.name else card.name
    if not name:
        raise UsageError("the card has no name: give one with --name")
    with open_store(home) as store:
        existing = store.get_contact(card.identity.node_id)
        store.add_contact(
            Contact(
                card.identity.node_id,
                card.identity.sign_public,
                card.identity.box_public,
                name,
                existing.trust if existing else Trust.UNVERIFIED,
                existing.added_ms if existing else int(time.time() * 1000),
            )
        )
    if args.json:
        emit_json({"name": name, "node_id": card.identity.node_id.hex(), "added": True})
    else:
        print(f"added {name} ({card.identity.node_id.hex()[:8]}), unverified")
        print(f"  fingerprint: {card.identity.fingerprint()}")
        print("  compare it with theirs in person before trusting this contact")
    return 0


def cmd_contacts_list(args: argparse.Namespace, home: Home) -> int:
    with open_store(home) as store:
        contacts = store.list_contacts()
    if args.json:
        emit_json(
            [
                {
                    "name": c.name,
                    "node_id": c.node_id.hex(),
                    "trust": c.trust.value,
                    "added_ms": c.added_ms,
                }
                for c in contacts
            ]
        )
        return 0
    if not contacts:
        print("no contacts yet: 'meshchat contacts add <card>'")
    for c in contacts:
        print(f"{c.name:<24} {c.node_id.hex()[:16]}  {c.trust.value}")
    return 0


def cmd_join(args: argparse.Namespace, home: Home) -> int:
    passphrase = None
    if args.private:
        passphrase = read_passphrase(f"Passphrase for {args.channel}: ")
    reply = node_request(
        home, {"op": "join", "channel": args.channel, "passphrase": passphrase or ""}
    )
    if reply is None:
        key = (
            derive_channel_key(args.channel, passphrase)
            if passphrase
            else ChannelKey.public(args.channel)
        )
        with open_store(home) as store:
            store.join_channel(Channel(key.name, key.channel_id, key.key, int(time.time() * 1000)))
        name = key.name
    else:
        name = str(reply["channel"])
    print(f"joined {name}" + (" (private)" if passphrase else ""))
    return 0
