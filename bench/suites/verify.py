"""Suite "verify": what the verifier costs the demo API's `/me`, against a no-auth route.

- warm: one token repeated, as a client with a session does: the replica's verified-token
  cache answers, and still checks expiry, key and revocation list on every request.
- cold: a different valid token on every request (wrk rotates a pool), on replicas whose
  cache is off (`RESOURCE_TOKEN_CACHE_SIZE=0`): every request pays the full parse and
  signature check. Measured for each signing algorithm the issuer offers.
- warm with metrics off (`RESOURCE_METRICS_ENABLED=false`): what counting every verification
  and timing every request for Prometheus costs the hot path.
"""

from __future__ import annotations

import random

from bench.harness import Contender, Context, app_process, measure
from bench.profile import profile_missed
from bench.report import SuiteResult, contender_rows, ratio_rows
from bench.suites._ours import bearer, mint_pool, replica, start_issuers

BASELINE = "no auth"
ALGS = ["RS256", "ES256", "EdDSA"]
WARM, WARM_BARE = "/me warm RS256", "/me warm RS256, metrics off"
TARGETS = {WARM: 0.90, "/me cold RS256": 0.60}  # ratio to the baseline; ES256/EdDSA: report only
METRICS_COST = {WARM_BARE: 0.95}  # metrics on ÷ off: counting may cost at most 5 %
_SAMPLE = 20  # pool tokens checked at a replica before measuring


def run(ctx: Context) -> SuiteResult:
    issuers = start_issuers(ctx, ALGS)
    noauth = app_process(ctx, "noauth", "bench.apps.noauth")
    warm = replica(issuers["RS256"], "warm-rs256", cache=True)
    bare = replica(issuers["RS256"], "warm-rs256-bare", cache=True, metrics=False)
    cold = {alg: replica(issuer, f"cold-{alg.lower()}", cache=False) for alg, issuer in issuers.items()}
    ctx.start([noauth, warm, bare, *cold.values()], "server")

    token = issuers["RS256"].token
    ctx.expect("no-auth route answers 200", f"{noauth.url}/me", 200)
    ctx.expect("warm /me accepts the issued token", f"{warm.url}/me", 200, bearer(token))
    ctx.expect("warm /me answers 401 without a credential", f"{warm.url}/me", 401)
    ctx.expect("warm /me serves /metrics", f"{warm.url}/metrics", 200)
    ctx.expect("warm /me with metrics off serves no /metrics", f"{bare.url}/metrics", 404)
    ctx.expect("warm /me with metrics off accepts the issued token", f"{bare.url}/me", 200, bearer(token))
    contenders = [
        Contender(BASELINE, f"{noauth.url}/me", noauth),
        Contender(WARM, f"{warm.url}/me", warm, bearer(token)),
        Contender(WARM_BARE, f"{bare.url}/me", bare, bearer(token)),
    ]
    for alg, server in cold.items():
        pool_file = ctx.workdir / f"pool-{alg.lower()}.txt"
        pool = mint_pool(issuers[alg], ctx.mode.pool, pool_file)
        sample = [pool[0], pool[-1], *random.sample(pool, min(_SAMPLE, len(pool)))]
        statuses = [ctx.http.get(f"{server.url}/me", headers=bearer(t)).status_code for t in sample]
        ctx.check(
            f"cold {alg} pool accepted ({len(sample)} of {len(pool)} sampled)",
            statuses == [200] * len(sample),
            f"statuses: {sorted(set(statuses))}",
        )
        contenders.append(Contender(f"/me cold {alg}", f"{server.url}/me", server, tokens=pool_file))

    runs = measure(ctx, contenders)
    rows = contender_rows(runs, baseline=BASELINE, targets=TARGETS) + ratio_rows(runs, WARM, METRICS_COST)
    named = {c.name: c for c in contenders}
    behind = {name: [named[name], named[BASELINE]] for name in TARGETS}
    behind[WARM_BARE] = [named[WARM], named[WARM_BARE]]
    profiles = profile_missed(ctx, rows, behind)
    return SuiteResult(
        "verify",
        rows,
        runs,
        ctx.checks,
        notes=[
            f"cold: {ctx.mode.pool} distinct tokens per algorithm, replica cache off: every request a full verification",
            (
                f"metrics: '{WARM}' counts and times every request for /metrics, '{WARM_BARE}' does not; "
                f"'{WARM} ÷ this' is the share of throughput kept with metrics on (target >= {METRICS_COST[WARM_BARE]:g})"
            ),
            *profiles,
        ],
    )
