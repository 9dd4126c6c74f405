"""Suite "strategies": stateless tokens against the three server-side session strategies.

The same route (`GET /me`), the same load (wrk through one balancer, nginx when installed)
and the same replica counts for each strategy:

- tokens: our issuer and N demo API replicas (`resource_service`), a bearer token per user;
- redis: N replicas asking the shared Redis for every request's session;
- sticky: N replicas keeping sessions in their own dict, the balancer routing by the `route`
  cookie (nginx `map`, or the Python balancer's dict);
- cluster: N replicas each holding every session, replicated by synchronous HTTP fan-out.

What a request costs is the CPU of every replica process summed (from /proc) over the
requests wrk counted, plus for Redis the Redis server's own CPU (`INFO cpu`): the harness's
`measure` times one contender per call here, with the replicas' ticks read around it.
Then per deployment: what a login costs, what 100,000 live sessions cost a replica in
memory, and what a replica's death costs its users. Each size is measured once per run, with
the no-auth control beside the strategies: `scaleout.py` reuses it (`_deployments.measure_size`).
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import httpx

from auth_service.launch import Service
from bench.harness import CLK_TCK, Contender, Context, Mode, measure
from bench.profile import profile_missed
from bench.report import Row, SuiteResult
from bench.strategies.cluster_runner import Run, balancer_kind
from bench.strategies.death import areplica_death
from bench.suites._deployments import (
    CONTROL,
    STRATEGIES,
    Deployment,
    Lead,
    Measured,
    by_contender,
    contender_of,
    cpu_ticks,
    deploy_all,
    full_cost,
    measure_size,
    measured_before,
    redis_cpu,
    redis_info,
    row,
    sizes,
    stop_all,
)
from bench.suites._ours import CLIENT, LOGIN, Issuer, bearer, mint_pool, start_issuers

__all__ = ["TOKENS_PER_CORE", "run"]

_SESSIONS = {"quick": 25_000, "full": 100_000, "smoke": 1_000}  # live sessions for the memory row
# Distinct tokens verified at one replica for its memory row: past the default cache of 10,000
# (quick: just past; full: three times), which bounds what a replica holds whatever the count.
_TOKENS = {"quick": 11_000, "full": 30_000, "smoke": 1_000}
_LOGINS = {"quick": 60, "full": 500, "smoke": 20}  # POST /login per deployment
_PASSWORD_LOGINS = {"quick": 3, "full": 20, "smoke": 2}  # Argon2-bound: few
TOKENS_PER_CORE = 2.5  # tokens' requests per CPU-second over the Redis store's


def throughput_rows(measured: Sequence[Measured], deployments: Sequence[Deployment]) -> list[Row]:
    rows = []
    for d in deployments:
        mine = by_contender(measured, d.name)
        rows.append(row(d.name, "throughput", [m.run.rps for m in mine], "req/s"))
        rows.append(row(d.name, "CPU per request, replicas summed", [m.run.cpu_us_per_request for m in mine], "µs"))
        if d.strategy == "redis":
            rows.append(row(d.name, "Redis server CPU per request", [m.redis_us_per_request for m in mine], "µs"))
        rows.append(row(d.name, "balancer CPU per request", [m.balancer_us_per_request for m in mine], "µs"))
        rows.append(row(d.name, "latency p99", [m.run.p99_ms for m in mine], "ms"))
        rows.append(row(d.name, "failed requests", [float(m.run.failed) for m in mine], "per run"))
    return rows


def run(ctx: Context) -> SuiteResult:
    started = time.monotonic()
    issuer = start_issuers(ctx, ["RS256"])["RS256"]
    pool = mint_pool(issuer, _TOKENS.get(ctx.mode.name, 11_000), ctx.workdir / "pool-memory.txt")
    rows: list[Row] = []
    measured: list[Measured] = []
    memory: dict[str, dict[int, list[float]]] = {s: {} for s in STRATEGIES}
    cost: dict[str, dict[int, float]] = {s: {} for s in STRATEGIES}
    phases: dict[str, float] = {}
    profiles: list[str] = []
    mark = _lap(phases, "issuer and token pool", started)
    counts = sizes(ctx)
    for n in counts:
        # With the no-auth control, so that the scaleout suite can reuse this size's measurement.
        started_all = deploy_all(ctx, n, issuer, control=measured_before(ctx, n) is None)
        deployments = [d for d in started_all if d.strategy != CONTROL]
        try:
            for d in started_all:
                if d.strategy != CONTROL:
                    ctx.expect(f"{d.name} /me answers 401 without a credential", f"{d.run.url}/me", 401)
                ctx.expect(f"{d.name} /me answers 200 with its credential", f"{d.run.url}/me", 200, d.headers)
            mark = _lap(phases, "start", mark)
            size = measure_size(ctx, "strategies", n, started_all)
            these = [m for m in size.measured if not m.run.contender.startswith(f"{CONTROL} x")]
            if size.by_suite != "strategies":
                ctx.check(f"x{n} measured once, by the {size.by_suite} suite of this run", True)
            mark = _lap(phases, "measure", mark)
            measured += these
            rows += throughput_rows(these, deployments)
            for d in deployments:
                cost[d.strategy][n] = statistics.median(full_cost(m) for m in by_contender(these, d.name))
            per_core = _per_core_rows(these, n)
            rows += per_core
            if not profiles:  # the first size that misses: tokens' and the Redis store's replica 1
                named = {d.name: contender_of(d) for d in deployments}
                profiles = profile_missed(
                    ctx, per_core, {f"tokens x{n}": [named[f"tokens x{n}"], named[f"redis x{n}"]]}
                )
            rows += _login_rows(ctx, deployments, issuer)
            mark = _lap(phases, "login", mark)
            for d in deployments:
                if d.strategy == "tokens" and ctx.mode.name != "smoke" and n != counts[-1]:
                    continue  # one size: each replica verifies alone, so N changes nothing it holds
                memory[d.strategy][n] = _memory(ctx, d, pool)
                rows.append(row(d.name, "RSS growth per replica", memory[d.strategy][n], "MB"))
            mark = _lap(phases, "memory", mark)
            if n >= 2:
                rows += _death_rows(ctx, deployments, pool)
                mark = _lap(phases, "death", mark)
        finally:
            stop_all(started_all)
        mark = _lap(phases, "stop", mark)
    rows += _constancy_rows(cost, memory)
    notes = [
        (
            f"balancer: {balancer_kind()} (bench/strategies/nginx.py; the Python balancer where nginx is missing); "
            "sticky routes by the `route` cookie the replica sets at login (nginx `map $cookie_route`); "
            "cluster replicates each login to every peer by synchronous HTTP fan-out (POST /_replicate)"
        ),
        (
            "CPU per request sums every replica process's utime+stime over the run (/proc); for redis the Redis "
            "server's CPU (INFO cpu) is added in the per-core ratio; the balancer shares the replicas' core, its "
            "CPU shown apart and not counted in either"
        ),
        (
            "tokens per core: (Redis store's replica + Redis server CPU per request) ÷ (tokens' CPU per request), "
            "round by round; the req/s ratio beside it is report-only"
        ),
        (
            f"login: session strategies POST /login (no password is hashed there); tokens: POST /token password "
            f"grant ({_PASSWORD_LOGINS.get(ctx.mode.name, 5)} per size, Argon2-bound) and, apart, the refresh grant "
            "(a new access token, no password)"
        ),
        (
            f"memory: RSS growth per replica after {_SESSIONS.get(ctx.mode.name, 100_000):,} live sessions "
            f"(sticky: split over the replicas; cluster: on every replica; redis: in Redis, Redis's growth shown "
            f"apart); tokens: after {len(pool):,} distinct tokens verified at replica 1, cache at its "
            "default size (10,000), which bounds what a replica holds"
        ),
        (
            "death: kill -9 of replica 1 mid-run, 30 users, every strategy's deployment at once; tokens' users "
            "hold minted tokens (same key and claims as the issuer's, fresh jti: bench/suites/_ours.py)"
        ),
    ]
    notes += profiles
    notes.append("time spent: " + ", ".join(f"{k} {v:.0f} s" for k, v in phases.items()))
    if ctx.mode.name == "quick":
        notes.append(
            "quick: 1 and 2 replicas, 1 s per contender x 2 rounds; tokens' memory after 11,000 "
            "tokens (just past the cache's 10,000), the sessions' after 25,000 sessions; 60 logins; "
            "deaths 1 s after the kill; --full runs 1, 2, 4, 8 replicas, 2 s x 2 rounds, 30,000 tokens, "
            "100,000 sessions, 500 logins and 1.5 s after the kill"
        )
    notes.append(
        "tokens' memory is measured at the largest size only (each replica verifies alone: N changes "
        "nothing it holds), so it has no constancy row"
    )
    return SuiteResult("strategies", rows, [m.run for m in measured], ctx.checks, notes)


def _lap(phases: dict[str, float], phase: str, since: float) -> float:
    now = time.monotonic()
    phases[phase] = phases.get(phase, 0.0) + now - since
    return now


def _per_core_rows(measured: Sequence[Measured], n: int) -> list[Row]:
    tokens, store = by_contender(measured, f"tokens x{n}"), by_contender(measured, f"redis x{n}")
    pairs = list(zip(tokens, store, strict=True))
    name = f"tokens x{n}"
    return [
        row(
            name,
            "÷ redis, by CPU/request (incl. Redis server)",
            [full_cost(r) / full_cost(t) for t, r in pairs],
            "x",
            TOKENS_PER_CORE,
        ),
        row(name, "÷ redis, req/s (report only)", [t.run.rps / r.run.rps for t, r in pairs], "x"),
    ]


def _cpu_of(pids: Sequence[int], work: Callable[[], None]) -> tuple[float, float]:
    """(CPU seconds of `pids`, wall seconds) while `work` runs."""
    before, started = cpu_ticks(pids), time.monotonic()
    work()
    return (cpu_ticks(pids) - before) / CLK_TCK, time.monotonic() - started


def _login_rows(ctx: Context, deployments: Sequence[Deployment], issuer: Issuer) -> list[Row]:
    rows = []
    for d in deployments:
        if d.strategy == "tokens":
            rows += _token_login_rows(ctx, d.name, issuer)
            continue
        count = _LOGINS.get(ctx.mode.name, 100)
        statuses: list[int] = []

        def logins(d: Deployment = d, statuses: list[int] = statuses, count: int = count) -> None:
            with httpx.Client(base_url=d.run.url, timeout=10.0) as client:
                statuses.extend(client.post("/login", data={"username": f"u{i}"}).status_code for i in range(count))

        redis_before = redis_cpu()
        cpu, wall = _cpu_of(d.replica_pids(), logins)
        if d.strategy == "redis":
            cpu += redis_cpu() - redis_before
        ctx.check(f"{d.name} logins answer 200", statuses == [200] * count, f"statuses {sorted(set(statuses))}")
        rows.append(row(d.name, "login: session creation CPU (incl. replication)", [cpu / count * 1e6], "µs"))
        rows.append(row(d.name, "login: wall time", [wall / count * 1000], "ms"))
    return rows


def _token_login_rows(ctx: Context, name: str, issuer: Issuer) -> list[Row]:
    count = _PASSWORD_LOGINS.get(ctx.mode.name, 5)
    pid = issuer.service.pid
    assert pid is not None
    refresh: list[str] = []

    def password() -> None:
        for _ in range(count):
            response = ctx.http.post(
                f"{issuer.service.url}/token",
                data=LOGIN,
            )
            ctx.check(f"{name} password login answers 200", response.status_code == 200, response.text[:200])
            refresh.append(response.json().get("refresh_token", ""))

    def refreshes() -> None:
        for token in refresh:
            response = ctx.http.post(
                f"{issuer.service.url}/token",
                data={"grant_type": "refresh_token", "refresh_token": token, "client_id": CLIENT},
            )
            ctx.check(f"{name} refresh grant answers 200", response.status_code == 200, response.text[:200])

    cpu, wall = _cpu_of([pid], password)
    rows = [
        row(name, "login: password grant CPU (Argon2-bound)", [cpu / count * 1e6], "µs"),
        row(name, "login: password grant wall time", [wall / count * 1000], "ms"),
    ]
    if all(refresh):
        cpu, wall = _cpu_of([pid], refreshes)
        rows += [
            row(name, "login: refresh grant CPU (no password)", [cpu / count * 1e6], "µs"),
            row(name, "login: refresh grant wall time", [wall / count * 1000], "ms"),
        ]
    return rows


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _memory(ctx: Context, d: Deployment, pool: Sequence[str]) -> list[float]:
    """RSS growth of each replica, MB, as the deployment takes on its live sessions."""
    pids = d.replica_pids()
    if d.strategy == "tokens":
        pids = pids[:1]  # the one `_verify_all` loads
    before = [_rss(pid) for pid in pids]
    if d.strategy == "tokens":
        _verify_all(ctx, d, pool)
    else:
        redis_before = _redis_memory()
        count = _SESSIONS.get(ctx.mode.name, 100_000)
        d.run.bulk_sessions(count)
        if d.strategy == "redis":
            ctx.check(
                f"{d.name} bulk sessions in Redis", True, f"Redis grew {(_redis_memory() - redis_before) / 1e6:.1f} MB"
            )
    return [(_rss(pid) - b) / 1e6 for pid, b in zip(pids, before, strict=True)]


def _redis_memory() -> int:
    return int(redis_info("memory")["used_memory"])


def _verify_all(ctx: Context, d: Deployment, pool: Sequence[str]) -> None:
    """Every pool token at every replica, straight (wrk walks the file in order; one pass, then it repeats).

    Straight, not through the balancer: round robin would give each of N replicas 1/N of the
    pool, and what we want is what one replica holds once it has seen more tokens than it caches.
    """
    path = ctx.workdir / "pool-memory.txt"
    seconds = max(2, math.ceil(len(pool) / 2_500) + 1)  # cold, one replica: about 2,800 tokens/s here
    with Context(Mode("memory", seconds, 1, 0, len(pool)), ctx.pinning, ctx.workdir) as one:
        for replica in d.run.replicas[:1]:  # replicas are alike and share nothing: one stands for all
            contender = Contender(f"{replica.id} memory", f"{replica.url}/me", cast(Service, Lead(d)), tokens=path)
            (wrk,) = measure(one, [contender])
            ctx.check(
                f"{replica.id} verified every memory-pool token",
                wrk.requests >= len(pool) and wrk.failed == 0,
                f"{wrk.requests} requests for {len(pool)} tokens, {wrk.failed} failed",
            )


def _death_rows(ctx: Context, deployments: Sequence[Deployment], pool: Sequence[str]) -> list[Row]:
    """Kill replica 1 of every deployment mid-run, all at once: each death is counted (users, sessions,
    failed requests), never timed, and its own deployment's users see only their own balancer."""
    after = 1.0 if ctx.mode.name == "quick" else 1.5

    async def death(d: Deployment) -> dict[str, Any]:
        if d.strategy == "tokens":
            return await _token_death(d.run, pool[:30], after=after)
        return (await areplica_death(d.run, after=after)).as_dict()

    async def all_deaths() -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(death(d) for d in deployments)))

    rows = []
    for d, report in zip(deployments, asyncio.run(all_deaths()), strict=True):
        users = report["users"]
        kept = (users - report["sessions_lost"]) / users
        rows += [
            row(d.name, "death: sessions kept", [kept], "share", 1.0),
            row(d.name, "death: users forced to log in again", [float(report["forced_relogin"])], "users"),
            row(d.name, "death: failed requests", [float(report["failed_requests"])], "requests"),
        ]
    return rows


async def _token_death(
    run: Run, tokens: Sequence[str], before: float = 0.5, after: float = 1.5, interval: float = 0.02
) -> dict[str, int]:
    """`replica_death` for bearer tokens: same users, timing and counts; a 401 means log in again."""
    crashed = asyncio.Event()
    counts = {"users": len(tokens), "forced_relogin": 0, "failed_requests": 0, "requests": 0}
    forced: set[int] = set()

    async def user(i: int, client: httpx.AsyncClient, until: float) -> None:
        while time.monotonic() < until:
            counts["requests"] += 1
            try:
                response = await client.get("/me", headers=bearer(tokens[i]))
                if response.status_code == 401 and crashed.is_set():
                    forced.add(i)
                elif response.status_code != 200:
                    counts["failed_requests"] += 1
            except httpx.HTTPError:
                counts["failed_requests"] += 1
            await asyncio.sleep(interval)

    async with httpx.AsyncClient(base_url=run.url, timeout=5.0) as client:
        until = time.monotonic() + before + after
        users = asyncio.gather(*(user(i, client, until) for i in range(len(tokens))))
        await asyncio.sleep(before)
        run.kill(0)
        crashed.set()
        await users
        survivors = [r.url for r in run.replicas if r.running()]
        lost = 0
        for token in tokens:
            answers = [(await client.get(f"{url}/me", headers=bearer(token))).status_code for url in survivors]
            lost += 200 not in answers
    counts["forced_relogin"] = len(forced)
    counts["sessions_lost"] = lost
    return counts


def _constancy_rows(cost: dict[str, dict[int, float]], memory: dict[str, dict[int, list[float]]]) -> list[Row]:
    """Per-request cost and memory per replica at N against one replica: within 10 % counts as constant."""
    rows = []
    for strategy in STRATEGIES:
        one = cost[strategy].get(1)
        for n, c in cost[strategy].items():
            if n > 1 and one:
                rows.append(row(f"{strategy} x{n}", "CPU/request at x1 ÷ here", [one / c], "x", 1 / 1.1))
        if 1 not in memory[strategy]:
            continue
        base = statistics.median(memory[strategy][1])
        for n, mb in memory[strategy].items():
            if n > 1:
                here = max(mb)
                rows.append(
                    row(
                        f"{strategy} x{n}",
                        "largest replica RSS growth - x1's (<= 10 % of x1 or 5 MB)",
                        [here - base],
                        "MB",
                        None,
                        here - base <= max(5.0, 0.1 * abs(base)),
                    )
                )
    return rows
