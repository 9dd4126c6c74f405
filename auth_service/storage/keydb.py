"""Signing keys in the database (PostgreSQL), shared by instances on different machines.

Private keys here are always encrypted with `AUTH_KEYS_PASSPHRASE`: without one the
keystore refuses to open. Lifecycle changes are serialised by a PostgreSQL advisory lock,
so of several instances whose schedules fire together exactly one creates the next key.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from .keystore import KeyRecord, KeystoreError, decode_key, encode_key, is_legacy
from .tables import signing_keys

_LOCK_ID = 0x6B657973  # an arbitrary constant naming "the keystore" among advisory locks


class SqlKeyStore:
    def __init__(self, engine: AsyncEngine, passphrase: bytes | None) -> None:
        if not passphrase:
            raise KeystoreError("keys stored in the database must be encrypted: set AUTH_KEYS_PASSPHRASE")
        self._engine = engine
        self._passphrase = passphrase
        self._decrypted: dict[str, PrivateKeyTypes] = {}  # decrypting is slow on purpose: once per key
        self._legacy: dict[str, str] = {}  # kid -> the stored text, for keys in the older format

    @asynccontextmanager
    async def locked(self) -> AsyncIterator[None]:
        async with self._engine.connect() as conn:
            await conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _LOCK_ID})
            try:
                yield
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _LOCK_ID})
                await conn.commit()

    async def fingerprint(self) -> tuple[tuple[str, int], ...]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(signing_keys.c.kid, signing_keys.c.activates_at).order_by(signing_keys.c.kid)
            )
            return tuple((row.kid, row.activates_at) for row in rows)

    async def load(self) -> dict[str, tuple[KeyRecord, PrivateKeyTypes]]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(signing_keys))).all()
        keys: dict[str, tuple[KeyRecord, PrivateKeyTypes]] = {}
        self._legacy = {row.kid: row.private_key for row in rows if is_legacy(row.private_key)}
        for row in rows:
            if row.kid not in self._decrypted:
                self._decrypted[row.kid] = await asyncio.to_thread(  # scrypt: off the event loop
                    decode_key, row.private_key, self._passphrase, f"signing key {row.kid}"
                )
            keys[row.kid] = (KeyRecord(row.kid, row.alg, row.created_at, row.activates_at), self._decrypted[row.kid])
        return keys

    async def write(self, record: KeyRecord, key: PrivateKeyTypes) -> None:
        stored = await asyncio.to_thread(encode_key, key, self._passphrase)
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(signing_keys).values(
                    kid=record.kid,
                    alg=record.alg,
                    created_at=record.created_at,
                    activates_at=record.activates_at,
                    private_key=stored,
                )
            )

    async def delete(self, kid: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(delete(signing_keys).where(signing_keys.c.kid == kid))
        self._decrypted.pop(kid, None)

    async def rewrap(self) -> list[str]:
        rewritten = []
        for kid, old in self._legacy.items():
            new = await asyncio.to_thread(encode_key, self._decrypted[kid], self._passphrase)
            async with self._engine.begin() as conn:
                done = await conn.execute(
                    update(signing_keys)
                    .values(private_key=new)
                    .where(signing_keys.c.kid == kid, signing_keys.c.private_key == old)
                )
            if done.rowcount:
                rewritten.append(kid)
        self._legacy = {}
        return rewritten
