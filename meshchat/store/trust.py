"""Adding a contact card, and what happens when a known person's keys change.

Theory of operation
-------------------
A card is added only if its signature verifies under the keys it carries (a forged or altered
card never reaches the store). What happens next depends on the contacts already stored:

======================================================  ==========================================
the card                                                outcome
======================================================  ==========================================
has the node id (so the keys) of a stored contact       name and stored card updated, trust kept
                                                        (a card with an older signed prekey, or
                                                        none, never replaces the stored card)
  ... of a ``COMPROMISED`` contact                      refused: retired keys stay retired
shares nothing with any active contact                  added, ``UNVERIFIED``
has an active contact's name (case-folded) or one of    refused with :class:`KeyChangeError`,
its two public keys, but other keys                     unless ``replace`` is given
  ... with ``replace``                                  every such contact becomes ``COMPROMISED``
                                                        (kept, history intact); the card is added
                                                        ``UNVERIFIED``
======================================================  ==========================================

"Active" means not ``COMPROMISED``. Trust never travels with a card: a card shared by a third
party is added ``UNVERIFIED`` even if the sharer had verified it. :func:`plan_card` is pure;
:meth:`meshchat.store.Store.add_card` applies its plan in one transaction.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from meshchat.errors import IdentityError, UsageError
from meshchat.identity import ContactCard
from meshchat.store.records import Contact, Trust

__all__ = ["CardOutcome", "CardResult", "KeyChangeError", "fold_name", "plan_card"]


def fold_name(name: str) -> str:
    """A name as compared for equality: NFC, case-folded, outer spaces removed."""
    return unicodedata.normalize("NFC", name.strip()).casefold()


class CardOutcome(StrEnum):
    ADDED = "added"  #: a new contact
    UPDATED = "updated"  #: a known contact's name or stored card changed
    UNCHANGED = "unchanged"  #: the card was already stored as it is
    REPLACED = "replaced"  #: new keys for a known person; the old contact is now compromised


@dataclass(frozen=True, slots=True)
class CardResult:
    """What adding a card did: the contact as stored, and any contact it retired."""

    outcome: CardOutcome
    contact: Contact
    compromised: tuple[Contact, ...] = ()


class KeyChangeError(UsageError):
    """A card claims a known person (their name, or one of their keys) with other keys.

    ``conflicts`` are the stored contacts it clashes with; ``new`` is the contact the card
    would add. Adding it anyway (``--replace``) marks the conflicts ``COMPROMISED``.
    """

    def __init__(self, new: Contact, conflicts: Sequence[Contact]) -> None:
        self.new = new
        self.conflicts = tuple(conflicts)
        names = ", ".join(f"{c.name} ({c.node_id.hex()[:8]}, {c.trust.value})" for c in conflicts)
        super().__init__(
            f"KEY CHANGE: this card ({new.name}, {new.node_id.hex()[:8]}) carries other keys than "
            f"the contact(s) {names}. Someone may be impersonating them. Compare safety numbers "
            "in person; to accept the new keys anyway, add the card again with --replace "
            "(the old contact is then marked compromised)."
        )


def _prekey_ms(card: str) -> int:
    """When the signed prekey in a stored card was made; -1 for none (or no readable card)."""
    if not card:
        return -1
    try:
        parsed = ContactCard.from_text(card)
    except IdentityError:
        return -1
    prekey = getattr(parsed, "prekey", None)
    return -1 if prekey is None else int(prekey.created_ms)


def _newer_card(stored: str, offered: str) -> str:
    """The card to keep: the offered one unless its prekey is older than the stored one's."""
    if not offered:
        return stored
    return offered if _prekey_ms(offered) >= _prekey_ms(stored) else stored


def _clashes(old: Contact, new: Contact) -> bool:
    return (
        fold_name(old.name) == fold_name(new.name)
        or old.sign_public == new.sign_public
        or old.box_public == new.box_public
    )


def plan_card(
    existing: Sequence[Contact], new: Contact, *, replace_keys: bool = False
) -> tuple[CardResult, list[Contact]]:
    """Decide what adding ``new`` does; returns the result and the contacts to write.

    ``new`` must be ``UNVERIFIED`` and carry its card. Raises :class:`KeyChangeError` (see the
    module docstring) or :class:`UsageError` for a compromised contact's card.
    """
    if new.trust is not Trust.UNVERIFIED:
        raise UsageError("a card is always added unverified")
    same = next((c for c in existing if c.node_id == new.node_id), None)
    if same is not None:
        if same.trust is Trust.COMPROMISED:
            raise UsageError(
                f"the keys of {same.name} ({same.node_id.hex()[:8]}) are marked compromised; "
                "they cannot be added again"
            )
        updated = replace(same, name=new.name, card=_newer_card(same.card, new.card))
        if updated == same:
            return CardResult(CardOutcome.UNCHANGED, same), []
        return CardResult(CardOutcome.UPDATED, updated), [updated]
    conflicts = [c for c in existing if c.trust is not Trust.COMPROMISED and _clashes(c, new)]
    if not conflicts:
        return CardResult(CardOutcome.ADDED, new), [new]
    if not replace_keys:
        raise KeyChangeError(new, conflicts)
    retired = tuple(replace(c, trust=Trust.COMPROMISED) for c in conflicts)
    return CardResult(CardOutcome.REPLACED, new, retired), [*retired, new]
