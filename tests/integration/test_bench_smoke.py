"""Every benchmark suite runs at tiny size, so CI catches a broken bench.

Correctness only, never time: no failed request in any run, every check green (tokens
accepted, the cold pool's sample accepted, every peer answering 401 without a credential),
and a report that can be printed and written. Without wrk or the `bench` extra the test
skips locally and fails in CI (`CI=true`), naming what to install.
"""

from __future__ import annotations

import importlib.util
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def bench_prerequisites() -> None:
    require(None if shutil.which("wrk") else "wrk (apt-get install -y wrk)")
    absent = [m for m in ("fastapi_users", "matplotlib") if importlib.util.find_spec(m) is None]
    require(f"the bench extra (pip install -e '.[server,bench]'; missing {', '.join(absent)})" if absent else None)


@pytest.mark.parametrize(
    "name,required",
    [
        (
            "verify",
            [
                "cold RS256 pool accepted",
                "cold ES256 pool accepted",
                "cold EdDSA pool accepted",
                "warm /me answers 401 without a credential",
                "quickstart accepts the issued token",
                "quickstart answers 401 without a credential",
                "control accepts the issued token",
                "signature-only control accepts the RS256 pool",
            ],
        ),
        (
            "peers",
            [
                "docs recipe (async) answers 401 without a credential",
                "docs recipe (sync def) answers 401 without a credential",
                "fastapi-users JWT answers 401 without a credential",
            ],
        ),
    ],
)
@pytest.mark.usefixtures("bench_prerequisites")
def test_suite_runs_without_a_failed_request_or_check(name: str, required: list[str], tmp_path: Path) -> None:
    from bench.harness import MODES, Context, Pinning
    from bench.report import print_table, write_results
    from bench.suites import load

    work = tmp_path / "work"
    work.mkdir()
    with Context(MODES["smoke"], Pinning.detect(), work) as ctx:
        result = load(name).run(ctx)

    assert [c for c in result.checks if not c.ok] == []
    for prefix in required:
        assert any(c.name.startswith(prefix) for c in result.checks), prefix
    contenders = {row.contender for row in result.rows}
    assert {run.contender for run in result.runs} <= contenders and len(contenders) >= 5
    for run in result.runs:
        assert run.requests > 0, run
        assert (run.bad_status, run.socket_errors) == (0, 0), run
    assert not result.broken

    table = io.StringIO()
    print_table([result], out=table)
    assert "FAILED" not in table.getvalue()
    written = write_results(
        [result], mode=MODES["smoke"], pinning=Pinning.detect(), stamp="smoke", directory=tmp_path / "results"
    )
    assert [p.suffix for p in written] == [".json", ".png"] and all(p.stat().st_size for p in written)


def test_without_wrk_the_runner_says_how_to_install_it_and_fails(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": str(tmp_path)},
        timeout=60,
    )
    assert done.returncode == 2
    assert "apt-get install wrk" in done.stderr
