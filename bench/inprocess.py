"""What `/me` costs in-process: the ASGI app called in a loop, no HTTP, no server.

    python -m bench.inprocess [--requests 20000]

Prints microseconds per request (best of 5 passes) for the no-auth baseline app, the demo
API with its verifier (a cached token), the same with metrics off, and the same without
its edge layer (request id, replica id, latency histogram). The differences say what each
part of our layers costs, without uvicorn's and the network's share; `python -m bench`
measures the real thing. The verifier gets an RS256 key directly (no issuer process), and
its revocation list is marked in sync.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.types import ASGIApp, Message

from bench.apps.noauth import create_app as noauth_app
from resource_service import ResourceSettings, Verifier, create_app
from resource_service.jose import key_from_jwk
from resource_service.jwks import JwksCache

_ISSUER = "https://issuer.invalid"


def _token_and_key() -> tuple[str, dict[str, Any]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    public |= {"kid": "k1", "alg": "RS256", "use": "sig"}
    now = int(time.time())
    claims = {
        "iss": _ISSUER,
        "aud": "api",
        "sub": "mJ0Yy3b2TqKcS8FvQe1w9g",
        "exp": now + 3600,
        "iat": now,
        "jti": "pX7vD2sQ9nK4bW1zR8cT5g",
        "client_id": "default",
        "scope": "",
        "sid": "4tq2N0xkB6mHcQ1pZ9sE7w",
    }
    token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1", "typ": "at+jwt"})
    return token, public


def _demo(public: dict[str, Any], *, metrics: bool = True, without: Sequence[str] = ()) -> ASGIApp:
    settings = ResourceSettings(auth_url=_ISSUER, replica_id="r1", metrics_enabled=metrics)
    verifier = Verifier(settings)
    jwks = JwksCache(verifier._client, f"{_ISSUER}/jwks", min_refetch_interval=10)
    jwks._keys = {"k1": key_from_jwk(public)}
    verifier._jwks = jwks
    verifier.revocations._in_sync_at = time.time()
    app = create_app(settings, verifier=verifier)
    app.user_middleware = [m for m in app.user_middleware if getattr(m.cls, "__name__", "") not in without]
    return app


async def _per_request(app: ASGIApp, headers: list[tuple[bytes, bytes]], requests: int) -> float:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/me",
        "raw_path": b"/me",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
    }
    statuses: list[int] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(dict(scope), receive, send)
    if statuses != [200]:
        raise SystemExit(f"/me answered {statuses}: the measurement would not be of a verified request")
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(requests):
            await app(dict(scope), receive, send)
        best = min(best, (time.perf_counter() - started) / requests)
    return best * 1e6


async def _main(requests: int) -> None:
    token, public = _token_and_key()
    headers = [(b"host", b"bench"), (b"authorization", f"Bearer {token}".encode())]
    contenders: dict[str, ASGIApp] = {
        "no auth (baseline)": noauth_app(),
        "demo /me, cached token": _demo(public),
        "demo /me, metrics off": _demo(public, metrics=False),
        "demo /me, no edge layer": _demo(public, without=("RequestIdMiddleware",)),
    }
    base = None
    for name, app in contenders.items():
        cost = await _per_request(app, headers, requests)
        base = cost if base is None else base
        print(f"{name:26s} {cost:6.1f} µs   (+{cost - base:.1f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000, help="requests per pass (5 passes, best kept)")
    asyncio.run(_main(parser.parse_args().requests))


if __name__ == "__main__":
    main()
