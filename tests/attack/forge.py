"""Forging tokens against a real issuer, one defect at a time; and the checks every attack repeats.

A plain module, not a conftest (like `tests/unit/fakes.py`): the attack modules import
what they need with `from tests.attack.forge import ...`.

An attack case means something only if its token would pass but for the one defect it
carries. So a `Forger` starts from a token the issuer really issued, copies its header and
claims, and signs with the issuer's own private key, read from its file keystore (as
`bench/suites/_ours.py` does for the cold pool). Its control token, a copy with a fresh `jti`
and `sid` and no defect, must be accepted wherever the defects are refused. Every forged
token gets a fresh `jti` and `sid`, so a defect that slipped through (a logout or a revocation
acting on it) shows in the revocation feed without touching any other test's session.
"""

from __future__ import annotations

import base64
import concurrent.futures
import functools
import http.client
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import get_default_algorithms

from tests.conftest import Stack

DROP = object()  # as a header or claim value: leave the member out


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def dumps(value: Any) -> bytes:
    """JSON as PyJWT writes it (compact), so a copied header is byte-identical."""
    return json.dumps(value, separators=(",", ":")).encode()


def sign(header: bytes, payload: bytes, alg: str, key: Any) -> str:
    """A compact JWS of exactly these bytes, signed with `alg` by `key`."""
    signing_input = f"{b64(header)}.{b64(payload)}"
    signature = get_default_algorithms()[alg].sign(signing_input.encode(), key)
    return f"{signing_input}.{b64(signature)}"


@dataclass(frozen=True)
class Forger:
    """Tokens like one the issuer issued, signed with the issuer's key (or another)."""

    header: dict[str, Any]
    claims: dict[str, Any]
    private: Any  # the issuer's signing key

    @classmethod
    def of(cls, token: str, keys_dir: Path) -> Forger:
        header, claims = (json.loads(unb64(part)) for part in token.split(".")[:2])
        record = json.loads((keys_dir / f"{header['kid']}.json").read_text())
        private = serialization.load_pem_private_key(record["private_key"].encode(), None)
        return cls(header, claims, private)

    @property
    def alg(self) -> str:
        return str(self.header["alg"])

    @property
    def kid(self) -> str:
        return str(self.header["kid"])

    @property
    def typ(self) -> str:
        return str(self.header["typ"])

    def header_bytes(self, **changes: Any) -> bytes:
        fields = {**self.header, **changes}
        return dumps({k: v for k, v in fields.items() if v is not DROP})

    def payload(self, **changes: Any) -> dict[str, Any]:
        fresh = {"jti": secrets.token_urlsafe(16)}
        if "sid" in self.claims:
            fresh["sid"] = secrets.token_urlsafe(16)
        fields = {**self.claims, **fresh, **changes}
        return {k: v for k, v in fields.items() if v is not DROP}

    def payload_bytes(self, **changes: Any) -> bytes:
        return dumps(self.payload(**changes))

    def token(self, header: dict[str, Any] | None = None, **claims: Any) -> str:
        """Signed by the issuer's own key: valid but for the changes asked for."""
        return sign(self.header_bytes(**(header or {})), self.payload_bytes(**claims), self.alg, self.private)

    def raw(self, header: bytes, payload: bytes, *, alg: str | None = None, key: Any = None) -> str:
        """Exactly these header and payload bytes, signed (by the issuer's key unless told)."""
        return sign(header, payload, alg or self.alg, self.private if key is None else key)


# -- the attacker's own keys ---------------------------------------------------------------


@functools.cache
def attacker_rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 2048)


@functools.cache
def attacker_ec() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@functools.cache
def attacker_ed25519() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


@functools.cache
def attacker_certificate() -> x509.Certificate:
    """A self-signed certificate for the attacker's RSA key, for x5c and x5t headers."""
    import datetime

    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "auth.example")])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(attacker_rsa().public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(attacker_rsa(), hashes.SHA256())
    )


# -- the running target --------------------------------------------------------------------


@dataclass
class Target:
    """One issuer and one replica started for an attack module, with what the attacks need."""

    stack: Stack
    access: str  # a real access token of alice's, kept valid for the whole module
    refresh: str  # the refresh token of another login, never rotated by the table tests
    keys: int = 0  # how many keys the replica holds: the issuer's, and no attacker's

    @property
    def auth_url(self) -> str:
        assert self.stack.auth is not None
        return self.stack.auth.url

    @property
    def replica_url(self) -> str:
        return self.stack.replicas[0].url

    @property
    def http(self) -> httpx.Client:
        return self.stack.http

    @functools.cached_property
    def forger(self) -> Forger:
        return Forger.of(self.access, self.stack.tmp / "keys")

    @functools.cached_property
    def refresh_forger(self) -> Forger:
        return Forger.of(self.refresh, self.stack.tmp / "keys")

    def me(self, token: str, **headers: str) -> httpx.Response:
        return self.http.get(f"{self.replica_url}/me", headers={"Authorization": f"Bearer {token}", **headers})

    def raw_request(self, method: str, url: str, headers: list[tuple[str, bytes]]) -> httpx.Response:
        """A request with header values sent as given: httpx refuses, for one, surrounding whitespace."""
        parts = urlsplit(url)
        connection = http.client.HTTPConnection(parts.netloc, timeout=10)
        try:
            connection.putrequest(method, parts.path)
            for name, value in headers:
                connection.putheader(name, value)
            connection.endheaders()
            answer = connection.getresponse()
            return httpx.Response(answer.status, headers=answer.getheaders(), content=answer.read())
        finally:
            connection.close()

    def cursor(self) -> tuple[str, int, int]:
        """(feed id, cursor, live entries) of the issuer's revocation feed."""
        feed = self.http.get(f"{self.auth_url}/revocations").json()
        return feed["feed"], feed["cursor"], len(feed["entries"])

    def replica_keys(self) -> int:
        return int(self.http.get(f"{self.replica_url}/healthz").json()["keys"])


def start_target(
    tmp: Path, *, users: tuple[str, ...] = ("alice",), clients: tuple[str, ...] = (), **env: str
) -> Iterator[Target]:
    """The body of a module-scoped fixture: an issuer, users, clients, one replica, two logins."""
    stack = Stack(tmp)
    try:
        stack.start_auth(**env)
        with concurrent.futures.ThreadPoolExecutor() as pool:  # each CLI call is a Python start (and a hash)
            added = [pool.submit(stack.add_user, name, scope="reports:read profile") for name in users]
            added += [
                pool.submit(
                    stack.add_client,
                    client,
                    f"{client}-secret-of-at-least-32-characters",
                    scope="reports:read introspect",
                )
                for client in clients
            ]
            stack.start_replicas(1)
            for job in added:
                job.result()
        access = str(stack.login()["access_token"])
        refresh = str(stack.login()["refresh_token"])
        target = Target(stack, access, refresh)
        assert target.me(access).status_code == 200, "the replica must accept the real token"
        target.keys = target.replica_keys()
        yield target
    finally:
        stack.stop()


# -- what every refusal must look like -----------------------------------------------------


def assert_bearer_refusal(
    response: httpx.Response, *, status: int, error: str, description: str, realm: str, token: str = ""
) -> None:
    """An RFC 6750 section 3 refusal: the status, the exact challenge, the same code in the body,
    and nothing of the token echoed back (CVE-2019-7644 leaked the expected signature)."""
    assert response.status_code == status, (response.status_code, response.text)
    challenge = response.headers.get("www-authenticate")
    assert challenge == f'Bearer realm="{realm}", error="{error}", error_description="{description}"', challenge
    assert response.json() == {"error": error, "error_description": description}
    for segment in token.split("."):
        if len(segment) >= 16:
            assert segment not in response.text and segment not in challenge


def assert_oauth_error(response: httpx.Response, *, status: int, error: str, description: str) -> None:
    """An RFC 6749 section 5.2 error: status, exact JSON body, never cached."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.json() == {"error": error, "error_description": description}
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"


def cases(table: dict[str, Any]) -> Any:
    """`pytest.mark.parametrize` over a table of named attacks, one id per row."""
    return pytest.mark.parametrize("case", list(table.values()), ids=list(table))
