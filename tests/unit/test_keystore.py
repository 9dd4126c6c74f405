"""The file keystore: owner-only files, encryption with a passphrase, atomic lifecycle changes."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from auth_service.keys import KeyManager, KeyState
from auth_service.storage.keyfiles import FileKeyStore, KeystoreError

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi"}


def manager(directory: Path, passphrase: bytes | None = None, alg: str = "RS256") -> KeyManager:
    return KeyManager(FileKeyStore(directory, passphrase), alg=alg, interval=3600, lead=20,
                      max_token_lifetime=100, jwks_max_age=10)


def test_key_files_are_owner_only_in_an_owner_only_directory(tmp_path: Path) -> None:
    keys = manager(tmp_path / "keys")
    keys.maintain(now=1000)
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    files = list((tmp_path / "keys").glob("*.json"))
    assert len(files) == 1
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600


def test_without_passphrase_the_pem_is_plain_and_with_one_it_is_encrypted(tmp_path: Path) -> None:
    manager(tmp_path / "plain").maintain(now=1000)
    manager(tmp_path / "enc", passphrase=b"pass phrase").maintain(now=1000)
    plain = json.loads(next((tmp_path / "plain").glob("*.json")).read_text())["private_key"]
    encrypted = json.loads(next((tmp_path / "enc").glob("*.json")).read_text())["private_key"]
    assert plain.startswith("-----BEGIN PRIVATE KEY-----")
    assert encrypted.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")


def test_an_encrypted_keystore_refuses_a_missing_or_wrong_passphrase(tmp_path: Path) -> None:
    manager(tmp_path, passphrase=b"right").maintain(now=1000)
    with pytest.raises(KeystoreError, match="AUTH_KEYS_PASSPHRASE"):
        manager(tmp_path).reload_if_changed()
    with pytest.raises(KeystoreError, match="wrong AUTH_KEYS_PASSPHRASE"):
        manager(tmp_path, passphrase=b"wrong").reload_if_changed()


def test_a_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    manager(tmp_path).maintain(now=1000)
    os.chmod(next(tmp_path.glob("*.json")), 0o644)
    with pytest.raises(KeystoreError, match="readable by others"):
        manager(tmp_path).reload_if_changed()


@pytest.mark.parametrize("alg,kty", [("RS256", "RSA"), ("ES256", "EC"), ("EdDSA", "OKP")])
def test_jwks_publishes_public_members_only_with_kid_alg_and_use(tmp_path: Path, alg: str, kty: str) -> None:
    keys = manager(tmp_path, alg=alg)
    keys.maintain(now=1000)
    body, etag = keys.jwks()
    (jwk,) = json.loads(body)["keys"]
    assert jwk["kty"] == kty and jwk["alg"] == alg and jwk["use"] == "sig"
    assert not PRIVATE_MEMBERS & set(jwk)
    assert etag.startswith('"') and len(etag) > 10


def test_on_demand_rotation_publishes_first_and_signs_after_the_lead(tmp_path: Path) -> None:
    keys = manager(tmp_path)
    keys.maintain(now=1000)
    old_kid = keys.signing_key(1000)[0]
    new = keys.rotate(now=1100)
    assert new.activates_at == 1120
    assert len(json.loads(keys.jwks()[0])["keys"]) == 2  # published at once
    assert keys.signing_key(1119)[0] == old_kid
    assert keys.signing_key(1120)[0] == new.kid
    assert keys.rotate(now=1105).kid == new.kid  # idempotent while pending


def test_a_retired_key_is_deleted_once_its_tokens_have_expired(tmp_path: Path) -> None:
    keys = manager(tmp_path)
    keys.maintain(now=1000)
    old_kid = keys.signing_key(1000)[0]
    new = keys.rotate(now=1100)
    keys.maintain(now=1200)  # superseded at 1120, tokens live 100 s: still retiring
    assert keys.states(1200)[old_kid] is KeyState.RETIRING
    keys.maintain(now=1220)
    assert old_kid not in keys.states(1220)
    assert [k["kid"] for k in json.loads(keys.jwks()[0])["keys"]] == [new.kid]


def test_another_process_rotation_is_noticed_by_reload(tmp_path: Path) -> None:
    server, admin = manager(tmp_path), manager(tmp_path)
    server.maintain(now=1000)
    admin.rotate(now=1001)
    assert server.reload_if_changed() is True
    assert len(server.records()) == 2
    assert server.reload_if_changed() is False
