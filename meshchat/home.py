"""A node's home folder: where its keystore, store and control socket live.

The home is ``--home`` if given, else ``$MESHCHAT_HOME``, else the platform's user data folder
(``platformdirs``). It is created with mode 0700; the keystore is written 0600 through a
temporary file, ``fsync`` and an atomic rename, so a crash never leaves half a keystore.

Unlocking gives the identity, its name and the **store key** that opens the encrypted message
store. A version 1 keystore (from before the store was encrypted) has no store key: the first
unlock makes one and re-seals the keystore as version 2, under an exclusive ``flock`` on the
keystore and after reading it again, so two processes unlocking at once agree on one key.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from meshchat.errors import KeystoreError
from meshchat.identity import (
    STORE_KEY_SIZE,
    Identity,
    KdfProfile,
    seal_keystore,
    unseal_keystore,
)

__all__ = ["Home", "Unlocked", "passphrase_from_env"]

PASSPHRASE_ENV = "MESHCHAT_PASSPHRASE"  # noqa: S105 (the variable name, not a secret)
HOME_ENV = "MESHCHAT_HOME"
CARD_FILE = "card.txt"
CONFIG_FILE = "config.toml"


def passphrase_from_env() -> str | None:
    return os.environ.get(PASSPHRASE_ENV)


@dataclass(frozen=True, slots=True)
class Unlocked:
    """What the passphrase opens: the identity, its display name and the store key."""

    identity: Identity
    name: str
    store_key: bytes

    def __repr__(self) -> str:
        return f"<Unlocked {self.name!r} {self.identity.public.short_id}>"


@dataclass(frozen=True, slots=True)
class Home:
    path: Path

    @classmethod
    def resolve(cls, explicit: str | os.PathLike[str] | None = None) -> Home:
        if explicit is not None:
            return cls(Path(explicit).expanduser())
        env = os.environ.get(HOME_ENV)
        if env:
            return cls(Path(env).expanduser())
        return cls(Path(platformdirs.user_data_dir("meshchat", appauthor=False)))

    @property
    def keystore(self) -> Path:
        return self.path / "keystore"

    @property
    def database(self) -> Path:
        return self.path / "meshchat.db"

    @property
    def control_socket(self) -> Path:
        return self.path / "control.sock"

    @property
    def config(self) -> Path:
        """The settings file (``config.toml``, see :mod:`meshchat.config`)."""
        return self.path / CONFIG_FILE

    @property
    def card(self) -> Path:
        """Where earlier versions kept our card in clear; erased when a node starts.

        Our name and public keys now live only in the sealed keystore and the encrypted
        store (see :func:`meshchat.app.forget_clear_card`).
        """
        return self.path / CARD_FILE

    @property
    def voice_notes(self) -> Path:
        """The folder of voice notes made here (served from it while they are sent)."""
        return self.path / "voice"

    @property
    def downloads(self) -> Path:
        """Where received files are saved unless ``files.downloads`` says otherwise."""
        return self.path / "downloads"

    @property
    def transfers(self) -> Path:
        """The file transfers a node keeps across restarts (:mod:`meshchat.node._filestate`)."""
        return self.path / "transfers.json"

    @property
    def initialised(self) -> bool:
        return self.keystore.exists()

    def secret_files(self) -> list[Path]:
        """Every file of this home that says who we are or whom we talk to, most secret first.

        The keystore comes first: without it the database is ciphertext nobody can open. Then
        the database with its ``-wal``/``-shm``/``-journal`` files, the card, the control
        socket, and the logs and relay state other parts of meshchat keep here.
        """
        db = self.database
        files = [
            self.keystore,
            self.keystore.with_suffix(".tmp"),
            db,
            *(db.with_name(db.name + suffix) for suffix in ("-wal", "-shm", "-journal")),
            self.card,
            self.control_socket,
            # relays, bootstraps and perhaps a display name: erased with the rest
            self.config,
            self.config.with_name(CONFIG_FILE + ".tmp"),
            # the keys of files sent and received
            self.transfers,
            self.transfers.with_name("transfers.json.tmp"),
        ]
        with contextlib.suppress(OSError):
            extra = sorted(
                p
                for p in self.path.iterdir()
                if p.name.startswith(("tui.log", "relay-")) and p not in files
            )
            files += extra
        with contextlib.suppress(OSError):  # what we said, in our own voice
            files += sorted(self.voice_notes.iterdir())
        return files

    def ensure(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.path, 0o700)

    def _write_keystore(self, data: bytes) -> None:
        tmp = self.keystore.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.keystore)
        with contextlib.suppress(OSError):
            dir_fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def create_identity(
        self, name: str, passphrase: str, profile: KdfProfile = KdfProfile.MODERATE
    ) -> Identity:
        if self.initialised:
            raise KeystoreError(f"an identity already exists in {self.path}")
        self.ensure()
        identity = Identity.generate()
        self._write_keystore(seal_keystore(identity, name, passphrase, profile))
        return identity

    def _read_keystore(self) -> bytes:
        try:
            return self.keystore.read_bytes()
        except OSError as exc:
            raise KeystoreError(f"cannot read keystore: {exc.strerror}") from exc

    @contextlib.contextmanager
    def _keystore_locked(self) -> Iterator[None]:
        try:
            fd = os.open(self.keystore, os.O_RDONLY)
        except OSError as exc:
            raise KeystoreError(f"cannot read keystore: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def unlock_all(self, passphrase: str) -> Unlocked:
        """Open the keystore: identity, name and store key (upgrading a version 1 keystore).

        Raises :class:`KeystoreError` for a missing keystore, a wrong passphrase or a
        damaged file.
        """
        if not self.initialised:
            raise KeystoreError(f"no identity in {self.path}: run 'meshchat init' first")
        opened = unseal_keystore(self._read_keystore(), passphrase)
        store_key = opened.store_key
        if store_key is None:
            with self._keystore_locked():
                # Another process may have upgraded it while we derived the key: read again.
                opened = unseal_keystore(self._read_keystore(), passphrase)
                store_key = opened.store_key
                if store_key is None:
                    store_key = os.urandom(STORE_KEY_SIZE)
                    data = seal_keystore(
                        opened.identity,
                        opened.name,
                        passphrase,
                        store_key=store_key,
                        limits=(opened.opslimit, opened.memlimit),
                    )
                    self._write_keystore(data)
                    return Unlocked(opened.identity, opened.name, store_key)
        return Unlocked(opened.identity, opened.name, store_key)

    def rename(self, passphrase: str, name: str) -> None:
        """Seal ``name`` as the display name: same keys, store key and key-derivation cost.

        Raises :class:`KeystoreError` for a wrong passphrase or a keystore without a store
        key (unlock it once first: that upgrades it).
        """
        with self._keystore_locked():
            opened = unseal_keystore(self._read_keystore(), passphrase)
            if opened.store_key is None:
                raise KeystoreError("the keystore has no store key yet: unlock it first")
            data = seal_keystore(
                opened.identity,
                name,
                passphrase,
                store_key=opened.store_key,
                limits=(opened.opslimit, opened.memlimit),
            )
            self._write_keystore(data)

    def unlock(self, passphrase: str) -> tuple[Identity, str]:
        """The identity and its display name (see :meth:`unlock_all`)."""
        unlocked = self.unlock_all(passphrase)
        return unlocked.identity, unlocked.name
