"""Suite "scaleout": what one request costs each replica as a strategy grows from 1 to 8 replicas.

On two cores the throughput of N replicas cannot grow with N (they share one core), so we
measure what can be judged here: the CPU time a request costs the replicas (summed over
them, from /proc) at N replicas behind the balancer, against one replica's. A strategy that
scales out keeps it flat (target: within 10 %); a shared bottleneck shows up as a cost that
grows with N, or as CPU spent outside the replicas (the Redis server's, reported apart).
Deployments and measurement are the strategies suite's (`strategies.py`).
"""

from __future__ import annotations

import statistics

from bench.harness import Context
from bench.profile import profile
from bench.report import Row, SuiteResult
from bench.strategies.cluster_runner import balancer_kind
from bench.suites._ours import start_issuers
from bench.suites._deployments import (CONTROL, Measured, contender_of, deploy_all, measure_deployments, row, sizes,
                                      stop_all)

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
    issuer = start_issuers(ctx, ["RS256"])["RS256"]
    rows: list[Row] = []
    measured: list[Measured] = []
    base: dict[str, float] = {}
    profiles: list[str] = []
    counts = sizes(ctx)
    for n in counts:
        deployments = deploy_all(ctx, n, issuer, control=True)
        try:
            for d in deployments:
                if d.strategy != CONTROL:
                    ctx.expect(f"{d.name} /me answers 401 without a credential", f"{d.run.url}/me", 401)
                ctx.expect(f"{d.name} /me answers 200 with its credential", f"{d.run.url}/me", 200, d.headers)
            these = measure_deployments(ctx, deployments)
            if ctx.profiles is not None and n in (1, counts[-1]):
                # Tokens' first replica at x1 and at the largest N: the two to compare if x1 ÷ here misses.
                (tokens,) = [d for d in deployments if d.strategy == "tokens"]
                taken = profile(ctx, contender_of(tokens), ctx.profiles)
                profiles.append(taken if isinstance(taken, str) else taken.note())
        finally:
            stop_all(deployments)
        measured += these
        for d in deployments:
            mine = [m for m in these if m.run.contender == d.name]
            cpu = [m.run.cpu_us_per_request for m in mine]
            rows.append(row(d.name, "throughput", [m.run.rps for m in mine], "req/s"))
            rows.append(row(d.name, "CPU per request, replicas summed", cpu, "µs"))
            if d.strategy == "redis":
                rows.append(row(d.name, "Redis server CPU per request", [m.redis_us_per_request for m in mine], "µs"))
            if n > 1 and d.strategy != "sticky":  # sticky: wrk's one user is pinned to one replica
                shares = [max(m.per_replica_us) / min(m.per_replica_us) for m in mine if min(m.per_replica_us)]
                rows.append(row(d.name, "busiest ÷ idlest replica's CPU", shares or [0.0], "x"))
            rows.append(row(d.name, "failed requests", [float(m.run.failed) for m in mine], "per run"))
            if n == 1:
                base[d.strategy] = statistics.median(cpu)
            elif d.strategy in base:
                rows.append(row(d.name, "CPU/request at x1 ÷ here", [base[d.strategy] / c for c in cpu], "x",
                                1 / WITHIN))
                control = [m.run.cpu_us_per_request for m in these if m.run.contender == f"{CONTROL} x{n}"]
                if d.strategy != CONTROL and CONTROL in base and control:
                    # The control's own growth divided out: what is left is the strategy's.
                    growth = base[CONTROL] / statistics.median(control)
                    rows.append(row(d.name, "same, ÷ no auth's (core sharing removed)",
                                    [base[d.strategy] / c / growth for c in cpu], "x", 1 / WITHIN))
    notes = [f"balancer: {balancer_kind()}, on the server core with the replicas (its CPU is not counted); "
             "replicas share that core, so req/s stays near one core's worth whatever N is: the judged number "
             "is CPU per request",
             "sticky: wrk is one user with one route cookie, so one replica serves every request and the "
             "others idle; round robin spreads the other strategies (busiest ÷ idlest replica's CPU)",
             "CPU per request at N includes what idle-time work N replicas do (background key and revocation "
             "pulls for tokens) and N event loops taking turns on one core, each batching fewer requests",
             f"target: CPU per request at N within {100 * (WITHIN - 1):.0f} % of one replica's "
             f"(x1 ÷ here >= {1 / WITHIN:.3f}), judged raw and again with the no-auth control's growth divided "
             "out: the raw row counts the machine's core sharing against every strategy, the second does not"]
    notes += [f"shared bottleneck, {name}: {text}" for name, text in BOTTLENECKS.items()]
    if any(r.met is False and r.contender.startswith("tokens") for r in rows):
        notes += profiles
    if ctx.mode.name == "quick":
        notes.append("quick: 1 and 2 replicas, 1 s per contender x 2 rounds; --full runs 1, 2, 4, 8 at 2 s x 2")
    return SuiteResult("scaleout", rows, [m.run for m in measured], ctx.checks, notes)
