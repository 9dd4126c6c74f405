"""Our side of the bench: issuers, replicas of the demo API, and tokens as the issuer mints them.

The cold test needs thousands of distinct valid tokens, and a password login costs an
Argon2 hash (~30 ms) each. So one token per issuer comes from `POST /token`, and the pool
is signed here with that issuer's own key, copying its header and claims and drawing a
fresh `jti` each: byte for byte what the issuer would have produced. A sample of the pool
is checked at a replica before anything is measured.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization

from auth_service.launch import Service, auth_process, cli, replica_process
from bench.harness import BenchError, Context

__all__ = ["Issuer", "bearer", "mint_pool", "replica", "segment", "start_issuers"]

USERNAME = "bench"
PASSWORD = "bench password"
# The bench logs in with the password grant, which no client has until registered for it
# (docs/sign-in.md): a public client of its own, as a terminal program would have.
CLIENT = "bench"
LOGIN = {"grant_type": "password", "username": USERNAME, "password": PASSWORD, "client_id": CLIENT}


def add_login(data: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """User `bench` and the client `bench` its logins go through (a second run finds both there)."""
    done = cli(["users", "add", USERNAME, "--password-stdin"], data=data, env=env, stdin=PASSWORD + "\n")
    if done.returncode != 0 and "exists" not in done.stderr:
        return done
    client = ["clients", "add", CLIENT, "--public", "--grant=password", "--grant=refresh_token"]
    registered = cli(client, data=data, env=env)
    return done if registered.returncode == 0 or "exists" in registered.stderr else registered


# Tokens outlive the longest suite; the lifetime changes nothing in what a request costs.
_ENV = {"AUTH_ACCESS_TOKEN_TTL": "3600"}


@dataclass(frozen=True)
class Issuer:
    alg: str
    service: Service
    data: Path
    token: str  # an access token from POST /token (password grant)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def start_issuers(ctx: Context, algs: list[str]) -> dict[str, Issuer]:
    """One issuer per signing algorithm, each with user `bench` and one logged-in token."""
    dirs = {alg: ctx.workdir / f"issuer-{alg.lower()}" for alg in algs}
    for d in dirs.values():
        d.mkdir()
    # The user first, then the server: the database is set up by one process at a time.
    with ThreadPoolExecutor() as pool:  # each `users add` is a Python start plus an Argon2 hash
        added = list(
            pool.map(
                lambda d: add_login(d),
                dirs.values(),
            )
        )
    for done in added:
        if done.returncode != 0:
            raise BenchError(f"auth-service users add failed: {done.stderr[-2000:]}")
    services = {alg: auth_process(data=d, env={**_ENV, "AUTH_SIGNING_ALG": alg}) for alg, d in dirs.items()}
    ctx.start(services.values(), "load")  # idle while measuring: kept off the servers' core
    issuers = {}
    for alg, service in services.items():
        response = ctx.http.post(f"{service.url}/token", data=LOGIN)
        if response.status_code != 200:
            raise BenchError(f"login at the {alg} issuer failed: {response.status_code} {response.text}")
        token = response.json()["access_token"]
        if segment(token.split(".")[0]).get("alg") != alg:  # a key left from elsewhere would mislabel a row
            raise BenchError(f"the {alg} issuer signed with {segment(token.split('.')[0]).get('alg')}")
        issuers[alg] = Issuer(alg, service, dirs[alg], token)
    return issuers


def replica(issuer: Issuer, name: str, *, cache: bool | int, metrics: bool = True) -> Service:
    """A replica of the demo API. `cache`: True for the default verified-token cache, False
    for none (every request a full verification), a number for a cache of that many tokens;
    `metrics=False` turns its Prometheus counting off."""
    env = {} if cache is True else {"RESOURCE_TOKEN_CACHE_SIZE": str(int(cache))}
    if not metrics:
        env["RESOURCE_METRICS_ENABLED"] = "false"
    return replica_process(name, auth_url=issuer.service.url, data=issuer.data, env=env)


def mint_pool(issuer: Issuer, count: int, path: Path) -> list[str]:
    """`count` tokens like `issuer.token` but for a fresh `jti` each, one per line in `path`."""
    header, claims = (segment(part) for part in issuer.token.split(".")[:2])
    key_file = issuer.data / "keys" / f"{header['kid']}.json"  # the file keystore: auth_service/storage/keyfiles.py
    if not key_file.is_file():
        raise BenchError(f"no key file {key_file}: the cold pool is signed with the issuer's file keystore")
    pem = json.loads(key_file.read_text())["private_key"].encode()
    # RSA signing takes about a millisecond a token: big pools are signed on every core.
    workers = len(os.sched_getaffinity(0)) if count >= _PARALLEL_FROM else 1
    shares = [count // workers + (i < count % workers) for i in range(workers)]
    if workers == 1:
        tokens = _sign(pem, header, claims, count)
    else:
        with ProcessPoolExecutor(workers) as pool:
            tokens = [
                t
                for part in pool.map(_sign, [pem] * workers, [header] * workers, [claims] * workers, shares)
                for t in part
            ]
    if tokens and tokens[0].split(".")[0] != issuer.token.split(".")[0]:
        raise BenchError(f"minted {issuer.alg} header differs from the issuer's: {tokens[0].split('.')[0]}")
    path.write_text("\n".join(tokens) + "\n")
    return tokens


_PARALLEL_FROM = 2_000


def _sign(pem: bytes, header: dict[str, Any], claims: dict[str, Any], count: int) -> list[str]:
    key = serialization.load_pem_private_key(pem, None)
    extra = {k: v for k, v in header.items() if k != "alg"}
    return [
        jwt.encode(
            {**claims, "jti": secrets.token_urlsafe(16)},
            key,  # type: ignore[arg-type]  # a PEM of ours: RSA, EC or Ed25519, which PyJWT takes
            algorithm=header["alg"],
            headers=extra,
        )
        for _ in range(count)
    ]


def segment(part: str) -> dict[str, Any]:
    """One JWS segment, decoded but not verified: it is only copied, never trusted."""
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded
