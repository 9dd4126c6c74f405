"""Start, watch and stop real service processes on loopback (for the demo and the tests)."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

_PORTS_LOCK = threading.Lock()
_PORTS_GIVEN: set[int] = set()
_LOWEST_PORT = 10_000
_RANDOM = random.SystemRandom()  # not the global generator, which a test may seed


def _ephemeral_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (Linux default 32768-60999)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32_768, 60_999


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(n: int) -> list[int]:
    """`n` distinct loopback ports to start servers on, none handed out before by this process.

    Chosen at random below the kernel's ephemeral range. A port that `bind(0)` hands out
    comes from that range, and between closing it and the server binding it, any outgoing
    connection (a health check, a Redis client, wrk) may take it as its local port: the server
    then dies with "address already in use". Below the range only another listener can hold it.
    """
    low, _high = _ephemeral_range()
    pool = range(_LOWEST_PORT, low) if low - _LOWEST_PORT >= 1_000 else None
    chosen: list[int] = []
    with _PORTS_LOCK:
        if pool is not None and len(_PORTS_GIVEN) > len(pool) // 2:
            _PORTS_GIVEN.clear()  # a very long run: reuse, still checked by a bind below
        while len(chosen) < n:
            if pool is None:  # an unusual kernel range: fall back to the kernel's choice
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                    sock.bind(("127.0.0.1", 0))
                    port = int(sock.getsockname()[1])
            else:
                port = _RANDOM.choice(pool)
            if port not in _PORTS_GIVEN and _bindable(port):
                _PORTS_GIVEN.add(port)
                chosen.append(port)
    return chosen


def free_port() -> int:
    return free_ports(1)[0]


class Service:
    """One `python -m <module> serve ...` process whose output goes to a log file."""

    def __init__(
        self,
        name: str,
        module: str,
        args: Sequence[str],
        *,
        port: int,
        env: Mapping[str, str],
        log_dir: Path,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_dir / f"{name}.log"
        self._cmd = [sys.executable, "-m", module, "serve", "--host", "127.0.0.1", "--port", str(port), *args]
        self._env = {**os.environ, **env}
        self._cwd = cwd
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, *, wait: float = 30.0) -> Service:
        self.spawn()
        self.wait_healthy(wait)
        return self

    def spawn(self) -> Service:
        """Start the process without waiting (start several, then wait for each)."""
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                self._cmd, env=self._env, cwd=self._cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self._proc.returncode}; see {self.log_path}:\n"
                    + self.log_path.read_text()[-2000:]
                )
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} not healthy after {timeout}s; see {self.log_path}")

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        if self._proc is None:
            return None
        if self._proc.poll() is None:
            self._proc.send_signal(sig)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        return self._proc.returncode


def auth_process(*, data: Path, env: Mapping[str, str] | None = None, port: int | None = None) -> Service:
    port = port or free_port()
    base = {
        "AUTH_ISSUER": f"http://127.0.0.1:{port}",
        "AUTH_DATA_DIR": str(data / "data"),
        "AUTH_KEYS_DIR": str(data / "keys"),
    }
    return Service("auth", "auth_service", [], port=port, env={**base, **(env or {})}, log_dir=data)


def replica_process(
    replica_id: str, *, auth_url: str, data: Path, env: Mapping[str, str] | None = None, port: int | None = None
) -> Service:
    port = port or free_port()
    return Service(
        replica_id,
        "resource_service",
        ["--replica-id", replica_id, "--auth-url", auth_url],
        port=port,
        env=dict(env or {}),
        log_dir=data,
    )


def cli(
    args: Sequence[str], *, data: Path, env: Mapping[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `auth-service ARGS` against the same data and keys as `auth_process(data=...)`."""
    full_env = {**os.environ, "AUTH_DATA_DIR": str(data / "data"), "AUTH_KEYS_DIR": str(data / "keys"), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "auth_service", *args],
        input=stdin,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
