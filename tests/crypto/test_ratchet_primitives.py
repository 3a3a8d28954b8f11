"""The Double Ratchet's KDFs and message AEAD (meshchat/crypto/_ratchet.py) against the
library's own ``recommended`` implementations with the same parameters: same bytes both ways,
tampering refused, tags compared in constant time, and stored sessions still talk."""

from __future__ import annotations

import hmac
import os

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from doubleratchet import AuthenticationFailedException, DecryptionFailedException
from doubleratchet.recommended import HashFunction, aead_aes_hmac, kdf_hkdf, kdf_separate_hmacs
from hypothesis import given, settings
from hypothesis import strategies as st

from meshchat.crypto import _ratchet, _sync
from meshchat.crypto.prekeys import PrekeyState
from meshchat.crypto.sessions import KIND_MESSAGE, RatchetMessage, initiate, respond
from meshchat.errors import DecryptionError
from meshchat.identity import Identity

NOW = 1_700_000_000_000


class LibraryRootKDF(kdf_hkdf.KDF):
    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256

    @staticmethod
    def _get_info() -> bytes:
        return b"meshchat-dr-root"


class LibraryChainKDF(kdf_separate_hmacs.KDF):
    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256


class LibraryAEAD(aead_aes_hmac.AEAD):
    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256

    @staticmethod
    def _get_info() -> bytes:
        return b"meshchat-dr-message"


LIBRARY_ARGS = (
    _ratchet.X25519Ratchet,
    LibraryRootKDF,
    LibraryChainKDF,
    *_ratchet.DR_ARGS[3:6],
    LibraryAEAD,
)

ours_aead = _ratchet.DR_ARGS[6]
ours_root = _ratchet.DR_ARGS[1]
ours_chain = _ratchet.DR_ARGS[2]
run = _sync.run


@settings(max_examples=60, deadline=None)
@given(
    plaintext=st.binary(max_size=300),
    key=st.binary(min_size=32, max_size=32),
    ad=st.binary(max_size=200),
)
def test_message_encryption_gives_the_library_bytes_both_ways(
    plaintext: bytes, key: bytes, ad: bytes
) -> None:
    ours = run(ours_aead.encrypt(plaintext, key, ad))
    assert ours == run(LibraryAEAD.encrypt(plaintext, key, ad))
    assert run(LibraryAEAD.decrypt(ours, key, ad)) == plaintext
    assert run(ours_aead.decrypt(ours, key, ad)) == plaintext


@settings(max_examples=60, deadline=None)
@given(key=st.binary(min_size=32, max_size=32), data=st.binary(min_size=1, max_size=64))
def test_kdfs_give_the_library_bytes(key: bytes, data: bytes) -> None:
    assert run(ours_root.derive(key, data, 64)) == run(LibraryRootKDF.derive(key, data, 64))
    chain_data = _ratchet.DR_ARGS[3]
    length = 32 * len(chain_data)
    assert run(ours_chain.derive(key, chain_data, length)) == run(
        LibraryChainKDF.derive(key, chain_data, length)
    )
    assert run(ours_chain.derive(key, data, 32 * len(data))) == run(
        LibraryChainKDF.derive(key, data, 32 * len(data))
    )


def test_a_chain_length_the_kdf_cannot_give_is_refused() -> None:
    with pytest.raises(ValueError):
        run(ours_chain.derive(os.urandom(32), b"\x01\x02", 63))


@settings(max_examples=60, deadline=None)
@given(
    plaintext=st.binary(max_size=100),
    where=st.integers(min_value=0),
    bit=st.integers(min_value=0, max_value=7),
)
def test_any_changed_bit_is_refused(plaintext: bytes, where: int, bit: int) -> None:
    key, ad = os.urandom(32), os.urandom(129)
    ct = bytearray(run(ours_aead.encrypt(plaintext, key, ad)))
    ct[where % len(ct)] ^= 1 << bit
    with pytest.raises(AuthenticationFailedException):
        run(ours_aead.decrypt(bytes(ct), key, ad))
    with pytest.raises(AuthenticationFailedException):
        run(ours_aead.decrypt(run(ours_aead.encrypt(plaintext, key, ad)), key, ad + b"x"))


def test_bad_lengths_and_padding_under_a_valid_tag_are_refused() -> None:
    """What only the holder of the message key could send: a tag over a ciphertext that is
    not whole blocks, or whose padding is wrong. Refused, not a crash."""
    key, ad = os.urandom(32), b"ad"
    prk = hmac.digest(bytes(32), key, "sha256")  # HKDF-extract with a zero salt, as the AEAD
    okm = b""
    block = b""
    for i in range(1, 4):
        block = hmac.digest(prk, block + b"meshchat-dr-message" + bytes((i,)), "sha256")
        okm += block
    enc_key, auth, iv = okm[:32], okm[32:64], okm[64:80]

    def raw_cbc(plain: bytes) -> bytes:
        encryptor = Cipher(algorithms.AES(enc_key), modes.CBC(iv)).encryptor()
        return encryptor.update(plain) + encryptor.finalize()

    bodies = [
        b"",  # no block at all
        bytes(15),  # not whole blocks
        raw_cbc(bytes(16)),  # padding byte 0
        raw_cbc(bytes(15) + b"\x11"),  # padding byte 17
        raw_cbc(bytes(14) + b"\x01\x02"),  # padding bytes that disagree
    ]
    for body in bodies:
        forged = body + hmac.digest(auth, ad + body, "sha256")
        with pytest.raises(DecryptionFailedException):
            run(ours_aead.decrypt(forged, key, ad))
        with pytest.raises(DecryptionFailedException):
            run(LibraryAEAD.decrypt(forged, key, ad))
    good = raw_cbc(b"hello" + bytes((11,)) * 11)
    assert run(ours_aead.decrypt(good + hmac.digest(auth, ad + good, "sha256"), key, ad)) == (
        b"hello"
    )
    with pytest.raises(AuthenticationFailedException):
        run(ours_aead.decrypt(bytes(10), key, ad))  # shorter than a tag


def test_message_tags_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The library compares the authentication tag with ``!=`` (stops at the first differing
    byte); ours goes through ``hmac.compare_digest``."""
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    a, b = Identity.generate(), Identity.generate()
    pa, pb = PrekeyState(a), PrekeyState(b)
    pa.maintain(NOW)
    pb.maintain(NOW)
    assert pa.current is not None and pb.current is not None
    sa, first = initiate(a, pa.current, b.public, pb.current.signed, b"hi", KIND_MESSAGE)
    sb, _ = respond(b, pb.current, a.public, sa.x3dh[0], first, KIND_MESSAGE)
    assert any(len(x) == 32 and len(y) == 32 for x, y in calls)
    calls.clear()
    message = sa.encrypt(b"second", KIND_MESSAGE)
    assert sb.decrypt(message, KIND_MESSAGE) == b"second"
    assert len(calls) == 1
    bad = RatchetMessage(message.ratchet_pub, message.pn, message.n + 1, message.ciphertext)
    with pytest.raises(DecryptionError):
        sb.decrypt(bad, KIND_MESSAGE)
    assert len(calls) == 2


def test_sessions_made_with_the_library_primitives_go_on_with_ours() -> None:
    """A session stored by a node running the library's KDFs and AEAD talks both ways with
    one running ours (same bytes, so stored sessions are untouched by the change)."""
    a, b = Identity.generate(), Identity.generate()
    pa, pb = PrekeyState(a), PrekeyState(b)
    pa.maintain(NOW)
    pb.maintain(NOW)
    assert pa.current is not None and pb.current is not None
    sa, first = initiate(a, pa.current, b.public, pb.current.signed, b"hi", KIND_MESSAGE)
    sb, _ = respond(b, pb.current, a.public, sa.x3dh[0], first, KIND_MESSAGE)
    old_b = _ratchet.Ratchet.from_model(sb.ratchet.model, *LIBRARY_ARGS)
    ad = sb.ad + KIND_MESSAGE
    for i in range(4):
        out = _sync.run(old_b.encrypt_message(f"b{i}".encode(), ad))
        assert sa.decrypt(RatchetMessage.of(out), KIND_MESSAGE) == f"b{i}".encode()
        back = sa.encrypt(f"a{i}".encode(), KIND_MESSAGE)
        assert _sync.run(old_b.decrypt_message(back.library(), ad)) == f"a{i}".encode()
