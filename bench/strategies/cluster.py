"""Session clustering: every replica holds every session; each new session is copied to every peer.

Replication is HTTP fan-out, synchronous: a login answers only after every peer has
acknowledged `POST /_replicate` (sent to all peers at once), so the user's next request
may land on any replica. This is the all-to-all shape of Tomcat's DeltaManager with a
synchronous channel, and it is what the design table charges clustering with: memory for
every session on every node, and one replication message per peer per login (N-1 per
login, N(N-1) across a cluster taking N logins). A peer that is down is skipped after its
connect fails (counted in `replication_failures`); it catches up when it restarts.

A (re)starting replica asks its peers, in order, for a full copy (`GET /_sessions`) once
its own socket is listening, and reports 503 on `/healthz` until then. Sessions created
after it listens reach it by live replication; those created before are in the copy. One
narrow gap remains, as in any pull-then-follow scheme: a session created while this replica
was still down, whose replication to the peer we copy from was still in flight when we
copied. If no peer answers (a cold start of the whole cluster) it starts empty. Sessions
never change after login, so merging the copy under what arrived live loses nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

import httpx
from fastapi import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .common import DEFAULT_TTL, MemoryStore, Session, loopback_only

__all__ = ["ClusterStore"]

_log = logging.getLogger("bench.strategies.cluster")
_BULK_CHUNK = 10_000  # sessions per replication message during a bulk load (~1.4 MB of JSON)
_Entries = list[tuple[str, str, float]]  # (sid, user, expires): the replication wire format


class ClusterStore(MemoryStore):
    """A full copy of the cluster's sessions in this process, kept in step with `peers` over HTTP."""

    name = "cluster"

    def __init__(
        self, peers: Sequence[str], *, port: int, ttl: float = DEFAULT_TTL, replicate_timeout: float = 2.0
    ) -> None:
        super().__init__(ttl)
        self.peers = [p.rstrip("/") for p in peers]
        self._port = port
        self._timeout = replicate_timeout
        self._client: httpx.AsyncClient | None = None
        self._sync: asyncio.Task[None] | None = None
        self._synced_from: str | None = None
        self._ready = not self.peers
        self._counters = {
            "replicated_out_sessions": 0,
            "replicated_out_messages": 0,
            "replicated_out_bytes": 0,
            "replicated_in_sessions": 0,
            "replication_failures": 0,
        }

    async def start(self) -> None:
        self._client = httpx.AsyncClient(timeout=self._timeout, limits=httpx.Limits(max_keepalive_connections=32))
        if self.peers:
            self._sync = asyncio.create_task(self._initial_sync())

    async def stop(self) -> None:
        if self._sync is not None:
            self._sync.cancel()
        if self._client is not None:
            await self._client.aclose()

    def ready(self) -> bool:
        return self._ready

    async def create(self, user: str) -> str:
        sid, session = self._put_new(user)
        await self._replicate([(sid, session.user, session.expires)])
        return sid

    async def bulk(self, count: int) -> None:
        for start in range(0, count, _BULK_CHUNK):
            batch = [self._put_new(f"bulk-{i}") for i in range(start, min(count, start + _BULK_CHUNK))]
            await self._replicate([(sid, s.user, s.expires) for sid, s in batch])

    async def facts(self) -> dict[str, Any]:
        return {"peers": len(self.peers), "synced_from": self._synced_from, **self._counters}

    def routes(self) -> Sequence[BaseRoute]:
        return [Route("/_replicate", self._receive, methods=["POST"]), Route("/_sessions", self._dump, methods=["GET"])]

    async def _replicate(self, entries: _Entries) -> None:
        """Send `entries` to every peer at once; return when each has answered or failed."""
        if not self.peers:
            return
        body = json.dumps({"sessions": entries}, separators=(",", ":")).encode()
        results = await asyncio.gather(*(self._send(peer, body) for peer in self.peers))
        sent = sum(results)
        self._counters["replicated_out_messages"] += sent
        self._counters["replicated_out_sessions"] += sent * len(entries)
        self._counters["replicated_out_bytes"] += sent * len(body)
        self._counters["replication_failures"] += len(results) - sent

    async def _send(self, peer: str, body: bytes) -> bool:
        assert self._client is not None
        try:
            response = await self._client.post(
                f"{peer}/_replicate", content=body, headers={"content-type": "application/json"}
            )
            return response.status_code == 204
        except httpx.HTTPError as exc:
            _log.warning("replication to %s failed: %r", peer, exc)
            return False

    async def _receive(self, request: Request) -> Response:
        loopback_only(request)
        entries = json.loads(await request.body())["sessions"]
        for sid, user, expires in entries:
            self.sessions[sid] = Session(user, expires)
        self._counters["replicated_in_sessions"] += len(entries)
        return Response(status_code=204)

    async def _dump(self, request: Request) -> Response:
        """The full copy a restarting peer pulls; 503 while this replica is itself still syncing."""
        loopback_only(request)
        if not self._ready:
            return JSONResponse({"detail": "syncing"}, 503)
        now = time.time()
        entries = [(sid, s.user, s.expires) for sid, s in self.sessions.items() if s.alive(now)]
        return Response(json.dumps({"sessions": entries}, separators=(",", ":")), media_type="application/json")

    async def _initial_sync(self) -> None:
        """Once listening (so live replication already reaches us), merge a full copy from a peer."""
        assert self._client is not None
        await _wait_listening(self._port)
        try:
            for peer in self.peers:
                try:
                    response = await self._client.get(f"{peer}/_sessions", timeout=30.0)
                except httpx.HTTPError:
                    continue
                if response.status_code != 200:
                    continue
                for sid, user, expires in response.json()["sessions"]:
                    self.sessions.setdefault(sid, Session(user, expires))
                self._synced_from = peer
                return
            self._synced_from = "none: started empty"
        finally:
            self._ready = True
            _log.info("initial sync: %s, %d sessions", self._synced_from, len(self.sessions))


async def _wait_listening(port: int, timeout: float = 30.0) -> None:
    """Wait until our own server accepts connections (uvicorn binds after the lifespan starts)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.01)
            continue
        writer.close()
        await writer.wait_closed()
        return
