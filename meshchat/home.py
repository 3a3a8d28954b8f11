"""A node's home folder: where its keystore, store and control socket live.

The home is ``--home`` if given, else ``$MESHCHAT_HOME``, else the platform's user data folder
(``platformdirs``). It is created with mode 0700; the keystore is written 0600 through a
temporary file and an atomic rename, so a crash never leaves half a keystore.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from meshchat.errors import KeystoreError
from meshchat.identity import Identity, KdfProfile, open_keystore, seal_keystore

__all__ = ["Home", "passphrase_from_env"]

PASSPHRASE_ENV = "MESHCHAT_PASSPHRASE"  # noqa: S105 (the variable name, not a secret)
HOME_ENV = "MESHCHAT_HOME"


def passphrase_from_env() -> str | None:
    return os.environ.get(PASSPHRASE_ENV)


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
    def initialised(self) -> bool:
        return self.keystore.exists()

    def ensure(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.path, 0o700)

    def create_identity(
        self, name: str, passphrase: str, profile: KdfProfile = KdfProfile.MODERATE
    ) -> Identity:
        if self.initialised:
            raise KeystoreError(f"an identity already exists in {self.path}")
        self.ensure()
        identity = Identity.generate()
        data = seal_keystore(identity, name, passphrase, profile)
        tmp = self.keystore.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.keystore)
        return identity

    def unlock(self, passphrase: str) -> tuple[Identity, str]:
        if not self.initialised:
            raise KeystoreError(f"no identity in {self.path}: run 'meshchat init' first")
        try:
            data = self.keystore.read_bytes()
        except OSError as exc:
            raise KeystoreError(f"cannot read keystore: {exc.strerror}") from exc
        return open_keystore(data, passphrase)
