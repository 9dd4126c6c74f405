"""Shared fixtures: real auth-service and replica processes on 127.0.0.1, on free ports."""

from __future__ import annotations

import concurrent.futures
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from auth_service.launch import Service, auth_process, cli, replica_process
from tests.default_client import keep_default_client

PASSWORD = "correct horse battery staple"

# Fast settings for tests: a 1 s JWKS cache (so a rotation's publish lead is 2 s) and
# frequent heartbeats; every security rule stays as in production.
AUTH_ENV = {"AUTH_JWKS_MAX_AGE": "1", "AUTH_REVOCATION_HEARTBEAT": "0.5", "AUTH_KEY_ROTATION_INTERVAL": "3600"}
# Replicas keep the default unknown-kid refetch interval (10 s): the rotation tests prove a new
# key is known from its issuer's max-age schedule alone, before it signs.
REPLICA_ENV = {"RESOURCE_REVOCATION_POLL_INTERVAL": "1"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# The machine's PostgreSQL (trust auth). Override with TEST_POSTGRES_URL.
POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def require(missing: str | None) -> None:
    """Skip when something the test needs is `missing` on this laptop; in CI (CI=true) a
    missing server or tool is a failure, never a skip."""
    if missing is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"this test needs {missing}")
    pytest.skip(f"needs {missing}")


def _unavailable(what: str, exc: BaseException) -> None:
    require(f"{what} (not reachable: {type(exc).__name__}: {exc})")


@pytest.fixture
def postgres_database() -> Iterator[Callable[..., str]]:
    """Makes fresh PostgreSQL databases of the test's own (migrated unless asked not to);
    drops them after the test."""
    import asyncio

    import asyncpg
    from sqlalchemy.engine import make_url

    from auth_service.storage import migration_engine
    from auth_service.storage.schema import upgrade

    admin = POSTGRES_ADMIN_URL.replace("+asyncpg", "")
    made: list[str] = []

    def run(job: Callable[[], Any]) -> None:
        # A thread of its own: the caller may be an async fixture inside a running loop.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, job()).result()

    def make(*, migrated: bool = True) -> str:
        name = "t_" + secrets.token_hex(6)
        url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)

        async def create() -> None:
            conn = await asyncpg.connect(admin, timeout=5)
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
            finally:
                await conn.close()
            if migrated:
                engine = migration_engine(url)
                try:
                    await upgrade(engine)
                finally:
                    await engine.dispose()

        try:
            run(create)
        except (OSError, asyncpg.PostgresError) as exc:
            _unavailable("PostgreSQL", exc)
        made.append(name)
        return url

    async def drop_all() -> None:
        conn = await asyncpg.connect(admin, timeout=5)
        try:
            for name in made:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    try:
        yield make
    finally:
        if made:
            run(drop_all)


@pytest.fixture
def postgres_url(postgres_database: Callable[..., str]) -> str:
    """A fresh, migrated PostgreSQL database of the test's own."""
    return postgres_database()


REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_missing(url: str) -> str | None:
    """What `require` is told when no Redis answers at `url` (the bench suites' own URL)."""
    import redis

    try:
        redis.Redis.from_url(url, socket_timeout=2).ping()
    except redis.RedisError as exc:
        return f"Redis at {url} ({exc})"
    return None


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A Redis key prefix of the test's own on the machine's Redis; its keys are deleted after."""
    import redis
    from redis.exceptions import RedisError

    prefix = f"test-{secrets.token_hex(6)}:"
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except RedisError as exc:
        _unavailable("Redis", exc)
    try:
        yield prefix
    finally:
        keys = list(client.scan_iter(f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


class Stack:
    """One auth service (plus the replicas a test asks for) sharing a temp directory."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.auth: Service | None = None
        self.replicas: list[Service] = []
        self.http = httpx.Client(timeout=10.0)
        self.env: dict[str, str] = dict(AUTH_ENV)  # the issuer's settings; the CLI gets the same
        self._default_client = False  # `public` registered (tests/default_client.py)

    def start_auth(self, **env: str) -> Service:
        self.env.update(env)
        self.auth = auth_process(data=self.tmp, env=self.env).start()
        return self.auth

    def start_replicas(self, n: int, **env: str) -> list[Service]:
        assert self.auth is not None
        new = [
            replica_process(
                f"replica-{len(self.replicas) + i + 1}",
                auth_url=self.auth.url,
                data=self.tmp,
                env={**REPLICA_ENV, **env},
            )
            for i in range(n)
        ]
        self.replicas.extend(rep.spawn() for rep in new)
        for rep in new:
            rep.wait_healthy(30.0)
        return new

    def cli(self, *args: str, stdin: str | None = None, **env: str) -> str:
        done = cli(list(args), data=self.tmp, env={**self.env, **env}, stdin=stdin)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def add_user(self, name: str = "alice", scope: str = "reports:read", password: str = PASSWORD) -> str:
        """A user, and (once per database) the default client `public` its logins go through."""
        import json

        added = self.cli("users", "add", name, "--password-stdin", "--scope", scope, stdin=password + "\n")
        self.default_client()
        return str(json.loads(added)["sub"])

    def default_client(self) -> None:
        """Register `public` (tests/default_client.py), once per database."""
        if not self._default_client:
            keep_default_client(self.tmp, self.env)
            self._default_client = True

    def add_client(
        self,
        client_id: str,
        secret: str,
        scope: str = "",
        grants: tuple[str, ...] = ("client_credentials", "password", "refresh_token"),
        audiences: tuple[str, ...] = (),
    ) -> None:
        """A confidential client; by default registered for every grant this issuer serves."""
        options = [f"--grant={grant}" for grant in grants] + [f"--audience={aud}" for aud in audiences]
        self.cli("clients", "add", client_id, "--secret-stdin", "--scope", scope, *options, stdin=secret + "\n")

    def add_public_client(self, client_id: str, scope: str, *options: str) -> None:
        self.cli(
            "clients",
            "add",
            client_id,
            "--public",
            "--grant=password",
            "--grant=refresh_token",
            "--scope",
            scope,
            *options,
        )

    def token(self, **form: str) -> httpx.Response:
        assert self.auth is not None
        return self.http.post(f"{self.auth.url}/token", data=form)

    def login(self, username: str = "alice", password: str = PASSWORD, **extra: str) -> dict[str, object]:
        response = self.token(grant_type="password", username=username, password=password, **extra)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def me(self, replica: Service, token: str) -> httpx.Response:
        return self.http.get(f"{replica.url}/me", headers=bearer(token))

    def stop(self) -> None:
        self.http.close()
        for service in [*self.replicas, *([self.auth] if self.auth else [])]:
            service.stop()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = Stack(tmp_path)
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One running auth service shared by a module's tests, with user alice and client svc."""
    s = Stack(tmp_path_factory.mktemp("issuer"))
    try:
        s.start_auth(AUTH_LOGIN_MAX_FAILURES="3")
        s.add_user("alice", scope="reports:read profile")
        # svc may carry alice's scopes for her (password grant) and introspect any token.
        s.add_client("svc", "svc-secret-of-at-least-32-characters", scope="reports:read profile introspect")
        yield s
    finally:
        s.stop()


def bearer(token: str) -> dict[str, str]:
    """The request header that presents `token` (RFC 6750 section 2.1)."""
    return {"Authorization": f"Bearer {token}"}


def claims_of(token: str) -> tuple[dict[str, object], dict[str, object]]:
    """(header, payload) of a compact JWS, unverified: for asserting what was issued."""
    import base64
    import json

    def part(segment: str) -> dict[str, object]:
        return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))  # type: ignore[no-any-return]

    header, payload, _ = token.split(".")
    return part(header), part(payload)


def eventually(check: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02) -> bool:
    """Poll `check` until it is true or `timeout` passes; the caller asserts the result."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()


def json_log_lines(text: str, where: str = "log") -> list[dict[str, Any]]:
    """Every line of a JSON log as an object; fails the test on the first line that is not one."""
    import json

    records = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"{where} line {number} is not JSON: {line[:300]!r}")
        assert isinstance(record, dict), f"{where} line {number}: {line[:300]!r}"
        records.append(record)
    return records
