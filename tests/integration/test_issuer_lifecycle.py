"""Issuer behaviour over time and configuration: rotation, passphrase, algorithms, CLI."""

from __future__ import annotations

import json
import time

import pytest

from auth_service.launch import auth_process, cli
from tests.conftest import AUTH_ENV, PASSWORD, Stack, claims_of, eventually


def kids(stack: Stack) -> list[str]:
    assert stack.auth is not None
    return [k["kid"] for k in stack.http.get(f"{stack.auth.url}/.well-known/jwks.json").json()["keys"]]


def signing_algs(stack: Stack) -> list[str]:
    assert stack.auth is not None
    metadata = stack.http.get(f"{stack.auth.url}/.well-known/openid-configuration").json()
    return list(metadata["id_token_signing_alg_values_supported"])


def test_cli_rotation_is_published_at_once_and_signs_after_the_lead(stack: Stack) -> None:
    stack.start_auth()
    stack.add_user()
    before = stack.login()
    old_kid = claims_of(before["access_token"])[0]["kid"]
    rotated = json.loads(stack.cli("keys", "rotate"))
    assert rotated["activates_at"] - rotated["created_at"] == 4  # publish lead: 2 * max-age (1 s) + 2 s
    assert eventually(lambda: kids(stack) == [old_kid, rotated["kid"]], timeout=5)
    assert claims_of(stack.login()["access_token"])[0]["kid"] == old_kid  # pending: not signing yet
    time.sleep(max(0.0, rotated["activates_at"] - time.time()) + 0.1)
    assert claims_of(stack.login()["access_token"])[0]["kid"] == rotated["kid"]
    states = {k["kid"]: k["state"] for k in map(json.loads, stack.cli("keys", "list").splitlines())}
    assert states == {old_kid: "retiring", rotated["kid"]: "active"}
    # A token signed by the retiring key is still good at the issuer.
    assert stack.token(grant_type="refresh_token", refresh_token=before["refresh_token"]).status_code == 200


@pytest.mark.parametrize("alg", ["ES256", "Ed25519", "EdDSA"])
def test_the_signing_algorithm_is_selectable(stack: Stack, alg: str) -> None:
    auth = stack.start_auth(AUTH_SIGNING_ALG=alg)
    stack.add_user()
    login = stack.login()
    assert claims_of(login["access_token"])[0]["alg"] == alg
    assert stack.token(grant_type="refresh_token", refresh_token=login["refresh_token"]).status_code == 200
    assert [k["alg"] for k in stack.http.get(f"{auth.url}/.well-known/jwks.json").json()["keys"]] == [alg]
    assert signing_algs(stack) == [alg]


def test_an_issuer_switched_from_eddsa_to_ed25519_signs_with_the_new_name_once_published(stack: Stack) -> None:
    stack.add_user()
    first = json.loads(stack.cli("keys", "rotate", AUTH_SIGNING_ALG="EdDSA"))  # made before the switch
    assert first["alg"] == "EdDSA"
    stack.start_auth(AUTH_SIGNING_ALG="Ed25519", AUTH_JWKS_MAX_AGE="3")  # publish lead: 8 s
    before = stack.login()
    assert claims_of(before["access_token"])[0] == {"alg": "EdDSA", "kid": first["kid"], "typ": "at+jwt"}
    listed = {k["kid"]: k for k in map(json.loads, stack.cli("keys", "list").splitlines())}
    (pending,) = (k for kid, k in listed.items() if kid != first["kid"])
    assert (pending["alg"], pending["state"]) == ("Ed25519", "pending")
    assert signing_algs(stack) == ["EdDSA", "Ed25519"]  # both, while the Ed25519 key waits for its lead

    (replica,) = stack.start_replicas(1)
    time.sleep(max(0.0, pending["activates_at"] - time.time()) + 0.1)
    after = stack.login()
    assert claims_of(after["access_token"])[0] == {"alg": "Ed25519", "kid": pending["kid"], "typ": "at+jwt"}
    assert signing_algs(stack) == ["Ed25519"]
    for login in (before, after):  # the retiring EdDSA key's tokens stay good, at the replica and the issuer
        assert stack.me(replica, str(login["access_token"])).status_code == 200
    assert stack.token(grant_type="refresh_token", refresh_token=before["refresh_token"]).status_code == 200


def test_with_a_passphrase_keys_are_encrypted_and_a_restart_without_it_fails_clearly(stack: Stack) -> None:
    stack.start_auth(AUTH_KEYS_PASSPHRASE="a long enough passphrase")
    (key_file,) = (stack.tmp / "keys").glob("*.json")
    assert json.loads(key_file.read_text())["private_key"].startswith("$scrypt-a256gcm$ln=15,r=8,p=1$")
    assert stack.auth is not None
    stack.auth.stop()
    bare = auth_process(data=stack.tmp, env=AUTH_ENV)
    with pytest.raises(RuntimeError) as failed:
        bare.start(wait=20)
    assert "AUTH_KEYS_PASSPHRASE" in str(failed.value)
    assert "PRIVATE KEY" not in str(failed.value)
    done = cli(["keys", "list"], data=stack.tmp)
    assert done.returncode == 2 and "AUTH_KEYS_PASSPHRASE" in done.stderr


def test_login_rate_limit_answers_429_with_retry_after(stack: Stack) -> None:
    stack.start_auth(AUTH_LOGIN_MAX_FAILURES="3")
    stack.add_user("bob")
    codes = [stack.token(grant_type="password", username="bob", password="wrong").status_code for _ in range(3)]
    assert codes == [400, 400, 400]
    limited = stack.token(grant_type="password", username="bob", password=PASSWORD)
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) > 0
    assert limited.json()["error"] == "temporarily_unavailable"
    assert stack.token(grant_type="password", username="BOB", password=PASSWORD).status_code == 429  # same user


def test_password_change_revokes_every_earlier_token_and_new_logins_still_work(stack: Stack) -> None:
    stack.start_auth()
    sub = stack.add_user()
    old = stack.login()
    out = json.loads(stack.cli("users", "set-password", "alice", "--password-stdin", stdin="a new password\n"))
    assert out["sub"] == sub
    assert stack.token(grant_type="refresh_token", refresh_token=old["refresh_token"]).status_code == 400
    assert stack.token(grant_type="password", username="alice", password=PASSWORD).status_code == 400
    fresh = stack.login(password="a new password")  # in the same second as the revocation
    assert stack.auth is not None
    entries = stack.http.get(f"{stack.auth.url}/revocations").json()["entries"]
    (entry,) = [e for e in entries if e["kind"] == "sub"]
    assert entry["value"] == sub
    assert claims_of(old["access_token"])[1]["iat"] < entry["before"]  # type: ignore[operator]
    assert claims_of(fresh["access_token"])[1]["iat"] >= entry["before"]  # type: ignore[operator]
    assert stack.token(grant_type="refresh_token", refresh_token=fresh["refresh_token"]).status_code == 200


def test_cli_revocations_reach_the_running_servers_feed(stack: Stack) -> None:
    stack.start_auth()
    for flag, value in (("--jti", "j-1"), ("--sid", "s-1"), ("--sub", "u-1")):
        entry = json.loads(stack.cli("revoke", flag, value))
        assert entry["kind"] == flag[2:] and entry["value"] == value
    assert stack.auth is not None
    feed = stack.http.get(f"{stack.auth.url}/revocations").json()
    assert [(e["seq"], e["kind"]) for e in feed["entries"]] == [(1, "jti"), (2, "sid"), (3, "sub")]


def test_cli_refuses_duplicates_and_empty_secrets_plainly(stack: Stack) -> None:
    stack.add_user("carol")
    dup = cli(["users", "add", "CAROL", "--password-stdin"], data=stack.tmp, stdin="long enough\n")
    assert dup.returncode == 2 and "exists" in dup.stderr
    empty = cli(["clients", "add", "c1", "--secret-stdin"], data=stack.tmp, stdin="\n")
    assert empty.returncode == 2 and "no secret" in empty.stderr


def test_cli_refuses_short_passwords_and_client_secrets(stack: Stack) -> None:
    for args, short in (
        (["users", "add", "dave"], "7 chars"),
        (["users", "set-password", "carol"], "1234567"),
        (["clients", "add", "c2"], "s" * 31),
    ):
        flag = "--secret-stdin" if args[0] == "clients" else "--password-stdin"
        done = cli([*args, flag], data=stack.tmp, stdin=short + "\n")
        assert done.returncode == 2 and "shorter than" in done.stderr, done.stderr
        assert short not in done.stderr  # the value itself is never echoed


def test_scheduled_rotation_publishes_then_activates_a_new_key_by_itself(stack: Stack) -> None:
    # interval 8 s, max-age 1 s: the next key is created at 4 s (8 - lead of 4) and signs at 8 s.
    stack.start_auth(AUTH_KEY_ROTATION_INTERVAL="8")
    stack.add_user()
    first = claims_of(stack.login()["access_token"])[0]["kid"]
    assert eventually(lambda: len(kids(stack)) == 2, timeout=10)
    second = kids(stack)[1]
    assert claims_of(stack.login()["access_token"])[0]["kid"] == first  # published, not yet signing
    assert eventually(lambda: claims_of(stack.login()["access_token"])[0]["kid"] == second, timeout=10, interval=0.25)


def test_cors_allows_the_configured_origin_only(stack: Stack) -> None:
    stack.start_auth(AUTH_CORS_ORIGINS='["http://docs.example"]')
    assert stack.auth is not None
    # The headers Swagger UI's token request asks for.
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,x-requested-with",
    }
    allowed = stack.http.options(f"{stack.auth.url}/token", headers={"Origin": "http://docs.example", **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "http://docs.example"
    other = stack.http.options(f"{stack.auth.url}/token", headers={"Origin": "http://evil.example", **preflight})
    assert "access-control-allow-origin" not in other.headers


def test_openapi_declares_the_code_flow_for_swagger_authorize(issuer_and_replica: Stack) -> None:
    s = issuer_and_replica
    assert s.auth is not None
    replica_doc = s.http.get(f"{s.replicas[0].url}/openapi.json").json()
    flows = [
        scheme["flows"]["authorizationCode"]
        for scheme in replica_doc["components"]["securitySchemes"].values()
        if scheme.get("type") == "oauth2"
    ]
    assert flows and flows[0]["tokenUrl"] == f"{s.auth.url}/token"
    assert flows[0]["authorizationUrl"] == f"{s.auth.url}/authorize"
    assert "reports:read" in flows[0]["scopes"]
    issuer_doc = s.http.get(f"{s.auth.url}/openapi.json").json()
    form = issuer_doc["paths"]["/token"]["post"]["requestBody"]["content"]
    assert set(form["application/x-www-form-urlencoded"]["schema"]["properties"]) >= {
        "grant_type",
        "username",
        "password",
        "scope",
        "client_id",
        "client_secret",
        "refresh_token",
        "code",
        "redirect_uri",
        "code_verifier",
    }


@pytest.fixture
def issuer_and_replica(stack: Stack) -> Stack:
    stack.start_auth()
    stack.start_replicas(1)
    return stack


def test_readiness_reports_database_key_and_redis(stack: Stack) -> None:
    stack.start_auth()
    assert stack.auth is not None
    ready = stack.http.get(f"{stack.auth.url}/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "checks": {"database": "ok", "signing_key": "ok"}}
    stack.auth.stop()
    stack.start_auth(AUTH_REDIS_URL="redis://127.0.0.1:1/0")  # nothing listens there
    unready = stack.http.get(f"{stack.auth.url}/readyz")
    assert unready.status_code == 503 and unready.json()["checks"]["redis"].startswith("unavailable")
    assert stack.http.get(f"{stack.auth.url}/healthz").status_code == 200  # alive all the same
    stack.add_user()
    assert stack.login()["token_type"] == "Bearer"  # logins still work: limits fall back to local counters
