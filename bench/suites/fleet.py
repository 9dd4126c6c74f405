"""Suite "fleet": what a fleet of simulated replicas costs the issuers, and how fast it hears.

A simulated replica is the verifier's real parts (`bench/fleet/sim.py`: a `Verifier` with its
own HTTP and Redis clients, its `JwksCache`, `RevocationSync` and `RevocationList`) without
uvicorn; `PROCESSES` simulator processes share the fleet. Two real replica processes run
beside them as a control. They follow two issuer instances on one PostgreSQL database, with
Redis, behind nginx (`bench/fleet/deploy.py`, which says how the stream caps are sized).
Issuers and nginx are pinned to the server core; simulators, real replicas and the driver
to the other one, so the issuers' CPU is theirs alone.

For each fleet size (quick 200; full 200, 500, 1,000), a fresh deployment:

1. cold starts: the feed is filled to each of `FEEDS` entries, then every simulated replica
   of a fresh fleet (push off, so only the sync is measured) starts at once; time until all
   hold the feed at its head, the issuers' CPU less their idle rate, bytes served, memory per
   simulated replica. Memory per open stream at the issuers comes from the SSE fleet after.
   The baseline: one snapshot pull (all pages, as a replica asks) at one instance, CPU
   measured over `_BASELINE_PULLS` pulls, each of a new head so each renders. Once more at
   the largest feed with nginx's cache off: every request then reaches the issuers.
2. push over SSE, then over Redis, then the pull fallback (push off, every `PULL[0]` s): each
   revocation is a fresh access token (a refresh), revoked with `POST /revoke`; time from
   that returning until the last simulated replica holds the entry (`bench.fleet.sim`), and
   until each real replica answers 401. Issuer CPU per revocation (less the idle rate
   measured just before, heartbeats included) and per subscriber; the simulators' apart.
3. JWKS requests per second reaching nginx and the issuers, in steady state (the push
   window) and across a key rotation (`auth-service keys rotate`, the new key published a
   lead before it signs); every simulated replica then verifies a token of the new key, and
   none may have to fetch for an unknown kid.
4. every simulated replica ends holding exactly the issuer's list (feed, cursor, entries):
   the one check the smoke test relies on.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from auth_service.launch import Service, replica_process
from bench.fleet.deploy import REDIS_URL, Access, Deployment, deployment
from bench.fleet.driver import Simulators
from bench.harness import CLK_TCK, BenchError, Context, process_rss, process_ticks
from bench.report import Row, SuiteResult
from bench.suites._ops import percentile
from bench.suites._ours import CLIENT, bearer, segment

SIZES = {"smoke": (6,), "quick": (200,), "full": (200, 500, 1_000)}
PROCESSES = {"smoke": 2, "quick": 4, "full": 4}
FEEDS = {"smoke": (10, 100, 2_100), "quick": (100, 1_000, 10_000), "full": (100, 1_000, 10_000)}
ROUNDS = {"smoke": 1, "quick": 2, "full": 3}
PER_ROUND = {"smoke": 2, "quick": 10, "full": 20}  # push revocations per round and path
PULL = {"smoke": (0.5, 2), "quick": (2.0, 4), "full": (2.0, 6)}  # (poll interval s, revocations per round)
JWKS_MAX_AGE = {"smoke": 1, "quick": 5, "full": 5}  # short, so a rotation (lead: 2 x max-age + 2 s) fits
IDLE = {"smoke": 0.5, "quick": 2.0, "full": 3.0}  # seconds of nothing revoked, for the issuers' idle rate
REAL = 2  # real replica processes beside the simulated fleet
PUSH_P99_MS = 250.0
COLD_RATIO = 4.0  # a cold start costs the issuers at most this many snapshot pulls
LINEAR = 1.25  # per-subscriber CPU at the largest fleet at most this many times the smallest's
_BASELINE_PULLS = 5
_GIVE_UP = 15.0  # seconds a revocation may take to reach every replica before the suite is broken
_JWKS = "/.well-known/jwks.json"
# Seconds between the driver's checks of a real replica that still accepts a revoked token:
# coarse enough that the polling does not load the core the simulators run on.
_REAL_POLL = 0.005


@dataclass
class Size:
    """What one fleet size measured."""

    fleet: int
    rows: list[Row] = field(default_factory=list)
    push_p99: dict[str, float] = field(default_factory=dict)  # path -> median over rounds of the p99
    cpu_per_subscriber: dict[str, float] = field(default_factory=dict)  # path -> µs per revocation per subscriber


def run(ctx: Context) -> SuiteResult:
    sizes = [_size(ctx, fleet) for fleet in SIZES[ctx.mode.name]]
    rows = [row for size in sizes for row in size.rows]
    if len(sizes) > 1:
        rows += _growth(sizes)
    return SuiteResult(
        "fleet",
        rows,
        [],
        ctx.checks,
        notes=_notes(ctx),
        plot=lambda path: _plot(sizes, path),
    )


def _notes(ctx: Context) -> list[str]:
    poll, _ = PULL[ctx.mode.name]
    return [
        (
            f"simulated replicas: {PROCESSES[ctx.mode.name]} processes of real Verifiers (JwksCache, RevocationSync, "
            f"RevocationList, own httpx/Redis clients), {REAL} real replicas beside them as a control; two issuers on "
            "one PostgreSQL with Redis behind nginx; issuers and nginx on one core, everything else on the other"
        ),
        (
            f"push: {ROUNDS[ctx.mode.name]} rounds of {PER_ROUND[ctx.mode.name]} revocations per path; latency is "
            "from POST /revoke returning to the LAST simulated replica holding the entry (one sample per revocation); "
            f"target p99 <= {PUSH_P99_MS:g} ms at every size; pull (reported, no target): push off, every {poll:g} s, "
            "through nginx's cache, which adds up to AUTH_REVOCATION_PULL_MAX_AGE (2 s)"
        ),
        (
            "issuer CPU: both instances' utime+stime (10 ms ticks) over the window, less their idle rate measured "
            "just before (heartbeats to every stream included), per revocation and per subscriber"
        ),
        (
            "simulator bound: the replicas of one simulator process take turns on one event loop, and all four "
            "processes share one core; 'within one simulator process, first to last' is that serial cost, which a "
            "fleet with a replica per machine does not pay, and the real replicas beside them are the control"
        ),
        (
            f"cold start: feed filled in SQL, then a fresh fleet started at once; baseline = one snapshot pull at one "
            f"instance with a fresh head (render + serve), mean of {_BASELINE_PULLS}; target: a cold start's issuer "
            f"CPU beyond the smallest feed's (which is discovery, JWKS and one stream per replica) <= {COLD_RATIO:g} "
            "baselines; the issuers' idle rate, measured just before, is taken off over the start's duration (which the "
            "simulators' single core bounds: simulator CPU per replica x replicas)"
        ),
        "JWKS: AUTH_JWKS_MAX_AGE=5 so a rotation fits in the run; at the default 300 s divide the steady rate by 60",
    ]


# --- one fleet size ------------------------------------------------------------------------


def _size(ctx: Context, fleet: int) -> Size:
    size = Size(fleet)
    with deployment(ctx, fleet, jwks_max_age=JWKS_MAX_AGE[ctx.mode.name]) as deployed:
        http = httpx.Client(timeout=30)
        try:
            tokens = _Tokens(deployed, http)
            _cold_starts(ctx, deployed, size, http)
            issuer_rss = sum(process_rss(pid) for pid in deployed.issuer_pids)
            fleet_sims = _fresh_fleet(ctx, deployed, fleet, "sse")
            try:
                streams_rss = sum(process_rss(pid) for pid in deployed.issuer_pids) - issuer_rss
                size.rows.append(
                    _one(f"x{fleet} SSE", "issuer memory per open stream", streams_rss / fleet / 1024, "KiB")
                )
                _push_path(ctx, deployed, size, fleet_sims, tokens, "push SSE", {})
                _rotation(ctx, deployed, size, fleet_sims, tokens)
                _final_state(ctx, deployed, fleet_sims, "push SSE", fleet)
            finally:
                fleet_sims.close()
            for path, mode in (("push Redis", "redis"), ("pull", "pull")):
                sims = _fresh_fleet(ctx, deployed, fleet, mode)
                try:
                    env = _replica_env(deployed, mode, PULL[ctx.mode.name][0])
                    _push_path(ctx, deployed, size, sims, tokens, path, env)
                    _final_state(ctx, deployed, sims, path, fleet)
                finally:
                    sims.close()
        finally:
            http.close()
    return size


class _Tokens:
    """Fresh access tokens, each from a refresh (no password hash), through nginx."""

    def __init__(self, deployed: Deployment, http: httpx.Client) -> None:
        self._deployed, self._http = deployed, http
        self._refresh = deployed.login(http)["refresh_token"]

    def next(self) -> str:
        response = self._http.post(
            f"{self._deployed.url}/token",
            data={"grant_type": "refresh_token", "refresh_token": self._refresh, "client_id": CLIENT},
        )
        if response.status_code != 200:
            raise BenchError(f"refresh through nginx failed: {response.status_code} {response.text[:200]}")
        body = response.json()
        self._refresh = body["refresh_token"]
        return str(body["access_token"])


def _mode_command(deployed: Deployment, mode: str, poll: float) -> dict[str, Any]:
    return {
        "auth_url": deployed.url,
        "mode": mode,
        "poll": poll,
        "redis_url": REDIS_URL,
        "redis_prefix": deployed.prefix,
    }


def _replica_env(deployed: Deployment, mode: str, poll: float) -> dict[str, str]:
    if mode == "redis":
        return {"RESOURCE_REDIS_URL": REDIS_URL, "RESOURCE_REDIS_PREFIX": deployed.prefix}
    if mode == "pull":
        return {"RESOURCE_REVOCATION_PUSH": "false", "RESOURCE_REVOCATION_POLL_INTERVAL": str(poll)}
    return {}


def _fresh_fleet(ctx: Context, deployed: Deployment, fleet: int, mode: str) -> Simulators:
    """A new fleet in new processes, started at once and waited for until in sync and connected."""
    sims = Simulators(PROCESSES[ctx.mode.name], ctx.workdir, ctx.pinning)
    try:
        sims.build(fleet, **_mode_command(deployed, mode, PULL[ctx.mode.name][0]))
        feed, head, _ = deployed.head()
        sims.all({"op": "start", "feed": feed, "head": head})
        if mode != "pull":
            _wait_connected(sims, fleet)
    except BaseException:
        sims.close()
        raise
    return sims


def _wait_connected(sims: Simulators, fleet: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        connected = sum(s["connected"] for s in sims.all({"op": "stats"}))
        if connected == fleet:
            return
        if time.monotonic() > deadline:
            raise BenchError(f"only {connected} of {fleet} simulated replicas hold a push connection")
        time.sleep(0.1)


# --- cold start ----------------------------------------------------------------------------


def _cold_starts(ctx: Context, deployed: Deployment, size: Size, http: httpx.Client) -> None:
    """Each feed size, then the largest once more with nginx's cache off, each a fleet of its own
    with push off: a cold start is what syncing the list costs, no stream's heartbeats over its
    length, and no other fleet runs meanwhile. The fleet polls every `PULL` interval as the pull
    path does: a replica handed a page from before the last fill (nginx serves an expired page
    while one request refreshes it) catches up at its next poll, as it would behind a CDN."""
    feeds = FEEDS[ctx.mode.name]
    entries = 0
    fixed = 0.0
    for index, target in enumerate([*feeds, feeds[-1]]):
        cached = index < len(feeds)
        if target > entries:
            deployed.fill(target - entries)
            entries = target
        baseline = _baseline(deployed, http)
        if not cached:
            deployed.set_cache(False)
        sims = Simulators(PROCESSES[ctx.mode.name], ctx.workdir, ctx.pinning)
        try:
            before_rss = sum(s["rss"] for s in sims.all({"op": "stats"}))
            sims.build(size.fleet, **_mode_command(deployed, "pull", PULL[ctx.mode.name][0]))
            feed, head, _ = deployed.head()
            # The issuers' idle rate (tail reads, key reloads, heartbeats) just before: a cold start
            # bound by the simulators' core lasts long, and idle CPU over it is not its cost.
            idle = _idle_rate(deployed, IDLE[ctx.mode.name])
            cpu, nginx_cpu, since = _issuer_cpu(deployed), _nginx_cpu(deployed), time.time()
            answers = sims.all({"op": "start", "feed": feed, "head": head})
            seconds = max(a["synced"] for a in answers) - min(a["go"] for a in answers)
            raw, nginx_used = _issuer_cpu(deployed) - cpu, _nginx_cpu(deployed) - nginx_cpu
            used = max(raw - idle * seconds, 0.0)
            time.sleep(0.2)  # nginx writes a request's log line when it ends
            served = deployed.accesses(since)
            rss = sum(a["rss"] for a in answers)
            sim_cpu = sum(a["cpu"] for a in answers)
        finally:
            sims.close()
        label = f"x{size.fleet} cold, {target:,} entries" + ("" if cached else ", nginx cache off")
        pulls = [a for a in served if a.path == "/revocations"]
        size.rows += [
            _one(label, "time until all in sync", seconds, "s"),
            _one(label, "issuer CPU", raw, "s"),
            _one(label, "issuer CPU less its idle rate", used, "s"),
            _one(label, "one snapshot pull (baseline)", 1000 * baseline, "ms"),
            _one(label, "issuer CPU ÷ one snapshot pull", used / baseline, "x"),
            _one(label, "nginx CPU", nginx_used, "s"),
            _one(label, "simulator CPU per replica", sim_cpu / size.fleet * 1000, "ms"),
            _one(label, "memory per simulated replica", (rss - before_rss) / size.fleet / 1024, "KiB"),
            _one(label, "pull bytes sent by nginx", sum(a.sent for a in pulls) / 2**20, "MiB"),
            _one(label, "pull bytes from the issuers", sum(a.upstream for a in pulls) / 2**20, "MiB"),
            _one(label, "requests reaching the issuers", sum(1 for a in served if a.upstream), "requests"),
            _one(label, "requests served by nginx", len(served), "requests"),
            *_refusals(label, served),
        ]
        if index == 0:
            fixed = used  # discovery, JWKS, a stream per replica: what a cold start costs with next to no feed
        else:
            # The snapshot's share: this cold start less the smallest feed's, in snapshot pulls.
            # The target assumes a cache in front (the issue's "so a CDN or nginx cache can serve
            # it"); without one the row is the control that shows what the cache saves.
            beyond = (used - fixed) / baseline
            what = "issuer CPU beyond the smallest feed's ÷ one snapshot pull"
            size.rows.append(_left(label, what, beyond, COLD_RATIO, "x") if cached else _one(label, what, beyond, "x"))
        if not cached:
            deployed.set_cache(True)


def _baseline(deployed: Deployment, http: httpx.Client) -> float:
    """Issuer CPU seconds of one snapshot pull at instance a, rendering included: each of
    `_BASELINE_PULLS` pulls follows a new head (one more entry), so none is served from the
    page cache. Pages of 2,000 entries with gzip accepted, as a replica asks."""
    issuer = deployed.issuers[0]
    assert issuer.pid is not None
    used = 0
    for _ in range(_BASELINE_PULLS):
        deployed.fill(1)
        before = process_ticks(issuer.pid)
        params: dict[str, str] = {"limit": "2000"}
        while True:
            response = http.get(f"{issuer.url}/revocations", params=params)
            if response.status_code != 200:
                raise BenchError(f"baseline pull: {response.status_code} {response.text[:200]}")
            body = response.json()
            if not body["more"]:
                break
            params = {"after": str(body["cursor"]), "feed": body["feed"], "limit": "2000"}
        used += process_ticks(issuer.pid) - before
    return max(used / CLK_TCK / _BASELINE_PULLS, 1 / CLK_TCK / _BASELINE_PULLS)


# --- push and pull -------------------------------------------------------------------------


def _push_path(
    ctx: Context,
    deployed: Deployment,
    size: Size,
    sims: Simulators,
    tokens: _Tokens,
    path: str,
    replica_env: dict[str, str],
) -> None:
    poll = PULL[ctx.mode.name][0]
    real = [
        replica_process(
            f"real-{path.split()[-1].lower()}-{size.fleet}-{i}",
            auth_url=deployed.url,
            data=ctx.workdir,
            env=replica_env,
        )
        for i in range(REAL)
    ]
    ctx.start(real, "load")
    try:
        for replica in real:
            _wait_ready(replica)
        idle_seconds = IDLE[ctx.mode.name] if path != "pull" else poll * 2
        idle_cpu, idle_sims = _idle(deployed, sims, idle_seconds)
        per_round = PULL[ctx.mode.name][1] if path == "pull" else PER_ROUND[ctx.mode.name]
        lasts: list[list[float]] = []
        everyone: list[float] = []
        reals: list[float] = []
        spreads: list[float] = []  # per revocation: the widest first-to-last arrival within one simulator process
        cpu_per_revocation: list[float] = []
        sim_per_revocation: list[float] = []
        window_start = time.time()
        for _ in range(ROUNDS[ctx.mode.name]):
            minted = [tokens.next() for _ in range(per_round)]  # before the window: a refresh is not a revocation
            cpu, sim_cpu, started = _issuer_cpu(deployed), _sim_cpu(sims), time.monotonic()
            last: list[float] = []
            for token in minted:
                arrived, real_ms, spread = _one_revocation(deployed, sims, real, token)
                spreads.append(spread)
                last.append(max(arrived))
                everyone += arrived
                reals.append(max(real_ms))
            wall = time.monotonic() - started
            used = _issuer_cpu(deployed) - cpu - idle_cpu * wall
            sim_used = _sim_cpu(sims) - sim_cpu - idle_sims * wall
            cpu_per_revocation.append(max(used, 0.0) / per_round)
            sim_per_revocation.append(max(sim_used, 0.0) / per_round)
            lasts.append(last)
        time.sleep(0.2)
        window = time.time() - window_start
        window_all = deployed.accesses(window_start)
        jwks = [a for a in window_all if a.path == _JWKS]
        window_jwks = len(jwks)
    finally:
        for replica in real:
            replica.stop()
    label = f"x{size.fleet} {path}"
    p99s = [percentile(last, 99) for last in lasts]
    size.push_p99[path] = statistics.median(p99s)
    size.rows += [
        *(
            [_many(label, f"p99 <= {PUSH_P99_MS:g} ms: left", [PUSH_P99_MS - p for p in p99s], "ms", target=0.0)]
            if path != "pull"
            else []
        ),
        _many(label, "last simulated replica: p50", [statistics.median(last) for last in lasts], "ms"),
        _many(label, "last simulated replica: p99", p99s, "ms"),
        _many(label, "last simulated replica: max", [max(last) for last in lasts], "ms"),
        _one(label, "every simulated replica: p50", statistics.median(everyone), "ms"),
        _one(label, "within one simulator process, first to last: p50", statistics.median(spreads), "ms"),
        _one(label, "within one simulator process, first to last: p99", percentile(spreads, 99), "ms"),
        _one(label, f"real replicas (control, {REAL}): p99 of the last", percentile(reals, 99), "ms"),
        _one(label, f"real replicas (control, {REAL}): p50 of the last", statistics.median(reals), "ms"),
        _many(label, "issuer CPU per revocation", [1000 * c for c in cpu_per_revocation], "ms"),
        _many(
            label, "issuer CPU per revocation per subscriber", [1e6 * c / size.fleet for c in cpu_per_revocation], "µs"
        ),
        _many(
            label, "simulator CPU per revocation per replica", [1e6 * c / size.fleet for c in sim_per_revocation], "µs"
        ),
        _one(label, "issuer idle CPU (heartbeats, polls)", 100 * idle_cpu, "% core"),
    ]
    size.cpu_per_subscriber[path] = 1e6 * statistics.median(cpu_per_revocation) / size.fleet
    size.rows += _refusals(label, window_all)
    if path == "push SSE":
        size.rows.append(
            _one(f"x{size.fleet} JWKS", "steady: requests per second at nginx", window_jwks / window, "req/s")
        )
        size.rows.append(
            _one(f"x{size.fleet} JWKS", "steady: busiest second at nginx", _busiest_second(jwks), "requests")
        )
        size.rows.append(
            _one(
                f"x{size.fleet} JWKS",
                "steady: requests per second reaching the issuers",
                sum(1 for a in jwks if a.upstream) / window,
                "req/s",
            )
        )
    if path == "pull":
        pulls = [a for a in window_all if a.path == "/revocations"]
        size.rows += [
            _one(label, "pulls per second at nginx", len(pulls) / window, "req/s"),
            _one(label, "pulls per second reaching the issuers", sum(1 for a in pulls if a.upstream) / window, "req/s"),
        ]
    if path == "push Redis":
        size.rows.append(_one(label, "Redis memory per subscriber", _redis_per_client(), "KiB"))


def _one_revocation(
    deployed: Deployment, sims: Simulators, real: Sequence[Service], token: str
) -> tuple[list[float], list[float], float]:
    """Revoke a fresh token; (ms to each simulated replica, ms to each real replica)."""
    jti = str(segment(token.split(".")[1])["jti"])
    with httpx.Client(timeout=10) as poller:
        for replica in real:  # every replica accepts it first, or its refusal would prove nothing
            deadline = time.monotonic() + 10
            while (status := poller.get(f"{replica.url}/me", headers=bearer(token)).status_code) != 200:
                if time.monotonic() > deadline:
                    raise BenchError(f"{replica.name} refuses a fresh token before its revocation: {status}")
                time.sleep(0.05)
        sims.all({"op": "watch", "jti": jti})
        deployed.revoke(poller, token)
        revoked = time.monotonic()
        answers: list[dict[str, Any]] = []
        collector = threading.Thread(
            target=lambda: answers.extend(sims.all({"op": "arrivals", "jti": jti, "timeout": _GIVE_UP})), daemon=True
        )
        collector.start()
        real_ms = [_refused_after(poller, replica, token, revoked) for replica in real]
        collector.join()
    times = [t for answer in answers for t in answer["times"]]
    missing = sum(1 for t in times if t is None)
    if missing:
        raise BenchError(f"{missing} of {len(times)} simulated replicas did not hold a revocation after {_GIVE_UP:g} s")
    # Within one simulator process the replicas take turns on one event loop: first to last
    # arrival there is the simulator's own serial cost, which a real fleet (a replica per
    # machine) does not pay.
    spread = max(max(a["times"]) - min(a["times"]) for a in answers if a["times"])
    return [1000 * (t - revoked) for t in times], real_ms, 1000 * spread


def _refused_after(http: httpx.Client, replica: Service, token: str, revoked: float) -> float:
    while time.monotonic() - revoked < _GIVE_UP:
        if http.get(f"{replica.url}/me", headers=bearer(token)).status_code == 401:
            return 1000 * (time.monotonic() - revoked)
        time.sleep(_REAL_POLL)
    raise BenchError(f"{replica.name} still accepts a token revoked {_GIVE_UP:g} s ago")


def _idle_rate(deployed: Deployment, seconds: float) -> float:
    """The issuers' CPU per wall second while nothing happens."""
    cpu, started = _issuer_cpu(deployed), time.monotonic()
    time.sleep(seconds)
    return (_issuer_cpu(deployed) - cpu) / (time.monotonic() - started)


def _idle(deployed: Deployment, sims: Simulators, seconds: float) -> tuple[float, float]:
    """Issuer and simulator CPU per wall second with the fleet connected and nothing revoked."""
    cpu, sim, started = _issuer_cpu(deployed), _sim_cpu(sims), time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - started
    return (_issuer_cpu(deployed) - cpu) / wall, (_sim_cpu(sims) - sim) / wall


# --- rotation -------------------------------------------------------------------------------


def _rotation(ctx: Context, deployed: Deployment, size: Size, sims: Simulators, tokens: _Tokens) -> None:
    old_kid = segment(tokens.next().split(".")[0])["kid"]
    since = time.time()
    deployed.rotate()
    lead = 2 * deployed.jwks_max_age + 2
    deadline = time.monotonic() + lead + 20
    time.sleep(lead)
    while True:
        token = tokens.next()
        if segment(token.split(".")[0])["kid"] != old_kid:
            break
        if time.monotonic() > deadline:
            raise BenchError(f"the issuers still sign with {old_kid} {lead + 20} s after a rotation")
        time.sleep(0.5)
    answers = sims.all({"op": "verify", "token": token})
    window = time.time() - since
    time.sleep(0.2)
    jwks = [a for a in deployed.accesses(since) if a.path == _JWKS]
    outcomes: dict[str, int] = {}
    for answer in answers:
        for outcome, n in answer["outcomes"].items():
            outcomes[outcome] = outcomes.get(outcome, 0) + n
    unknown = sum(a["unknown_kids"] for a in answers)
    ctx.check(
        f"x{size.fleet}: every simulated replica accepts the first tokens of a rotated key",
        outcomes == {"accepted": size.fleet},
        f"outcomes {outcomes}",
    )
    label = f"x{size.fleet} JWKS"
    size.rows += [
        _one(label, "rotation: requests per second at nginx", len(jwks) / window, "req/s"),
        _one(
            label,
            "rotation: requests per second reaching the issuers",
            sum(1 for a in jwks if a.upstream) / window,
            "req/s",
        ),
        _one(label, "rotation: busiest second at nginx", _busiest_second(jwks), "requests"),
        _left(label, "rotation: verifications of an unknown kid", unknown, 0, "tokens"),
    ]


# --- correctness -----------------------------------------------------------------------------


def _final_state(ctx: Context, deployed: Deployment, sims: Simulators, path: str, fleet: int) -> None:
    """Every simulated replica holds the issuer's list: its feed at the head, every live jti,
    nothing else. Waits a little for the last pulls (the pull path's next poll)."""
    deadline = time.monotonic() + 2 * PULL[ctx.mode.name][0] + 10
    jtis_file = ctx.workdir / "live-jtis.txt"
    while True:
        feed, head, jtis = deployed.head()
        jtis_file.write_text("\n".join(jtis))
        answers = sims.all({"op": "state", "feed": feed, "head": head, "jtis": str(jtis_file), "size": len(jtis)})
        totals = {k: sum(a[k] for a in answers) for k in ("at_head", "holding_all", "sized")}
        if all(v == fleet for v in totals.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    ctx.check(
        f"x{fleet} {path}: every simulated replica ends with the issuer's list ({len(jtis):,} entries, head {head})",
        all(v == fleet for v in totals.values()),
        f"of {fleet}: at the head {totals['at_head']}, holding every entry {totals['holding_all']}, "
        f"exactly that many {totals['sized']}",
    )


# --- measuring helpers ------------------------------------------------------------------------


def _refusals(label: str, served: Sequence[Access]) -> list[Row]:
    """Answers that were not 2xx or 304, by status (499: the replica gave up waiting)."""
    statuses = sorted({a.status for a in served if a.status >= 400})
    return [
        _one(label, f"answers {status} at nginx", sum(1 for a in served if a.status == status), "requests")
        for status in statuses
    ]


def _busiest_second(accesses: Sequence[Access]) -> int:
    per_second: dict[int, int] = {}
    for access in accesses:
        per_second[int(access.at)] = per_second.get(int(access.at), 0) + 1
    return max(per_second.values(), default=0)


def _nginx_cpu(deployed: Deployment) -> float:
    return sum(process_ticks(pid) for pid in deployed.nginx_pids) / CLK_TCK


def _issuer_cpu(deployed: Deployment) -> float:
    return sum(process_ticks(pid) for pid in deployed.issuer_pids) / CLK_TCK


def _sim_cpu(sims: Simulators) -> float:
    return sum(process_ticks(pid) for pid in sims.pids) / CLK_TCK


def _wait_ready(replica: Service, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while httpx.get(f"{replica.url}/readyz", timeout=5).status_code != 200:
        if time.monotonic() > deadline:
            raise BenchError(f"{replica.name} not ready after {timeout:g} s; see {replica.log_path}")
        time.sleep(0.1)


def _redis_per_client() -> float:
    with redis.Redis.from_url(REDIS_URL) as client:
        clients = client.client_list(_type="pubsub")
        total = sum(int(c.get("tot-mem", 0)) for c in clients)
        return total / max(len(clients), 1) / 1024


def _one(
    contender: str, metric: str, value: float, unit: str, target: float | None = None, met: bool | None = None
) -> Row:
    return Row(contender, metric, value, value, value, unit, target, met)


def _left(contender: str, what: str, value: float, budget: float, unit: str) -> Row:
    """A number that must stay at or under `budget`, shown as what is left (the report's targets are "at least")."""
    left = budget - value
    return Row(contender, f"{what} = {value:.3g} {unit}, <= {budget:g}: left", left, left, left, unit, 0.0, left >= 0)


def _many(contender: str, metric: str, values: Sequence[float], unit: str, target: float | None = None) -> Row:
    median = statistics.median(values)
    return Row(
        contender, metric, median, min(values), max(values), unit, target, None if target is None else median >= target
    )


def _growth(sizes: Sequence[Size]) -> list[Row]:
    """Issuer CPU per revocation per subscriber at the largest fleet ÷ at the smallest: at most
    `LINEAR` means the cost of a revocation grows no faster than the number of subscribers."""
    small, large = sizes[0], sizes[-1]
    return [
        _left(
            f"{path}, x{small.fleet} -> x{large.fleet}",
            "issuer CPU per revocation per subscriber, growth",
            large.cpu_per_subscriber[path] / max(small.cpu_per_subscriber[path], 1e-9),
            LINEAR,
            "x",
        )
        for path in ("push SSE", "push Redis")
    ]


def _plot(sizes: Sequence[Size], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    fleets = [s.fleet for s in sizes]
    for name in ("push SSE", "push Redis", "pull"):
        ax.plot(fleets, [s.push_p99[name] for s in sizes], marker="o", label=name)
    ax.axhline(PUSH_P99_MS, color="grey", linestyle="--", label=f"push target {PUSH_P99_MS:g} ms")
    ax.set_xlabel("simulated replicas")
    ax.set_ylabel("p99 ms, POST /revoke to the last replica")
    ax.set_xticks(fleets)
    ax.legend()
    ax.set_title("revocation latency against fleet size")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
