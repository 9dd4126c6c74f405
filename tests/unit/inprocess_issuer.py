"""The issuer as an app in this process: `create_app` with an injected clock, served to an
httpx ASGI client, its lifespan run (real SQLite file, real keys, real Argon2id).

Import from tests (`from tests.unit.inprocess_issuer import running_issuer`), like fakes.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from auth_service.app import create_app
from auth_service.config import Settings
from auth_service.deps import Issuer
from auth_service.directory import Directory
from auth_service.passwords import hash_sync
from auth_service.registry import Registration, Registry
from tests.default_client import add_default_client
from tests.unit.fakes import NOW, Clock

PASSWORD = "correct horse battery staple"
SECRET = "svc-secret-of-at-least-32-characters"


class _SyncHasher:
    async def hash(self, password: str) -> str:
        return hash_sync(password)


class Running:
    """A started issuer: its ASGI client, its wiring, its clock, and its service layers."""

    def __init__(self, client: httpx.AsyncClient, issuer: Issuer, clock: Clock) -> None:
        self.client, self.issuer, self.clock = client, issuer, clock
        self.registry = Registry(issuer.store, issuer.revoker, _SyncHasher(), clock)
        self.directory = Directory(issuer.store, issuer.revoker, _SyncHasher(), clock)

    async def token(self, *, auth: tuple[str, str] | None = None, **form: str) -> httpx.Response:
        return await self.client.post("/token", data=form, auth=auth)

    async def login(self, username: str = "alice", **extra: str) -> dict[str, Any]:
        answer = await self.token(grant_type="password", username=username, password=PASSWORD, **extra)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    async def register(self, client_id: str, *, secret: str | None = None, **fields: Any) -> None:
        registration = Registration(client_id=client_id, public=secret is None, **fields)
        await self.registry.add(registration, secret, actor="test")


@contextlib.asynccontextmanager
async def running_issuer(tmp_path: Path, *, default_client: bool = True, **settings: Any) -> AsyncIterator[Running]:
    """An issuer with one user, alice (reports:read reports:write), and the default client
    `public` (tests/default_client.py), at the fake clock's NOW."""
    clock = Clock()
    # ES256 unless a test asks otherwise: its key is made in microseconds, an RSA key in a tenth
    # of a second, and every test starts an issuer of its own.
    settings = {"signing_alg": "ES256", **settings}
    app = create_app(Settings(data_dir=tmp_path, keys_dir=tmp_path / "keys", **settings), clock=clock)
    async with app.router.lifespan_context(app):
        issuer: Issuer = app.state.issuer
        await issuer.store.add_user("alice", hash_sync(PASSWORD), "reports:read reports:write", int(NOW))
        if default_client:
            await add_default_client(issuer.store)
        transport = httpx.ASGITransport(app, client=("192.0.2.7", 40_000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
            yield Running(client, issuer, clock)
