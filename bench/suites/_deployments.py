"""Deployments for the strategy suites: N replicas of one strategy behind one balancer,
and what their requests cost in CPU summed over every replica process.

`strategies.py` and `scaleout.py` both measure through these. Tokens deploy our issuer and
`resource_service` replicas behind the same balancer classes the session strategies use,
so `kill()` and `stop()` work alike for all four.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import cast

import httpx
import redis

from auth_service.launch import Service, free_ports
from bench.harness import CLK_TCK, BenchError, Contender, Context, Mode, core_ticks, measure, process_ticks
from bench.harness import Run as WrkRun
from bench.profile import profile
from bench.report import Row
from bench.strategies.cluster_runner import Replica, Run, balancer_kind, start
from bench.strategies.common import COOKIE, ROUTE
from bench.strategies.nginx import Nginx
from bench.strategies.redis_store import DEFAULT_URL
from bench.suites._ours import USERNAME, Issuer, bearer

__all__ = [
    "CONTROL",
    "STRATEGIES",
    "Deployment",
    "Lead",
    "Measured",
    "SizeMeasured",
    "by_contender",
    "contender_of",
    "cpu_ticks",
    "deploy",
    "deploy_all",
    "full_cost",
    "measure_deployments",
    "measure_size",
    "measured_before",
    "redis_cpu",
    "redis_info",
    "row",
    "sizes",
    "stop_all",
]

STRATEGIES = ("tokens", "redis", "sticky", "cluster")
CONTROL = "no auth"  # the scale-out control: N no-auth apps, for what sharing one core costs by itself
_SIZES = {"quick": (1, 2), "full": (1, 2, 4, 8), "smoke": (1, 2)}


def sizes(ctx: Context) -> tuple[int, ...]:
    """The replica counts both deployment suites measure in this mode."""
    return _SIZES.get(ctx.mode.name, (1, 2))


@dataclass
class Deployment:
    """One strategy at N replicas behind its balancer, and a logged-in user's credential."""

    strategy: str
    run: Run
    headers: dict[str, str]

    @property
    def name(self) -> str:
        return f"{self.strategy} x{len(self.run.replicas)}"

    def replica_pids(self) -> list[int]:
        return [r.pid for r in self.run.replicas if r.pid is not None and r.running()]


class Lead:
    """What the harness reads from a contender's server: the first replica stands for the run."""

    def __init__(self, deployment: Deployment) -> None:
        lead = deployment.run.replicas[0]
        self.name, self.pid, self.log_path = deployment.name, lead.pid, lead.log
        self._all = deployment.run.replicas

    def running(self) -> bool:
        return all(r.running() for r in self._all)


def deploy(ctx: Context, strategy: str, replicas: int, issuer: Issuer) -> Deployment:
    """Start a deployment, pin it (replicas and balancer) to the server core, log a user in.

    The balancer goes on the server core too: beside wrk it made the load core the limit, and
    the replicas were never saturated. Its CPU is counted apart (`Measured.balancer_us_per_request`).
    """
    workdir = ctx.workdir / f"{strategy.replace(' ', '-')}-{replicas}"
    if strategy in ("tokens", CONTROL):
        run = _start_behind_balancer(strategy, issuer, replicas, workdir)
    else:
        run = start(strategy, replicas, workdir=workdir)
    for pid in run.pids:
        assert pid is not None
        ctx.pinning.pin(pid, "server")
    for pid in _balancer_pids(run):
        ctx.pinning.pin(pid, "server")
    if strategy == "tokens":
        return Deployment(strategy, run, bearer(issuer.token))
    if strategy == CONTROL:
        return Deployment(strategy, run, {})
    response = httpx.post(
        f"{run.url}/login", data={"username": USERNAME}
    )  # not ctx.http: its jar would keep the cookie
    if response.status_code != 200:
        raise BenchError(f"{strategy} login failed: {response.status_code} {response.text[:200]}")
    cookies = {k: v for k, v in response.cookies.items() if k in (COOKIE, ROUTE)}
    return Deployment(strategy, run, {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())})


def deploy_all(ctx: Context, n: int, issuer: Issuer, *, control: bool = False) -> list[Deployment]:
    """Every strategy at `n` replicas, started at once (each start mostly waits for Python to import);
    with `control`, N no-auth apps behind a balancer too."""
    strategies = (*STRATEGIES, CONTROL) if control else STRATEGIES
    with ThreadPoolExecutor(len(strategies)) as pool:
        futures = [pool.submit(deploy, ctx, s, n, issuer) for s in strategies]
        errors = [f.exception() for f in futures]
    started = [f.result() for f, e in zip(futures, errors, strict=True) if e is None]
    failed = [e for e in errors if e is not None]
    if failed:
        stop_all(started)
        raise failed[0]
    return started


def stop_all(deployments: Sequence[Deployment]) -> None:
    with ThreadPoolExecutor(len(deployments) or 1) as pool:
        list(pool.map(lambda d: d.run.stop(), deployments))


def _balancer_pids(run: Run) -> list[int]:
    """The balancer's process and its children (nginx: the master and its worker)."""
    pid = run.balancer_pid
    if pid is None:
        return []
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [pid, *(int(p) for p in path.read_text().split())] if path.exists() else [pid]


def _start_behind_balancer(strategy: str, issuer: Issuer, n: int, workdir: Path) -> Run:
    """N demo API replicas (default cache), or N no-auth apps for the control, behind the same
    balancer the session strategies get."""
    workdir.mkdir(parents=True)
    kind = balancer_kind()
    *ports, lb_port = free_ports(n + 1)
    prefix = "noauth" if strategy == CONTROL else "tokens"

    def command(i: int, port: int) -> list[str]:
        if strategy == CONTROL:
            return [sys.executable, "-m", "bench.apps.noauth", "serve", "--host", "127.0.0.1", "--port", str(port)]
        return [
            sys.executable,
            "-m",
            "resource_service",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--replica-id",
            f"tokens-{i + 1}",
            "--auth-url",
            issuer.service.url,
        ]

    nodes = [
        Replica(f"{prefix}-{i + 1}", port, command(i, port), workdir / f"{prefix}-{i + 1}.log")
        for i, port in enumerate(ports)
    ]
    upstreams = {r.id: r.upstream for r in nodes}
    lb: Nginx | Replica
    if kind == "nginx":
        lb = Nginx(workdir / "nginx", port=lb_port, upstreams=upstreams, sticky=False)
    else:
        lb = Replica(
            "balancer",
            lb_port,
            [
                sys.executable,
                "-m",
                "bench.strategies.balancer",
                "--port",
                str(lb_port),
                "--upstreams",
                ",".join(f"{i}={a}" for i, a in upstreams.items()),
                "--mode",
                "round-robin",
            ],
            workdir / "balancer.log",
        )
    run = Run(strategy, nodes, lb, kind, f"http://127.0.0.1:{lb_port}", workdir, DEFAULT_URL, "unused")
    ready = "/healthz" if strategy == CONTROL else "/readyz"
    try:
        for node in nodes:
            node.spawn()
        lb.spawn()
        for url, path in [*((r.url, ready) for r in nodes), (run.url, "/healthz")]:
            _wait(f"{url}{path}", run)
    except BaseException:
        run.stop()
        raise
    return run


def _wait(url: str, run: Run, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not all(r.running() for r in run.replicas) or not run.balancer.running():
            raise BenchError(f"a process of the {run.strategy} deployment exited; see {run.workdir}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise BenchError(f"{url} not ready after {timeout}s")


def cpu_ticks(pids: Sequence[int]) -> int:
    return sum(process_ticks(pid) for pid in pids)


def redis_info(section: str) -> dict[str, float]:
    with redis.Redis.from_url(DEFAULT_URL) as client:
        return {k: v for k, v in client.info(section).items() if isinstance(v, int | float)}


def redis_cpu() -> float:
    info = redis_info("cpu")
    return info["used_cpu_sys"] + info["used_cpu_user"]


@dataclass(frozen=True)
class Measured:
    run: WrkRun  # CPU fields summed over every replica of the deployment
    redis_us_per_request: float  # the Redis server's CPU per request (0 for other strategies)
    balancer_us_per_request: float  # the balancer's (nginx master and worker), on the same core
    per_replica_us: tuple[float, ...]  # each replica's CPU over all requests: how evenly the balancer spread


@dataclass(frozen=True)
class SizeMeasured:
    """Every strategy and the no-auth control measured at one size, as both deployment suites use it."""

    measured: tuple[Measured, ...]
    names: tuple[str, ...]  # the deployments' names ("tokens x2", ...), in the order they were measured
    profile: str | None  # a note on tokens' profile at this size, taken only when profiling at x1 and the largest N
    by_suite: str  # the suite that measured it


def measured_before(ctx: Context, n: int) -> SizeMeasured | None:
    """Size `n` as an earlier suite of this `python -m bench` run measured it, if one did."""
    kept = ctx.shared.get(f"deployments x{n}")
    return kept if isinstance(kept, SizeMeasured) else None


def measure_size(ctx: Context, suite: str, n: int, deployments: Sequence[Deployment]) -> SizeMeasured:
    """Measure every strategy and the control at `n` replicas once per run.

    The strategies and scaleout suites judge the same runs (per-core cost against the Redis store,
    and cost at N against cost at 1), so whichever runs first measures and keeps the result in
    `ctx.shared`; the second uses it instead of deploying and measuring again. `deployments` must
    hold every strategy and the control.
    """
    kept = measured_before(ctx, n)
    if kept is not None:
        return kept
    assert {d.strategy for d in deployments} == {*STRATEGIES, CONTROL}, "measure every strategy and the control"
    these = measure_deployments(ctx, deployments)
    note = None
    if ctx.profiles is not None and n in (1, sizes(ctx)[-1]):
        # Tokens' first replica at x1 and at the largest N: the two to compare if x1 ÷ here misses.
        (tokens,) = [d for d in deployments if d.strategy == "tokens"]
        taken = profile(ctx, contender_of(tokens), ctx.profiles)
        note = taken if isinstance(taken, str) else taken.note()
    kept = SizeMeasured(tuple(these), tuple(d.name for d in deployments), note, suite)
    ctx.shared[f"deployments x{n}"] = kept
    return kept


def measure_deployments(ctx: Context, deployments: Sequence[Deployment]) -> list[Measured]:
    """Warm-up, then rounds of A B C ...: each a harness `measure` of one contender, replicas' CPU summed."""
    contenders = [contender_of(d) for d in deployments]
    mode = _mode(ctx)
    if mode.warmup:
        with Context(replace(mode, seconds=mode.warmup, rounds=1, warmup=0), ctx.pinning, ctx.workdir) as warm:
            measure(warm, contenders)
    out: list[Measured] = []
    with Context(replace(mode, rounds=1, warmup=0), ctx.pinning, ctx.workdir) as one:
        one.checks = ctx.checks  # refuses to measure after a failed check, as `measure` always does
        for round_ in range(mode.rounds):
            for deployment, contender in zip(deployments, contenders, strict=True):
                out.append(_one(one, deployment, contender, round_))
    return out


def contender_of(deployment: Deployment) -> Contender:
    """The deployment under wrk: `/me` through its balancer with its user's credential."""
    return Contender(deployment.name, f"{deployment.run.url}/me", cast(Service, Lead(deployment)), deployment.headers)


def _mode(ctx: Context) -> Mode:
    """Shorter runs than the other suites: 10 deployments (full: 20), measured once for both suites,
    must fit in well under a minute (full: a few). CPU per request, the judged number, settles within a second."""
    if ctx.mode.name == "quick":
        return replace(ctx.mode, seconds=1)
    if ctx.mode.name == "full":
        return replace(ctx.mode, seconds=2, rounds=2, warmup=1)
    return ctx.mode


def _one(ctx: Context, deployment: Deployment, contender: Contender, round_: int) -> Measured:
    pids, lb_pids = deployment.replica_pids(), _balancer_pids(deployment.run)
    each, lb_before = [process_ticks(pid) for pid in pids], cpu_ticks(lb_pids)
    core, redis_before, started = core_ticks(ctx.pinning.server), redis_cpu(), time.monotonic()
    (wrk,) = measure(ctx, [contender])
    wall = time.monotonic() - started
    used = [process_ticks(pid) - before for pid, before in zip(pids, each, strict=True)]
    cpu = sum(used) / CLK_TCK
    lb_cpu = (cpu_ticks(lb_pids) - lb_before) / CLK_TCK
    redis_used = redis_cpu() - redis_before if deployment.strategy == "redis" else 0.0
    other = wrk.other_load
    if other is not None:
        busy, total = (a - b for a, b in zip(core_ticks(ctx.pinning.server), core, strict=True))
        other = max(0.0, busy / total - (cpu + lb_cpu) / wall) if total else None
    n = max(wrk.requests, 1)
    summed = replace(wrk, round=round_, server_cpu=cpu / wall, cpu_us_per_request=cpu / n * 1e6, other_load=other)
    return Measured(summed, redis_used / n * 1e6, lb_cpu / n * 1e6, tuple(u / CLK_TCK / n * 1e6 for u in used))


def row(
    contender: str,
    metric: str,
    values: Sequence[float],
    unit: str,
    target: float | None = None,
    met: bool | None = None,
) -> Row:
    """A row like the harness's; `met` given when the target is not "median at least"."""
    median = statistics.median(values)
    if met is None and target is not None:
        met = median >= target
    return Row(contender, metric, median, min(values), max(values), unit, target, met)


def by_contender(measured: Sequence[Measured], name: str) -> list[Measured]:
    return [m for m in measured if m.run.contender == name]


def full_cost(m: Measured) -> float:
    return m.run.cpu_us_per_request + m.redis_us_per_request
