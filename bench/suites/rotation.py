"""Suite "rotation": no valid token is refused while the signing key rotates under load.

The issuer runs with `AUTH_JWKS_MAX_AGE=1`, so a new key is published 4 s before it signs
(docs/wire.md, key lifecycle). A background thread runs `auth-service keys rotate` every
`INTERVAL` seconds (a rotation is idempotent while one is pending, so the interval exceeds
the lead). Meanwhile the load comes in short wrk phases, one after another: before each
phase a fresh password login adds a token to the pool, and wrk cycles through the whole
pool (`bench/lua/rotate_tokens.lua`) at every replica in turn. So each phase sends tokens
signed before and after every rotation so far, including, within a couple of seconds of a
key starting to sign, that key's first tokens.

Target: 0 responses >= 400 (and 0 socket errors) for these valid tokens.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

from auth_service.launch import cli, replica_process
from bench.harness import Contender, Context, Mode, Run, measure
from bench.report import Row, SuiteResult
from bench.suites._ops import ISSUER_ENV, login, new_issuer, summary_row
from bench.suites._ours import segment

INTERVAL = 5.0  # seconds between rotations: the 4 s publish lead plus a margin
ROTATIONS = {"smoke": 1, "quick": 1, "full": 8}
REPLICAS = 2
_ENV = {"AUTH_JWKS_MAX_AGE": "1", "AUTH_LOGIN_MAX_FAILURES": "1000000", "AUTH_LOGIN_MAX_ATTEMPTS_PER_IP": "1000000"}
# Replicas run with their defaults (unknown-kid refetch interval 10 s): a new key must be
# known from the issuer's max-age schedule alone, within the 4 s publish lead.
_REPLICA_ENV: dict[str, str] = {}
_PHASE_SECONDS = 1  # each wrk run: short, so a fresh login (and a newly signing key) joins the pool often


def run(ctx: Context) -> SuiteResult:
    rotations = ROTATIONS[ctx.mode.name]
    auth, data = new_issuer(ctx, "issuer", _ENV)
    ctx.start([auth], "load")
    replicas = [
        replica_process(f"rot-r{i}", auth_url=auth.url, data=ctx.workdir, env=_REPLICA_ENV) for i in range(REPLICAS)
    ]
    ctx.start(replicas, "server")
    pool_file = ctx.workdir / "pool-rotation.txt"
    pool: list[str] = []
    contenders = [Contender(f"/me at replica {i}", f"{r.url}/me", r, tokens=pool_file) for i, r in enumerate(replicas)]
    phase = Context(Mode("phase", seconds=_PHASE_SECONDS, rounds=1, warmup=0, pool=0), ctx.pinning, ctx.workdir)
    phase.checks = ctx.checks  # measure() refuses after any failed check of the suite

    rotated: list[str] = []
    written: list[float] = []  # monotonic time each rotation's command returned
    failures: list[str] = []
    rotator = threading.Thread(target=_rotate, args=(data, rotations, rotated, written, failures), daemon=True)
    runs: list[Run] = []
    # The last key signs one publish lead after its rotation was written; logins go on until
    # then and a margin more, counted from when the command returned (it takes seconds on a
    # loaded machine), so the pool holds a token of every key.
    lead = 2 * int(_ENV["AUTH_JWKS_MAX_AGE"]) + 2
    rotator.start()
    try:
        while rotator.is_alive() or time.monotonic() < (written[-1] if written else 0.0) + lead + 3:
            pool.append(login(ctx, auth, data).token)
            pool_file.write_text("\n".join(pool) + "\n")
            for run_ in measure(phase, contenders):
                runs.append(dataclasses.replace(run_, round=len(runs) // len(contenders)))
    finally:
        rotator.join()
        phase.http.close()

    kids = list(dict.fromkeys(segment(t.split(".")[0])["kid"] for t in pool))
    ctx.check("every rotation succeeded", not failures and len(rotated) == rotations, "; ".join(failures))
    ctx.check(
        f"the pool holds tokens of every key ({rotations + 1} expected)",
        len(kids) == rotations + 1,
        f"{len(kids)} signing keys among {len(pool)} tokens",
    )
    requests = sum(r.requests for r in runs)
    refused = sum(r.failed for r in runs)
    ctx.check("zero responses >= 400 for valid tokens across rotations", refused == 0, f"{refused} of {requests}")
    share = 100.0 * (requests - refused) / requests if requests else 0.0
    rows = [
        summary_row("rotations", "keys rotated under load", float(len(rotated)), "keys"),
        summary_row("rotations", "signing keys in the pool", float(len(kids)), "keys"),
        summary_row("rotations", "valid tokens sent", float(len(pool)), "tokens"),
        summary_row("rotations", "requests", float(requests), "requests"),
        summary_row("rotations", "responses >= 400 or socket errors", float(refused), "requests"),
        Row("rotations", "valid-token requests answered 2xx", share, share, share, "%", 100.0, share >= 100.0),
    ]
    for contender in contenders:
        mine = [r.rps for r in runs if r.contender == contender.name]
        rows.append(
            Row(
                contender.name,
                "throughput during rotations",
                sorted(mine)[len(mine) // 2],
                min(mine),
                max(mine),
                "req/s",
            )
        )
    return SuiteResult(
        "rotation",
        rows,
        runs,
        ctx.checks,
        notes=[
            (
                f"{rotations} rotations every {INTERVAL:g} s (AUTH_JWKS_MAX_AGE=1: 4 s publish lead), load as "
                f"back-to-back {_PHASE_SECONDS} s wrk phases per replica over a token pool that grows by one "
                "fresh login per phase; login rate limits raised out of the way; replicas at default settings"
            ),
        ],
    )


def _rotate(data: Path, rotations: int, rotated: list[str], written: list[float], failures: list[str]) -> None:
    """`auth-service keys rotate` every INTERVAL s, with the issuer's own settings."""
    for _ in range(rotations):
        started = time.monotonic()
        done = cli(["keys", "rotate"], data=data, env={**ISSUER_ENV, **_ENV})
        if done.returncode != 0:
            failures.append(f"keys rotate exited {done.returncode}: {done.stderr[-500:]}")
            return
        rotated.append(done.stdout.strip())
        written.append(time.monotonic())
        time.sleep(max(0.0, INTERVAL - (time.monotonic() - started)))
