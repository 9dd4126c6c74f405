"""In-memory stand-ins for the resource service's unit tests (tests/unit/test_rs_*.py).

A plain module, not a conftest: import what a test file needs with
`from tests.unit.fakes import ...` (like tests/integration's `from tests.conftest import ...`,
this relies on running pytest from the project root as `python -m pytest`). The fixtures that
build these objects stay in each test file, so a test's setup can be read in one place.

- `Clock`: a settable time source, so expiry, staleness and refetch intervals are tested
  without waiting.
- `Feed`: the issuer's revocation feed of docs/wire.md (pull with deltas, SSE stream).
- `Issuer`: a `Feed` plus discovery metadata and JWKS, i.e. all of the auth service's
  HTTP side that a `Verifier` talks to.
- `no_wait`: a `sleep` to inject where code backs off between retries.
- `encode`, `signature`: PyJWT's signing, knowing RFC 9864's `Ed25519` as well.

Each is an httpx handler (`httpx.MockTransport(issuer)`).
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm, get_default_algorithms

__all__ = ["ISSUER", "NOW", "Clock", "Feed", "Issuer", "encode", "no_wait", "signature"]

ISSUER = "https://auth.example"
NOW = 1_700_000_000.0


class Clock:
    """Time for the code under test: starts at `NOW` and moves only when a test sets `now`."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


async def no_wait(delay: float) -> None:
    """A `sleep` that returns at once (after one turn of the event loop), so retries and
    reconnects run back to back instead of after their real backoff."""
    await asyncio.sleep(0)


class Feed:
    """The issuer's side of docs/wire.md's revocation feed, in memory.

    `GET /revocations` answers a snapshot, or the delta after `after` when the caller names
    this feed, with `read_at` as its `Feed-Read-At` header when set (raw text, so a test can
    send junk) and gzip-compressed when `gzip` is; every other path opens an SSE stream. It
    records the pulls' query parameters, counts stream connections, sets `stream_open` once a
    client reads a stream, and fails every request with a connection error while `down` is true.

    `live=True` (the revocation-sync tests): a new stream starts with a heartbeat and each
    `revoke(..., push=True)` is pushed to the open streams. `live=False` (the `Issuer`): a
    stream stays open and says nothing, so a revocation reaches a replica's copy only when
    the test makes it pull: the verifier tests pull explicitly and must not race a push.
    """

    def __init__(self, feed: str = "F1", *, live: bool = True) -> None:
        self.feed = feed
        self.live = live
        self.entries: list[dict[str, Any]] = []
        self.pulls: list[httpx.QueryParams] = []
        self.connections = 0
        self.down = False
        self.streams: list[asyncio.Queue[str | None]] = []
        self.stream_open = asyncio.Event()
        self.page_size: int | None = None  # entries per pull answer, like the issuer's limit
        self.stuck = False  # answer `more` without moving the cursor (a broken issuer)
        self.read_at: str | None = None  # the pull answers' Feed-Read-At
        self.gzip = False  # pull answers gzip-compressed

    def revoke(self, kind: str, value: str, before: int | None = None, *, push: bool = True) -> dict[str, Any]:
        """Append an entry (expiring 600 s from `NOW`, after any token a test mints) and,
        on a live feed with `push`, send it down the open streams."""
        entry = {
            "seq": len(self.entries) + 1,
            "kind": kind,
            "value": value,
            "before": before,
            "expires_at": int(NOW) + 600,
        }
        self.entries.append(entry)
        if push and self.live:
            self.send(f"event: revocation\nid: {entry['seq']}\ndata: {json.dumps(entry)}\n\n")
        return entry

    def send(self, text: str | None) -> None:
        """Write raw SSE text to every open stream; None ends them."""
        for queue in self.streams:
            queue.put_nowait(text)

    def heartbeat(self) -> str:
        data = {"feed": self.feed, "cursor": len(self.entries), "time": NOW}
        return f"event: heartbeat\ndata: {json.dumps(data)}\n\n"

    def restart(self, feed: str) -> None:
        """The issuer restarts on a fresh database: streams drop, a new feed begins."""
        self.send(None)
        self.streams.clear()
        self.feed, self.entries = feed, []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused")
        if request.url.path == "/revocations":
            return self._pull(request.url.params)
        self.connections += 1
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        if self.live:
            queue.put_nowait(self.heartbeat())
        self.streams.append(queue)

        async def events() -> AsyncIterator[bytes]:
            self.stream_open.set()  # the client is reading the stream
            while (text := await queue.get()) is not None:
                yield text.encode()

        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=events())

    def _pull(self, params: httpx.QueryParams) -> httpx.Response:
        self.pulls.append(params)
        head = len(self.entries)
        after = params.get("after")
        delta = after is not None and params.get("feed") == self.feed and int(after) <= head
        entries = self.entries[int(after) :] if delta else self.entries
        more = self.page_size is not None and len(entries) > self.page_size
        if more:
            entries = entries[: self.page_size]
        cursor = entries[-1]["seq"] if more else head
        if self.stuck:
            more, cursor = True, int(after or 0)
        body = {"feed": self.feed, "cursor": cursor, "snapshot": not delta, "more": more, "entries": entries}
        headers = {"Content-Type": "application/json"}
        if self.read_at is not None:
            headers["Feed-Read-At"] = self.read_at
        content = json.dumps(body).encode()
        if self.gzip:
            headers["Content-Encoding"] = "gzip"
            content = gzip.compress(content)
        return httpx.Response(200, headers=headers, content=content)


# alg -> (make a private key, its public JWK)
_ALGS: dict[str, tuple[Callable[[], Any], Callable[..., Any]]] = {
    "RS256": (lambda: rsa.generate_private_key(65537, 2048), RSAAlgorithm.to_jwk),
    "ES256": (lambda: ec.generate_private_key(ec.SECP256R1()), ECAlgorithm.to_jwk),
    "Ed25519": (ed25519.Ed25519PrivateKey.generate, OKPAlgorithm.to_jwk),
    "EdDSA": (ed25519.Ed25519PrivateKey.generate, OKPAlgorithm.to_jwk),
}

# PyJWT 2 signs Ed25519 only under RFC 8037's name EdDSA. This encoder of our own (PyJWT's
# global one is left alone) knows RFC 9864's name too, with the same primitive.
_JWS = jwt.PyJWS()
if "Ed25519" not in get_default_algorithms():
    _JWS.register_algorithm("Ed25519", OKPAlgorithm())


def encode(claims: dict[str, Any], private: Any, alg: str, headers: dict[str, Any]) -> str:
    """`jwt.encode(claims, private, algorithm=alg, headers=headers)`, for `Ed25519` too."""
    return _JWS.encode(json.dumps(claims, separators=(",", ":")).encode(), private, algorithm=alg, headers=headers)


def signature(signing_input: bytes, private: Any, alg: str) -> bytes:
    """The JWS signature of `alg` over these bytes."""
    return _JWS.get_algorithm_by_name(alg).sign(signing_input, private)


class Issuer(Feed):
    """Just enough of the auth service's HTTP side (docs/wire.md) for a verifier.

    Discovery metadata at `/.well-known/oauth-authorization-server` (its `issuer` is
    `metadata_issuer` and `metadata_changes`, so a test can make it lie), the JWKS at `/.well-known/jwks.json`
    (`published`, counted in `jwks_fetches`), and a quiet revocation feed (`Feed` with
    `live=False`; `revoke` only records). Any other path is a 404.

    It starts with one signing key, `kid`/`alg`: the verifier tests use the default RSA key,
    the app tests an Ed25519 one (so one suite checks EdDSA end to end, and it is cheap to
    make); `Issuer("ed-1", "Ed25519")` names it as RFC 9864 does. `mint` signs an access token with that key unless told another `kid`; each token
    gets its own `jti`.
    """

    def __init__(self, kid: str = "rsa-1", alg: str = "RS256") -> None:
        super().__init__(live=False)
        self.metadata_issuer = ISSUER
        self.metadata_changes: dict[str, str] = {}
        self.signing: dict[str, Any] = {}
        self.published: list[dict[str, Any]] = []
        self.jwks_fetches = 0
        self.default_kid = kid
        self.add_key(kid, _ALGS[alg][0](), alg)
        self._jti = itertools.count(1)

    def add_key(self, kid: str, private: Any, alg: str) -> None:
        """Sign with `private` under `kid` and publish its public half."""
        to_jwk = _ALGS[alg][1]
        self.signing[kid] = (private, alg)
        self.published.append({**to_jwk(private.public_key(), as_dict=True), "kid": kid, "alg": alg, "use": "sig"})

    def mint(self, kid: str | None = None, **changes: Any) -> str:
        """An access token (`typ` at+jwt) issued at `NOW` for 300 s; `changes` edit the claims."""
        kid = self.default_kid if kid is None else kid
        private, alg = self.signing[kid]
        claims = {
            "iss": ISSUER,
            "sub": "u-1",
            "aud": "api",
            "iat": int(NOW),
            "exp": int(NOW) + 300,
            "jti": f"j-{next(self._jti)}",
            "client_id": "web",
            "scope": "reports:read",
            "sid": "s-1",
        }
        claims.update(changes)
        return encode(claims, private, alg, {"kid": kid, "typ": "at+jwt"})

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused")
        path = request.url.path
        if path == "/.well-known/oauth-authorization-server":
            return httpx.Response(
                200,
                json={
                    "issuer": self.metadata_issuer,
                    "jwks_uri": f"{ISSUER}/.well-known/jwks.json",
                    "token_endpoint": f"{ISSUER}/token",
                    "revocation_list_uri": f"{ISSUER}/revocations",
                    "revocation_stream_uri": f"{ISSUER}/revocations/stream",
                    **self.metadata_changes,
                },
            )
        if path == "/.well-known/jwks.json":
            self.jwks_fetches += 1
            return httpx.Response(200, json={"keys": self.published}, headers={"cache-control": "max-age=300"})
        if path in ("/revocations", "/revocations/stream"):
            return await super().__call__(request)
        return httpx.Response(404)
