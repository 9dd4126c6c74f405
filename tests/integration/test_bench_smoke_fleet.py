"""The fleet suite runs at a tiny size: correctness only, never time.

Six simulated replicas (real `Verifier`s in two simulator processes) and two real replicas
follow two issuers on one PostgreSQL database, with Redis, behind nginx: a cold start at
three feed sizes (one past a pull page), pushes over SSE and Redis, the pull fallback and a
key rotation. Every simulated replica must end with exactly the issuer's list after each
push path, and accept the first tokens of the rotated key. Without nginx, wrk, PostgreSQL
or Redis the test skips locally and fails in CI (`CI=true`).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from auth_service.balancer import find_nginx
from tests.conftest import redis_missing, require

pytestmark = pytest.mark.slow


def _postgres_missing() -> str | None:
    import asyncpg

    from bench.fleet.deploy import POSTGRES_ADMIN

    async def ping() -> None:
        conn = await asyncpg.connect(POSTGRES_ADMIN, timeout=3)
        await conn.close()

    try:
        asyncio.run(ping())
    except (OSError, asyncpg.PostgresError) as exc:
        return f"PostgreSQL at {POSTGRES_ADMIN} ({exc})"
    return None


def test_every_simulated_replica_ends_with_the_issuers_list_on_every_path(tmp_path: Path) -> None:
    require(None if find_nginx() else "nginx (apt-get install -y nginx)")
    require(_postgres_missing())
    from bench.fleet.deploy import REDIS_URL

    require(redis_missing(REDIS_URL))
    from bench.harness import MODES, Context, Pinning
    from bench.suites import load

    with Context(MODES["smoke"], Pinning.detect(), tmp_path) as ctx:
        result = load("fleet").run(ctx)

    assert result.error is None
    assert [c for c in result.checks if not c.ok] == []
    names = [c.name for c in result.checks]
    for path in ("push SSE", "push Redis", "pull"):
        assert any(n.startswith(f"x6 {path}: every simulated replica ends with the issuer's list") for n in names), (
            path,
            names,
        )
    assert "x6: every simulated replica accepts the first tokens of a rotated key" in names
    measured = {(row.contender, row.metric) for row in result.rows}
    assert ("x6 cold, 2,100 entries", "time until all in sync") in measured
    assert ("x6 push Redis", "last simulated replica: p99") in measured
