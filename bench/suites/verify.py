"""Suite "verify": what the verifier costs a route, against the same route with no auth.

- quickstart: the verifier mounted as docs/quickstart.md says (`app.add_middleware`) around
  the baseline's route (`bench/apps/quickstart.py`), one token repeated.
- control: a bare dict of verified tokens around the baseline (`bench/apps/sketch.py`):
  the floor under any bearer check, mostly the server parsing the Authorization header.

- warm: one token repeated, as a client with a session does: the replica's verified-token
  cache answers, and still checks expiry, key and revocation list on every request.
- cold: a different valid token on every request (wrk rotates a pool twice the size of the
  replica's verified-token cache, so every request misses it, is verified in full and evicts
  another): the parse, the signature check and the cache's upkeep. Measured for each
  signing algorithm the issuer offers.
- control, signature only: the baseline's route behind nothing but the RS256 signature
  check of each new token (`bench/apps/sketch.py --signature-only`): the floor under any
  RS256 verifier on this machine, which the cold target is judged beside.
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
QUICKSTART, CONTROL = "quickstart warm RS256", "control: bare token dict"
SIGNATURE_ONLY = "control: cold RS256, signature only"
WARM, WARM_BARE = "/me warm RS256", "/me warm RS256, metrics off"
# Ratios to the baseline; the control, ES256 and EdDSA: report only.
TARGETS = {QUICKSTART: 0.95, WARM: 0.90, "/me cold RS256": 0.60}
METRICS_COST = {WARM_BARE: 0.95}  # metrics on ÷ off: counting may cost at most 5 %
_SAMPLE = 20  # pool tokens checked at a replica before measuring


def run(ctx: Context) -> SuiteResult:
    issuers = start_issuers(ctx, ALGS)
    noauth = app_process(ctx, "noauth", "bench.apps.noauth")
    mounted = {"RESOURCE_AUTH_URL": issuers["RS256"].service.url}
    quickstart = app_process(ctx, "quickstart", "bench.apps.quickstart", env=mounted)
    control = app_process(ctx, "control", "bench.apps.sketch", env=mounted)
    signature_only = app_process(ctx, "signature-only", "bench.apps.sketch", ["--signature-only"], env=mounted)
    warm = replica(issuers["RS256"], "warm-rs256", cache=True)
    bare = replica(issuers["RS256"], "warm-rs256-bare", cache=True, metrics=False)
    cache = ctx.mode.pool // 2  # the pool is twice the cache: every request misses it
    cold = {alg: replica(issuer, f"cold-{alg.lower()}", cache=cache) for alg, issuer in issuers.items()}
    ctx.start([noauth, quickstart, control, signature_only, warm, bare, *cold.values()], "server")

    token = issuers["RS256"].token
    ctx.expect("no-auth route answers 200", f"{noauth.url}/me", 200)
    ctx.expect("quickstart accepts the issued token", f"{quickstart.url}/me", 200, bearer(token))
    ctx.expect("quickstart answers 401 without a credential", f"{quickstart.url}/me", 401)
    ctx.expect("control accepts the issued token", f"{control.url}/me", 200, bearer(token))
    ctx.expect("warm /me accepts the issued token", f"{warm.url}/me", 200, bearer(token))
    ctx.expect("warm /me answers 401 without a credential", f"{warm.url}/me", 401)
    ctx.expect("warm /me serves /metrics", f"{warm.url}/metrics", 200)
    ctx.expect("warm /me with metrics off serves no /metrics", f"{bare.url}/metrics", 404)
    ctx.expect("warm /me with metrics off accepts the issued token", f"{bare.url}/me", 200, bearer(token))
    contenders = [
        Contender(BASELINE, f"{noauth.url}/me", noauth),
        Contender(CONTROL, f"{control.url}/me", control, bearer(token)),
        Contender(QUICKSTART, f"{quickstart.url}/me", quickstart, bearer(token)),
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
        if alg == "RS256":
            statuses = [ctx.http.get(f"{signature_only.url}/me", headers=bearer(t)).status_code for t in sample]
            ctx.check("signature-only control accepts the RS256 pool", statuses == [200] * len(sample), f"{statuses}")
            contenders.append(Contender(SIGNATURE_ONLY, f"{signature_only.url}/me", signature_only, tokens=pool_file))

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
            (
                f"cold: {ctx.mode.pool} distinct tokens per algorithm against a verified-token cache of {cache}: "
                "every request a full verification"
            ),
            (
                f"metrics: '{WARM}' counts and times every request for /metrics, '{WARM_BARE}' does not; "
                f"'{WARM} ÷ this' is the share of throughput kept with metrics on (target >= {METRICS_COST[WARM_BARE]:g})"
            ),
            *profiles,
        ],
    )
