"""The strategies and scaleout suites at tiny size: correctness only, never time.

1 and 2 replicas, 1 s per deployment, one round, 1,000 bulk sessions. Every measured run
has no failed request, every strategy's `/me` answers 401 without a credential and 200 with
one, a token user loses nothing when a replica dies and a sticky user does. Without wrk,
nginx or Redis the test skips locally and fails in CI (`CI=true`).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from bench.report import SuiteResult
from tests.conftest import require

pytestmark = pytest.mark.slow

STRATEGIES = ("tokens", "redis", "sticky", "cluster")


def _redis_missing() -> str | None:
    import redis

    from bench.strategies.redis_store import DEFAULT_URL

    client = redis.Redis.from_url(DEFAULT_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"Redis at {DEFAULT_URL} ({exc})"
    finally:
        client.close()
    return None


@pytest.fixture(scope="module")
def prerequisites() -> None:
    from bench.strategies.nginx import nginx_binary

    require(None if shutil.which("wrk") else "wrk (apt-get install -y wrk)")
    require(None if nginx_binary() else "nginx (apt-get install -y nginx)")
    require(_redis_missing())


def _run(name: str, tmp: Path, shared: dict[str, Any] | None = None) -> SuiteResult:
    """One suite, as `python -m bench` runs it; suites given one `shared` are as one invocation's."""
    from bench.harness import MODES, Context, Pinning
    from bench.suites import load

    work = tmp / name
    work.mkdir()
    with Context(MODES["smoke"], Pinning.detect(), work, shared=shared) as ctx:
        return load(name).run(ctx)


def _value(result: SuiteResult, contender: str, metric: str) -> float:
    (row,) = [r for r in result.rows if r.contender == contender and r.metric == metric]
    return row.median


def _assert_measured_cleanly(result: SuiteResult) -> None:
    assert result.error is None
    assert [c for c in result.checks if not c.ok] == []
    assert result.runs
    for run in result.runs:
        assert run.requests > 0, run
        assert (run.bad_status, run.socket_errors) == (0, 0), run
    for strategy in STRATEGIES:
        for n in (1, 2):
            names = {c.name for c in result.checks if c.ok}
            assert f"{strategy} x{n} /me answers 401 without a credential" in names
            assert f"{strategy} x{n} /me answers 200 with its credential" in names
    assert not result.broken


@pytest.mark.usefixtures("prerequisites")
def test_strategies_suite_measures_cleanly_and_only_sticky_loses_sessions(tmp_path: Path) -> None:
    shared: dict[str, Any] = {}
    result = _run("strategies", tmp_path, shared)

    _assert_measured_cleanly(result)
    assert {run.contender for run in result.runs} == {f"{s} x{n}" for s in STRATEGIES for n in (1, 2)}
    assert _value(result, "tokens x2", "death: sessions kept") == 1.0
    assert _value(result, "tokens x2", "death: failed requests") == 0
    assert _value(result, "sticky x2", "death: sessions kept") < 1.0
    assert _value(result, "sticky x2", "death: users forced to log in again") > 0

    # The scaleout suite of the same run judges these very runs (and the control's, measured
    # beside them) instead of deploying and measuring every strategy again.
    scaleout = _run("scaleout", tmp_path, shared)
    assert scaleout.error is None and not scaleout.broken
    assert {c.name for c in scaleout.checks} == {
        "x1 measured once, by the strategies suite of this run",
        "x2 measured once, by the strategies suite of this run",
    }
    control = {run.contender: run for run in scaleout.runs if run.contender.startswith("no auth")}
    assert set(control) == {"no auth x1", "no auth x2"}
    assert [run for run in scaleout.runs if run.contender not in control] == result.runs
    assert {r.contender for r in scaleout.rows if r.metric == "same, ÷ no auth's (core sharing removed)"} == {
        f"{s} x2" for s in STRATEGIES
    }
    assert not list((tmp_path / "scaleout").iterdir())  # it started nothing: no issuer, no deployment


@pytest.mark.usefixtures("prerequisites")
def test_scaleout_suite_measures_every_strategy_at_each_size(tmp_path: Path) -> None:
    result = _run("scaleout", tmp_path)

    _assert_measured_cleanly(result)
    # The no-auth control runs beside the strategies at each size, and its growth is divided out.
    assert {run.contender for run in result.runs} == {f"{s} x{n}" for s in (*STRATEGIES, "no auth") for n in (1, 2)}
    assert any(note.startswith("shared bottleneck, redis") for note in result.notes)
    controlled = [r for r in result.rows if r.metric == "same, ÷ no auth's (core sharing removed)"]
    assert {r.contender for r in controlled} == {f"{s} x2" for s in STRATEGIES}
