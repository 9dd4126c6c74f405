"""Logins and refreshes per second on SQLite and on PostgreSQL, measured in one run.

    python bench/grant_throughput.py [--seconds 5] [--rounds 2] [--workers 8]

One issuer at a time (SQLite file, then a fresh PostgreSQL database, alternated A B A B),
driven by an asyncio client: login workers post the password grant in a loop; refresh
workers log in once and then follow their own rotation chain (a refresh token is good
once). Login is Argon2id-bound (19 MiB, t=2), so it mostly measures hashing; refresh is
the database-bound grant (a conditional UPDATE and an INSERT per call).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from auth_service.launch import auth_process
from auth_service.storage import migration_engine
from auth_service.storage.schema import upgrade
from bench.suites._ours import CLIENT, LOGIN, add_login

_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


async def _drive(url: str, mode: str, workers: int, seconds: float) -> tuple[int, int]:
    """(successes, failures) within `seconds`."""
    login = LOGIN
    done = [0, 0]

    async def worker() -> None:
        async with httpx.AsyncClient(timeout=30) as http:
            refresh = None
            if mode == "refresh":
                refresh = (await http.post(f"{url}/token", data=login)).json()["refresh_token"]
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                form = (
                    login
                    if mode == "login"
                    else {"grant_type": "refresh_token", "refresh_token": refresh, "client_id": CLIENT}
                )
                response = await http.post(f"{url}/token", data=form)
                done[response.status_code != 200] += 1
                if mode == "refresh" and response.status_code == 200:
                    refresh = response.json()["refresh_token"]

    await asyncio.gather(*[worker() for _ in range(workers)])
    return done[0], done[1]


async def _new_database() -> tuple[str, str]:
    name = "bench_" + secrets.token_hex(4)
    conn = await asyncpg.connect(_ADMIN)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    engine = migration_engine(url)
    await upgrade(engine)
    await engine.dispose()
    return name, url


async def _drop(name: str) -> None:
    conn = await asyncpg.connect(_ADMIN)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


def measure(backend: str, args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        # Refresh workers follow one session's chain as fast as they can: no per-session limit.
        env = {
            "AUTH_LOGIN_MAX_FAILURES": "1000000",
            "AUTH_LOGIN_MAX_ATTEMPTS_PER_IP": "100000000",
            "AUTH_REFRESH_RATE": "1000000000",
        }
        name = None
        if backend == "postgresql":
            name, url = asyncio.run(_new_database())
            env |= {"AUTH_DATABASE_URL": url, "AUTH_KEYS_PASSPHRASE": "a bench keys passphrase"}
        try:
            add_login(data, env)
            auth = auth_process(data=data, env=env).start()
            try:
                out = {}
                for mode in ("login", "refresh"):
                    ok, failed = asyncio.run(_drive(auth.url, mode, args.workers, args.seconds))
                    if failed:
                        print(f"  {backend} {mode}: {failed} FAILED requests")
                    out[mode] = ok / args.seconds
                return out
            finally:
                auth.stop()
        finally:
            if name:
                asyncio.run(_drop(name))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {"sqlite": [], "postgresql": []}
    for _ in range(args.rounds):
        for backend in results:
            results[backend].append(measure(backend, args))
    print(f"{args.workers} workers, {args.seconds:g} s per run, {args.rounds} rounds (A B A B)")
    for mode in ("login", "refresh"):
        for backend, runs in results.items():
            values = [r[mode] for r in runs]
            print(
                f"  {mode:<8} {backend:<11} median {statistics.median(values):7.1f}/s  "
                f"(min-max {min(values):.1f}-{max(values):.1f})"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
