"""Keystores: owner-only files or encrypted database rows; lifecycle changes under a lock.

The lifecycle tests run on both keystores; file modes and the unencrypted case are the
file keystore's alone."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from auth_service.keys import KeyManager, KeyState, sign
from auth_service.storage import open_store
from auth_service.storage.keyfiles import FileKeyStore, KeystoreError
from auth_service.storage.keystore import KeyStore, decode_key, encode_key, is_legacy
from resource_service.jose import decode, key_from_jwk

pytestmark = pytest.mark.anyio
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi"}
PASSPHRASE = b"a sixteen-plus passphrase"


def manager(store: KeyStore, alg: str = "RS256") -> KeyManager:
    return KeyManager(store, alg=alg, interval=3600, lead=20, max_token_lifetime=100)


def files(directory: Path, passphrase: bytes | None = None, alg: str = "RS256") -> KeyManager:
    return manager(FileKeyStore(directory, passphrase), alg)


@pytest.fixture(params=["file", "postgresql"])
async def make(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Callable[[], KeyManager]]:
    """Makes managers that share one keystore, as instances and the CLI do."""
    if request.param == "file":
        yield lambda: files(tmp_path / "keys")
        return
    from auth_service.storage.keydb import SqlKeyStore

    store = await open_store(request.getfixturevalue("postgres_url"))
    yield lambda: manager(SqlKeyStore(store.engine, PASSPHRASE))
    await store.close()


async def test_on_demand_rotation_publishes_first_and_signs_after_the_lead(make) -> None:
    keys = make()
    await keys.maintain(now=1000)
    old_kid = keys.signing_key(1000)[0]
    new = await keys.rotate(now=1100)
    assert new.activates_at == 1120
    assert len(json.loads(keys.jwks()[0])["keys"]) == 2  # published at once
    assert keys.signing_key(1119)[0] == old_kid
    assert keys.signing_key(1120)[0] == new.kid
    assert (await keys.rotate(now=1105)).kid == new.kid  # idempotent while pending


async def test_a_retired_key_is_deleted_once_its_tokens_have_expired(make) -> None:
    keys = make()
    await keys.maintain(now=1000)
    old_kid = keys.signing_key(1000)[0]
    new = await keys.rotate(now=1100)
    await keys.maintain(now=1200)  # superseded at 1120, tokens live 100 s: still retiring
    assert keys.states(1200)[old_kid] is KeyState.RETIRING
    await keys.maintain(now=1220)
    assert old_kid not in keys.states(1220)
    assert [k["kid"] for k in json.loads(keys.jwks()[0])["keys"]] == [new.kid]


async def test_another_sharers_rotation_is_noticed_by_reload(make) -> None:
    server, admin = make(), make()
    await server.maintain(now=1000)
    await admin.rotate(now=1001)
    assert await server.reload_if_changed() is True
    assert len(server.records()) == 2
    assert await server.reload_if_changed() is False


async def test_sharers_whose_schedules_fire_together_create_one_key(make) -> None:
    instances = [make() for _ in range(4)]
    await asyncio.gather(*[keys.maintain(now=1000) for keys in instances])
    await instances[0].reload_if_changed()
    assert len(instances[0].records()) == 1  # the lock made three of them find the first's key


async def test_the_database_keystore_refuses_to_hold_keys_unencrypted(postgres_url: str) -> None:
    from auth_service.storage.keydb import SqlKeyStore

    store = await open_store(postgres_url)
    try:
        with pytest.raises(KeystoreError, match="AUTH_KEYS_PASSPHRASE"):
            SqlKeyStore(store.engine, None)
        await manager(SqlKeyStore(store.engine, b"right")).maintain(now=1000)
        with pytest.raises(KeystoreError, match="wrong AUTH_KEYS_PASSPHRASE"):
            await manager(SqlKeyStore(store.engine, b"wrong")).reload_if_changed()
        async with store.engine.connect() as conn:
            from sqlalchemy import text

            stored = (await conn.execute(text("SELECT private_key FROM signing_keys"))).scalar_one()
        assert stored.startswith("$scrypt-a256gcm$")
    finally:
        await store.close()


async def test_key_files_are_owner_only_in_an_owner_only_directory(tmp_path: Path) -> None:
    await files(tmp_path / "keys").maintain(now=1000)
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    found = list((tmp_path / "keys").glob("*.json"))
    assert len(found) == 1
    assert stat.S_IMODE(found[0].stat().st_mode) == 0o600


async def test_without_passphrase_the_pem_is_plain_and_with_one_it_is_sealed_with_scrypt(tmp_path: Path) -> None:
    await files(tmp_path / "plain").maintain(now=1000)
    await files(tmp_path / "enc", passphrase=PASSPHRASE).maintain(now=1000)
    plain = json.loads(next((tmp_path / "plain").glob("*.json")).read_text())["private_key"]
    encrypted = json.loads(next((tmp_path / "enc").glob("*.json")).read_text())["private_key"]
    assert plain.startswith("-----BEGIN PRIVATE KEY-----")
    assert encrypted.startswith("$scrypt-a256gcm$ln=15,r=8,p=1$") and "PRIVATE KEY" not in encrypted


async def test_a_sealed_key_round_trips_and_each_sealing_has_its_own_salt() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    first, second = encode_key(key, PASSPHRASE), encode_key(key, PASSPHRASE)
    assert first.split("$")[3] != second.split("$")[3]  # salt
    for stored in (first, second):
        assert _raw(decode_key(stored, PASSPHRASE, "k")) == _raw(key)


async def test_an_encrypted_keystore_refuses_a_missing_or_wrong_passphrase(tmp_path: Path) -> None:
    await files(tmp_path, passphrase=PASSPHRASE).maintain(now=1000)
    with pytest.raises(KeystoreError, match="AUTH_KEYS_PASSPHRASE"):
        await files(tmp_path).reload_if_changed()
    with pytest.raises(KeystoreError, match="wrong AUTH_KEYS_PASSPHRASE") as wrong:
        await files(tmp_path, passphrase=b"another sixteen-plus phrase").reload_if_changed()
    assert "PRIVATE KEY" not in str(wrong.value)


@pytest.mark.parametrize(
    "damage",
    [
        lambda s: s.replace("ln=15", "ln=40"),  # a file may not ask for unbounded work
        lambda s: s.replace("ln=15,", ""),
        lambda s: s[:-3],
        lambda s: s + "$x",
    ],
    ids=["huge cost", "missing parameter", "cut short", "extra part"],
)
async def test_a_damaged_sealed_key_is_a_clean_keystore_error(damage: Callable[[str], str]) -> None:
    stored = encode_key(ed25519.Ed25519PrivateKey.generate(), PASSPHRASE)
    with pytest.raises(KeystoreError, match="k "):
        decode_key(damage(stored), PASSPHRASE, "k")


async def test_a_key_in_the_old_pbkdf2_format_still_loads_and_is_resealed_at_the_next_rotation(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    keys = files(tmp_path, passphrase=PASSPHRASE, alg="EdDSA")  # EdDSA: quick to generate
    await keys.maintain(now=1000)
    (path,) = tmp_path.glob("*.json")
    data = json.loads(path.read_text())
    key = decode_key(data["private_key"], PASSPHRASE, "k")
    data["private_key"] = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(PASSPHRASE)
    ).decode()
    path.write_text(json.dumps(data))
    assert is_legacy(data["private_key"])
    restarted = files(tmp_path, passphrase=PASSPHRASE, alg="EdDSA")
    await restarted.reload_if_changed()
    assert restarted.signing_key(1000)[0] == data["kid"]
    assert is_legacy(json.loads(path.read_text())["private_key"])  # reading alone rewrites nothing
    with caplog.at_level(logging.INFO, logger="auth_service.security"):
        await restarted.rotate(now=1100)
    resealed = json.loads(path.read_text())["private_key"]
    assert resealed.startswith("$scrypt-a256gcm$")
    assert _raw(decode_key(resealed, PASSPHRASE, "k")) == _raw(key)
    assert [r.getMessage() for r in caplog.records if getattr(r, "kid", None) == data["kid"]] == ["key_rewrapped"]
    assert len(list(tmp_path.glob("*.json"))) == 2


def _raw(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


async def test_a_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    await files(tmp_path).maintain(now=1000)
    os.chmod(next(tmp_path.glob("*.json")), 0o644)
    with pytest.raises(KeystoreError, match="readable by others"):
        await files(tmp_path).reload_if_changed()


@pytest.mark.parametrize(
    "alg,kty,crv",
    [("RS256", "RSA", None), ("ES256", "EC", "P-256"), ("Ed25519", "OKP", "Ed25519"), ("EdDSA", "OKP", "Ed25519")],
)
async def test_jwks_publishes_public_members_only_with_kid_alg_and_use(
    tmp_path: Path, alg: str, kty: str, crv: str | None
) -> None:
    keys = files(tmp_path, alg=alg)
    await keys.maintain(now=1000)
    body, etag = keys.jwks()
    (jwk,) = json.loads(body)["keys"]
    assert jwk["kty"] == kty and jwk["alg"] == alg and jwk["use"] == "sig" and jwk.get("crv") == crv
    assert not PRIVATE_MEMBERS & set(jwk) and "key_ops" not in jwk
    assert etag.startswith('"') and len(etag) > 10


async def test_an_old_format_database_key_still_loads_and_is_resealed_at_the_next_rotation(postgres_url: str) -> None:
    from sqlalchemy import update

    from auth_service.storage.keydb import SqlKeyStore
    from auth_service.storage.tables import signing_keys

    store = await open_store(postgres_url)
    try:
        await manager(SqlKeyStore(store.engine, PASSPHRASE)).maintain(now=1000)
        key = ed25519.Ed25519PrivateKey.generate()  # any key: the row's stored form is what counts
        old = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(PASSPHRASE),
        ).decode()
        async with store.engine.begin() as conn:
            await conn.execute(update(signing_keys).values(private_key=old, alg="EdDSA"))
        restarted = manager(SqlKeyStore(store.engine, PASSPHRASE), alg="EdDSA")
        await restarted.reload_if_changed()
        (kid,) = (r.kid for r in restarted.records())
        assert _raw(restarted.signing_key(1000)[2]) == _raw(key)
        await restarted.rotate(now=1100)
        async with store.engine.connect() as conn:
            stored = (await conn.execute(signing_keys.select().where(signing_keys.c.kid == kid))).one().private_key
        assert stored.startswith("$scrypt-a256gcm$") and _raw(decode_key(stored, PASSPHRASE, "k")) == _raw(key)
    finally:
        await store.close()


async def test_a_switch_from_eddsa_to_ed25519_publishes_the_new_key_first_and_old_tokens_still_verify(
    tmp_path: Path,
) -> None:
    claims = {"iss": "i", "sub": "u", "aud": "api", "iat": 1000, "exp": 2000, "jti": "j", "client_id": "c"}
    before = files(tmp_path, alg="EdDSA")
    await before.maintain(now=1000)
    old_kid, _, old_key = before.signing_key(1000)
    old_token = sign(claims, kid=old_kid, alg="EdDSA", key=old_key, typ="at+jwt")

    after = files(tmp_path, alg="Ed25519")  # the issuer restarted with AUTH_SIGNING_ALG=Ed25519
    await after.maintain(now=1010)
    published = {jwk["kid"]: jwk for jwk in json.loads(after.jwks()[0])["keys"]}
    (new_kid,) = set(published) - {old_kid}
    assert {kid: (jwk["alg"], jwk["crv"]) for kid, jwk in published.items()} == {
        old_kid: ("EdDSA", "Ed25519"),
        new_kid: ("Ed25519", "Ed25519"),
    }
    assert after.signing_key(1029)[:2] == (old_kid, "EdDSA")  # the new key is pending for the lead (20 s)
    assert after.signing_algs(1029) == ["EdDSA", "Ed25519"]  # what discovery advertises meanwhile
    assert after.signing_key(1030)[:2] == (new_kid, "Ed25519")
    assert after.states(1030)[old_kid] is KeyState.RETIRING and after.signing_algs(1030) == ["Ed25519"]

    new_token = sign(claims, kid=new_kid, alg="Ed25519", key=after.signing_key(1030)[2], typ="at+jwt")
    verifying = {kid: key_from_jwk(jwk) for kid, jwk in published.items()}
    for token in (old_token, new_token):
        assert decode(token, verifying, typ="at+jwt", issuer="i", audience="api", now=1030, leeway=0) == claims
