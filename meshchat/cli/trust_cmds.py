"""``meshchat verify``: compare safety numbers, by eye or by QR code, and mark a contact verified.

Both people run ``meshchat verify <each other>``: each screen shows the same 60-digit safety
number and its QR code (see :mod:`meshchat.safety`). Either they compare the digits and confirm
(``--yes`` in scripts), or one photographs the other's QR and passes the picture with
``--scan FILE`` (or the QR's text, from any scanner app, with ``--payload TEXT``): a match marks
the contact verified with no question asked, a mismatch changes nothing and fails loudly.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from meshchat.cli.book import book_of
from meshchat.cli.common import confirm, emit_json, say
from meshchat.cli.contacts_cmds import trust_label
from meshchat.control import contact_json
from meshchat.errors import UsageError
from meshchat.home import Home
from meshchat.identity import PublicIdentity
from meshchat.safety import qr_payload
from meshchat.store import Trust
from meshchat.verify import SafetyMismatch

__all__ = ["cmd_verify"]


def _scanned(args: argparse.Namespace) -> list[str] | None:
    """The texts to compare: from ``--payload``, or the QR codes in the ``--scan`` image."""
    if args.payload is not None:
        return [args.payload]
    if args.scan is None:
        return None
    from meshchat.qr import read_qr

    texts = read_qr(Path(args.scan))
    if not texts:
        raise UsageError(f"no QR code found in {args.scan}")
    return texts


def cmd_verify(args: argparse.Namespace, home: Home) -> int:
    with book_of(home) as book:
        me = book.me
        scanned = _scanned(args)
        if scanned is not None:
            try:
                verdict = book.verify(args.contact, payloads=scanned)
            except SafetyMismatch as exc:
                say(str(exc), err=True)
                return 1
            if args.json:
                emit_json({**contact_json(verdict.contact, me), "matched": True})
            else:
                say(f"safety numbers match: {verdict.contact.name} is now verified")
            return 0
        verdict = book.verify(args.contact)  # shows the number, changes nothing
        contact, number = verdict.contact, verdict.number
        if args.json and not args.yes:
            emit_json(contact_json(contact, me))
            return 0
        if not args.json:
            say(f"Your safety number with {contact.name} ({contact.node_id.hex()[:8]}):")
            say()
            say(f"    {number[:35]}")
            say(f"    {number[36:]}")
            say()
            if not args.no_qr:
                from meshchat.qr import draw_qr

                them = PublicIdentity(contact.sign_public, contact.box_public)
                draw_qr(qr_payload(me, them), sys.stdout)
            say(f"status: {trust_label(contact)}")
        if contact.trust is Trust.VERIFIED:
            if args.json:
                emit_json(contact_json(contact, me))
            return 0
        question = f"Does {contact.name}'s screen show the same number?"
        if not confirm(question, args.yes):
            say("not verified")
            return 1
        contact = book.verify(args.contact, confirmed=True).contact
    if args.json:
        emit_json(contact_json(contact, me))
    else:
        say(f"{contact.name} is now verified")
    return 0
