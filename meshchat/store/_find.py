"""Which contact a user means by a name or a node id prefix."""

from __future__ import annotations

import string

from meshchat.errors import NoSuchContact, UsageError
from meshchat.store.records import Contact, Trust
from meshchat.store.trust import fold_name

__all__ = ["MIN_ID_PREFIX", "contact_order", "find_contact"]

#: The shortest node id prefix (in hex digits) :func:`find_contact` accepts.
MIN_ID_PREFIX = 4


def _short_ids(contacts: list[Contact]) -> list[str]:
    """Node id prefixes of at least 8 hex digits, long enough to tell these contacts apart."""
    full = [c.node_id.hex() for c in contacts]
    for length in range(8, max(map(len, full), default=8) + 1):
        if len({h[:length] for h in full}) == len(full):
            return [h[:length] for h in full]
    return full


_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def contact_order(contact: Contact) -> tuple[str, bytes]:
    """By name ignoring ASCII case (as SQLite's NOCASE), then node id."""
    return contact.name.translate(_ASCII_LOWER), contact.node_id


def find_contact(contacts: list[Contact], query: str) -> Contact:
    """The one contact among ``contacts`` a user means by ``query`` (see Store.find_contact)."""
    wanted = query.strip()
    if not wanted:
        raise UsageError("give a contact name or a node id prefix")
    folded = fold_name(wanted)
    named = [c for c in contacts if fold_name(c.name) == folded]
    by_name = [c for c in named if c.trust is not Trust.COMPROMISED] or named
    if len(by_name) == 1:
        return by_name[0]
    if by_name and len({c.account_id for c in by_name}) == 1:
        # The devices of one account share its name: one person, whose messages go to all
        # of them (fan-out); the founding device's row stands for the account.
        return min(by_name, key=lambda c: (c.node_id != c.account_id, c.node_id))
    if by_name:
        ids = ", ".join(_short_ids(by_name))
        raise UsageError(
            f"{len(by_name)} contacts are named {wanted!r} ({ids}); use a node id prefix instead"
        )
    if len(wanted) < MIN_ID_PREFIX or any(ch not in string.hexdigits for ch in wanted):
        raise NoSuchContact(
            f"no contact is named {wanted!r} "
            f"(a node id prefix needs at least {MIN_ID_PREFIX} hex digits)"
        )
    prefix = wanted.lower()
    by_id = [c for c in contacts if c.node_id.hex().startswith(prefix)]
    if len(by_id) == 1:
        return by_id[0]
    if by_id:
        names = ", ".join(f"{c.name} {h}" for c, h in zip(by_id, _short_ids(by_id), strict=True))
        raise UsageError(
            f"node id prefix {wanted!r} matches {len(by_id)} contacts ({names}); give more digits"
        )
    raise NoSuchContact(f"no contact is named {wanted!r} or has a node id starting with it")
