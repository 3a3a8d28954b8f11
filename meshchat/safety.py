"""Safety numbers: one 60-digit number that two people compare to verify each other.

Theory of operation
-------------------
Each identity's fingerprint (:meth:`PublicIdentity.fingerprint`) is 60 digits from a
1024-round SHA-512 chain over its two public keys. The safety number of a pair takes the first
30 digits (6 groups, about 100 bits) of each party's fingerprint and puts the smaller half
first, so both sides compute the same 60 digits whoever does it, and each half is also a prefix
of what ``meshchat id`` shows for that person. As in Signal, an attacker who wanted a matching
number for a key of their own would need a second preimage of a 100-bit half.

The QR code carries ``mcsn1:`` and the 60 digits with no spaces. Scanning the other side's QR
and finding the same text proves both devices hold the same two keys: verification without
reading digits aloud.
"""

from __future__ import annotations

import hmac

from meshchat.errors import UsageError
from meshchat.identity import PublicIdentity

__all__ = [
    "QR_PREFIX",
    "SAFETY_DIGITS",
    "matches_payload",
    "parse_payload",
    "qr_payload",
    "safety_number",
]

SAFETY_DIGITS = 60
QR_PREFIX = "mcsn1:"
_HALF = SAFETY_DIGITS // 2
_GROUP = 5
#: The longest scanned text looked at (a safety QR is 66 characters).
_MAX_PAYLOAD = 256


def _half(identity: PublicIdentity) -> str:
    return identity.fingerprint().replace(" ", "")[:_HALF]


def _digits(identity_a: PublicIdentity, identity_b: PublicIdentity) -> str:
    halves = sorted((_half(identity_a), _half(identity_b)))
    return "".join(halves)


def _grouped(digits: str) -> str:
    return " ".join(digits[i : i + _GROUP] for i in range(0, len(digits), _GROUP))


def safety_number(identity_a: PublicIdentity, identity_b: PublicIdentity) -> str:
    """The pair's safety number: 12 groups of 5 digits, the same whichever side computes it."""
    return _grouped(_digits(identity_a, identity_b))


def qr_payload(identity_a: PublicIdentity, identity_b: PublicIdentity) -> str:
    """The text of the pair's safety QR code."""
    return QR_PREFIX + _digits(identity_a, identity_b)


def parse_payload(text: str) -> str:
    """The 60 digits of a scanned safety QR's text; :class:`UsageError` if it is not one."""
    if not isinstance(text, str):
        raise UsageError("that QR code is not a meshchat safety number")
    text = text.strip()
    if text.startswith("mc1:"):
        raise UsageError(
            "that QR code is a contact card, not a safety number: add it with 'contacts add'"
        )
    if len(text) > _MAX_PAYLOAD:
        raise UsageError("that QR code is not a meshchat safety number")
    if not text.startswith(QR_PREFIX):
        raise UsageError("that QR code is not a meshchat safety number")
    digits = text[len(QR_PREFIX) :]
    if len(digits) != SAFETY_DIGITS or not (digits.isascii() and digits.isdigit()):
        raise UsageError("that QR code holds a malformed safety number")
    return digits


def matches_payload(text: str, identity_a: PublicIdentity, identity_b: PublicIdentity) -> bool:
    """True when a scanned QR's text is this pair's safety number (:class:`UsageError` if the
    text is not a safety number at all)."""
    digits = parse_payload(text)
    return hmac.compare_digest(digits.encode(), _digits(identity_a, identity_b).encode())
