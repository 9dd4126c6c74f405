"""The signing-key storage contract, and the PEM handling both keystores share.

A keystore holds each key's record (kid, algorithm, creation and activation times) and
its private key, and offers a lock that serialises lifecycle changes across every
process that shares it. Which key signs when is decided in `keys.py`, never here.
"""

from __future__ import annotations

from collections.abc import Hashable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

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


class KeyStore(Protocol):
    async def fingerprint(self) -> Hashable:
        """Cheap change detector: equal values mean the same set of keys."""

    async def load(self) -> dict[str, tuple[KeyRecord, PrivateKeyTypes]]: ...

    async def write(self, record: KeyRecord, key: PrivateKeyTypes) -> None: ...

    async def delete(self, kid: str) -> None: ...

    def locked(self) -> AbstractAsyncContextManager[None]:
        """Hold the lock every sharer of this keystore takes before changing it."""


def to_pem(key: PrivateKeyTypes, passphrase: bytes | None) -> str:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             encryption).decode("ascii")


def from_pem(pem: str, passphrase: bytes | None, where: str) -> PrivateKeyTypes:
    try:
        return serialization.load_pem_private_key(pem.encode("ascii"), password=passphrase)
    except (ValueError, TypeError) as exc:
        raise KeystoreError(f"{where} cannot be decrypted: wrong AUTH_KEYS_PASSPHRASE?") from exc
