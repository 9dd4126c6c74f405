"""Start N replicas of a session strategy behind a balancer on loopback; stop, kill and restart them.

    with start("sticky", 3) as run:          # balancer="auto": nginx if installed, else Python
        run.url, run.urls, run.pids, run.balancer_kind, run.balancer_pid
        run.bulk_sessions(100_000)          # sticky: split over replicas; cluster: on every one; redis: in Redis
        run.stats()                         # one /_stats per replica: rss_bytes, sessions, ...
        run.kill(1)                         # kill -9, mid-run if you like
        run.restart(1)                      # same port, same peers (cluster pulls a copy)

Ports are chosen before anything starts, so every replica can be told its peers. Each run
gets its own Redis key prefix and deletes its keys when it stops. `replica_death(run)`
(from `death.py`, re-exported here) measures what a crash costs each strategy.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from auth_service.launch import free_ports

from .death import DeathReport, replica_death
from .nginx import Nginx, balancer_kind
from .redis_store import DEFAULT_URL, delete_prefix

__all__ = ["DeathReport", "Replica", "Run", "balancer_kind", "replica_death", "start"]

_ROOT = Path(__file__).resolve().parents[2]  # the repository: `bench` must be importable by children


class _Process:
    """A child process started in its own session, output to a log file."""

    def __init__(self, name: str, cmd: Sequence[str], log: Path) -> None:
        self.name = name
        self.cmd = list(cmd)
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def spawn(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")]))}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.cmd, cwd=_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Replica(_Process):
    """One `python -m bench.strategies.serve` process."""

    def __init__(self, replica_id: str, port: int, cmd: Sequence[str], log: Path) -> None:
        super().__init__(replica_id, cmd, log)
        self.id = replica_id
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.upstream = f"127.0.0.1:{port}"  # how the balancer names it; `id` is its sticky route


def _wait_healthy(url: str, proc: _Process | Nginx, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.running():
            raise RuntimeError(f"{url} exited; last log lines:\n{log.read_text()[-2000:] if log.exists() else ''}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.03)
    raise RuntimeError(f"{url} not healthy after {timeout}s; see {log}")


class Run:
    """N replicas of one strategy and the balancer in front of them."""

    def __init__(
        self,
        strategy: str,
        replicas: list[Replica],
        balancer: _Process | Nginx,
        kind: str,
        balancer_url: str,
        workdir: Path,
        redis_url: str,
        redis_prefix: str,
    ) -> None:
        self.strategy = strategy
        self.replicas = replicas
        self.balancer = balancer
        self.balancer_kind = kind
        self.url = balancer_url
        self.workdir = workdir
        self.redis_url = redis_url
        self.redis_prefix = redis_prefix

    @property
    def urls(self) -> list[str]:
        return [r.url for r in self.replicas]

    @property
    def pids(self) -> list[int | None]:
        return [r.pid for r in self.replicas]

    @property
    def balancer_pid(self) -> int | None:
        return self.balancer.pid

    def bulk_sessions(self, count: int, replica: int | None = None, timeout: float = 300.0) -> list[dict[str, Any]]:
        """Make `count` live sessions exist in the deployment, as `count` logged-in users would.

        Sticky: split evenly over the running replicas (the balancer spreads users), so each
        holds about count/N. Cluster: created at one replica, which replicates them to all.
        Redis: written to Redis through one replica. `replica=i` sends all `count` to replica
        i instead. Returns each called replica's answer (created, sessions, seconds).
        """
        if replica is not None:
            targets = [(self.replicas[replica], count)]
        elif self.strategy == "sticky":
            alive = [r for r in self.replicas if r.running()]
            share, extra = divmod(count, len(alive))
            targets = [(r, share + (i < extra)) for i, r in enumerate(alive) if share + (i < extra)]
        else:
            targets = [(next(r for r in self.replicas if r.running()), count)]
        answers = []
        for node, n in targets:
            response = httpx.post(f"{node.url}/_bulk_sessions", params={"count": n}, timeout=timeout)
            response.raise_for_status()
            answers.append(response.json())
        return answers

    def stats(self) -> list[dict[str, Any] | None]:
        """`/_stats` of each replica (None for one that is down): rss_bytes, sessions, strategy facts."""
        out: list[dict[str, Any] | None] = []
        for replica in self.replicas:
            try:
                out.append(httpx.get(f"{replica.url}/_stats", timeout=30.0).json() if replica.running() else None)
            except httpx.HTTPError:
                out.append(None)
        return out

    def kill(self, index: int) -> int:
        """kill -9 one replica (no goodbye to peers or balancer); returns its pid."""
        replica = self.replicas[index]
        pid = replica.pid
        assert pid is not None and replica.running(), f"{replica.id} is not running"
        replica.stop(signal.SIGKILL)
        return pid

    def restart(self, index: int, timeout: float = 30.0) -> None:
        """Start a stopped replica again on its port with its peers (cluster: it pulls a full copy)."""
        replica = self.replicas[index]
        replica.spawn()
        _wait_healthy(replica.url, replica, timeout, replica.log)

    def stop(self) -> None:
        self.balancer.stop()
        for replica in self.replicas:
            replica.stop()
        if self.strategy == "redis":
            with contextlib.suppress(Exception):  # cleanup must not hide the run's own error
                delete_prefix(self.redis_url, self.redis_prefix)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()


def start(
    strategy: str,
    replicas: int = 3,
    *,
    balancer: str = "auto",
    redis_url: str = DEFAULT_URL,
    workdir: Path | None = None,
    timeout: float = 30.0,
) -> Run:
    """Start `replicas` replicas of `strategy` and a balancer (auto | nginx | python); wait until all are healthy."""
    kind = balancer_kind(balancer)
    workdir = workdir or Path(tempfile.mkdtemp(prefix=f"bench-{strategy}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    *ports, lb_port = free_ports(replicas + 1)
    prefix = f"bench-{strategy}-{secrets.token_hex(4)}"
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    nodes: list[Replica] = []
    for i, port in enumerate(ports):
        replica_id = f"{strategy}-{i + 1}"
        cmd = [
            sys.executable,
            "-m",
            "bench.strategies.serve",
            "--strategy",
            strategy,
            "--port",
            str(port),
            "--replica-id",
            replica_id,
            "--peers",
            ",".join(u for u in urls if u != urls[i]),
            "--redis-url",
            redis_url,
            "--redis-prefix",
            prefix,
        ]
        nodes.append(Replica(replica_id, port, cmd, workdir / f"{replica_id}.log"))
    upstreams = {r.id: r.upstream for r in nodes}
    lb: _Process | Nginx
    if kind == "nginx":
        lb = Nginx(workdir / "nginx", port=lb_port, upstreams=upstreams, sticky=strategy == "sticky")
        lb_log = lb.prefix / "error.log"
    else:
        lb_log = workdir / "balancer.log"
        lb = _Process(
            "balancer",
            [
                sys.executable,
                "-m",
                "bench.strategies.balancer",
                "--port",
                str(lb_port),
                "--upstreams",
                ",".join(f"{i}={a}" for i, a in upstreams.items()),
                "--mode",
                "sticky" if strategy == "sticky" else "round-robin",
            ],
            lb_log,
        )
    run = Run(strategy, nodes, lb, kind, f"http://127.0.0.1:{lb_port}", workdir, redis_url, prefix)
    try:
        for node in nodes:
            node.spawn()
        lb.spawn()
        for node in nodes:
            _wait_healthy(node.url, node, timeout, node.log)
        _wait_healthy(run.url, lb, timeout, lb_log)
    except BaseException:
        run.stop()
        raise
    return run
