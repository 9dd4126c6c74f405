"""What the operational suites share: an issuer with its own settings, and "at most" targets.

`_ours.start_issuers` starts issuers with the bench's fixed settings; these suites each need
their own (a Redis prefix, a one-second JWKS max-age, a rate limit out of the way), so they
start theirs here. The report's targets are all "at least": a latency or memory budget is
shown as what is left of it (`budget - value`, target >= 0), so the table never says
">= 50 ms" about a number that must stay under 50 ms.
"""

from __future__ import annotations

import json
import statistics
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from auth_service.launch import Service, auth_process
from bench import REPO
from bench.harness import BenchError, Context
from bench.report import Row
from bench.suites._ours import LOGIN, Issuer, add_login

__all__ = ["ISSUER_ENV", "budget_row", "login", "new_issuer", "percentile", "summary_row", "wrk_json"]

ISSUER_ENV = {"AUTH_ACCESS_TOKEN_TTL": "3600"}  # as `_ours`: tokens outlive the suite


def new_issuer(
    ctx: Context,
    name: str,
    env: Mapping[str, str] | None = None,
    *,
    role: Literal["server", "load"] = "load",
    port: int | None = None,
) -> tuple[Service, Path]:
    """An issuer (not started) in its own directory, with user `bench` already added."""
    data = ctx.workdir / name
    data.mkdir(exist_ok=True)
    full_env = {**ISSUER_ENV, **(env or {})}
    done = add_login(data, full_env)
    if done.returncode != 0:
        raise BenchError(f"auth-service users or clients add failed: {done.stderr[-2000:]}")
    return auth_process(data=data, env=full_env, port=port), data


def login(ctx: Context, service: Service, data: Path) -> Issuer:
    """One password login at `service`; the result can sign a pool with `_ours.mint_pool`."""
    response = ctx.http.post(f"{service.url}/token", data=LOGIN)
    if response.status_code != 200:
        raise BenchError(f"login at {service.name} failed: {response.status_code} {response.text[:300]}")
    token = response.json()["access_token"]
    return Issuer("RS256", service, data, token)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), nearest-rank: with few samples, p99 is the worst one."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil without floats
    return ordered[int(rank) - 1]


def summary_row(contender: str, metric: str, value: float, unit: str) -> Row:
    return Row(contender, metric, value, value, value, unit)


def budget_row(contender: str, what: str, values: Sequence[float], budget: float, unit: str) -> Row:
    """`budget - value` (median, min-max over `values`), met when what is left is >= 0."""
    left = [budget - v for v in values]
    median = statistics.median(left)
    return Row(contender, f"{what} <= {budget:g} {unit}: left", median, min(left), max(left), unit, 0.0, median >= 0)


def wrk_json(done: subprocess.CompletedProcess[str], what: str) -> dict[str, float]:
    """The statistics `bench/lua/summary.lua` printed, or a BenchError naming the run."""
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise BenchError(f"wrk failed for {what} (exit {done.returncode}):\n{done.stdout}{done.stderr}")
    return {k: float(v) for k, v in json.loads(line.removeprefix("BENCH_JSON ")).items()}


LUA = REPO / "bench" / "lua"
