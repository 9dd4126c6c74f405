"""Suite "scaleout": what one request costs each replica as a strategy grows from 1 to 8 replicas.

On two cores the throughput of N replicas cannot grow with N (they share one core), so we
measure what can be judged here: the CPU time a request costs the replicas (summed over
them, from /proc) at N replicas behind the balancer, against one replica's. A strategy that
scales out keeps it flat (target: within 10 %); a shared bottleneck shows up as a cost that
grows with N, or as CPU spent outside the replicas (the Redis server's, reported apart).
Deployments and measurement are the strategies suite's (`strategies.py`): when that suite ran
earlier in the same `python -m bench`, its measurement of each size is used, not taken again.
"""

from __future__ import annotations

import statistics

from bench.harness import Context
from bench.report import Row, SuiteResult
from bench.strategies.cluster_runner import balancer_kind
from bench.suites._deployments import (
    CONTROL,
    Measured,
    SizeMeasured,
    deploy_all,
    measure_size,
    measured_before,
    row,
    sizes,
    stop_all,
)
from bench.suites._ours import Issuer, start_issuers

__all__ = ["BOTTLENECKS", "run"]

WITHIN = 1.10  # CPU per request at N may be at most 10 % above one replica's

BOTTLENECKS = {
    "tokens": "none on the request path: each replica verifies alone (keys and revocations are pulled "
    "in the background)",
    "redis": "the Redis server: one round trip per request, and its CPU (shown apart) is shared by every replica",
    "sticky": "none on the request path, but a replica's sessions die with it (see the strategies suite)",
    "cluster": "replication fan-out grows with N on every login (N-1 messages), and every replica holds "
    "every session, so memory per replica grows with all sessions, not its share",
    CONTROL: "none: the control. Whatever its CPU per request gains from 1 to N replicas is the cost of N "
    "event loops sharing one core, which every strategy pays on this machine",
}


def run(ctx: Context) -> SuiteResult:
    issuer: Issuer | None = None
    rows: list[Row] = []
    measured: list[Measured] = []
    base: dict[str, float] = {}
    profiles: list[str] = []
    reused: list[str] = []
    for n in sizes(ctx):
        size = measured_before(ctx, n)
        if size is not None:  # the strategies suite of this run measured the same deployments
            ctx.check(f"x{n} measured once, by the {size.by_suite} suite of this run", True)
            reused.append(f"x{n}")
        else:
            issuer = issuer or start_issuers(ctx, ["RS256"])["RS256"]
            size = _deploy_and_measure(ctx, n, issuer)
        if size.profile is not None:
            profiles.append(size.profile)
        these = list(size.measured)
        measured += these
        for name in size.names:
            strategy = name.rsplit(" x", 1)[0]
            mine = [m for m in these if m.run.contender == name]
            cpu = [m.run.cpu_us_per_request for m in mine]
            rows.append(row(name, "throughput", [m.run.rps for m in mine], "req/s"))
            rows.append(row(name, "CPU per request, replicas summed", cpu, "µs"))
            if strategy == "redis":
                rows.append(row(name, "Redis server CPU per request", [m.redis_us_per_request for m in mine], "µs"))
            if n > 1 and strategy != "sticky":  # sticky: wrk's one user is pinned to one replica
                shares = [max(m.per_replica_us) / min(m.per_replica_us) for m in mine if min(m.per_replica_us)]
                rows.append(row(name, "busiest ÷ idlest replica's CPU", shares or [0.0], "x"))
            rows.append(row(name, "failed requests", [float(m.run.failed) for m in mine], "per run"))
            if n == 1:
                base[strategy] = statistics.median(cpu)
            elif strategy in base:
                rows.append(row(name, "CPU/request at x1 ÷ here", [base[strategy] / c for c in cpu], "x", 1 / WITHIN))
                control = [m.run.cpu_us_per_request for m in these if m.run.contender == f"{CONTROL} x{n}"]
                if strategy != CONTROL and CONTROL in base and control:
                    # The control's own growth divided out: what is left is the strategy's.
                    growth = base[CONTROL] / statistics.median(control)
                    rows.append(
                        row(
                            name,
                            "same, ÷ no auth's (core sharing removed)",
                            [base[strategy] / c / growth for c in cpu],
                            "x",
                            1 / WITHIN,
                        )
                    )
    notes = [
        (
            f"balancer: {balancer_kind()}, on the server core with the replicas (its CPU is not counted); "
            "replicas share that core, so req/s stays near one core's worth whatever N is: the judged number "
            "is CPU per request"
        ),
        (
            "sticky: wrk is one user with one route cookie, so one replica serves every request and the "
            "others idle; round robin spreads the other strategies (busiest ÷ idlest replica's CPU)"
        ),
        (
            "CPU per request at N includes what idle-time work N replicas do (background key and revocation "
            "pulls for tokens) and N event loops taking turns on one core, each batching fewer requests"
        ),
        (
            f"target: CPU per request at N within {100 * (WITHIN - 1):.0f} % of one replica's "
            f"(x1 ÷ here >= {1 / WITHIN:.3f}), judged raw and again with the no-auth control's growth divided "
            "out: the raw row counts the machine's core sharing against every strategy, the second does not"
        ),
    ]
    notes += [f"shared bottleneck, {name}: {text}" for name, text in BOTTLENECKS.items()]
    if reused:
        notes.append(
            f"{', '.join(reused)}: the runs the strategies suite measured earlier in this invocation "
            "(every strategy and the control, alternated), judged here: measured once, not twice"
        )
    if any(r.met is False and r.contender.startswith("tokens") for r in rows):
        notes += profiles
    if ctx.mode.name == "quick":
        notes.append("quick: 1 and 2 replicas, 1 s per contender x 2 rounds; --full runs 1, 2, 4, 8 at 2 s x 2")
    return SuiteResult("scaleout", rows, [m.run for m in measured], ctx.checks, notes)


def _deploy_and_measure(ctx: Context, n: int, issuer: Issuer) -> SizeMeasured:
    deployments = deploy_all(ctx, n, issuer, control=True)
    try:
        for d in deployments:
            if d.strategy != CONTROL:
                ctx.expect(f"{d.name} /me answers 401 without a credential", f"{d.run.url}/me", 401)
            ctx.expect(f"{d.name} /me answers 200 with its credential", f"{d.run.url}/me", 200, d.headers)
        return measure_size(ctx, "scaleout", n, deployments)
    finally:
        stop_all(deployments)
