"""Suite "propagation": from `POST /revoke` returning until every replica refuses the token.

Three ways a revocation travels, each with its own issuer and replicas: push over the
issuer's SSE stream, push over Redis pub/sub (a prefix of its own per run, so nothing else
on the shared Redis hears it), and pull only (`RESOURCE_REVOCATION_PUSH=false`, every P s).

Each revocation: a fresh token (signed like the issuer's, `_ours.mint_pool`) that every
replica has just accepted is revoked, then every replica is polled concurrently (asyncio,
one connection each) until it answers 401. One arrival per replica; a round's time is its
slowest replica's. Polling adds about a millisecond of resolution.

Push revocations go one at a time. Pull revocations overlap: a round waits for the next
poll, up to P, so 200 in a row would take minutes. Several lanes run side by side, each
revoking at a random point of the poll cycle (a delay drawn from 0..P) and polling every
few milliseconds (a resolution far below P); a revocation's time is still from its own
`POST /revoke` returning to its own last refusal.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time
import uuid
from dataclasses import dataclass

import httpx

from auth_service.launch import Service, replica_process
from bench.harness import BenchError, Context
from bench.report import Row, SuiteResult
from bench.suites._ops import budget_row, login, new_issuer, percentile
from bench.suites._ours import CLIENT, bearer, mint_pool

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PUSH_P99_MS = 50.0  # target: push p99 <= 50 ms; pull p99 <= P + 50 ms
_GIVE_UP = 10.0  # seconds a replica may take before the suite calls it broken
# Pull revocations in flight at once. More lanes finish sooner, but their polling loads the
# replicas' core and the client: 20 lanes (160 pollers) added ~150 ms to the p99 in a full run.
_PULL_LANES = 4
_PULL_POLL_PAUSE = 0.005  # seconds between a lane's checks of one replica while it waits for a pull


@dataclass(frozen=True)
class Size:
    replicas: int
    revocations: int
    poll: float  # the pull path's interval, seconds


SIZES = {"smoke": Size(2, 3, 0.2), "quick": Size(3, 20, 0.5), "full": Size(8, 200, 1.0)}


@dataclass(frozen=True)
class Path_:
    name: str
    issuer_env: dict[str, str]
    replica_env: dict[str, str]
    budget_ms: float
    lanes: int = 1  # revocations in flight at once
    jitter: float = 0.0  # each revocation waits a random 0..jitter s first (a random point of the poll cycle)
    pause: float = 0.0  # seconds between checks of a replica that still accepts the token


def paths(size: Size, prefix: str) -> list[Path_]:
    return [
        Path_("push SSE", {}, {}, PUSH_P99_MS),
        Path_(
            "push Redis",
            {"AUTH_REDIS_URL": REDIS_URL, "AUTH_REDIS_PREFIX": prefix},
            {"RESOURCE_REDIS_URL": REDIS_URL, "RESOURCE_REDIS_PREFIX": prefix},
            PUSH_P99_MS,
        ),
        Path_(
            f"pull every {size.poll:g} s",
            {},
            {"RESOURCE_REVOCATION_PUSH": "false", "RESOURCE_REVOCATION_POLL_INTERVAL": str(size.poll)},
            size.poll * 1000 + PUSH_P99_MS,
            lanes=min(_PULL_LANES, size.revocations),
            jitter=size.poll,
            pause=_PULL_POLL_PAUSE,
        ),
    ]


def run(ctx: Context) -> SuiteResult:
    size = SIZES[ctx.mode.name]
    prefix = f"bench-{uuid.uuid4().hex[:12]}:"
    rows: list[Row] = []
    for index, path in enumerate(paths(size, prefix)):
        arrivals, rounds = _path(ctx, index, path, size)
        rows += _rows(path, arrivals, rounds)
    return SuiteResult(
        "propagation",
        rows,
        [],
        ctx.checks,
        notes=[
            (
                f"{size.revocations} revocations x {size.replicas} replicas per path, each token accepted by every "
                f"replica just before; 'all replicas' is the slowest replica of each revocation; Redis prefix {prefix!r}"
            ),
            f"targets: push p99 <= {PUSH_P99_MS:g} ms, pull p99 <= P + {PUSH_P99_MS:g} ms, shown as the budget left",
            (
                f"push: one revocation at a time; pull: up to {_PULL_LANES} at once, each after a random 0..P delay, "
                f"replicas checked every {1000 * _PULL_POLL_PAUSE:g} ms while they still accept the token"
            ),
        ],
    )


def _path(ctx: Context, index: int, path: Path_, size: Size) -> tuple[list[float], list[float]]:
    auth, data = new_issuer(ctx, f"issuer-{index}", {"AUTH_LOGIN_MAX_FAILURES": "1000", **path.issuer_env})
    ctx.start([auth], "load")
    issuer = login(ctx, auth, data)
    replicas = [
        replica_process(f"p{index}-r{i}", auth_url=auth.url, data=ctx.workdir, env=path.replica_env)
        for i in range(size.replicas)
    ]
    ctx.start(replicas, "server")
    pool = mint_pool(issuer, size.revocations, ctx.workdir / f"pool-propagation-{index}.txt")
    arrivals, rounds, refused = asyncio.run(_measure(auth, replicas, pool, path))
    ctx.check(
        f"{path.name}: every replica refuses every revoked token",
        refused == len(pool) * len(replicas),
        f"{refused} refusals of {len(pool) * len(replicas)}",
    )
    for service in [*replicas, auth]:  # the next path gets the cores to itself
        service.stop()
    return arrivals, rounds


async def _measure(
    auth: Service, replicas: list[Service], pool: list[str], path: Path_
) -> tuple[list[float], list[float], int]:
    arrivals: list[float] = []
    rounds: list[float] = []
    limits = httpx.Limits(max_connections=path.lanes, max_keepalive_connections=path.lanes)
    clients = [httpx.AsyncClient(base_url=r.url, timeout=10, limits=limits) for r in replicas]

    async def lane(tokens: list[str], http: httpx.AsyncClient) -> None:
        for token in tokens:
            statuses = await asyncio.gather(*[c.get("/me", headers=bearer(token)) for c in clients])
            if any(s.status_code != 200 for s in statuses):
                raise BenchError(
                    f"a replica refused a token before its revocation: {[s.status_code for s in statuses]}"
                )
            await asyncio.sleep(random.uniform(0, path.jitter))
            response = await http.post(f"{auth.url}/revoke", data={"token": token, "client_id": CLIENT})
            start = time.perf_counter()
            if response.status_code != 200:
                raise BenchError(f"POST /revoke: {response.status_code} {response.text[:200]}")
            times = await asyncio.gather(*[_refused_after(c, token, start, path.pause) for c in clients])
            arrivals.extend(times)
            rounds.append(max(times))

    try:
        async with httpx.AsyncClient(timeout=10, limits=limits) as http:
            async with asyncio.TaskGroup() as group:
                for i in range(path.lanes):
                    group.create_task(lane(pool[i :: path.lanes], http))
    except ExceptionGroup as group:  # one lane's failure says what broke; the others were cancelled
        raise group.exceptions[0] from None
    finally:
        for client in clients:
            await client.aclose()
    return arrivals, rounds, len(arrivals)


async def _refused_after(client: httpx.AsyncClient, token: str, start: float, pause: float) -> float:
    while time.perf_counter() - start < _GIVE_UP:
        if (await client.get("/me", headers=bearer(token))).status_code == 401:
            return (time.perf_counter() - start) * 1000
        if pause:
            await asyncio.sleep(pause)
    raise BenchError(f"{client.base_url} still accepts a token revoked {_GIVE_UP:g} s ago")


def _rows(path: Path_, arrivals: list[float], rounds: list[float]) -> list[Row]:
    rows = []
    for what, values in (("all replicas", rounds), ("per replica", arrivals)):
        for stat, value in (
            ("median", statistics.median(values)),
            ("p99", percentile(values, 99)),
            ("worst", max(values)),
        ):
            rows.append(Row(path.name, f"{what}: {stat}", value, value, value, "ms"))
    rows.append(budget_row(path.name, "all replicas p99", [percentile(rounds, 99)], path.budget_ms, "ms"))
    return rows
