"""How long from `POST /revoke` returning until every replica refuses the token.

    python bench/revocation_propagation.py [--replicas 3] [--count 50] [--path sse|redis|pull]

--path sse: replicas follow the issuer's SSE stream (the default). redis: the issuer
publishes to Redis (REDIS_URL, default the machine's) and replicas subscribe. pull: no
push at all, replicas poll every --poll seconds.

Each round logs in, checks that every replica accepts the token, revokes it, then polls
every replica concurrently (asyncio, one connection each) until all answer 401. Reports
the median and worst per replica-arrival and per round (the slowest replica). The polling
itself adds up to about a millisecond of resolution.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from auth_service.launch import Service, auth_process, replica_process
from bench.suites._ours import CLIENT, LOGIN, add_login


async def _refused_after(http: httpx.AsyncClient, url: str, token: str, start: float) -> float:
    headers = {"Authorization": f"Bearer {token}"}
    while time.perf_counter() - start < 10:
        if (await http.get(f"{url}/me", headers=headers)).status_code == 401:
            return (time.perf_counter() - start) * 1000
    raise RuntimeError(f"{url} still accepts a token revoked 10 s ago")


async def measure(
    auth: Service, replicas: list[Service], count: int, jitter: float = 0.0
) -> tuple[list[float], list[float]]:
    arrivals: list[float] = []
    rounds: list[float] = []
    clients = [httpx.AsyncClient(timeout=10) for _ in replicas]
    async with httpx.AsyncClient(timeout=10) as http:
        for _ in range(count):
            token = (
                await http.post(
                    f"{auth.url}/token",
                    data=LOGIN,
                )
            ).json()["access_token"]
            for client, rep in zip(clients, replicas, strict=True):
                assert (
                    await client.get(f"{rep.url}/me", headers={"Authorization": f"Bearer {token}"})
                ).status_code == 200
            # Pull mode: revoke at a random point of the poll cycle, not right after a pull.
            await asyncio.sleep(random.uniform(0, jitter))
            await http.post(f"{auth.url}/revoke", data={"token": token, "client_id": CLIENT})
            start = time.perf_counter()
            times = await asyncio.gather(
                *[_refused_after(c, r.url, token, start) for c, r in zip(clients, replicas, strict=True)]
            )
            arrivals.extend(times)
            rounds.append(max(times))
    for client in clients:
        await client.aclose()
    return arrivals, rounds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--path", choices=("sse", "redis", "pull"), default="sse")
    parser.add_argument("--poll", type=float, default=1.0, help="replicas' pull interval, seconds")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    prefix = f"bench-{os.getpid()}:"
    auth_env = {"AUTH_LOGIN_MAX_FAILURES": "1000"}
    replica_env = {"RESOURCE_REVOCATION_POLL_INTERVAL": str(args.poll)}
    if args.path == "redis":
        auth_env |= {"AUTH_REDIS_URL": args.redis_url, "AUTH_REDIS_PREFIX": prefix}
        replica_env |= {"RESOURCE_REDIS_URL": args.redis_url, "RESOURCE_REDIS_PREFIX": prefix}
    elif args.path == "pull":
        replica_env |= {"RESOURCE_REVOCATION_PUSH": "false"}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        services: list[Service] = []
        try:
            auth = auth_process(data=data, env=auth_env).start()
            services.append(auth)
            add_login(data)
            replicas = [
                replica_process(f"r{i}", auth_url=auth.url, data=data, env=replica_env).spawn()
                for i in range(args.replicas)
            ]
            services.extend(replicas)
            for rep in replicas:
                rep.wait_healthy(30)
            jitter = args.poll if args.path == "pull" else 0.0
            arrivals, rounds = asyncio.run(measure(auth, replicas, args.count, jitter))
        finally:
            for service in services:
                service.stop()
    q = statistics.quantiles
    how = {"sse": "push by SSE", "redis": "push by Redis pub/sub", "pull": f"pull only, every {args.poll:g} s"}
    print(f"{args.count} revocations x {args.replicas} replicas, {how[args.path]}")
    print(
        f"  per replica: median {statistics.median(arrivals):.1f} ms, p99 {q(arrivals, n=100)[98]:.1f} ms, "
        f"worst {max(arrivals):.1f} ms"
    )
    print(
        f"  all replicas: median {statistics.median(rounds):.1f} ms, p99 {q(rounds, n=100)[98]:.1f} ms, "
        f"worst {max(rounds):.1f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
