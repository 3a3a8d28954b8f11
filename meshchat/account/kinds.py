"""Every account control blob kind in one table: who may send it, and whose it is.

An account control blob is a canonical CBOR array whose first integer (its kind) is 16 or more
(:data:`meshchat.account.wire.ACCOUNT_KINDS_FROM`; 1..4 are groups' blobs,
:mod:`meshchat.group.control`). Each kind is taken by exactly one handler registered with
:meth:`meshchat.engine._account.AccountGlue.register`; registering a kind missing from this
table, or a kind a different handler already took, is a :class:`~meshchat.errors.UsageError`
at start-up (two features sharing a kind would each read the other's blobs).

=====  ===============  ==============  =======================================================
kind   name             taken from      defined and handled in
=====  ===============  ==============  =======================================================
16     list-share       any device      ``account/wire.py``, ``engine/_account.py``
17     list-request     any device      ``account/wire.py``, ``engine/_account.py``
18     carbon           own devices     ``account/carbon.py``, ``engine/_carbons.py``
19     sync             own devices     ``sync/wire.py``, ``engine/_sync.py``
20     erased           own devices     ``sync/wire.py``, ``engine/_sync.py``
21     link-request     any device      ``account/link.py``, ``engine/_link.py``
22     link-accept      any device      ``account/link.py``, ``engine/_link.py``
23     link-refuse      any device      ``account/link.py``, ``engine/_link.py``
24     link-nonce       any device      ``account/link.py``, ``engine/_link.py``
25     link-reveal      any device      ``account/link.py``, ``engine/_link.py``
26     group-held       own devices     ``account/groupsync.py``, ``engine/_groupsync.py``
27     group-join       any device      ``account/groupsync.py``, ``engine/_groupsync.py``
28     group-left       own devices     ``account/groupsync.py``, ``engine/_groupsync.py``
40     talk-offer       any device      ``talk/wire.py``, ``node/_talk.py``
=====  ===============  ==============  =======================================================

Files use no control blob (requests and pieces are FILE packets, :mod:`meshchat.files`). A new
kind is added here first (and to docs/protocol.md, "Control blobs"); "own devices" means a blob
from a device not on this account's list is refused before its handler sees it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["BLOB_KINDS", "BlobKind"]


@dataclass(frozen=True, slots=True)
class BlobKind:
    """One account control blob kind (see the module docstring)."""

    kind: int
    name: str
    #: taken only from this account's own devices
    own_devices_only: bool


def _table(*rows: tuple[int, str, bool]) -> Mapping[int, BlobKind]:
    return MappingProxyType({kind: BlobKind(kind, name, own) for kind, name, own in rows})


#: kind -> what it is; the one list of the account control blob kinds in use
BLOB_KINDS: Mapping[int, BlobKind] = _table(
    (16, "list-share", False),
    (17, "list-request", False),
    (18, "carbon", True),
    (19, "sync", True),
    (20, "erased", True),
    (21, "link-request", False),
    (22, "link-accept", False),
    (23, "link-refuse", False),
    (24, "link-nonce", False),
    (25, "link-reveal", False),
    (26, "group-held", True),
    (27, "group-join", False),
    (28, "group-left", True),
    (40, "talk-offer", False),
)
