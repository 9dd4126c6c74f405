"""What every server-side session strategy shares: the session, the store contract, the app.

The benchmark compares stateless tokens with three ways of keeping sessions on servers. To
compare only the session lookup, all three serve the same app: `POST /login` (form field
`username`; no password, because hashing would swamp what we measure and the token side's
`/token` is benchmarked on its own) sets an opaque `sid` cookie, and for a store whose
sessions stay on one replica (`pinned`) a `route` cookie naming that replica, for the
balancer to bring the user back there (see `sticky.py`); `GET /me` answers
`{"replica", "user"}` or 401; every response carries `X-Replica-Id`. Routes under `/_` are
for the benchmark and for replicas talking to each other: loopback only, and the balancers
never forward them.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import FastAPI, Form, HTTPException, Query, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "COOKIE",
    "ROUTE",
    "MemoryStore",
    "Session",
    "SessionStore",
    "check_route",
    "create_app",
    "new_sid",
    "rss_bytes",
]

COOKIE = "sid"
ROUTE = "route"
DEFAULT_TTL = 3600
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
_MAX_SID = 128
_MAX_USER = 64
# A route is a replica id that is safe as an nginx `map` key and upstream name and as a cookie
# value: lower case, because nginx matches `map` keys case-insensitively and we keep the Python
# balancer in step; never one of `map`'s own keywords.
_ROUTE_ID = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_MAP_KEYWORDS = frozenset({"default", "hostnames", "include", "volatile"})


@dataclass(frozen=True, slots=True)
class Session:
    """What a server keeps per login: who, and until when (an absolute timeout, no sliding)."""

    user: str
    expires: float

    def alive(self, now: float) -> bool:
        return now < self.expires

    def to_json(self) -> str:
        return json.dumps({"user": self.user, "exp": self.expires}, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Session:
        data = json.loads(raw)
        return cls(str(data["user"]), float(data["exp"]))


def check_route(replica_id: str) -> str:
    """`replica_id` if both balancers can route by it, else ValueError: it goes into nginx's config."""
    if len(replica_id) > 63 or not _ROUTE_ID.fullmatch(replica_id) or replica_id in _MAP_KEYWORDS:
        raise ValueError(
            f"a route must match {_ROUTE_ID.pattern} (at most 63 characters, not a map keyword): {replica_id!r}"
        )
    return replica_id


def new_sid() -> str:
    """128 random bits, hex: OWASP asks for at least 64 bits of entropy in a session id."""
    return secrets.token_hex(16)


class SessionStore(Protocol):
    """Where a strategy keeps sessions. The app calls only these; each module implements them.

    `pinned`: the sessions live only in this replica, so the balancer must send each user
    back to it; login then also sets the `route` cookie.
    """

    name: str
    ttl: float
    pinned: bool

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def ready(self) -> bool: ...
    async def get(self, sid: str) -> Session | None: ...
    async def create(self, user: str) -> str: ...
    async def bulk(self, count: int) -> None: ...
    async def count(self) -> int: ...
    async def facts(self) -> dict[str, Any]: ...
    def routes(self) -> Sequence[BaseRoute]: ...


class MemoryStore:
    """Sessions in this process's dict: the sticky replica's store and each cluster member's copy.

    Expiry is lazy (checked on read, dropped then): a sweeper would only matter for runs
    longer than the TTL, and its pauses would show up in the latencies we measure.
    """

    name = "memory"
    pinned = False

    def __init__(self, ttl: float = DEFAULT_TTL) -> None:
        self.ttl = ttl
        self.sessions: dict[str, Session] = {}

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def ready(self) -> bool:
        return True

    async def get(self, sid: str) -> Session | None:
        session = self.sessions.get(sid)
        if session is not None and not session.alive(time.time()):
            del self.sessions[sid]
            return None
        return session

    def _put_new(self, user: str) -> tuple[str, Session]:
        sid = new_sid()
        while sid in self.sessions:  # 2**-128 per try; the loop documents the invariant
            sid = new_sid()
        session = Session(user, time.time() + self.ttl)
        self.sessions[sid] = session
        return sid, session

    async def create(self, user: str) -> str:
        return self._put_new(user)[0]

    async def bulk(self, count: int) -> None:
        for i in range(count):
            self._put_new(f"bulk-{i}")

    async def count(self) -> int:
        return len(self.sessions)

    async def facts(self) -> dict[str, Any]:
        return {}

    def routes(self) -> Sequence[BaseRoute]:
        return ()


def rss_bytes() -> int:
    """This process's resident set size (VmRSS in /proc/self/status): what a replica costs in RAM."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def loopback_only(request: Request) -> None:
    """Guard for `/_` routes: bulk loads and replication are for the bench machine, not for clients."""
    if request.client is None or request.client.host not in _LOOPBACK:
        raise HTTPException(403, "loopback only")


class _ReplicaHeader:
    """Pure ASGI: stamp `X-Replica-Id` on every response, errors included, so a client sees who answered."""

    def __init__(self, app: ASGIApp, replica_id: str) -> None:
        self.app = app
        self.header = (b"x-replica-id", replica_id.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), self.header]
            await send(message)

        await self.app(scope, receive, stamped)


def create_app(store: SessionStore, replica_id: str) -> ASGIApp:
    """The same tiny API over any store; the store's own internal routes are mounted under `/_`.

    The replica header wraps the whole app, outside Starlette's error middleware, so even a
    500 (Redis gone, say) names the replica that failed. A pinned store's replica id is its
    route, so it must be one the balancers can route by.
    """
    if store.pinned:
        check_route(replica_id)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await store.start()
        try:
            yield
        finally:
            await store.stop()

    app = FastAPI(title=f"session strategy: {store.name}", lifespan=lifespan, openapi_url=None)
    unauthorized = {"detail": "login required"}

    @app.post("/login")
    async def login(username: str = Form(min_length=1, max_length=_MAX_USER)) -> Response:
        sid = await store.create(username)
        response = JSONResponse({"replica": replica_id, "user": username})
        # No `Secure`: the bench speaks plain HTTP on loopback; behind TLS, production sets it.
        response.set_cookie(COOKIE, sid, max_age=int(store.ttl), httponly=True, samesite="lax", path="/")
        if store.pinned:  # same lifetime as the session: a route outliving it, or dying first, misroutes
            response.set_cookie(ROUTE, replica_id, max_age=int(store.ttl), httponly=True, samesite="lax", path="/")
        return response

    @app.get("/me")
    async def me(request: Request) -> Response:
        sid = request.cookies.get(COOKIE)
        if not sid or len(sid) > _MAX_SID:
            return JSONResponse(unauthorized, 401)
        session = await store.get(sid)
        if session is None:
            return JSONResponse(unauthorized, 401)
        return JSONResponse({"replica": replica_id, "user": session.user})

    @app.get("/healthz")
    async def healthz() -> Response:
        ok = store.ready()
        return JSONResponse({"status": "ok" if ok else "starting", "replica": replica_id}, 200 if ok else 503)

    @app.get("/_stats")
    async def stats(request: Request) -> dict[str, Any]:
        loopback_only(request)
        return {
            "replica": replica_id,
            "strategy": store.name,
            "rss_bytes": rss_bytes(),
            "sessions": await store.count(),
            **await store.facts(),
        }

    @app.post("/_bulk_sessions")
    async def bulk_sessions(request: Request, count: int = Query(ge=1, le=2_000_000)) -> dict[str, Any]:
        loopback_only(request)
        started = time.perf_counter()
        await store.bulk(count)
        return {
            "replica": replica_id,
            "created": count,
            "sessions": await store.count(),
            "seconds": round(time.perf_counter() - started, 3),
        }

    app.router.routes.extend(store.routes())
    return _ReplicaHeader(app, replica_id)
