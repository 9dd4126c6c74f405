"""What the simulated fleet follows: two issuer instances on one PostgreSQL database, with
Redis, behind one nginx, configured for a fleet of a given size.

Stream caps (the hostile-input limits, docs/configuration.md) are set from the fleet size:
- `AUTH_REVOCATION_STREAMS_MAX` = fleet + 64 on EACH instance: one instance must be able to
  carry every stream when its peer is down (nginx sends the reconnects to the survivor);
- `AUTH_REVOCATION_STREAMS_PER_ADDRESS` = fleet + 64 too, because every simulated replica
  connects from 127.0.0.1 through one nginx (in production one replica host holds one stream
  per replica process, so the default 16 is right there);
- `AUTH_HTTP_LIMIT_CONCURRENCY` = streams + 512, so streams never take every connection;
- nginx `worker_connections` at four per replica (client and upstream side of a stream,
  and of a pull), and the open-file limit raised to match.

nginx caches `GET /revocations` (`proxy_cache` with `proxy_cache_lock`, honouring the issuer's
`Cache-Control: max-age`; not revalidating, which would keep a page's old `Feed-Read-At`), as
docs/nginx.conf.example shows, and JWKS and metadata the same way;
`cache=False` turns that off, so the issuer serves every pull. Its access log (one line per
request but the streams: time, path, status, bytes sent, bytes from the issuer, cache status)
is how the suite counts JWKS and pull requests reaching the issuers.
"""

from __future__ import annotations

import asyncio
import os
import resource
import secrets
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx

from auth_service.balancer import find_nginx
from auth_service.launch import Service, auth_process, cli, free_port
from auth_service.storage import migration_engine
from auth_service.storage.schema import upgrade
from bench.harness import CLK_TCK, BenchError, Context, process_ticks
from bench.suites._ours import CLIENT, LOGIN, add_login

__all__ = ["REDIS_URL", "Deployment", "deployment"]

POSTGRES_ADMIN = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PASSPHRASE = "a fleet bench keys passphrase"
_LOG_FORMAT = "$msec $uri $status $body_bytes_sent $upstream_bytes_received $upstream_cache_status"


@dataclass(frozen=True)
class Access:
    """One line of nginx's access log."""

    at: float  # unix time
    path: str
    status: int
    sent: int  # bytes to the client
    upstream: int  # bytes from an issuer (0: served from nginx's cache)
    cache: str  # HIT, MISS, REVALIDATED, EXPIRED, ... or "-" (not cacheable)


class Deployment:
    def __init__(self, ctx: Context, fleet: int, *, cache: bool, jwks_max_age: int) -> None:
        self.ctx = ctx
        self.fleet = fleet
        self.workdir = ctx.workdir / f"deployment-{fleet}"
        self.workdir.mkdir()
        self.prefix = f"bench-fleet-{uuid.uuid4().hex[:12]}:"
        self.jwks_max_age = jwks_max_age  # a rotation's publish lead is 2 * max-age + 2 s: one must fit in a run
        self.database = f"bench_fleet_{secrets.token_hex(4)}"
        self.database_url = POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{self.database}"
        self.nginx_port = free_port()
        self.url = f"http://127.0.0.1:{self.nginx_port}"
        streams = fleet + 64
        self.env = {
            "AUTH_ISSUER": self.url,
            "AUTH_DATABASE_URL": self.database_url,
            "AUTH_KEYS_PASSPHRASE": PASSPHRASE,
            "AUTH_REDIS_URL": REDIS_URL,
            "AUTH_REDIS_PREFIX": self.prefix,
            "AUTH_TRUSTED_PROXIES": '["127.0.0.1"]',
            "AUTH_ACCESS_TOKEN_TTL": "3600",
            "AUTH_JWKS_MAX_AGE": str(self.jwks_max_age),
            "AUTH_KEY_ROTATION_INTERVAL": "86400",
            "AUTH_REFRESH_RATE": "1000000",
            "AUTH_LOGIN_MAX_FAILURES": "1000000",
            "AUTH_LOGIN_MAX_ATTEMPTS_PER_IP": "1000000",
            "AUTH_REVOCATION_STREAMS_MAX": str(streams),
            "AUTH_REVOCATION_STREAMS_PER_ADDRESS": str(streams),
            "AUTH_HTTP_LIMIT_CONCURRENCY": str(streams + 512),
            "AUTH_HTTP_BACKLOG": str(max(2048, 2 * fleet)),
            "AUTH_ACCESS_LOG": "false",
            "AUTH_LOG_LEVEL": "WARNING",
        }
        self.cache = cache
        self.issuers: list[Service] = []
        self._nginx: subprocess.Popen[bytes] | None = None
        self.access_log = self.workdir / "nginx" / "access.log"

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        _raise_open_files(8 * self.fleet + 1024)
        asyncio.run(self._create_database())
        done = add_login(self.workdir, self.env)
        if done.returncode != 0:
            raise BenchError(f"auth-service users or clients add failed: {done.stderr[-2000:]}")
        for name in ("a", "b"):
            (self.workdir / name).mkdir()
        self.issuers = [auth_process(data=self.workdir / name, env=self.env) for name in ("a", "b")]
        for issuer in self.issuers:  # one at a time: the first makes the signing key, the second loads it
            self.ctx.start([issuer], "server")
        self._start_nginx()

    def set_cache(self, on: bool) -> None:
        """Turn nginx's cache on or off (a graceful reload: streams stay open on the old worker)."""
        if on == self.cache:
            return
        self.cache = on
        work = self.workdir / "nginx"
        (work / "nginx.conf").write_text(self._nginx_conf(work))
        assert self._nginx is not None
        old = set(_children(self._nginx.pid))
        self._nginx.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while not (new := set(_children(self._nginx.pid)) - old):
            if time.monotonic() > deadline:
                raise BenchError("nginx did not start a worker after a reload")
            time.sleep(0.05)
        for child in new:
            self.ctx.pinning.pin(child, "server")
        time.sleep(0.5)  # the old worker stops accepting once the new one runs

    def stop(self) -> None:
        if self._nginx is not None and self._nginx.poll() is None:
            self._nginx.terminate()
            try:
                self._nginx.wait(10)
            except subprocess.TimeoutExpired:
                self._nginx.kill()
        for issuer in self.issuers:
            issuer.stop()
        asyncio.run(self._drop_database())

    async def _create_database(self) -> None:
        conn = await asyncpg.connect(POSTGRES_ADMIN)
        try:
            await conn.execute(f'CREATE DATABASE "{self.database}"')
        finally:
            await conn.close()
        engine = migration_engine(self.database_url)
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()

    async def _drop_database(self) -> None:
        conn = await asyncpg.connect(POSTGRES_ADMIN)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        finally:
            await conn.close()

    def _start_nginx(self) -> None:
        binary = find_nginx()
        if binary is None:
            raise BenchError("nginx is not installed (apt-get install nginx): the fleet suite runs behind it")
        work = self.workdir / "nginx"
        work.mkdir()
        conf = work / "nginx.conf"
        conf.write_text(self._nginx_conf(work))
        self._nginx = subprocess.Popen(
            [binary, "-p", str(work), "-c", str(conf), "-e", str(work / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self._nginx.poll() is not None:
                raise BenchError(f"nginx exited: {(work / 'error.log').read_text()[-1000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    self.ctx.pinning.pin(self._nginx.pid, "server")
                    for child in _children(self._nginx.pid):
                        self.ctx.pinning.pin(child, "server")
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise BenchError("nginx in front of the issuers did not answer")

    def _nginx_conf(self, work: Path) -> str:
        upstreams = "\n".join(f"        server 127.0.0.1:{s.port};" for s in self.issuers)
        user = "user root;\n" if os.geteuid() == 0 else ""
        connections = 4 * self.fleet + 1024
        # What a CDN in front of the issuers would cache: pulls, JWKS and metadata, for the
        # max-age the issuer sends, one request upstream at a time, the expired copy served while
        # one request refreshes it (else a fleet in step sends every request upstream at each
        # expiry; Feed-Read-At keeps the age honest). No proxy_cache_revalidate: on a
        # 304 nginx keeps the stored headers, so a pull page's Feed-Read-At would only grow older.
        cache = (
            """
            proxy_cache pulls;
            proxy_cache_lock on;
            proxy_cache_lock_timeout 10s;
            proxy_cache_use_stale updating;
            proxy_cache_background_update on;
            proxy_cache_key $scheme$host$uri$is_args$args;"""
            if self.cache
            else ""
        )
        return f"""{user}worker_processes 1;
worker_rlimit_nofile {2 * connections};
daemon off;
pid {work}/nginx.pid;
events {{ worker_connections {connections}; }}
http {{
    log_format fleet '{_LOG_FORMAT}';
    access_log {work}/access.log fleet;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    proxy_cache_path {work}/cache levels=1:2 keys_zone=pulls:10m max_size=512m inactive=10m use_temp_path=off;
    upstream issuers {{
{upstreams}
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{self.nginx_port} backlog={max(2048, 2 * self.fleet)};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $http_host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        location / {{
            proxy_pass http://issuers;
        }}
        location = /revocations {{
            proxy_pass http://issuers;{cache}
        }}
        location /.well-known/ {{
            proxy_pass http://issuers;{cache}
        }}
        location = /revocations/stream {{
            access_log off;
            proxy_pass http://issuers;
            proxy_buffering off;
            proxy_read_timeout 120s;
        }}
    }}
}}
"""

    # --- what the suite does through it -----------------------------------------------------

    def login(self, http: httpx.Client) -> dict[str, str]:
        response = http.post(f"{self.url}/token", data=LOGIN)
        if response.status_code != 200:
            raise BenchError(f"login through nginx failed: {response.status_code} {response.text[:300]}")
        return dict(response.json())

    def rotate(self) -> None:
        done = cli(["keys", "rotate"], data=self.workdir, env=self.env)
        if done.returncode != 0:
            raise BenchError(f"auth-service keys rotate failed: {done.stderr[-2000:]}")

    def fill(self, count: int) -> tuple[str, int]:
        """`count` more live jti entries after the head, written in one transaction; (feed id,
        head). Returns once the issuers have fanned them out: each entry is signed for Redis
        (about a millisecond each), which would otherwise be measured as the next step's cost."""
        written = asyncio.run(self._fill(count))
        self.settle()
        return written

    def settle(self, *, idle: float = 0.10, timeout: float = 180.0) -> None:
        """Wait until the issuers use less than `idle` of a core over half a second."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            before, started = sum(process_ticks(p) for p in self.issuer_pids), time.monotonic()
            time.sleep(0.5)
            used = (sum(process_ticks(p) for p in self.issuer_pids) - before) / CLK_TCK
            if used / (time.monotonic() - started) < idle:
                return
        raise BenchError(f"the issuers stayed busy for {timeout:g} s after a fill")

    async def _fill(self, count: int) -> tuple[str, int]:
        conn = await asyncpg.connect(self.database_url.replace("postgresql+asyncpg", "postgresql"))
        try:
            async with conn.transaction():
                feed_id, head = await conn.fetchrow("SELECT feed_id, head FROM feed WHERE id = 1 FOR UPDATE")
                now = int(time.time())
                if count:
                    await conn.copy_records_to_table(
                        "revocations",
                        records=[
                            (head + i, "jti", secrets.token_urlsafe(16), None, now + 7200, now)
                            for i in range(1, count + 1)
                        ],
                        columns=["seq", "kind", "value", "before", "expires_at", "created_at"],
                    )
                    head += count
                    await conn.execute("UPDATE feed SET head = $1 WHERE id = 1", head)
            return str(feed_id), int(head)
        finally:
            await conn.close()

    def head(self) -> tuple[str, int, list[str]]:
        """(feed id, head, every live jti value): what every replica must end up holding."""
        return asyncio.run(self._head())

    async def _head(self) -> tuple[str, int, list[str]]:
        conn = await asyncpg.connect(self.database_url.replace("postgresql+asyncpg", "postgresql"))
        try:
            feed_id, head = await conn.fetchrow("SELECT feed_id, head FROM feed WHERE id = 1")
            rows = await conn.fetch(
                "SELECT value FROM revocations WHERE kind = 'jti' AND expires_at > $1", int(time.time())
            )
            return str(feed_id), int(head), [r["value"] for r in rows]
        finally:
            await conn.close()

    def revoke(self, http: httpx.Client, token: str) -> None:
        response = http.post(f"{self.url}/revoke", data={"token": token, "client_id": CLIENT})
        if response.status_code != 200:
            raise BenchError(f"POST /revoke: {response.status_code} {response.text[:200]}")

    def accesses(self, since: float = 0.0) -> list[Access]:
        """nginx's access log lines written at or after unix time `since`."""
        if not self.access_log.exists():
            return []
        lines = []
        for line in self.access_log.read_text().splitlines():
            at, path, status, sent, upstream, cache = line.split(" ")
            if float(at) >= since:
                lines.append(Access(float(at), path, int(status), int(sent), _bytes(upstream), cache))
        return lines

    @property
    def nginx_pids(self) -> list[int]:
        if self._nginx is None or self._nginx.poll() is not None:
            return []
        return [self._nginx.pid, *_children(self._nginx.pid)]

    @property
    def issuer_pids(self) -> list[int]:
        return [s.pid for s in self.issuers if s.pid is not None]


def _bytes(field: str) -> int:
    """$upstream_bytes_received: "-" when nothing was proxied, "a, b" after a retry."""
    return sum(int(part) for part in field.replace(",", " ").split() if part.isdigit())


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _raise_open_files(wanted: int) -> None:
    """Children inherit the limit: the issuers and nginx each hold a descriptor per stream."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(hard, max(soft, wanted)) if hard != resource.RLIM_INFINITY else max(soft, wanted)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


@contextmanager
def deployment(ctx: Context, fleet: int, *, cache: bool = True, jwks_max_age: int = 5) -> Iterator[Deployment]:
    deployed = Deployment(ctx, fleet, cache=cache, jwks_max_age=jwks_max_age)
    try:
        deployed.start()
        yield deployed
    finally:
        deployed.stop()
