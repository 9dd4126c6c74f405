"""Suite "verify": what the verifier costs the demo API's `/me`, against a no-auth route.

- warm: one token repeated, as a client with a session does: the replica's verified-token
  cache answers, and still checks expiry, key and revocation list on every request.
- cold: a different valid token on every request (wrk rotates a pool), on replicas whose
  cache is off (`RESOURCE_TOKEN_CACHE_SIZE=0`): every request pays the full parse and
  signature check. Measured for each signing algorithm the issuer offers.
"""

from __future__ import annotations

import random

from bench.harness import Contender, Context, app_process, measure
from bench.report import SuiteResult, contender_rows
from bench.suites._ours import bearer, mint_pool, replica, start_issuers

BASELINE = "no auth"
ALGS = ["RS256", "ES256", "EdDSA"]
TARGETS = {"/me warm RS256": 0.90, "/me cold RS256": 0.60}  # ratio to the baseline; ES256/EdDSA: report only
_SAMPLE = 20  # pool tokens checked at a replica before measuring


def run(ctx: Context) -> SuiteResult:
    issuers = start_issuers(ctx, ALGS)
    noauth = app_process(ctx, "noauth", "bench.apps.noauth")
    warm = replica(issuers["RS256"], "warm-rs256", cache=True)
    cold = {alg: replica(issuer, f"cold-{alg.lower()}", cache=False) for alg, issuer in issuers.items()}
    ctx.start([noauth, warm, *cold.values()], "server")

    token = issuers["RS256"].token
    ctx.expect("no-auth route answers 200", f"{noauth.url}/me", 200)
    ctx.expect("warm /me accepts the issued token", f"{warm.url}/me", 200, bearer(token))
    ctx.expect("warm /me answers 401 without a credential", f"{warm.url}/me", 401)
    contenders = [Contender(BASELINE, f"{noauth.url}/me", noauth),
                  Contender("/me warm RS256", f"{warm.url}/me", warm, bearer(token))]
    for alg, server in cold.items():
        pool_file = ctx.workdir / f"pool-{alg.lower()}.txt"
        pool = mint_pool(issuers[alg], ctx.mode.pool, pool_file)
        sample = [pool[0], pool[-1], *random.sample(pool, min(_SAMPLE, len(pool)))]
        statuses = [ctx.http.get(f"{server.url}/me", headers=bearer(t)).status_code for t in sample]
        ctx.check(f"cold {alg} pool accepted ({len(sample)} of {len(pool)} sampled)",
                  statuses == [200] * len(sample), f"statuses: {sorted(set(statuses))}")
        contenders.append(Contender(f"/me cold {alg}", f"{server.url}/me", server, tokens=pool_file))

    runs = measure(ctx, contenders)
    return SuiteResult("verify", contender_rows(runs, baseline=BASELINE, targets=TARGETS), runs, ctx.checks, notes=[
        f"cold: {ctx.mode.pool} distinct tokens per algorithm, replica cache off: every request a full verification",
    ])
