"""Secrets never leak: one full run (an issuer, two replicas, the CLI) with every process
logging JSON lines at DEBUG, and every byte they log (and every value of every log line,
decoded, so JSON escaping cannot hide one) and every HTTP answer they give searched for
every password, client secret, passphrase, private key, stored hash and token of the run.

The one place a token may appear is where it is issued: the `access_token` and
`refresh_token` members of a 200 answer to `POST /token`. Only those two values are cut
out; the rest of that body, and its headers, are searched like everything else.
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import secrets
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from auth_service.launch import cli
from auth_service.storage.keystore import decode_key
from tests.conftest import Stack, claims_of, eventually, json_log_lines

pytestmark = pytest.mark.slow

# Every process of the run (issuer, replicas, CLI) logs everything, as JSON lines.
_DEBUG_JSON = {"AUTH_LOG_LEVEL": "DEBUG", "AUTH_LOG_FORMAT": "json", "AUTH_ACCESS_LOG": "true"}
_REPLICA_DEBUG_JSON = {"RESOURCE_LOG_LEVEL": "DEBUG", "RESOURCE_LOG_FORMAT": "json", "RESOURCE_ACCESS_LOG": "true"}


def decoded(where: str, records: list[dict[str, object]]) -> Seen:
    """The values of the log lines as the JSON encoder got them (unescaped)."""
    return Seen(f"{where} (decoded)", "\n".join(str(value) for r in records for value in r.values()))


@dataclass
class Seen:
    """One thing the run showed the world, and where."""

    where: str
    text: str


class Recorder:
    """Every HTTP answer of the run (headers and body), with the tokens it issued."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.issued: list[str] = []

    def hook(self, response: httpx.Response) -> None:
        response.read()
        request = response.request
        where = f"{request.method} {request.url} -> {response.status_code}"
        body = response.text
        if request.method == "POST" and request.url.path == "/token" and response.status_code == 200:
            payload = response.json()
            for name in ("access_token", "refresh_token"):  # where tokens belong; nothing else is cut
                if name in payload:
                    self.issued.append(payload.pop(name))
            body = json.dumps(payload)
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.multi_items())
        self.seen.append(Seen(where, f"{headers}\n\n{body}"))


def leaks(seen: list[Seen], forbidden: dict[str, str]) -> list[str]:
    return [f"{what} in {s.where}" for s in seen for what, value in forbidden.items() if value in s.text]


def private_key_material(keys_dir: Path, passphrase: str) -> dict[str, str]:
    """Each key file's stored key lines (as stored, encrypted), the same key's plain PKCS#8
    lines, and its private JWK members (RFC 7518 section 6.3.2: d, p, q, dp, dq, qi)."""
    from jwt.algorithms import RSAAlgorithm

    material: dict[str, str] = {}
    for path in sorted(keys_dir.glob("*.json")):
        stored = json.loads(path.read_text())
        key = decode_key(stored["private_key"], passphrase.encode(), str(path))
        plain = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        for label, pem in (("stored key", stored["private_key"]), ("PEM", plain)):
            for i, line in enumerate(pem.splitlines()):
                if line and not line.startswith("-----"):
                    material[f"{path.stem[:8]} {label} line {i}"] = line
        jwk = json.loads(RSAAlgorithm.to_jwk(key))
        for member in ("d", "p", "q", "dp", "dq", "qi"):
            material[f"{path.stem[:8]} JWK {member}"] = jwk[member]
    return material


def test_no_password_secret_key_or_token_appears_in_any_log_or_answer(stack: Stack) -> None:
    passphrase = f"keys-passphrase-{secrets.token_hex(8)}"
    passwords = {
        "alice": f"alice-pw-{secrets.token_hex(8)} with spaces&symbols=+%",
        "bob": f"bob-pw-{secrets.token_hex(8)}",
    }
    wrong = [f"wrong-pw-{secrets.token_hex(8)}", passwords["alice"][:-1]]  # a stranger's guess, a typo
    client_secret, wrong_secret = f"svc-secret-{secrets.token_hex(12)}", f"bad-secret-{secrets.token_hex(12)}"

    recorder = Recorder()
    stack.http.close()
    stack.http = http = httpx.Client(timeout=10.0, event_hooks={"response": [recorder.hook]})
    auth = stack.start_auth(AUTH_KEYS_PASSPHRASE=passphrase, AUTH_LOGIN_MAX_FAILURES="50", **_DEBUG_JSON)
    outputs: list[Seen] = []
    cli_records: list[tuple[str, list[dict[str, object]]]] = []

    def run_cli(*args: str, stdin: str | None = None) -> str:
        done = cli(list(args), data=stack.tmp, env=stack.env, stdin=stdin)
        where = f"auth-service {' '.join(args)}"
        outputs.append(Seen(where, done.stdout + done.stderr))
        assert done.returncode == 0, done.stderr
        cli_records.append((f"{where} stderr", json_log_lines(done.stderr, f"{where} stderr")))
        return done.stdout

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        jobs = [
            pool.submit(
                run_cli,
                "users",
                "add",
                "alice",
                "--password-stdin",
                "--scope",
                "reports:read",
                stdin=passwords["alice"] + "\n",
            ),
            pool.submit(
                run_cli,
                "users",
                "add",
                "bob",
                "--password-stdin",
                "--scope",
                "reports:read profile",
                stdin=passwords["bob"] + "\n",
            ),
            pool.submit(
                run_cli,
                "clients",
                "add",
                "svc",
                "--secret-stdin",
                "--scope",
                "reports:read",
                stdin=client_secret + "\n",
            ),
        ]
        for job in jobs:
            job.result()
    stack.default_client()
    replicas = stack.start_replicas(2, **_REPLICA_DEBUG_JSON)
    token_url = f"{auth.url}/token"

    def login(user: str, password: str) -> httpx.Response:
        return http.post(token_url, data={"grant_type": "password", "username": user, "password": password})

    def at_replicas(token: str, path: str = "/me") -> list[int]:
        return [http.get(f"{r.url}{path}", headers={"Authorization": f"Bearer {token}"}).status_code for r in replicas]

    # Logins, right and wrong; refresh; a refresh replayed (the family is revoked).
    alice, bob = login("alice", passwords["alice"]).json(), login("bob", passwords["bob"]).json()
    assert [login("alice", w).status_code for w in wrong] == [400, 400]
    assert login("nobody", wrong[0]).status_code == 400
    renewed = http.post(token_url, data={"grant_type": "refresh_token", "refresh_token": alice["refresh_token"]})
    assert renewed.status_code == 200
    replay = http.post(token_url, data={"grant_type": "refresh_token", "refresh_token": alice["refresh_token"]})
    assert replay.status_code == 400
    assert at_replicas(bob["access_token"]) == at_replicas(bob["access_token"], "/reports") == [200, 200]
    assert eventually(lambda: at_replicas(renewed.json()["access_token"]) == [401, 401])  # its family went

    # Hostile and invalid credentials at the replicas.
    header, payload, signature = bob["access_token"].split(".")
    tampered = f"{header}.{payload}.{signature[::-1]}"
    unsigned = jwt.encode({"sub": "x"}, None, algorithm="none")
    key_file = next((stack.tmp / "keys").glob("*.json"))
    signing_key = decode_key(json.loads(key_file.read_text())["private_key"], passphrase.encode(), str(key_file))
    expired = jwt.encode(
        {**claims_of(bob["access_token"])[1], "exp": int(time.time()) - 3600},
        signing_key,
        algorithm="RS256",  # type: ignore[arg-type]
        headers={"kid": claims_of(bob["access_token"])[0]["kid"], "typ": "at+jwt"},
    )
    hostile = [tampered, unsigned, expired, bob["refresh_token"], f"{bob['access_token']}x"]
    for token in hostile:
        assert at_replicas(token) == [401, 401], token
    basic = base64.b64encode(f"svc:{client_secret}".encode()).decode()
    assert all(
        http.get(f"{r.url}/me", headers={"Authorization": f"Basic {basic}"}).status_code in (400, 401) for r in replicas
    )  # another scheme: refused either way; what matters is what gets logged
    for r in replicas:  # RFC 6750 section 2.3's query parameter: not accepted, and no log line keeps a query
        assert http.get(f"{r.url}/me", params={"access_token": bob["access_token"]}).status_code == 401

    # Revocation, logout, introspection; client credentials by Basic and by post, one wrong secret.
    assert http.post(f"{auth.url}/revoke", data={"token": bob["access_token"]}).status_code == 200
    assert http.post(f"{auth.url}/revoke", data={"token": bob["refresh_token"]}).status_code == 200
    session = login("bob", passwords["bob"]).json()
    assert (
        http.post(f"{auth.url}/logout", headers={"Authorization": f"Bearer {session['access_token']}"}).status_code
        == 204
    )
    assert http.post(f"{auth.url}/logout", headers={"Authorization": f"Bearer {tampered}"}).status_code == 401
    by_basic = http.post(token_url, data={"grant_type": "client_credentials"}, auth=("svc", client_secret))
    by_post = http.post(
        token_url, data={"grant_type": "client_credentials", "client_id": "svc", "client_secret": client_secret}
    )
    assert by_basic.status_code == by_post.status_code == 200
    assert (
        http.post(token_url, data={"grant_type": "client_credentials"}, auth=("svc", wrong_secret)).status_code == 401
    )
    assert (
        http.post(
            f"{auth.url}/introspect", data={"token": session["refresh_token"]}, auth=("svc", client_secret)
        ).status_code
        == 200
    )
    assert http.post(f"{auth.url}/introspect", data={"token": tampered}, auth=("svc", client_secret)).json() == {
        "active": False
    }
    assert at_replicas(by_basic.json()["access_token"]) == [200, 200]

    # A key rotation by the CLI; the new key signs and the replicas verify with it.
    rotated = json.loads(run_cli("keys", "rotate"))
    time.sleep(max(0.0, rotated["activates_at"] - time.time()) + 0.3)
    after = login("bob", passwords["bob"]).json()
    assert claims_of(after["access_token"])[0]["kid"] == rotated["kid"]
    assert at_replicas(after["access_token"]) == [200, 200]
    for path in (
        "/.well-known/openid-configuration",
        "/.well-known/jwks.json",
        "/revocations",
        "/readyz",
        "/openapi.json",
    ):
        assert http.get(f"{auth.url}{path}").status_code == 200
    for rep in replicas:
        assert http.get(f"{rep.url}/readyz").status_code == http.get(f"{rep.url}/healthz").status_code == 200
    run_cli("keys", "list")

    stack.stop()  # a graceful stop: every log line is on disk
    logs = [Seen(service.name, service.log_path.read_text()) for service in [auth, *replicas]]
    records = [(s.where, json_log_lines(s.text, s.where)) for s in logs]  # every line is JSON
    logs += [decoded(where, lines) for where, lines in [*records, *cli_records]]

    # The capture is real: DEBUG was on, every process logged what this run did.
    (_, auth_records), *replica_records = records
    auth_events = {str(r["event"]) for r in auth_records}
    for event in (
        "login_success",
        "login_failure",
        "refresh_reuse",
        "revoked",
        "client_credentials",
        "client_auth_failure",
        "request",
    ):
        assert event in auth_events, event
    assert {r.get("kind") for r in auth_records if r["event"] == "revoked"} >= {"jti", "sid"}
    assert "debug" in {r["level"] for r in auth_records}
    assert all(
        {"debug", "info"} <= {r["level"] for r in lines}
        and any("refused" in str(r["event"]) for r in lines)
        and any(r["event"] == "request" and r["path"] == "/me" for r in lines)
        for _, lines in replica_records
    )
    assert any(r["event"] == "key_created" for _, lines in cli_records for r in lines)
    assert len(recorder.seen) > 40 and len(outputs) == 5
    assert {200, 204, 400, 401}.issubset({int(s.where.rsplit(" ", 1)[1]) for s in recorder.seen})

    forbidden: dict[str, str] = {"keys passphrase": passphrase}
    for i, password in enumerate([*passwords.values(), *wrong]):
        forbidden[f"password {i}"] = password
        forbidden[f"password {i} form-encoded"] = quote_plus(password)
        forbidden[f"password {i} url-encoded"] = quote(password)
    for name, secret in (("client secret", client_secret), ("wrong client secret", wrong_secret)):
        forbidden[name] = secret
        forbidden[f"{name} in Basic"] = base64.b64encode(f"svc:{secret}".encode()).decode()
    forbidden.update(private_key_material(stack.tmp / "keys", passphrase))
    with closing(sqlite3.connect(stack.tmp / "data" / "auth.db")) as db:  # hashes are not for logs either
        hashes = db.execute(
            "SELECT password_hash FROM users UNION ALL SELECT secret_hash FROM clients WHERE secret_hash IS NOT NULL"
        ).fetchall()
    assert len(hashes) == 3
    forbidden.update({f"stored hash {i}": value for i, (value,) in enumerate(hashes)})
    assert len(recorder.issued) >= 8
    for i, token in enumerate([*recorder.issued, *hostile]):
        forbidden[f"token {i}"] = token
        forbidden[f"token {i} signature"] = token.rsplit(".", 1)[1]
    forbidden = {what: value for what, value in forbidden.items() if len(value) >= 8}  # none is trivially short
    assert leaks([Seen("a planted line", f"x {passwords['bob']} y")], forbidden)  # the search can find a leak

    found = leaks([*logs, *outputs, *recorder.seen], forbidden)
    assert not found, found[:10]
