"""The operational bench suites (propagation, rotation, login, revocation_scale) run at tiny size.

Correctness only, never time: every replica refuses every revoked token (push by SSE, by
Redis, and pull), no valid token is refused across key rotations, logins succeed, and the
replica's copy of a large feed reaches the head. Without wrk or Redis the test skips
locally and fails in CI (`CI=true`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import redis_missing, require

pytestmark = pytest.mark.slow


@pytest.fixture
def bench_prerequisites() -> None:
    require(None if shutil.which("wrk") else "wrk (apt-get install -y wrk)")
    from bench.suites.propagation import REDIS_URL

    require(redis_missing(REDIS_URL))


@pytest.mark.parametrize(
    "name,required",
    [
        (
            "propagation",
            [
                "push SSE: every replica refuses every revoked token",
                "push Redis: every replica refuses every revoked token",
                "pull every 0.2 s: every replica refuses every revoked token",
            ],
        ),
        (
            "rotation",
            [
                "every rotation succeeded",
                "the pool holds tokens of every key",
                "zero responses >= 400 for valid tokens across rotations",
            ],
        ),
        ("login", ["every login and JWKS request answered 2xx"]),
        (
            "revocation_scale",
            [
                "the 25,000-entry replica answers 401 to the head entry's token",
                "the 25,000-entry replica answers 401 to the first entry's token",
                "the 25,000-entry replica answers 200 to a valid token",
            ],
        ),
    ],
)
@pytest.mark.usefixtures("bench_prerequisites")
def test_ops_suite_runs_without_a_failed_request_or_check(name: str, required: list[str], tmp_path: Path) -> None:
    from bench.harness import MODES, Context, Pinning
    from bench.suites import load

    with Context(MODES["smoke"], Pinning.detect(), tmp_path) as ctx:
        result = load(name).run(ctx)

    assert [c for c in result.checks if not c.ok] == []
    names = [c.name for c in result.checks]
    for prefix in required:
        assert any(n.startswith(prefix) for n in names), (prefix, names)
    for run in result.runs:
        assert (run.bad_status, run.socket_errors) == (0, 0), run
    assert result.rows
    assert not result.broken
