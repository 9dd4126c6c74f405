"""Redis killed and restarted (empty) while logins and revocations run. The Redis is the
test's own redis-server on a free port, never the machine's. Logins never fail, every
revocation reaches every replica (by pull while Redis is away), and once it is back the
service and the replicas use it again by themselves: revocations are pushed again."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import PASSWORD, Stack, eventually
from tests.faults.storm import STORM_ENV, add_users
from tests.own_servers import OwnRedis

pytestmark = pytest.mark.fault


class LoginsAndRevocations:
    """Threads that log in, check the token at a replica, and revoke it; every answer kept."""

    def __init__(self, stack: Stack, users: list[str]) -> None:
        assert stack.auth is not None
        self.auth, self.replicas, self.users = stack.auth.url, [r.url for r in stack.replicas], users
        self.statuses: Counter[str] = Counter()
        self.broken: list[str] = []
        self.revoked: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._work, args=(i,), daemon=True) for i in range(4)]
        for thread in self._threads:
            thread.start()

    def _work(self, worker: int) -> None:
        with httpx.Client(timeout=30) as http:
            i = 0
            while not self._stop.is_set():
                i += 1
                try:
                    self._round(http, worker, i)
                except httpx.HTTPError as exc:  # the service must stay up throughout
                    with self._lock:
                        self.broken.append(f"no answer: {type(exc).__name__}")

    def _round(self, http: httpx.Client, worker: int, i: int) -> None:
        user = self.users[(worker + i) % len(self.users)]
        login = http.post(f"{self.auth}/token", data={"grant_type": "password", "username": user, "password": PASSWORD})
        self._note("login", login)
        if login.status_code != 200:
            return
        token = login.json()["access_token"]
        me = http.get(f"{self.replicas[i % len(self.replicas)]}/me", headers={"Authorization": f"Bearer {token}"})
        self._note("me", me)
        revoke = http.post(f"{self.auth}/revoke", data={"token": token})
        self._note("revoke", revoke)
        if revoke.status_code == 200:
            with self._lock:
                self.revoked.append(token)

    def _note(self, kind: str, response: httpx.Response) -> None:
        with self._lock:
            self.statuses[f"{kind} {response.status_code}"] += 1
            if response.status_code != 200:
                self.broken.append(f"{kind}: {response.status_code} {response.text[:200]}")

    def count(self, what: str) -> int:
        with self._lock:
            return self.statuses[what]

    def report(self) -> str:
        with self._lock:
            return f"{dict(self.statuses)}; failures: {self.broken[:5]}"

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
        assert not any(t.is_alive() for t in self._threads), "a client hangs"


def push_status(stack: Stack) -> list[dict[str, object]]:
    return [stack.http.get(f"{rep.url}/healthz").json()["revocation_push"] for rep in stack.replicas]


@pytest.fixture
def redis(stack: Stack) -> Iterator[OwnRedis]:
    server = OwnRedis(stack.tmp).start()
    try:
        yield server
    finally:
        server.kill()


def test_a_redis_restart_under_load_loses_no_login_and_no_revocation(stack: Stack, redis: OwnRedis) -> None:
    users = [f"user-{i}" for i in range(4)]
    add_users(f"sqlite+aiosqlite:///{stack.tmp / 'data' / 'auth.db'}", users, PASSWORD)
    stack.start_auth(AUTH_REDIS_URL=redis.url, **STORM_ENV)
    stack.start_replicas(2, RESOURCE_REDIS_URL=redis.url, RESOURCE_REVOCATION_POLL_INTERVAL="1")
    assert eventually(lambda: all(s["source"] == "redis" and s["connected"] for s in push_status(stack)), timeout=15)
    assert stack.auth is not None

    load = LoginsAndRevocations(stack, users)
    try:
        assert eventually(lambda: load.count("revoke 200") >= 10, timeout=30), load.report()
        redis.kill()
        before = load.count("revoke 200")
        # Redis away: logins (rate limits fall back to local counters) and revocations go on.
        assert eventually(lambda: load.count("revoke 200") >= before + 10, timeout=30), load.report()
        readiness = stack.http.get(f"{stack.auth.url}/readyz")
        assert readiness.status_code == 503 and readiness.json()["checks"]["redis"].startswith("unavailable"), (
            readiness.text
        )
        redis.start()  # same port, empty
        restarted = load.count("revoke 200")
        assert eventually(lambda: load.count("revoke 200") >= restarted + 10, timeout=30), load.report()
    finally:
        load.stop()
    assert not load.broken, load.report()  # no login, check or revocation ever failed

    assert eventually(lambda: stack.http.get(f"{stack.auth.url}/readyz").status_code == 200, timeout=15)
    # Nothing lost: every revoked token is refused everywhere and is on the feed.
    assert eventually(
        lambda: all(stack.me(rep, token).status_code == 401 for rep in stack.replicas for token in load.revoked[-20:]),
        timeout=15,
    )
    assert all(stack.me(rep, token).status_code == 401 for rep in stack.replicas for token in load.revoked)
    feed = stack.http.get(f"{stack.auth.url}/revocations").json()
    assert len(feed["entries"]) == feed["cursor"] == len(load.revoked)

    # Pushed again: the replicas resubscribed and a new revocation arrives by Redis.
    assert eventually(lambda: all(s["connected"] for s in push_status(stack)), timeout=40, interval=0.2), push_status(
        stack
    )
    pushed_before = [int(s["pushed"]) for s in push_status(stack)]  # type: ignore[call-overload]

    def pushed_more() -> bool:
        token = str(stack.login(users[0])["access_token"])
        stack.http.post(f"{stack.auth.url}/revoke", data={"token": token})
        time.sleep(0.3)
        return all(int(s["pushed"]) > n for s, n in zip(push_status(stack), pushed_before, strict=True))  # type: ignore[call-overload]

    assert eventually(pushed_more, timeout=20, interval=0.1), (pushed_before, push_status(stack))
    print(f"load: {dict(load.statuses)}")
