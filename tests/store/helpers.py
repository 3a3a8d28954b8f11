"""Small builders shared by the store tests."""

from __future__ import annotations

from meshchat.store import Contact, Store, Trust

ME = b"\x01" * 16  # this device's node id in the tests
KEY = bytes(range(32))  # the store key of the tests' stores


def make_contact(
    name: str, node_id: bytes, *, trust: Trust = Trust.UNVERIFIED, added_ms: int = 1000
) -> Contact:
    """A contact whose keys are derived from its node id, so each test contact is distinct."""
    return Contact(
        node_id=node_id,
        sign_public=b"S" + node_id * 2,
        box_public=b"B" + node_id * 2,
        name=name,
        trust=trust,
        added_ms=added_ms,
    )


def outgoing(store: Store, n: int, *, conversation: str = "bob", expires_ms: int = 10_000) -> bytes:
    """Store outgoing message number ``n`` (created at ``1000 + n``); return its msg_id."""
    msg_id = n.to_bytes(16, "big")
    store.add_outgoing(
        conversation, msg_id, b"\xbb" * 16, ME, "me", f"message {n}", 1000 + n, expires_ms
    )
    return msg_id
