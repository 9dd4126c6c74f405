"""The signing-key storage contract, and the PEM handling both keystores share.

A keystore holds each key's record (kid, algorithm, creation and activation times) and
its private key, and offers a lock that serialises lifecycle changes across every
process that shares it. Which key signs when is decided in `keys.py`, never here.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Hashable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt


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

    async def rewrap(self) -> list[str]:
        """Rewrite in the current encryption format every key the last `load` found in an
        older one; the kids rewritten. Call under `locked()`."""

    def locked(self) -> AbstractAsyncContextManager[None]:
        """Hold the lock every sharer of this keystore takes before changing it."""


# Encrypted keys are stored as one line (the PHC string convention of password hashes):
#   $scrypt-a256gcm$ln=15,r=8,p=1$<salt>$<nonce>$<ciphertext>
# scrypt (RFC 7914; N = 2**ln) derives a 256-bit key-encryption key from the passphrase and
# the 16-byte salt; AES-256-GCM with the 12-byte nonce seals the key's unencrypted PKCS#8 DER,
# with the text up to the salt as associated data. Parts are unpadded base64url. Keys written
# before this format are PKCS#8 "ENCRYPTED PRIVATE KEY" PEM (PBKDF2): still read, rewritten
# in this format on the next rotation (`KeyStore.rewrap`).
_FORMAT = "scrypt-a256gcm"
# 32 MiB, about 0.1 s: once per key and process. 2**17 (128 MiB, 0.46 s here) made every
# instance publish a key written by another process late by the decryption, under load past a
# short publish lead; the parameters are stored with each key, so raising them later is free.
_SCRYPT = {"ln": 15, "r": 8, "p": 1}
_SCRYPT_LIMITS = {"ln": 20, "r": 16, "p": 4}  # a stored file may not ask for more than this
_LEGACY_LABEL = "ENCRYPTED PRIVATE KEY"  # the PEM label of PKCS#8 with PBKDF2 (RFC 7468)


def encode_key(key: PrivateKeyTypes, passphrase: bytes | None) -> str:
    """The stored form of `key`: plain PKCS#8 PEM without a passphrase, else sealed as above."""
    if not passphrase:
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode("ascii")
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    salt, nonce = os.urandom(16), os.urandom(12)
    header = f"${_FORMAT}$" + ",".join(f"{name}={value}" for name, value in _SCRYPT.items()) + "$"
    sealed = AESGCM(_kek(passphrase, salt, _SCRYPT)).encrypt(nonce, der, header.encode())
    return header + "$".join(_b64(part) for part in (salt, nonce, sealed))


def decode_key(stored: str, passphrase: bytes | None, where: str) -> PrivateKeyTypes:
    """The private key from its stored form (either format); `KeystoreError` if it cannot be read."""
    if stored.startswith(f"${_FORMAT}$"):
        if not passphrase:
            raise KeystoreError(f"{where} is encrypted: set AUTH_KEYS_PASSPHRASE")
        return _unseal(stored, passphrase, where)
    try:
        return serialization.load_pem_private_key(stored.encode("ascii"), password=passphrase)
    except (ValueError, TypeError) as exc:
        raise KeystoreError(f"{where} cannot be decrypted: wrong AUTH_KEYS_PASSPHRASE?") from exc


def is_legacy(stored: str) -> bool:
    """True for a key encrypted in the older PKCS#8 PEM (PBKDF2) form."""
    return stored.startswith(f"-----BEGIN {_LEGACY_LABEL}-----")


def _unseal(stored: str, passphrase: bytes, where: str) -> PrivateKeyTypes:
    try:
        _, _, params_text, salt, nonce, sealed = stored.split("$")
        params = {name: int(value) for name, value in (item.split("=") for item in params_text.split(","))}
        if params.keys() != _SCRYPT.keys() or any(not 1 <= params[n] <= _SCRYPT_LIMITS[n] for n in params):
            raise ValueError("unsupported scrypt parameters")
        kek = _kek(passphrase, _unb64(salt), params)
        der = AESGCM(kek).decrypt(_unb64(nonce), _unb64(sealed), f"${_FORMAT}${params_text}$".encode())
    except InvalidTag as exc:
        raise KeystoreError(f"{where} cannot be decrypted: wrong AUTH_KEYS_PASSPHRASE?") from exc
    except (ValueError, TypeError) as exc:
        raise KeystoreError(f"{where} is not an encrypted key of this service") from exc
    return serialization.load_der_private_key(der, password=None)


def _kek(passphrase: bytes, salt: bytes, params: dict[str, int]) -> bytes:
    return Scrypt(salt=salt, length=32, n=2 ** params["ln"], r=params["r"], p=params["p"]).derive(passphrase)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
