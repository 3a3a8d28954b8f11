"""The short advertisement identifier that changes every rotation period.

A node must be findable over BLE without being trackable. Its advertisement therefore carries
only the meshchat service UUID and a 5-byte identifier that changes every ``period`` seconds.
The identifier is a keyed BLAKE2b of the period number under a secret that the device draws at
random when its transport starts; the secret never leaves the device and is not derived from
its keys. So an observer cannot link two periods (the outputs are unrelated without the key),
nor tell whose advertisement it is: only a peer that connects and completes the link handshake
learns who is behind it.

Why advertise an identifier at all: while one period lasts, scanners use it to recognise a node
whose private address rotated, to avoid dialling a node they are already linked to, and to
decide which of two nodes dials the other (the smaller identifier dials first).

Periods are aligned on wall-clock multiples of ``period`` so that every node changes at the
same moment (a node that changed alone could be followed from old to new identifier by timing).
"""

from __future__ import annotations

import hashlib
import math
import os

__all__ = ["ADV_ID_SIZE", "SECRET_SIZE", "RotatingId"]

#: bytes of identifier in the advertisement (40 bits: collisions among nearby nodes are rare)
ADV_ID_SIZE = 5
SECRET_SIZE = 32
_PERSON = b"mc-ble-advid-v1"


class RotatingId:
    """The rotating advertisement identifier of one device."""

    __slots__ = ("_period", "_secret")

    def __init__(self, period: float, secret: bytes | None = None) -> None:
        if not period > 0:
            raise ValueError("rotation period must be positive")
        if secret is None:
            secret = os.urandom(SECRET_SIZE)
        if len(secret) != SECRET_SIZE:
            raise ValueError(f"secret must be {SECRET_SIZE} bytes")
        self._period = float(period)
        self._secret = secret

    @property
    def period(self) -> float:
        return self._period

    def period_number(self, now: float) -> int:
        """The number of the rotation period that contains wall-clock time ``now``."""
        return math.floor(now / self._period)

    def for_period(self, number: int) -> bytes:
        """The identifier advertised during period ``number``."""
        return hashlib.blake2b(
            number.to_bytes(8, "big", signed=True),
            key=self._secret,
            digest_size=ADV_ID_SIZE,
            person=_PERSON,
        ).digest()

    def current(self, now: float) -> bytes:
        """The identifier to advertise at wall-clock time ``now``."""
        return self.for_period(self.period_number(now))

    def next_change(self, now: float) -> float:
        """Seconds from ``now`` until the identifier changes."""
        return (self.period_number(now) + 1) * self._period - now
