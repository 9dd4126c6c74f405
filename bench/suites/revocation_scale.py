"""Suite "revocation_scale": a replica holding N revocation entries (quick 100,000; full 1,000,000).

Two issuers, one with an empty feed and one with N `jti` entries written straight into its
SQLite database in one transaction (consecutive `seq`, the `feed` row's head set to N)
while it is stopped; it then restarts on the same port, so its tokens stay valid. The
first and the last entry revoke real tokens, so a replica that refuses both holds the
first page and the head.

- sync: from spawning a replica to its `/readyz` answering 200 (ready means its copy was
  in sync with the head at least once: only the last page of a paged snapshot does that),
  against the same for the empty feed; the difference is the snapshot's cost.
- memory: VmRSS of the N-entry replica minus that of the empty one, both after a warm /me.
- check cost: warm `/me` CPU per request with N entries against 0, through the harness.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from pathlib import Path

from auth_service.launch import Service, auth_process, replica_process
from bench.harness import BenchError, Contender, Context, measure, process_rss
from bench.report import Row, SuiteResult, contender_rows
from bench.suites._ops import budget_row, login, new_issuer, summary_row
from bench.suites._ours import bearer, mint_pool, segment

ENTRIES = {"smoke": 25_000, "quick": 100_000, "full": 1_000_000}
MEMORY_MB = 100.0  # target at 1,000,000 entries; scaled by N/1e6 at smaller sizes
CHECK_RATIO = 0.90  # "constant": N entries cost no more than 10 % more CPU per request than none


def run(ctx: Context) -> SuiteResult:
    count = ENTRIES[ctx.mode.name]
    empty_auth, empty_data = new_issuer(ctx, "issuer-empty")
    full_auth, full_data = new_issuer(ctx, "issuer-full")
    ctx.start([empty_auth, full_auth], "load")
    empty, full = login(ctx, empty_auth, empty_data), login(ctx, full_auth, full_data)
    first, last = mint_pool(full, 2, ctx.workdir / "pool-revoked.txt")
    full_auth.stop()
    started = time.monotonic()
    _fill(full_data / "data" / "auth.db", count, _jti(first), _jti(last))
    fill_seconds = time.monotonic() - started
    full_auth = auth_process(data=full_data, env={"AUTH_ACCESS_TOKEN_TTL": "3600"}, port=full_auth.port)
    ctx.start([full_auth], "load")

    empty_replica, empty_start = _start_replica(ctx, "scale-empty", empty_auth)
    full_replica, full_start = _start_replica(ctx, "scale-full", full_auth)
    for name, token, status in (
        ("the first entry's token", first, 401),
        ("the head entry's token", last, 401),
        ("a valid token", full.token, 200),
    ):
        ctx.expect(
            f"the {count:,}-entry replica answers {status} to {name}", f"{full_replica.url}/me", status, bearer(token)
        )
    ctx.expect("the empty replica accepts its token", f"{empty_replica.url}/me", 200, bearer(empty.token))
    delta = _rss(full_replica) - _rss(empty_replica)

    base, loaded = "/me, 0 entries", f"/me, {count:,} entries"
    runs = measure(
        ctx,
        [
            Contender(base, f"{empty_replica.url}/me", empty_replica, bearer(empty.token)),
            Contender(loaded, f"{full_replica.url}/me", full_replica, bearer(full.token)),
        ],
    )
    budget = MEMORY_MB * count / 1_000_000
    rows: list[Row] = [
        summary_row(loaded, "replica start to in sync", full_start, "s"),
        summary_row(base, "replica start to in sync", empty_start, "s"),
        summary_row(loaded, "snapshot sync (difference)", full_start - empty_start, "s"),
        summary_row(loaded, "RSS delta", delta / 2**20, "MiB"),
        summary_row(loaded, "RSS delta per entry", delta / count, "bytes"),
        budget_row(loaded, f"RSS delta (100 MB per 1e6 x {count:,})", [delta / 1e6], budget, "MB"),
        *contender_rows(runs, baseline=base, targets={loaded: CHECK_RATIO}),
    ]
    return SuiteResult(
        "revocation_scale",
        rows,
        runs,
        ctx.checks,
        notes=[
            f"{count:,} jti entries written into SQLite in one transaction in {fill_seconds:.1f} s (not via POST /revoke)",
            "sync: replica spawn to /readyz 200, Python start-up included: compare with the empty feed's row",
            (
                f"memory: VmRSS after sync minus an identical replica with 0 entries; target {MEMORY_MB:g} MB "
                f"at 1,000,000 entries, scaled to {budget:g} MB here"
            ),
            f"check cost: '÷ 0 entries' >= {CHECK_RATIO} means at most 10 % slower with the entries than without",
        ],
    )


def _jti(token: str) -> str:
    return str(segment(token.split(".")[1])["jti"])


def _fill(db: Path, count: int, first: str, last: str) -> None:
    """`count` live jti entries, seq 1..count, first and last given; the feed head at count."""
    now = int(time.time())
    values = [first, *(secrets.token_urlsafe(16) for _ in range(count - 2)), last]
    with sqlite3.connect(db) as conn:  # one transaction: committed on leaving the block
        if conn.execute("SELECT head FROM feed WHERE id = 1").fetchone()[0] != 0:
            raise BenchError(f"{db}: the feed is not empty")
        conn.executemany(
            "INSERT INTO revocations (seq, kind, value, before, expires_at, created_at) "
            "VALUES (?, 'jti', ?, NULL, ?, ?)",
            ((seq, value, now + 7200, now) for seq, value in enumerate(values, 1)),
        )
        conn.execute("UPDATE feed SET head = ? WHERE id = 1", (count,))
    conn.close()


def _start_replica(ctx: Context, name: str, auth: Service) -> tuple[Service, float]:
    """Spawn a replica and time it until /readyz says its copy reached the head."""
    service = replica_process(name, auth_url=auth.url, data=ctx.workdir)
    started = time.monotonic()
    ctx.start([service], "server")
    deadline = started + 300
    while ctx.http.get(f"{service.url}/readyz").status_code != 200:
        if time.monotonic() > deadline or not service.running():
            raise BenchError(f"{name} never became ready; see {service.log_path}")
        time.sleep(0.02)
    return service, time.monotonic() - started


def _rss(service: Service) -> int:
    assert service.pid is not None
    return process_rss(service.pid)
