"""Contacts and trust for the command line: through the running node, or the store.

While a node runs it is the only writer of its store: ``contacts add``, ``contacts distrust``
and ``verify`` then ask it over the control socket (:class:`NodeBook`), so its engine learns a
new card (and its signed prekey) at once, and a distrusted key gets no more group keys. With no
node running they open the store (:class:`StoreBook`, which asks for the passphrase). Both give
the same answers, and both verify through :func:`meshchat.verify.decide`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from meshchat.cli.common import node_request, open_store, unlock
from meshchat.control import contact_from_json
from meshchat.errors import UsageError
from meshchat.home import Home
from meshchat.identity import ContactCard, PublicIdentity
from meshchat.store import Store
from meshchat.store.records import Contact, Trust
from meshchat.store.trust import CardOutcome, CardResult, KeyChangeError
from meshchat.verify import Verdict, decide

__all__ = ["Book", "NodeBook", "StoreBook", "book_of"]


class Book(Protocol):
    """What the contact commands need, wherever the contacts live."""

    me: PublicIdentity
    name: str

    def contacts(self) -> list[Contact]: ...

    def find(self, query: str) -> Contact: ...

    def add_card(self, card: ContactCard, name: str | None, replace: bool) -> CardResult:
        """Raises :class:`KeyChangeError` (nothing changed) for another person's keys."""
        ...

    def distrust(self, contact: Contact) -> Contact: ...

    def verify(
        self,
        query: str,
        *,
        number: str | None = None,
        payloads: Sequence[str] = (),
        confirmed: bool = False,
    ) -> Verdict: ...


class NodeBook:
    """The running node's contacts, over its control socket."""

    def __init__(self, home: Home, status: dict[str, Any]) -> None:
        self._home = home
        self.me = PublicIdentity(
            bytes.fromhex(str(status["sign_public"])), bytes.fromhex(str(status["box_public"]))
        )
        self.name = str(status["name"])

    def _ask(self, payload: dict[str, Any]) -> dict[str, Any]:
        reply = node_request(self._home, payload)
        if reply is None:
            raise UsageError("the running node stopped: nothing was changed; try again")
        return reply

    def contacts(self) -> list[Contact]:
        return [contact_from_json(c) for c in self._ask({"op": "contacts"})["contacts"]]

    def find(self, query: str) -> Contact:
        return contact_from_json(self._ask({"op": "contact", "contact": query})["contact"])

    def add_card(self, card: ContactCard, name: str | None, replace: bool) -> CardResult:
        reply = self._ask(
            {"op": "add_card", "card": card.to_text(), "name": name or "", "replace": replace}
        )
        if reply.get("key_change"):
            raise KeyChangeError(
                contact_from_json(reply["new"]), [contact_from_json(c) for c in reply["conflicts"]]
            )
        return CardResult(
            CardOutcome(str(reply["outcome"])),
            contact_from_json(reply["contact"]),
            tuple(contact_from_json(c) for c in reply["compromised"]),
        )

    def distrust(self, contact: Contact) -> Contact:
        reply = self._ask({"op": "distrust", "contact": contact.node_id.hex()})
        return contact_from_json(reply["contact"])

    def verify(
        self,
        query: str,
        *,
        number: str | None = None,
        payloads: Sequence[str] = (),
        confirmed: bool = False,
    ) -> Verdict:
        request: dict[str, Any] = {"op": "verify", "contact": query, "confirm": confirmed}
        if number is not None:
            request["safety_number"] = number
        if payloads:
            request["payloads"] = list(payloads)
        reply = self._ask(request)
        contact = contact_from_json(reply["contact"])
        return Verdict(contact, str(reply["safety_number"]), bool(reply["marked"]))


class StoreBook:
    """The contacts in the store, when no node runs."""

    def __init__(self, store: Store, me: PublicIdentity, name: str) -> None:
        self._store = store
        self.me = me
        self.name = name

    def contacts(self) -> list[Contact]:
        return self._store.list_contacts()

    def find(self, query: str) -> Contact:
        return self._store.find_contact(query)

    def add_card(self, card: ContactCard, name: str | None, replace: bool) -> CardResult:
        now = int(time.time() * 1000)
        return self._store.add_card(card, name=name, now_ms=now, replace_keys=replace)

    def distrust(self, contact: Contact) -> Contact:
        return self._store.set_trust(contact.node_id, Trust.COMPROMISED)

    def verify(
        self,
        query: str,
        *,
        number: str | None = None,
        payloads: Sequence[str] = (),
        confirmed: bool = False,
    ) -> Verdict:
        contact = self.find(query)
        verdict = decide(contact, self.me, number=number, payloads=payloads, confirmed=confirmed)
        if verdict.mark and contact.trust is not Trust.VERIFIED:
            contact = self._store.set_trust(contact.node_id, Trust.VERIFIED)
            verdict = Verdict(contact, verdict.number, True)
        return verdict


@contextlib.contextmanager
def book_of(home: Home) -> Iterator[Book]:
    """The running node's contacts if a node runs for ``home``, else the store's."""
    status = node_request(home, {"op": "status"})
    if status is not None:
        yield NodeBook(home, status)
        return
    unlocked = unlock(home)
    with open_store(home, unlocked) as store:
        yield StoreBook(store, unlocked.identity.public, unlocked.name)
