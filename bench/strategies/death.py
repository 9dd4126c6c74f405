"""What a replica crash costs a session strategy: users logged in, requests flowing, then kill -9.

Each simulated user logs in through the balancer and keeps calling `/me`. Part way through,
one replica is killed with SIGKILL (no chance to hand anything over). A user whose next
request comes back 401 has lost their session: they are *forced to log in again*, which
they do, and carry on. Afterwards every original session is checked directly at each
surviving replica: one that none of them accepts is *lost*. Sticky sessions should lose the
dead replica's share: both balancers send a user whose `route` names the dead replica on to
a live one, which answers 401 (not a 502 that would leave the user stuck until the replica
returned), so each of them is counted as forced to log in again. Clustering and Redis
should lose none.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import httpx

from .common import COOKIE

if TYPE_CHECKING:
    from .cluster_runner import Run

__all__ = ["DeathReport", "areplica_death", "replica_death"]


@dataclass
class DeathReport:
    strategy: str
    balancer: str
    replicas: int
    victim: str
    victim_pid: int
    users: int
    served_by_victim: int  # users whose last request before the crash the victim answered
    forced_relogin: int  # users who got a 401 after the crash and had to log in again
    sessions_lost: int  # original sessions no surviving replica accepts (checked directly)
    requests: int
    failed_requests: int  # neither 200 nor 401: 5xx from the balancer, or a transport error
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _User:
    name: str
    client: httpx.AsyncClient
    sid: str = ""
    last_replica: str = ""
    forced: bool = False
    requests: int = 0
    failed: int = 0

    async def login(self) -> bool:
        response = await self.client.post("/login", data={"username": self.name})
        if response.status_code != 200:
            return False
        self.sid = response.cookies.get(COOKIE) or ""
        return True

    async def loop(self, until: float, crashed: asyncio.Event, interval: float) -> None:
        while time.monotonic() < until:
            self.requests += 1
            try:
                response = await self.client.get("/me")
            except httpx.HTTPError:
                self.failed += 1
            else:
                if response.status_code == 200 and not crashed.is_set():
                    self.last_replica = response.headers.get("x-replica-id", "")
                elif response.status_code == 401:
                    self.forced = self.forced or crashed.is_set()
                    self.client.cookies.clear()
                    await self.login()
                elif response.status_code != 200:
                    self.failed += 1
            await asyncio.sleep(interval)


async def _accepted_anywhere(sid: str, urls: list[str]) -> bool:
    async with httpx.AsyncClient(timeout=5.0) as client:
        for url in urls:
            response = await client.get(f"{url}/me", headers={"cookie": f"{COOKIE}={sid}"})
            if response.status_code == 200:
                return True
    return False


async def areplica_death(
    run: Run, *, users: int = 30, victim: int = 0, before: float = 0.5, after: float = 1.5, interval: float = 0.02
) -> DeathReport:
    """Log `users` in, run them for `before` s, kill replica `victim`, run `after` s more, count."""
    started = time.monotonic()
    clients = [httpx.AsyncClient(base_url=run.url, timeout=5.0) for _ in range(users)]
    people = [_User(f"user-{i}", client) for i, client in enumerate(clients)]
    try:
        logged_in = await asyncio.gather(*(p.login() for p in people))
        if not all(logged_in):
            raise RuntimeError(f"{logged_in.count(False)} of {users} logins failed before the crash")
        original = [p.sid for p in people]
        crashed = asyncio.Event()
        until = time.monotonic() + before + after
        loops = asyncio.gather(*(p.loop(until, crashed, interval) for p in people))
        await asyncio.sleep(before)
        victim_id, pid = run.replicas[victim].id, run.kill(victim)
        crashed.set()
        await loops
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    survivors = [r.url for r in run.replicas if r.running()]
    lost = [not await _accepted_anywhere(sid, survivors) for sid in original]
    return DeathReport(
        strategy=run.strategy,
        balancer=run.balancer_kind,
        replicas=len(run.replicas),
        victim=victim_id,
        victim_pid=pid,
        users=users,
        served_by_victim=sum(p.last_replica == victim_id for p in people),
        forced_relogin=sum(p.forced for p in people),
        sessions_lost=sum(lost),
        requests=sum(p.requests for p in people),
        failed_requests=sum(p.failed for p in people),
        seconds=round(time.monotonic() - started, 3),
    )


def replica_death(run: Run, **options: Any) -> DeathReport:
    """`areplica_death` for synchronous callers (the harness, the tests)."""
    return asyncio.run(areplica_death(run, **options))
