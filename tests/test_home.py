"""The home folder: keystore version 2 with the store key, and the upgrade of version 1."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import cbor2
import nacl.pwhash
import nacl.secret
import nacl.utils
import pytest

from meshchat.errors import KeystoreError
from meshchat.home import Home
from meshchat.identity import (
    STORE_KEY_SIZE,
    Identity,
    KdfProfile,
    open_keystore,
    seal_keystore,
    unseal_keystore,
)

FAST = KdfProfile.INTERACTIVE
PASS = "correct horse"


def v1_keystore(identity: Identity, name: str, passphrase: str) -> bytes:
    """A keystore exactly as version 1 wrote it (identity and name, no store key)."""
    argon = nacl.pwhash.argon2id
    ops, mem = FAST.limits()
    salt = nacl.utils.random(argon.SALTBYTES)
    key = argon.kdf(32, passphrase.encode(), salt, ops, mem)
    sign_seed, box_secret = identity.private_bytes()
    inner = cbor2.dumps([sign_seed, box_secret, name], canonical=True)
    sealed = bytes(nacl.secret.SecretBox(key).encrypt(inner))
    return cbor2.dumps(["meshchat-keystore", 1, salt, ops, mem, sealed], canonical=True)


def test_version_2_layout_holds_the_store_key() -> None:
    alice = Identity.generate()
    store_key = bytes(range(32))
    data = seal_keystore(alice, "Alice", PASS, FAST, store_key=store_key)
    header = cbor2.loads(data)
    assert header[:2] == ["meshchat-keystore", 2]
    assert len(header[2]) == 16
    assert (header[3], header[4]) == FAST.limits()
    assert store_key not in data
    opened = unseal_keystore(data, PASS)
    assert (opened.version, opened.store_key, opened.name) == (2, store_key, "Alice")
    assert opened.identity.public == alice.public
    assert open_keystore(data, PASS)[1] == "Alice"
    # Without a given key, each keystore gets its own random one.
    one = unseal_keystore(seal_keystore(alice, "A", PASS, FAST), PASS).store_key
    two = unseal_keystore(seal_keystore(alice, "A", PASS, FAST), PASS).store_key
    assert one is not None and two is not None
    assert len(one) == STORE_KEY_SIZE and one != two


def test_a_bad_store_key_is_refused_when_sealing() -> None:
    with pytest.raises(KeystoreError, match="32 bytes"):
        seal_keystore(Identity.generate(), "A", PASS, FAST, store_key=b"short")


def test_version_2_with_a_missing_store_key_is_corrupted() -> None:
    alice = Identity.generate()
    argon = nacl.pwhash.argon2id
    ops, mem = FAST.limits()
    salt = nacl.utils.random(argon.SALTBYTES)
    key = argon.kdf(32, PASS.encode(), salt, ops, mem)
    inner = cbor2.dumps([*alice.private_bytes(), "A"], canonical=True)
    sealed = bytes(nacl.secret.SecretBox(key).encrypt(inner))
    data = cbor2.dumps(["meshchat-keystore", 2, salt, ops, mem, sealed], canonical=True)
    with pytest.raises(KeystoreError, match="corrupted"):
        unseal_keystore(data, PASS)


def test_new_home_unlocks_with_a_store_key(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    alice = home.create_identity("Alice", PASS, FAST)
    assert stat.S_IMODE(home.keystore.stat().st_mode) == 0o600
    assert stat.S_IMODE(home.path.stat().st_mode) == 0o700
    first = home.unlock_all(PASS)
    assert first.identity.public == alice.public
    assert len(first.store_key) == STORE_KEY_SIZE
    assert home.unlock_all(PASS).store_key == first.store_key
    assert home.unlock(PASS)[1] == "Alice"
    assert "store_key" not in repr(first) and first.store_key.hex() not in repr(first)
    with pytest.raises(KeystoreError, match="wrong passphrase"):
        home.unlock_all("wrong")


def test_a_version_1_keystore_gets_a_store_key_on_first_unlock(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    home.ensure()
    alice = Identity.generate()
    home.keystore.write_bytes(v1_keystore(alice, "Alice", PASS))
    with pytest.raises(KeystoreError):
        home.unlock_all("wrong")  # a wrong passphrase upgrades nothing
    assert cbor2.loads(home.keystore.read_bytes())[1] == 1
    unlocked = home.unlock_all(PASS)
    assert unlocked.identity.public == alice.public
    header = cbor2.loads(home.keystore.read_bytes())
    assert header[1] == 2
    assert (header[3], header[4]) == FAST.limits()  # same Argon2id cost as before
    assert stat.S_IMODE(home.keystore.stat().st_mode) == 0o600
    assert not home.keystore.with_suffix(".tmp").exists()
    assert home.unlock_all(PASS).store_key == unlocked.store_key


def test_concurrent_first_unlocks_agree_on_one_store_key(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    home.ensure()
    home.keystore.write_bytes(v1_keystore(Identity.generate(), "Alice", PASS))
    keys: list[bytes] = []
    errors: list[BaseException] = []

    def unlock() -> None:
        try:
            keys.append(home.unlock_all(PASS).store_key)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=unlock) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(keys) == 4
    assert len(set(keys)) == 1
    assert home.unlock_all(PASS).store_key == keys[0]


def test_secret_files_list_the_keystore_first(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    home.ensure()
    (home.path / "tui.log").write_text("x")
    (home.path / "relay-abc.json").write_text("{}")
    (home.path / "unrelated.txt").write_text("mine")
    files = home.secret_files()
    assert files[0] == home.keystore
    names = [p.name for p in files]
    for expected in (
        "meshchat.db",
        "meshchat.db-wal",
        "meshchat.db-shm",
        "card.txt",
        "control.sock",
        "tui.log",
        "relay-abc.json",
    ):
        assert expected in names
    assert "unrelated.txt" not in names
