"""AUTH_REVOCATION_TAIL_INTERVAL: how late an entry written by another process (another
issuer instance on the same database, the CLI) reaches this instance's push subscribers.

In process, with real time: the entry is written through a second store on the same SQLite
file, which tells the running feed nothing, so only its tail read finds it.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from auth_service.storage import open_store
from tests.unit.fakes import NOW
from tests.unit.inprocess_issuer import running_issuer

pytestmark = pytest.mark.anyio


async def _pushed_after_a_write_elsewhere(tmp_path: Path, interval: float, wait: float) -> float | None:
    """Seconds from another process's write to its SSE event here; None if not within `wait`."""
    async with running_issuer(tmp_path, revocation_tail_interval=interval) as running:
        events = running.issuer.feed.subscribe()
        # The first heartbeat comes at once if the feed has read its head, else with the first
        # broadcast one, AUTH_REVOCATION_HEARTBEAT (5 s) later: wait past that.
        async with asyncio.timeout(8):
            assert (await anext(events)).startswith("event: heartbeat")
        elsewhere = await open_store(running.issuer.settings.sqlalchemy_url)
        try:
            await elsewhere.revoke_jti("j-from-the-cli", int(NOW) + 600, int(NOW))
        finally:
            await elsewhere.close()
        written = time.monotonic()
        try:
            async with asyncio.timeout(wait):
                while not (await anext(events)).startswith("event: revocation"):
                    pass
        except TimeoutError:
            return None
        finally:
            await events.aclose()
        return time.monotonic() - written


async def test_an_entry_written_by_another_process_is_pushed_within_the_tail_interval(tmp_path: Path) -> None:
    delay = await _pushed_after_a_write_elsewhere(tmp_path, interval=0.05, wait=2.0)
    assert delay is not None and delay < 1.0


async def test_a_longer_tail_interval_pushes_such_an_entry_later(tmp_path: Path) -> None:
    assert await _pushed_after_a_write_elsewhere(tmp_path, interval=5, wait=1.0) is None
