"""The fallback load balancer, for machines without nginx: a small HTTP/1.1 reverse proxy.

    python -m bench.strategies.balancer --port P \\
        --upstreams sticky-1=127.0.0.1:8001,sticky-2=127.0.0.1:8002 --mode sticky|round-robin

It routes as our nginx config does (`nginx.py`), so where each request lands does not
depend on which of the two ran: per request (not per connection), round robin, except in
sticky mode a request whose `route` cookie names a replica (`--upstreams` gives each
replica's id, which is its route) goes to that replica, and while that one is down, to the
others in round robin (nginx: the route's upstream lists them as `backup`). The cookie is
read as nginx reads `$cookie_route` and the route matched as its `map` matches (see
`_cookie`, `Balancer.candidates`). Keep-alive pools to the replicas; a replica whose connect
fails is skipped for `fail_timeout` seconds (nginx's `max_fails=1 fail_timeout=10s`; one
health state per replica here, where nginx keeps one per upstream block) and the request
goes to the next one, as `proxy_next_upstream error timeout` does, except a POST already
sent (not idempotent); `/_...` answers 404 without reaching a replica. Pipelined requests
are answered one at a time, in order. It is slower than nginx (on this 2-core machine, 10
to 20 % fewer requests per second through it), and what it does not do (chunked request
bodies, `Expect: 100-continue`, streaming: each response is buffered whole) no client of
the benchmark needs.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from .common import ROUTE, check_route

__all__ = ["Balancer", "main"]

_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
_CONNECT_TIMEOUT = 1.0  # proxy_connect_timeout in our nginx config
_READ_TIMEOUT = 60.0  # nginx's proxy_read_timeout default
_IDLE_PER_UPSTREAM = 64  # nginx `keepalive 64;`
_IDLE_TIMEOUT = 60.0  # nginx `keepalive_timeout 60s;`, shorter than the replicas' 75 s
_Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class _UpstreamError(Exception):
    """The exchange with one replica failed; `sent` says whether it may have seen the request.

    A stale pooled connection (the replica closed it while idle) is not the replica failing:
    like nginx with a cached connection, we do not mark the replica down for it.
    """

    def __init__(self, *, sent: bool, replica_failed: bool = True) -> None:
        self.sent = sent
        self.replica_failed = replica_failed


@dataclass
class _Upstream:
    name: str  # as nginx writes it: "127.0.0.1:8001"
    down_until: float = 0.0
    idle: list[tuple[_Conn, float]] = field(default_factory=list)  # (connection, idle since)

    def available(self, now: float) -> bool:
        return now >= self.down_until


@dataclass
class _Head:
    raw: bytes
    first: list[str]
    headers: dict[str, str]

    @classmethod
    def parse(cls, raw: bytes) -> _Head:
        lines = raw[:-4].decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            key = name.strip().lower()
            headers[key] = f"{headers[key]}; {value.strip()}" if key == "cookie" and key in headers else value.strip()
        return cls(raw, lines[0].split(" ", 2), headers)

    def keep_alive(self, version: str) -> bool:
        connection = self.headers.get("connection", "").lower()
        return connection == "keep-alive" if version == "HTTP/1.0" else connection != "close"


def _cookie(header: str | None, name: str) -> str:
    """The first cookie called `name` (any case), as nginx's `$cookie_NAME`: `,` separates too, space
    around name and value is dropped, quotes are kept, and a first empty one wins. Empty when absent."""
    for part in (header or "").replace(",", ";").split(";"):
        key, sep, value = part.partition("=")
        if sep and key.strip().lower() == name:
            return value.strip()
    return ""


def _reply(status: int, reason: str) -> bytes:
    body = f'{{"detail":"{reason}"}}'.encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    ).encode() + body


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        line = await reader.readuntil(b"\r\n")
        parts.append(line)
        size = int(line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while (trailer := await reader.readuntil(b"\r\n")) != b"\r\n":
                parts.append(trailer)
            parts.append(b"\r\n")
            return b"".join(parts)
        parts.append(await reader.readexactly(size + 2))


async def _read_response(reader: asyncio.StreamReader, method: str) -> tuple[bytes, bool]:
    """One whole response (head and body, framing kept) and whether its connection stays open."""
    head = _Head.parse(await reader.readuntil(b"\r\n\r\n"))
    status = int(head.first[1])
    keep = head.keep_alive(head.first[0])
    if method == "HEAD" or status in (204, 304) or status < 200:
        body = b""
    elif "chunked" in head.headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader)
    elif "content-length" in head.headers:
        body = await reader.readexactly(int(head.headers["content-length"]))
    else:
        body, keep = await reader.read(), False
    return head.raw + body, keep


class Balancer:
    """Per-request routing over `upstreams` (replica id -> `host:port`), round robin or sticky by route.

    Sticky: the replica ids are the routes, so each must pass `check_route` (ValueError).
    """

    def __init__(self, upstreams: Mapping[str, str], *, sticky: bool, fail_timeout: float = 10.0) -> None:
        self.upstreams = [_Upstream(address) for address in upstreams.values()]
        self.fail_timeout = fail_timeout
        self.routes = {check_route(r): u for r, u in zip(upstreams, self.upstreams, strict=True)} if sticky else {}
        self._rr = itertools.cycle(self.upstreams)

    def candidates(self, route: str) -> Iterator[_Upstream]:
        """Replicas in the order to try, each at most once and only while up: the one `route` names
        (matched in any case, as nginx's `map` does), then round robin."""
        tried: set[str] = set()
        pinned = self.routes.get(route.lower())
        if pinned is not None and pinned.available(time.monotonic()):
            tried.add(pinned.name)
            yield pinned
        for _ in range(len(self.upstreams)):
            upstream = next(self._rr)
            if upstream.name not in tried and upstream.available(time.monotonic()):
                tried.add(upstream.name)
                yield upstream

    async def serve(self, port: int, host: str = "127.0.0.1") -> asyncio.Server:
        return await asyncio.start_server(self._client, host, port, backlog=1024)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    raw = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                except asyncio.LimitOverrunError:
                    writer.write(_reply(431, "Request Header Fields Too Large"))
                    return
                head = _Head.parse(raw)
                method, target, version = [*head.first, "", "", ""][:3]
                if "transfer-encoding" in head.headers:
                    writer.write(_reply(501, "Not Implemented"))
                    return
                body = await reader.readexactly(int(head.headers.get("content-length", "0") or 0))
                if target.startswith("/_"):
                    writer.write(_reply(404, "Not Found"))
                    return
                response = await self._forward(method, _cookie(head.headers.get("cookie"), ROUTE), raw + body)
                if response is None:
                    writer.write(_reply(502, "Bad Gateway"))
                    return
                writer.write(response)
                await writer.drain()
                if not head.keep_alive(version):
                    return
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            return
        finally:
            writer.close()

    async def _forward(self, method: str, route: str, request: bytes) -> bytes | None:
        """The replica's response, or None when none could answer (the client gets a 502)."""
        for upstream in self.candidates(route):
            try:
                return await self._exchange(upstream, method, request)
            except _UpstreamError as failed:
                if failed.replica_failed:
                    upstream.down_until = time.monotonic() + self.fail_timeout
                if failed.sent and method not in _IDEMPOTENT:
                    return None
        return None

    async def _exchange(self, upstream: _Upstream, method: str, request: bytes) -> bytes:
        """Send on a pooled connection; one stale pooled connection may fail before a fresh one is tried."""
        while upstream.idle:
            (reader, writer), since = upstream.idle.pop()
            if reader.at_eof() or writer.is_closing() or time.monotonic() - since > _IDLE_TIMEOUT:
                writer.close()
                continue
            try:
                return await self._roundtrip(upstream, (reader, writer), method, request)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                if method not in _IDEMPOTENT:
                    raise _UpstreamError(sent=True, replica_failed=False) from None
                break  # the replica closed an idle connection: retry once on a fresh one
        try:
            conn = await asyncio.wait_for(asyncio.open_connection(*_split(upstream.name)), _CONNECT_TIMEOUT)
        except (TimeoutError, OSError):
            raise _UpstreamError(sent=False) from None
        try:
            return await self._roundtrip(upstream, conn, method, request)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            raise _UpstreamError(sent=True) from None

    async def _roundtrip(self, upstream: _Upstream, conn: _Conn, method: str, request: bytes) -> bytes:
        reader, writer = conn
        try:
            writer.write(request)
            response, keep = await asyncio.wait_for(_read_response(reader, method), _READ_TIMEOUT)
        except BaseException:
            writer.close()
            raise
        if keep and len(upstream.idle) < _IDLE_PER_UPSTREAM:
            upstream.idle.append((conn, time.monotonic()))
        else:
            writer.close()
        return response


def _split(name: str) -> tuple[str, int]:
    host, _, port = name.rpartition(":")
    return host, int(port)


def _upstreams(value: str) -> dict[str, str]:
    """`ID=host:port,...` (or `ID=http://host:port`) as {replica id: nginx's spelling, `host:port`}."""
    out: dict[str, str] = {}
    for item in filter(None, (v.strip() for v in value.split(","))):
        replica_id, sep, address = item.partition("=")
        if not sep or not replica_id.strip() or not address.strip():
            raise argparse.ArgumentTypeError(f"expected ID=host:port, got {item!r}")
        out[replica_id.strip()] = address.strip().removeprefix("http://").rstrip("/")
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.strategies.balancer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstreams", type=_upstreams, required=True, help="ID=host:port,... (the id is the route)")
    parser.add_argument("--mode", choices=("sticky", "round-robin"), required=True)
    args = parser.parse_args(argv)

    async def run() -> None:
        server = await Balancer(args.upstreams, sticky=args.mode == "sticky").serve(args.port)
        async with server:
            await server.serve_forever()

    import uvloop

    uvloop.run(run())


if __name__ == "__main__":
    main()
