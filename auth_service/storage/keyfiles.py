"""The file keystore: one owner-only JSON file per signing key in `AUTH_KEYS_DIR`.

A private key is PKCS#8 PEM, encrypted with `AUTH_KEYS_PASSPHRASE` when one is set. Files
are written atomically (temp file, fsync, rename) with mode 0600 in a 0700 directory, and
changes are serialised across processes (a server and the CLI) by an flock on `.lock`.
File work runs in a thread: the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from .keystore import KeyRecord, KeystoreError, from_pem, to_pem

__all__ = ["FileKeyStore", "KeyRecord", "KeystoreError"]


class FileKeyStore:
    def __init__(self, directory: Path, passphrase: bytes | None) -> None:
        self._dir = directory
        self._passphrase = passphrase

    @asynccontextmanager
    async def locked(self) -> AsyncIterator[None]:
        fd = await asyncio.to_thread(self._lock)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    async def fingerprint(self) -> tuple[tuple[str, int], ...]:
        return await asyncio.to_thread(self._fingerprint)

    async def load(self) -> dict[str, tuple[KeyRecord, PrivateKeyTypes]]:
        return await asyncio.to_thread(self._load)

    async def write(self, record: KeyRecord, key: PrivateKeyTypes) -> None:
        await asyncio.to_thread(self._write, record, key)

    async def delete(self, kid: str) -> None:
        await asyncio.to_thread((self._dir / f"{kid}.json").unlink, True)

    def _lock(self) -> int:
        self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self._dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    def _fingerprint(self) -> tuple[tuple[str, int], ...]:
        try:
            entries = [(e.name, e.stat().st_mtime_ns) for e in os.scandir(self._dir) if e.name.endswith(".json")]
        except FileNotFoundError:
            return ()
        return tuple(sorted(entries))

    def _load(self) -> dict[str, tuple[KeyRecord, PrivateKeyTypes]]:
        keys: dict[str, tuple[KeyRecord, PrivateKeyTypes]] = {}
        for path in sorted(self._dir.glob("*.json")):
            record, key = self._read(path)
            keys[record.kid] = (record, key)
        return keys

    def _write(self, record: KeyRecord, key: PrivateKeyTypes) -> None:
        self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        body = json.dumps({"kid": record.kid, "alg": record.alg, "created_at": record.created_at,
                           "activates_at": record.activates_at, "encrypted": self._passphrase is not None,
                           "private_key": to_pem(key, self._passphrase)}, indent=1).encode()
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

    def _read(self, path: Path) -> tuple[KeyRecord, PrivateKeyTypes]:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeystoreError(f"{path} is readable by others (mode {stat.S_IMODE(mode):o}); chmod 600 it")
        try:
            data = json.loads(path.read_text())
            record = KeyRecord(kid=str(data["kid"]), alg=str(data["alg"]), created_at=int(data["created_at"]),
                               activates_at=int(data["activates_at"]))
            encrypted = bool(data["encrypted"])
            pem = str(data["private_key"])
        except (ValueError, KeyError, TypeError) as exc:
            raise KeystoreError(f"{path} is not a key file of this service") from exc
        if encrypted and not self._passphrase:
            raise KeystoreError(f"{path} is encrypted: set AUTH_KEYS_PASSPHRASE")
        if not encrypted and self._passphrase:
            raise KeystoreError(f"{path} is stored unencrypted but AUTH_KEYS_PASSPHRASE is set; "
                                "unset it or move the key away")
        return record, from_pem(pem, self._passphrase if encrypted else None, str(path))
