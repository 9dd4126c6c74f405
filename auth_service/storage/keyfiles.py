"""The file keystore: one owner-only JSON file per signing key in `AUTH_KEYS_DIR`.

A private key is PKCS#8 PEM, or sealed with `AUTH_KEYS_PASSPHRASE` when one is set (the
format is described in `keystore.py` and keys/README.md). Files
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

from .keystore import KeyRecord, KeystoreError, decode_key, encode_key, is_legacy

__all__ = ["FileKeyStore", "KeyRecord", "KeystoreError"]


class FileKeyStore:
    def __init__(self, directory: Path, passphrase: bytes | None) -> None:
        self._dir = directory
        self._passphrase = passphrase
        # Decrypting is slow on purpose: each stored key is decoded once, until it changes.
        self._decoded: dict[str, tuple[str, PrivateKeyTypes]] = {}
        self._legacy: dict[str, tuple[KeyRecord, PrivateKeyTypes]] = {}

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

    async def rewrap(self) -> list[str]:
        rewritten = list(self._legacy)
        for record, key in self._legacy.values():
            await self.write(record, key)
        self._legacy = {}
        return rewritten

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
        decoded: dict[str, tuple[str, PrivateKeyTypes]] = {}
        legacy: dict[str, tuple[KeyRecord, PrivateKeyTypes]] = {}
        for path in sorted(self._dir.glob("*.json")):
            record, stored = self._read(path)
            cached = self._decoded.get(record.kid)
            key = (
                cached[1]
                if cached is not None and cached[0] == stored
                else decode_key(stored, self._passphrase, str(path))
            )
            keys[record.kid] = (record, key)
            decoded[record.kid] = (stored, key)
            if is_legacy(stored):
                legacy[record.kid] = (record, key)
        self._decoded, self._legacy = decoded, legacy
        return keys

    def _write(self, record: KeyRecord, key: PrivateKeyTypes) -> None:
        self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        body = json.dumps(
            {
                "kid": record.kid,
                "alg": record.alg,
                "created_at": record.created_at,
                "activates_at": record.activates_at,
                "encrypted": self._passphrase is not None,
                "private_key": encode_key(key, self._passphrase),
            },
            indent=1,
        ).encode()
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

    def _read(self, path: Path) -> tuple[KeyRecord, str]:
        """The record and the stored (possibly encrypted) key of one file."""
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeystoreError(f"{path} is readable by others (mode {stat.S_IMODE(mode):o}); chmod 600 it")
        try:
            data = json.loads(path.read_text())
            record = KeyRecord(
                kid=str(data["kid"]),
                alg=str(data["alg"]),
                created_at=int(data["created_at"]),
                activates_at=int(data["activates_at"]),
            )
            encrypted = bool(data["encrypted"])
            stored = str(data["private_key"])
        except (ValueError, KeyError, TypeError) as exc:
            raise KeystoreError(f"{path} is not a key file of this service") from exc
        if encrypted and not self._passphrase:
            raise KeystoreError(f"{path} is encrypted: set AUTH_KEYS_PASSPHRASE")
        if not encrypted and self._passphrase:
            raise KeystoreError(
                f"{path} is stored unencrypted but AUTH_KEYS_PASSPHRASE is set; unset it or move the key away"
            )
        return record, stored
