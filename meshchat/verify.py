"""The one verify flow: decide whether a contact may be marked verified.

Used by the node (for the TUI and the control socket) and by the offline command line alike.
A contact is verified when the user confirms that both screens show the same safety number
(:mod:`meshchat.safety`): by typing it, by a scanned QR payload, or by saying yes after
comparing by eye. A contact whose keys are marked compromised cannot be verified (verify the
contact that replaced them); a number or QR code that does not match changes nothing and
raises :class:`SafetyMismatch`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from meshchat.errors import UsageError
from meshchat.identity import PublicIdentity
from meshchat.safety import QR_PREFIX, matches_payload, parse_payload, safety_number
from meshchat.store.records import Contact, Trust

__all__ = ["SafetyMismatch", "Verdict", "decide", "same_number"]


class SafetyMismatch(UsageError):
    """The number or code given is not the pair's safety number: nothing was changed."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """The pair's safety number, and whether to mark the contact verified now."""

    contact: Contact
    number: str
    mark: bool


def same_number(given: str, expected: str) -> bool:
    return "".join(given.split()) == "".join(expected.split())


def decide(
    contact: Contact,
    me: PublicIdentity,
    *,
    number: str | None = None,
    payloads: Sequence[str] = (),
    confirmed: bool = False,
) -> Verdict:
    """Whether ``contact`` is to be marked verified.

    ``payloads`` are scanned QR texts (one must match), ``number`` a typed safety number,
    ``confirmed`` the user's yes after comparing by eye. With none of them the verdict only
    carries the number to show. Raises :class:`UsageError` for compromised keys and
    :class:`SafetyMismatch` when what was given does not match.
    """
    if contact.trust is Trust.COMPROMISED:
        raise UsageError(
            f"the keys of {contact.name} ({contact.node_id.hex()[:8]}) are marked "
            "COMPROMISED: verify the contact that replaced them (add their new card) instead"
        )
    them = PublicIdentity(contact.sign_public, contact.box_public)
    expected = safety_number(me, them)
    if payloads:
        codes = [t for t in payloads if t.strip().startswith(QR_PREFIX)]
        if not codes:
            parse_payload(payloads[0])  # raises, saying what the code is instead
        if not any(matches_payload(text, me, them) for text in codes):
            raise SafetyMismatch(
                f"!! SAFETY NUMBERS DIFFER: the scanned code is not your safety number with "
                f"{contact.name}. Either it is someone else's code, or these are not their "
                "keys. Nothing was changed."
            )
        return Verdict(contact, expected, True)
    if number is not None:
        if not same_number(number, expected):
            raise SafetyMismatch(f"that is not your safety number with {contact.name}")
        return Verdict(contact, expected, True)
    return Verdict(contact, expected, confirmed)
