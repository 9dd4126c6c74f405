"""Suite "login": password logins per core (Argon2id, m=19 MiB, t=2, p=1), and the JWKS
endpoint's latency while logins saturate the issuer.

The issuer is pinned to the servers' core, so its logins/s are per core; logins per CPU
second are reported beside them. wrk POSTs a password grant for user `bench` (a Lua script
written to the scratch directory sets method and body, and prints the same statistics as
`bench/lua/summary.lua`). The login rate limits (`AUTH_LOGIN_MAX_FAILURES`,
`AUTH_LOGIN_MAX_ATTEMPTS_PER_IP`) are raised far out of the way: a 429 would count as a
failed request. Then the same storm runs while a second wrk reads `/.well-known/jwks.json`.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from pathlib import Path
from urllib.parse import urlencode

from bench.harness import CLK_TCK, BenchError, Context, process_ticks
from bench.report import Row, SuiteResult
from bench.suites._ops import LUA, budget_row, login, new_issuer, wrk_json
from bench.suites._ours import LOGIN

LOGIN_CONNECTIONS = 16  # as the earlier manual run: enough to keep every hashing thread busy
JWKS_CONNECTIONS = 4
JWKS_P99_MS = 20.0
_ENV = {"AUTH_LOGIN_MAX_FAILURES": "1000000000", "AUTH_LOGIN_MAX_ATTEMPTS_PER_IP": "1000000000"}


def run(ctx: Context) -> SuiteResult:
    auth, data = new_issuer(ctx, "issuer", _ENV)
    ctx.start([auth], "server")
    login(ctx, auth, data)  # the user logs in: a check before measuring
    ctx.expect("JWKS answers 200", f"{auth.url}/.well-known/jwks.json", 200)
    script = ctx.workdir / "login.lua"
    body = urlencode(LOGIN)
    script.write_text(
        f'dofile("{LUA / "summary.lua"}")\nwrk.method = "POST"\nwrk.body = "{body}"\n'
        'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
    )
    seconds = max(ctx.mode.seconds + 2, 3)  # a login takes tens of ms: give each run enough of them
    if ctx.mode.warmup:
        _wrk(ctx, f"{auth.url}/token", LOGIN_CONNECTIONS, ctx.mode.warmup, script)

    rows: list[Row] = []
    alone: list[float] = []
    storm: list[float] = []
    jwks: list[float] = []
    jwks_p50: list[float] = []
    cpu_rate: list[float] = []
    failures = 0
    for _ in range(ctx.mode.rounds):
        before = process_ticks(auth.pid or 0)
        stats = _wrk(ctx, f"{auth.url}/token", LOGIN_CONNECTIONS, seconds, script)
        cpu = (process_ticks(auth.pid or 0) - before) / CLK_TCK
        alone.append(stats["requests"] / (stats["duration_us"] / 1e6))
        cpu_rate.append(stats["requests"] / cpu if cpu else 0.0)
        failures += _failed(stats)
        logins, keys = _together(ctx, auth.url, seconds, script)
        storm.append(logins["requests"] / (logins["duration_us"] / 1e6))
        jwks.append(keys["p99_us"] / 1000)
        failures += _failed(logins) + _failed(keys)
        jwks_p50.append(keys["p50_us"] / 1000)
    if not auth.running():
        raise BenchError(f"the issuer died; see {auth.log_path}")
    ctx.check("every login and JWKS request answered 2xx", failures == 0, f"{failures} failed requests")
    rows += [
        _row("logins alone", "logins/s on one core", alone, "logins/s"),
        _row("logins alone", "logins per CPU second", cpu_rate, "logins/s"),
        _row("logins + JWKS", "logins/s on one core", storm, "logins/s"),
        _row("JWKS during logins", "latency p50", jwks_p50, "ms"),
        _row("JWKS during logins", "latency p99", jwks, "ms"),
        budget_row("JWKS during logins", "p99", jwks, JWKS_P99_MS, "ms"),
    ]
    return SuiteResult(
        "login",
        rows,
        [],
        ctx.checks,
        notes=[
            (
                f"issuer pinned to one core; {LOGIN_CONNECTIONS} wrk connections POST /token (password grant), "
                f"{JWKS_CONNECTIONS} more GET the JWKS at the same time; {seconds} s per run, {ctx.mode.rounds} rounds"
            ),
            "AUTH_LOGIN_MAX_FAILURES and AUTH_LOGIN_MAX_ATTEMPTS_PER_IP set to 1e9 so the rate limit does not interfere",
        ],
    )


def _together(ctx: Context, url: str, seconds: int, script: Path) -> tuple[dict[str, float], dict[str, float]]:
    """The login storm and a JWKS reader at once; the JWKS run starts a moment later and ends sooner."""
    storm = _spawn(ctx, f"{url}/token", LOGIN_CONNECTIONS, seconds, script)
    time.sleep(0.5)  # let the storm fill every hashing thread first
    keys = _spawn(ctx, f"{url}/.well-known/jwks.json", JWKS_CONNECTIONS, seconds - 1, LUA / "summary.lua")
    return (wrk_json(_finish(storm, seconds), "login storm"), wrk_json(_finish(keys, seconds), "JWKS"))


def _wrk(ctx: Context, url: str, connections: int, seconds: int, script: Path) -> dict[str, float]:
    return wrk_json(_finish(_spawn(ctx, url, connections, seconds, script), seconds), url)


def _spawn(ctx: Context, url: str, connections: int, seconds: int, script: Path) -> subprocess.Popen[str]:
    cmd = [
        *ctx.pinning.wrk_prefix(),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen[str], seconds: int) -> subprocess.CompletedProcess[str]:
    out, err = proc.communicate(timeout=seconds + 60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _failed(stats: dict[str, float]) -> int:
    return int(stats["status"] + stats["connect"] + stats["read"] + stats["write"] + stats["timeout"])


def _row(contender: str, metric: str, values: list[float], unit: str) -> Row:
    return Row(contender, metric, statistics.median(values), min(values), max(values), unit)
