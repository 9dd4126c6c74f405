"""A replica killed (SIGKILL) under load: the others serve on. Clients hammer each replica
directly, a client-side round robin spreads over all of them, and (when nginx is
installed) a client goes through the balancer; no valid request to a live replica fails."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest

from auth_service.balancer import Nginx, find_nginx
from auth_service.launch import Service, free_port
from tests.conftest import PASSWORD, Stack, eventually, require
from tests.faults.storm import add_users

pytestmark = pytest.mark.fault


@dataclass(frozen=True)
class Outcome:
    target: str  # the URL the request was sent to
    after_kill: bool  # sent once the killed replica was already reaped
    status: int | None  # None: no HTTP answer (connection refused or reset)
    replica: str | None  # X-Replica-Id of the answer


class Load:
    def __init__(self, token: str) -> None:
        self.headers = {"Authorization": f"Bearer {token}"}
        self.outcomes: list[Outcome] = []
        self.killed = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def run(self, targets: Callable[[int], str]) -> None:
        """A client thread sending to targets(0), targets(1), ... in turn."""
        self._threads.append(threading.Thread(target=self._loop, args=(targets,), daemon=True))
        self._threads[-1].start()

    def _loop(self, targets: Callable[[int], str]) -> None:
        # No keep-alive: every request opens a connection, as many independent clients would.
        with httpx.Client(timeout=10, limits=httpx.Limits(max_keepalive_connections=0)) as http:
            i = 0
            while not self._stop.is_set():
                url = targets(i)
                after = self.killed.is_set()
                try:
                    response = http.get(f"{url}/me", headers=self.headers)
                    outcome = Outcome(url, after, response.status_code, response.headers.get("x-replica-id"))
                except httpx.TransportError:
                    outcome = Outcome(url, after, None, None)
                    time.sleep(0.01)
                with self._lock:
                    self.outcomes.append(outcome)
                i += 1

    def served(self, target: str, *, after_kill: bool) -> int:
        with self._lock:
            return sum(o.status == 200 for o in self.outcomes if o.target == target and o.after_kill == after_kill)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)


def test_killing_one_replica_under_load_fails_no_request_to_the_others(stack: Stack) -> None:
    add_users(f"sqlite+aiosqlite:///{stack.tmp / 'data' / 'auth.db'}", ["alice"], PASSWORD, "reports:read")
    stack.start_auth()
    replicas = stack.start_replicas(3)
    victim, survivors = replicas[1], [replicas[0], replicas[2]]
    nginx_binary = find_nginx()
    nginx = None
    if nginx_binary is not None:
        nginx = Nginx(nginx_binary, [f"127.0.0.1:{r.port}" for r in replicas], free_port(), stack.tmp / "nginx").start()
    load = Load(str(stack.login()["access_token"]))
    urls = [r.url for r in replicas]
    try:
        for url in urls:
            load.run(lambda _, url=url: url)  # one client per replica
        load.run(lambda i: urls[i % len(urls)])  # a client spreading over all of them itself
        if nginx is not None:
            load.run(lambda _: nginx.url)  # type: ignore[union-attr]
        entry_points = [*urls, *([nginx.url] if nginx else [])]
        assert eventually(lambda: all(load.served(u, after_kill=False) >= 20 for u in entry_points), timeout=30)

        assert victim.stop(signal.SIGKILL) == -signal.SIGKILL
        load.killed.set()
        assert eventually(
            lambda: all(
                load.served(u, after_kill=True) >= 30
                for u in [*(r.url for r in survivors), *([nginx.url] if nginx else [])]
            ),
            timeout=30,
        )
    finally:
        load.stop()
        if nginx is not None:
            nginx.stop()

    answered = [o for o in load.outcomes if o.status is not None]
    assert {o.status for o in answered} == {200}, "every answer, before and after the kill, is a 200"
    unanswered = [o for o in load.outcomes if o.status is None]
    assert all(o.target == victim.url for o in unanswered), "only requests to the killed replica go unanswered"
    assert any(o.target == victim.url and o.after_kill for o in unanswered)  # the kill happened under load
    assert all(o.replica == _name(replicas, o.target) for o in answered if o.target in urls)
    if nginx is not None:
        through = [o for o in load.outcomes if o.target == nginx.url]
        assert through and all(o.status == 200 for o in through), "nginx retries the dead replica's share elsewhere"
        assert not any(o.after_kill and o.replica == victim.name for o in through)
    for rep in survivors:
        assert stack.http.get(f"{rep.url}/readyz").status_code == 200
    if nginx is None:  # the direct checks passed; the balancer's part could not run here
        require("nginx (apt-get install -y nginx) for the load-balanced part")


def _name(replicas: list[Service], url: str) -> str:
    return next(r.name for r in replicas if r.url == url)
