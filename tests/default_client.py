"""The client most tests log in through: `public`, as a database upgraded from revision 0004
still has it (a public client with the password and refresh grants, any scope its user holds).

A new database has no client at all since revision 0005 (the password grant is opt-in); the
tests of that are in tests/unit/test_storage_contract.py and tests/unit/test_issuer_clients.py.
Everything else tests the grants through this client, registered once per database the way
an operator's upgrade leaves it: a store write, no process of its own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Mapping
from pathlib import Path

from auth_service.storage import Client, Conflict, SqlStore, open_store

DEFAULT_CLIENT = Client(
    client_id="public",
    secret_hash=None,
    scope=None,
    grant_types=("password", "refresh_token"),
    name="Default public client (requests that name no client)",
    first_party=True,
)


async def add_default_client(store: SqlStore) -> None:
    try:
        await store.add_client(DEFAULT_CLIENT)
    except Conflict:
        pass


def keep_default_client(data: Path, env: Mapping[str, str]) -> None:
    """Register `public` in the database of an issuer run with `data` and `env` (as launch.py's
    auth_process and cli see them)."""
    url = env.get("AUTH_DATABASE_URL") or f"sqlite+aiosqlite:///{(data / 'data' / 'auth.db').resolve()}"

    async def register() -> None:
        store = await open_store(url)
        try:
            await add_default_client(store)
        finally:
            await store.close()

    # In a thread of its own: a caller may be inside an event loop already (Playwright's sync API).
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, register()).result()
