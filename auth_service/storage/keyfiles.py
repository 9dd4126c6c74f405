"""The file keystore: one owner-only JSON file per signing key in `AUTH_KEYS_DIR`.

A private key is PKCS#8 PEM, encrypted with `AUTH_KEYS_PASSPHRASE` when one is set. Files
are written atomically (temp file, fsync, rename) with mode 0600 in a 0700 directory, and
changes are serialised across processes (a server and the CLI) by an flock on `.lock`.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes


class KeystoreError(Exception):
    """The keystore cannot be used as configured (said plainly, never with key material)."""


@dataclass(frozen=True, slots=True)
class KeyRecord:
    kid: str
    alg: str
    created_at: int
    activates_at: int


class FileKeyStore:
    def __init__(self, directory: Path, passphrase: bytes | None) -> None:
        self._dir = directory
        self._passphrase = passphrase

    @property
    def directory(self) -> Path:
        return self._dir

    def ensure_dir(self) -> None:
        self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the keystore's cross-process lock (blocking)."""
        self.ensure_dir()
        fd = os.open(self._dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def fingerprint(self) -> tuple[tuple[str, int], ...]:
        """Cheap change detector: names and mtimes of the key files."""
        try:
            entries = [(e.name, e.stat().st_mtime_ns) for e in os.scandir(self._dir) if e.name.endswith(".json")]
        except FileNotFoundError:
            return ()
        return tuple(sorted(entries))

    def load(self) -> dict[str, tuple[KeyRecord, PrivateKeyTypes]]:
        keys: dict[str, tuple[KeyRecord, PrivateKeyTypes]] = {}
        for path in sorted(self._dir.glob("*.json")):
            record, key = self._read(path)
            keys[record.kid] = (record, key)
        return keys

    def write(self, record: KeyRecord, key: PrivateKeyTypes) -> None:
        self.ensure_dir()
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(self._passphrase) if self._passphrase
            else serialization.NoEncryption())
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
        body = json.dumps({"kid": record.kid, "alg": record.alg, "created_at": record.created_at,
                           "activates_at": record.activates_at, "encrypted": self._passphrase is not None,
                           "private_key": pem.decode("ascii")}, indent=1).encode()
        final = self._dir / f"{record.kid}.json"
        tmp = self._dir / f".{record.kid}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, body)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        dir_fd = os.open(self._dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def delete(self, kid: str) -> None:
        (self._dir / f"{kid}.json").unlink(missing_ok=True)

    def _read(self, path: Path) -> tuple[KeyRecord, PrivateKeyTypes]:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeystoreError(f"{path} is readable by others (mode {stat.S_IMODE(mode):o}); chmod 600 it")
        try:
            data = json.loads(path.read_text())
            record = KeyRecord(kid=str(data["kid"]), alg=str(data["alg"]), created_at=int(data["created_at"]),
                               activates_at=int(data["activates_at"]))
            encrypted = bool(data["encrypted"])
            pem = str(data["private_key"]).encode("ascii")
        except (ValueError, KeyError, TypeError) as exc:
            raise KeystoreError(f"{path} is not a key file of this service") from exc
        if encrypted and not self._passphrase:
            raise KeystoreError(f"{path} is encrypted: set AUTH_KEYS_PASSPHRASE")
        if not encrypted and self._passphrase:
            raise KeystoreError(f"{path} is stored unencrypted but AUTH_KEYS_PASSPHRASE is set; "
                                "unset it or move the key away")
        try:
            key = serialization.load_pem_private_key(pem, password=self._passphrase if encrypted else None)
        except (ValueError, TypeError) as exc:
            raise KeystoreError(f"{path} cannot be decrypted: wrong AUTH_KEYS_PASSPHRASE?") from exc
        return record, key
