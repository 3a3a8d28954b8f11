"""``meshchat contacts add|list|share|distrust`` and ``meshchat join``.

Contacts live in the encrypted store, so these commands ask for the passphrase
($MESHCHAT_PASSPHRASE or the terminal). Key changes are refused loudly unless ``--replace``
is given (see :mod:`meshchat.store.trust`).
"""

from __future__ import annotations

import argparse
import sys
import time

from meshchat.cli.book import book_of
from meshchat.cli.common import (
    confirm,
    emit_json,
    node_request,
    open_store,
    read_passphrase,
    say,
)
from meshchat.control import contact_from_json, contact_json
from meshchat.crypto.channel import ChannelKey, derive_channel_key
from meshchat.errors import UsageError
from meshchat.home import Home
from meshchat.identity import ContactCard, PublicIdentity, clean_name
from meshchat.lookalike import LOOKALIKE_MARK, LookalikeError, check_new_name, marked
from meshchat.store import CardOutcome, CardResult, Contact, KeyChangeError, Trust
from meshchat.store.records import Channel

__all__ = [
    "cmd_contacts_add",
    "cmd_contacts_distrust",
    "cmd_contacts_list",
    "cmd_contacts_share",
    "cmd_join",
    "trust_label",
]

LOUD = "!!"


def trust_label(contact: Contact) -> str:
    """How a contact's trust reads in a list: compromised contacts stand out."""
    if contact.trust is Trust.COMPROMISED:
        return f"{LOUD} COMPROMISED {LOUD}"
    return contact.trust.value


def _short(contact: Contact) -> str:
    return contact.node_id.hex()[:8]


def _warn(lines: list[str]) -> None:
    for line in lines:
        say(f"{LOUD} {line}", err=True)


def _others(contacts: list[Contact], own_name: str, node_id: bytes | None = None) -> list[str]:
    """The names a contact's name must not look like: one's own, the other active contacts'."""
    names = [own_name]
    names += [c.name for c in contacts if c.node_id != node_id and c.trust is not Trust.COMPROMISED]
    return names


def cmd_contacts_add(args: argparse.Namespace, home: Home) -> int:
    if (args.card is None) == (args.from_peer is None):
        raise UsageError("give a card (mc1:...) or --from-peer NAME, not both")
    if args.from_peer is not None:
        return _add_from_peer(args, home)
    card = ContactCard.from_text(args.card)  # a forged or altered card stops here
    name = clean_name(args.name) if args.name else None
    with book_of(home) as book:
        if card.identity == book.me:
            raise UsageError("that is your own card")
        others = _others(book.contacts(), book.name, card.identity.node_id)
        try:
            like = check_new_name(name or card.name, others, allow=args.allow_lookalike)
        except LookalikeError as exc:
            _refuse_lookalike(args, exc)
            return 1
        try:
            result = book.add_card(card, name, args.replace)
        except KeyChangeError as exc:
            _refuse_key_change(args, exc)
            return 1
    return _report(args, result, like, card.identity.fingerprint())


def _add_from_peer(args: argparse.Namespace, home: Home) -> int:
    """``contacts add --from-peer NAME``: a neighbour added from its signed announce."""
    status = node_request(home, {"op": "status"})
    if status is None:
        raise UsageError(
            "--from-peer needs the running node (it knows who announced themselves): start "
            "'meshchat run' or 'meshchat daemon', or add their card"
        )
    peer = node_request(home, {"op": "announced", "peer": args.from_peer})
    if peer is None:
        raise UsageError("the running node stopped: nothing was changed; try again")
    node_id = str(peer["node_id"])
    name = clean_name(args.name) if args.name else clean_name(str(peer["name"]))
    if not name:
        raise UsageError("that peer announced no name: give one with --name")
    with book_of(home) as book:
        others = _others(book.contacts(), book.name, bytes.fromhex(node_id))
    try:
        like = check_new_name(name, others, allow=args.allow_lookalike)
    except LookalikeError as exc:
        _refuse_lookalike(args, exc)
        return 1
    # by its full node id: the very key looked up above, whatever was announced meanwhile
    request = {"op": "add_card", "peer": node_id, "name": name, "replace": args.replace}
    reply = node_request(home, request)
    if reply is None:
        raise UsageError("the running node stopped: nothing was changed; try again")
    if reply.get("key_change"):
        conflicts = [contact_from_json(c) for c in reply["conflicts"]]
        _refuse_key_change(args, KeyChangeError(contact_from_json(reply["new"]), conflicts))
        return 1
    result = CardResult(
        CardOutcome(str(reply["outcome"])),
        contact_from_json(reply["contact"]),
        tuple(contact_from_json(c) for c in reply["compromised"]),
    )
    return _report(args, result, like, str(peer["fingerprint"]))


def _refuse_key_change(args: argparse.Namespace, exc: KeyChangeError) -> None:
    new = exc.new
    _warn(
        [
            f"KEY CHANGE: this card for {new.name!r} ({new.node_id.hex()[:8]}) carries "
            "other keys than your contact(s):",
            *(f"    {c.name} ({_short(c)}, {c.trust.value})" for c in exc.conflicts),
            "Someone may be impersonating them, or they set up a new device.",
            "Ask them in person; to accept the new keys, run again with --replace",
            "(the old contact is then kept, marked COMPROMISED).",
            "Nothing was changed.",
        ]
    )
    if args.json:
        emit_json(
            {
                "added": False,
                "key_change": True,
                "conflicts": [
                    {"name": c.name, "node_id": c.node_id.hex(), "trust": c.trust.value}
                    for c in exc.conflicts
                ],
            }
        )


def _report(
    args: argparse.Namespace, result: CardResult, like: str | None, fingerprint: str
) -> int:
    contact = result.contact
    if args.json:
        emit_json(
            {
                "name": contact.name,
                "node_id": contact.node_id.hex(),
                "added": True,
                "outcome": result.outcome.value,
                "trust": contact.trust.value,
                "compromised": [c.node_id.hex() for c in result.compromised],
                "lookalike_of": like,
            }
        )
        return 0
    for old in result.compromised:
        _warn([f"{old.name} ({_short(old)}) is now marked COMPROMISED; nothing goes to them"])
    if like is not None:
        _warn([f"{contact.name} {LOOKALIKE_MARK} {like}: it is marked so wherever it is shown"])
    if result.outcome is CardOutcome.UNCHANGED:
        say(f"{contact.name} ({_short(contact)}) is already a contact, {trust_label(contact)}")
        return 0
    verb = "updated" if result.outcome is CardOutcome.UPDATED else "added"
    say(f"{verb} {contact.name} ({_short(contact)}), {trust_label(contact)}")
    if contact.trust is Trust.UNVERIFIED:
        say(f"  fingerprint: {fingerprint}")
        say(f"  verify in person (safety number or QR): meshchat verify {_short(contact)}")
    return 0


def _refuse_lookalike(args: argparse.Namespace, exc: LookalikeError) -> None:
    _warn(
        [
            f"LOOK-ALIKE NAME: {exc.name!r} looks like {exc.like!r} but is spelt with other "
            "characters.",
            "Someone may be posing as them. Nothing was added.",
            "If you are sure, run again with --allow-lookalike (the name stays marked), or",
            "give it a name of your own with --name.",
        ]
    )
    if args.json:
        emit_json({"added": False, "lookalike_of": exc.like, "name": exc.name})


def cmd_contacts_list(args: argparse.Namespace, home: Home) -> int:
    with book_of(home) as book:  # the running node's, else the store's
        contacts = book.contacts()
        me, own_name = book.me, book.name
    if args.json:
        emit_json([contact_json(c, me) for c in contacts])
        return 0
    if not contacts:
        say("no contacts yet: 'meshchat contacts add <card>'")
    for c in contacts:
        shown = marked(c.name, _others(contacts, own_name, c.node_id))
        say(f"{shown:<24} {c.node_id.hex()[:16]}  {trust_label(c)}")
    compromised = [c for c in contacts if c.trust is Trust.COMPROMISED]
    if compromised:
        _warn(
            [
                f"{len(compromised)} contact(s) have COMPROMISED keys: "
                + ", ".join(f"{c.name} ({_short(c)})" for c in compromised),
                "their keys were replaced or marked unsafe; messages are not sent to them",
            ]
        )
    return 0


def cmd_contacts_share(args: argparse.Namespace, home: Home) -> int:
    with open_store(home) as store:
        contact = store.find_contact(args.contact)
    if contact.trust is Trust.COMPROMISED:
        raise UsageError(f"the keys of {contact.name} are marked compromised: not sharing them")
    if not contact.card:
        raise UsageError(
            f"no signed card is stored for {contact.name}: ask them for theirs "
            "(contacts added before cards were kept have none)"
        )
    card = ContactCard.from_text(contact.card)
    if args.json:
        emit_json({"name": contact.name, "node_id": contact.node_id.hex(), "card": contact.card})
        return 0
    say(contact.card)
    if args.qr:
        from meshchat.qr import draw_qr

        draw_qr(contact.card, sys.stdout)
    say(
        f"(the card {card.name!r} signed; whoever adds it sees {contact.name} as unverified "
        "until they verify in person)",
        err=True,
    )
    return 0


def cmd_contacts_distrust(args: argparse.Namespace, home: Home) -> int:
    with book_of(home) as book:
        contact = book.find(args.contact)
        if contact.trust is Trust.COMPROMISED:
            say(f"{contact.name} ({_short(contact)}) is already marked compromised")
            return 0
        them = PublicIdentity(contact.sign_public, contact.box_public)
        question = (
            f"Mark {contact.name} ({_short(contact)}, fingerprint {them.fingerprint()[:17]}...) "
            "as COMPROMISED? Nothing will be sent to these keys again."
        )
        if not confirm(question, args.yes):
            say("nothing changed")
            return 1
        book.distrust(contact)
    _warn([f"{contact.name} ({_short(contact)}) is now marked COMPROMISED"])
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
    say(f"joined {name}" + (" (private)" if passphrase else ""))
    return 0
