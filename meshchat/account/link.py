"""Linking a new device to an account: the one-time code, the link messages and their crypto.

Theory of operation. The **existing** device E (already on the account's list) shows a one-time
:class:`LinkCode`: five bytes of its node id (so the new device can pick E among the devices it
hears announce themselves) and a random secret of 72 bits, with one check byte, as 24 base32
letters a person can type (``ABCD-EFGH-...``) or a QR code. The **new** device N, given the
code, finds E by its announce and talks to it over a sealed session (control blobs, never in
clear):

==========  ==================  ====================================================================
kind        direction           canonical CBOR
==========  ==================  ====================================================================
21 request  N -> E              ``[21, sign_public(32), box_public(32), name, commit(32), mac(32)]``
                                N's keys and device name, a commitment to N's nonce, and a MAC
                                proving N knows the secret, over both devices' keys
24 nonce    E -> N              ``[24, nonce_E(32), mac(32)]``: E's nonce, and a MAC proving E
                                knows the secret (a device that merely shares the code's node id
                                prefix cannot make it)
25 reveal   N -> E              ``[25, nonce_N(32)]``: opens N's commitment
22 accept   E -> N              ``[22, device_list, mac(32)]``: the account's new list, with N on
                                it, signed by E, and a MAC over the list and the whole exchange
23 refuse   either              ``[23, reason]``: the exchange ends (see :class:`RefuseReason`)
==========  ==================  ====================================================================

Both devices then show the **confirmation string** (six digits, :func:`confirmation`) derived
from the secret, both devices' keys and both nonces. The person compares the two screens; E
sends the accept only once its user said yes, and N adopts the list only once its user said
yes. Every MAC is keyed BLAKE2b (libsodium) under a key derived from the secret.

What this gives against someone on the link. Without the secret, nobody can make a request E
accepts or a nonce or accept N accepts (the MACs). Someone who learnt the code (saw the screen)
and sits between the two devices runs one exchange with each; its strings on the two sides
differ except by chance (one in a million): it must commit to its nonce towards E before it sees
E's nonce, and it must send its nonce to N before N reveals its own, so it cannot search for
keys or nonces that make the two strings equal.

One use, ten minutes. E's :class:`~meshchat.account.linking.Inviter` accepts one request with
a valid MAC per code, within :data:`LINK_TTL_MS` of making it; a request after that, a second
one, or :data:`MAX_BAD_REQUESTS` requests with a wrong MAC end the code.
"""

from __future__ import annotations

import base64
import hmac
import os
from dataclasses import dataclass
from enum import IntEnum

import cbor2
import nacl.encoding
import nacl.hash

from meshchat.account.devicelist import MAX_DEVICE_LIST_BYTES
from meshchat.errors import IdentityError, LinkError, LinkReason, PacketError, PacketReason
from meshchat.identity import MAX_NAME_BYTES, NODE_ID_SIZE, PublicIdentity, clean_name
from meshchat.wire.cborcheck import check_cbor

__all__ = [
    "CODE_PREFIX_BYTES",
    "KIND_ACCEPT",
    "KIND_NONCE",
    "KIND_REFUSE",
    "KIND_REQUEST",
    "KIND_REVEAL",
    "LINK_KINDS",
    "LINK_TTL_MS",
    "MAX_BAD_REQUESTS",
    "MAX_LIST_BYTES",
    "NONCE_SIZE",
    "SECRET_BYTES",
    "LinkAccept",
    "LinkCode",
    "LinkMessage",
    "LinkNonce",
    "LinkRefuse",
    "LinkRequest",
    "LinkReveal",
    "RefuseReason",
    "Transcript",
    "commitment",
    "confirmation",
    "decode_link",
    "normalise_confirmation",
]

KIND_REQUEST = 21
KIND_ACCEPT = 22
KIND_REFUSE = 23
KIND_NONCE = 24
KIND_REVEAL = 25
LINK_KINDS = (KIND_REQUEST, KIND_ACCEPT, KIND_REFUSE, KIND_NONCE, KIND_REVEAL)

#: bytes of the existing device's node id in a code (finds it among announced devices)
CODE_PREFIX_BYTES = 5
#: bytes of the code's random secret (72 bits)
SECRET_BYTES = 9
_CODE_BYTES = CODE_PREFIX_BYTES + SECRET_BYTES + 1  # + one check byte: 15 bytes, 24 letters
#: how long a code can be used after it was made
LINK_TTL_MS = 10 * 60 * 1000
#: requests with a wrong MAC after which a code is withdrawn
MAX_BAD_REQUESTS = 3
NONCE_SIZE = 32
MAC_SIZE = 32
KEY_SIZE = 32
#: the largest device list an accept carries
MAX_LIST_BYTES = MAX_DEVICE_LIST_BYTES
#: the text before a code in its QR form (upper case: QR's compact alphanumeric mode)
QR_PREFIX = "MCLINK:"
_DOMAIN = b"meshchat-link-v1\x00"


class RefuseReason(IntEnum):
    """Why a link exchange ended (the number in a refuse message)."""

    DECLINED = 1  #: the person said no (the strings differ, or they changed their mind)
    BAD_CODE = 2  #: no such code here, or the MAC did not check (or it was withdrawn)
    FAILED = 3  #: the exchange broke (a message out of order, a bad commitment or list)
    USED = 4  #: the code was used already
    EXPIRED = 5  #: the code is past its ten minutes

    @classmethod
    def of(cls, reason: LinkReason) -> RefuseReason:
        """How a refused request's :class:`LinkReason` is told to its sender."""
        return _REFUSE_OF.get(reason, cls.FAILED)

    def link_reason(self) -> LinkReason:
        """What a refuse of this reason means to the side that gets it."""
        return _REASON_OF[self]


_REFUSE_OF = {
    LinkReason.DECLINED: RefuseReason.DECLINED,
    LinkReason.MISMATCH: RefuseReason.DECLINED,
    LinkReason.BAD_MAC: RefuseReason.BAD_CODE,
    LinkReason.BAD_CODE: RefuseReason.BAD_CODE,
    LinkReason.WITHDRAWN: RefuseReason.BAD_CODE,
    LinkReason.USED: RefuseReason.USED,
    LinkReason.EXPIRED: RefuseReason.EXPIRED,
}
_REASON_OF = {
    RefuseReason.DECLINED: LinkReason.DECLINED,
    RefuseReason.BAD_CODE: LinkReason.BAD_MAC,
    RefuseReason.FAILED: LinkReason.OUT_OF_ORDER,
    RefuseReason.USED: LinkReason.USED,
    RefuseReason.EXPIRED: LinkReason.EXPIRED,
}


def _bad(what: str) -> PacketError:
    return PacketError(PacketReason.BAD_FIELD, f"link: {what}")


def _bytes(value: object, size: int, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != size:
        raise _bad(what)
    return value


def _hash(data: bytes, person: bytes, key: bytes = b"", size: int = 32) -> bytes:
    return nacl.hash.blake2b(
        data, digest_size=size, key=key, person=person, encoder=nacl.encoding.RawEncoder
    )


def _check_byte(body: bytes) -> int:
    return _hash(body, b"mc-link-check", size=1)[0]


# -- the code --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LinkCode:
    """A one-time link code: which device made it (a node id prefix) and a random secret."""

    device_prefix: bytes
    secret: bytes

    def __post_init__(self) -> None:
        if len(self.device_prefix) != CODE_PREFIX_BYTES or len(self.secret) != SECRET_BYTES:
            raise LinkError(LinkReason.BAD_CODE, "a link code has a node id prefix and a secret")

    @classmethod
    def generate(cls, node_id: bytes) -> LinkCode:
        """A fresh code naming the device of ``node_id``."""
        return cls(node_id[:CODE_PREFIX_BYTES], os.urandom(SECRET_BYTES))

    def names(self, node_id: bytes) -> bool:
        """Whether the device of ``node_id`` is the one that made this code."""
        return len(node_id) == NODE_ID_SIZE and node_id.startswith(self.device_prefix)

    def to_text(self) -> str:
        """24 letters and digits in groups of four, e.g. ``K2QF-...``."""
        body = self.device_prefix + self.secret
        letters = base64.b32encode(body + bytes([_check_byte(body)])).decode()
        return "-".join(letters[i : i + 4] for i in range(0, len(letters), 4))

    def qr_text(self) -> str:
        """The text of the code's QR code (what :meth:`parse` reads back)."""
        return QR_PREFIX + self.to_text().replace("-", "")

    @classmethod
    def parse(cls, text: str) -> LinkCode:
        """Read a code as typed or scanned: case, spaces and dashes do not matter, and the
        digits 0, 1 and 8 are read as the letters O, I and B. Raises :class:`LinkError`
        (``BAD_CODE``) for anything else, and when the check letter does not match (a typo)."""
        if len(text) > 128:
            raise LinkError(LinkReason.BAD_CODE, "a link code is 24 letters")
        letters = "".join(ch for ch in text.upper() if ch not in " -\t\n")
        if letters.startswith(QR_PREFIX):
            letters = letters[len(QR_PREFIX) :]
        letters = letters.translate(str.maketrans("018", "OIB"))
        if len(letters) != 24 or not letters.isascii() or not letters.isalnum():
            raise LinkError(LinkReason.BAD_CODE, "a link code is 24 letters and digits")
        try:
            raw = base64.b32decode(letters)
        except ValueError as exc:
            raise LinkError(LinkReason.BAD_CODE, "not a link code") from exc
        body, check = raw[:-1], raw[-1]
        if len(raw) != _CODE_BYTES or _check_byte(body) != check:
            raise LinkError(LinkReason.BAD_CODE, "mistyped link code (its check letter differs)")
        return cls(body[:CODE_PREFIX_BYTES], body[CODE_PREFIX_BYTES:])


# -- the crypto -------------------------------------------------------------------------------


def commitment(nonce: bytes) -> bytes:
    """The new device's commitment to its nonce."""
    return _hash(nonce, b"mc-link-commit")


@dataclass(frozen=True, slots=True)
class Transcript:
    """What both MACs and the confirmation string are bound to: the code's secret and both
    devices' keys (``existing`` made the code, ``new`` asks to join)."""

    secret: bytes
    existing: PublicIdentity
    new: PublicIdentity

    @property
    def _key(self) -> bytes:
        return _hash(self.secret, b"mc-link-key")

    @property
    def _keys(self) -> bytes:
        e, n = self.existing, self.new
        return _DOMAIN + e.sign_public + e.box_public + n.sign_public + n.box_public

    def mac(self, label: bytes, *fields: bytes) -> bytes:
        """Keyed BLAKE2b over the label, both devices' keys and ``fields`` (each length
        prefixed, so no two field lists give the same input)."""
        data = b"".join(len(f).to_bytes(4, "big") + f for f in fields)
        return _hash(self._keys + data, label, key=self._key)

    def check(self, mac: bytes, label: bytes, *fields: bytes) -> bool:
        return hmac.compare_digest(mac, self.mac(label, *fields))


def confirmation(transcript: Transcript, commit: bytes, nonce_new: bytes, nonce_old: bytes) -> str:
    """The six digits both devices show, as ``123 456``."""
    digest = transcript.mac(b"mc-link-sas", commit, nonce_new, nonce_old)
    number = int.from_bytes(digest[:8], "big") % 1_000_000
    text = f"{number:06d}"
    return f"{text[:3]} {text[3:]}"


def normalise_confirmation(text: str) -> str:
    """A confirmation string as typed (spaces, dashes ignored), in the form shown."""
    digits = "".join(ch for ch in text if ch not in " -\t")
    if len(digits) != 6 or not digits.isascii() or not digits.isdigit():
        return ""
    return f"{digits[:3]} {digits[3:]}"


# -- the messages -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LinkRequest:
    """The new device asks to join: its keys, its device name, its commitment, the MAC."""

    identity: PublicIdentity
    name: str
    commit: bytes
    mac: bytes

    @classmethod
    def make(cls, transcript: Transcript, name: str, nonce: bytes) -> tuple[LinkRequest, bytes]:
        """A request from ``transcript.new``; returns it and the commitment it carries."""
        commit = commitment(nonce)
        name = clean_name(name)
        mac = transcript.mac(b"mc-link-req", name.encode(), commit)
        return cls(transcript.new, name, commit, mac), commit

    def verify(self, transcript: Transcript) -> bool:
        return transcript.check(self.mac, b"mc-link-req", self.name.encode(), self.commit)

    def encode(self) -> bytes:
        i = self.identity
        return cbor2.dumps(
            [KIND_REQUEST, i.sign_public, i.box_public, self.name, self.commit, self.mac],
            canonical=True,
        )


@dataclass(frozen=True, slots=True)
class LinkNonce:
    """The existing device's nonce, and its proof that it knows the secret."""

    nonce: bytes
    mac: bytes

    @classmethod
    def make(cls, transcript: Transcript, commit: bytes, nonce: bytes) -> LinkNonce:
        return cls(nonce, transcript.mac(b"mc-link-nonce", commit, nonce))

    def verify(self, transcript: Transcript, commit: bytes) -> bool:
        return transcript.check(self.mac, b"mc-link-nonce", commit, self.nonce)

    def encode(self) -> bytes:
        return cbor2.dumps([KIND_NONCE, self.nonce, self.mac], canonical=True)


@dataclass(frozen=True, slots=True)
class LinkReveal:
    """The new device opens its commitment."""

    nonce: bytes

    def encode(self) -> bytes:
        return cbor2.dumps([KIND_REVEAL, self.nonce], canonical=True)


@dataclass(frozen=True, slots=True)
class LinkAccept:
    """The account's new device list (the new device on it), and a MAC binding it to the
    exchange. The list's own signature is checked by the device list's rules."""

    device_list: bytes
    mac: bytes

    @staticmethod
    def _fields(commit: bytes, nonce_new: bytes, nonce_old: bytes, listed: bytes) -> list[bytes]:
        return [commit, nonce_new, nonce_old, _hash(listed, b"mc-link-list")]

    @classmethod
    def make(
        cls,
        transcript: Transcript,
        commit: bytes,
        nonce_new: bytes,
        nonce_old: bytes,
        device_list: bytes,
    ) -> LinkAccept:
        fields = cls._fields(commit, nonce_new, nonce_old, device_list)
        return cls(device_list, transcript.mac(b"mc-link-accept", *fields))

    def verify(
        self, transcript: Transcript, commit: bytes, nonce_new: bytes, nonce_old: bytes
    ) -> bool:
        fields = self._fields(commit, nonce_new, nonce_old, self.device_list)
        return transcript.check(self.mac, b"mc-link-accept", *fields)

    def encode(self) -> bytes:
        return cbor2.dumps([KIND_ACCEPT, self.device_list, self.mac], canonical=True)


@dataclass(frozen=True, slots=True)
class LinkRefuse:
    """The exchange ends, for ``reason``."""

    reason: RefuseReason

    def encode(self) -> bytes:
        return cbor2.dumps([KIND_REFUSE, int(self.reason)], canonical=True)


LinkMessage = LinkRequest | LinkNonce | LinkReveal | LinkAccept | LinkRefuse

_SHAPES = {KIND_REQUEST: 6, KIND_NONCE: 3, KIND_REVEAL: 2, KIND_ACCEPT: 3, KIND_REFUSE: 2}
_MAX_BLOB = MAX_LIST_BYTES + 128


def decode_link(data: bytes) -> LinkMessage:
    """Parse a joined link blob (kinds 21 to 25). Raises :class:`PacketError`."""
    if len(data) > _MAX_BLOB:
        raise PacketError(PacketReason.OVERSIZED, "link message too large")
    check_cbor(data, max_items=8, max_depth=1)
    try:
        fields = cbor2.loads(data)
    except Exception as exc:
        raise PacketError(PacketReason.MALFORMED, f"link CBOR: {exc}") from exc
    if not isinstance(fields, list) or not fields or type(fields[0]) is not int:
        raise _bad("not a link message")
    kind = fields[0]
    if _SHAPES.get(kind) != len(fields):
        raise _bad(f"kind {kind} with {len(fields)} items")
    if kind == KIND_REQUEST:
        _, sign, box, name, commit, mac = fields
        if not isinstance(name, str) or len(name.encode()) > MAX_NAME_BYTES:
            raise _bad("device name")
        try:
            identity = PublicIdentity(_bytes(sign, KEY_SIZE, "key"), _bytes(box, KEY_SIZE, "key"))
            cleaned = clean_name(name)
        except IdentityError as exc:
            raise _bad("keys or name") from exc
        if cleaned != name:
            raise _bad("device name not clean")
        return LinkRequest(
            identity, name, _bytes(commit, 32, "commitment"), _bytes(mac, MAC_SIZE, "mac")
        )
    if kind == KIND_NONCE:
        return LinkNonce(_bytes(fields[1], NONCE_SIZE, "nonce"), _bytes(fields[2], MAC_SIZE, "mac"))
    if kind == KIND_REVEAL:
        return LinkReveal(_bytes(fields[1], NONCE_SIZE, "nonce"))
    if kind == KIND_ACCEPT:
        listed = fields[1]
        if not isinstance(listed, bytes) or not 0 < len(listed) <= MAX_LIST_BYTES:
            raise _bad("device list")
        return LinkAccept(listed, _bytes(fields[2], MAC_SIZE, "mac"))
    reason = fields[1]
    if type(reason) is not int or reason not in RefuseReason._value2member_map_:
        raise _bad("refuse reason")
    return LinkRefuse(RefuseReason(reason))
