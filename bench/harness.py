"""The measurement harness: servers pinned to one core, wrk on another, CPU accounted per run.

The machine is shared and noisy, so nothing here trusts a single number: contenders are
measured in alternation (A B C, A B C, ...), every run records how much of the server's
core the server itself used (a run where other processes took the core shows up), and
the same wrk settings (`THREADS`, `CONNECTIONS`, the mode's duration) apply to every
contender. A suite starts its servers through a `Context`, checks they answer as they
should (`Context.expect`), then calls `measure`; it refuses to measure after a failed check.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import httpx

from auth_service.launch import Service, free_port
from bench import REPO

__all__ = [
    "CLK_TCK",
    "CONNECTIONS",
    "MODES",
    "THREADS",
    "BenchError",
    "Check",
    "Contender",
    "Context",
    "Mode",
    "Pinning",
    "Run",
    "app_process",
    "core_ticks",
    "measure",
    "process_rss",
    "process_ticks",
    "wrk_in_background",
    "wrk_missing",
]

# One wrk thread (it has a core to itself) and enough connections to keep a single
# uvicorn worker busy; the same for every contender, never tuned per contender.
THREADS = 1
CONNECTIONS = 32
LUA = REPO / "bench" / "lua"
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """The bench cannot give an honest number (a check failed, a server died, wrk failed)."""


@dataclass(frozen=True)
class Mode:
    name: str
    seconds: int  # wrk duration of one measured run
    rounds: int  # alternations of every contender
    warmup: int  # seconds of unrecorded load per contender before the first round; 0: none
    pool: int  # distinct tokens for the cold runs


MODES = {
    "quick": Mode("quick", seconds=1, rounds=2, warmup=0, pool=2_000),
    "full": Mode("full", seconds=6, rounds=3, warmup=2, pool=10_000),
    "smoke": Mode("smoke", seconds=1, rounds=1, warmup=0, pool=200),  # the test suite's: correctness only
}


@dataclass(frozen=True)
class Pinning:
    """Which core the servers under test get and which the load generator gets."""

    server: int | None
    load: int | None
    note: str

    @classmethod
    def detect(cls) -> Pinning:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            return cls(
                None,
                None,
                f"NOT PINNED: one core available ({cpus}); server and wrk share it, "
                "so absolute req/s are low, ratios still compare like with like",
            )
        if shutil.which("taskset") is None:
            return cls(None, None, "NOT PINNED: taskset (util-linux) is missing")
        return cls(cpus[0], cpus[1], f"servers pinned to core {cpus[0]}, wrk and the issuers to core {cpus[1]}")

    def pin(self, pid: int, role: Literal["server", "load"]) -> None:
        """Pin every thread of `pid` (taskset -a -p); threads started later inherit it."""
        cpu = self.server if role == "server" else self.load
        if cpu is None:
            return
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                os.sched_setaffinity(int(task.name), {cpu})
            except ProcessLookupError:  # a thread that ended meanwhile
                pass

    def wrk_prefix(self) -> list[str]:
        return [] if self.load is None else ["taskset", "-c", str(self.load)]


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Contender:
    """One server route under load. `tokens`: a file of bearer tokens, a different one per request."""

    name: str
    url: str
    server: Service
    headers: Mapping[str, str] = field(default_factory=dict)
    tokens: Path | None = None


@dataclass(frozen=True)
class Run:
    contender: str
    round: int
    requests: int
    seconds: float  # as wrk measured it
    rps: float
    p50_ms: float
    p99_ms: float
    bad_status: int  # responses with status >= 400 (wrk's "Non-2xx or 3xx responses")
    socket_errors: int  # connect + read + write + timeout
    server_cpu: float  # share of one core the server process used over the run's wall time
    cpu_us_per_request: float
    other_load: float | None  # share of the server's core used by anything else (None: not pinned)
    loadgen_cpu: float  # share of a core wrk used: near 1.0 means the load generator was the limit

    @property
    def failed(self) -> int:
        return self.bad_status + self.socket_errors


class Context:
    """What a suite works with: mode, pinning, a scratch directory, checks, and its servers.

    Servers started through `start` are stopped when the context closes, whatever happens.
    """

    def __init__(
        self,
        mode: Mode,
        pinning: Pinning,
        workdir: Path,
        profiles: Path | None = None,
        shared: dict[str, Any] | None = None,
    ) -> None:
        self.mode = mode
        self.pinning = pinning
        self.workdir = workdir
        self.profiles = profiles  # where profiles behind missed targets go; None: take none
        # What one suite measured that a later suite of the same `python -m bench` run may use
        # instead of measuring it again (the strategies and scaleout suites' deployments).
        self.shared = shared if shared is not None else {}
        self.checks: list[Check] = []
        self.http = httpx.Client(timeout=10.0)
        self._services: list[Service] = []

    def __enter__(self) -> Context:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()
        with ThreadPoolExecutor() as pool:  # each stop waits for a graceful shutdown: wait for all at once
            list(pool.map(Service.stop, self._services))
        self._services.clear()

    def start(self, services: Iterable[Service], role: Literal["server", "load"]) -> None:
        """Spawn all, then wait for each (they start in parallel); pin each to its core."""
        started = [service.spawn() for service in services]
        self._services.extend(started)
        for service in started:
            service.wait_healthy(60.0)
            assert service.pid is not None
            self.pinning.pin(service.pid, role)

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(name, ok, detail))
        return ok

    def expect(self, name: str, url: str, status: int, headers: Mapping[str, str] | None = None) -> bool:
        """GET `url` and record whether it answered exactly `status` (a redirect is a failure)."""
        response = self.http.get(url, headers=dict(headers or {}))
        return self.check(
            name,
            response.status_code == status,
            f"GET {url}: {response.status_code} (expected {status}) {response.text[:200]}",
        )


def app_process(
    ctx: Context, name: str, module: str, args: Sequence[str] = (), env: Mapping[str, str] | None = None
) -> Service:
    """A bench app (`bench/apps`, `bench/peers`) run like every other contender."""
    return Service(name, module, args, port=free_port(), env=dict(env or {}), log_dir=ctx.workdir, cwd=REPO)


def wrk_missing() -> str | None:
    """Why the bench cannot run, or None."""
    if shutil.which("wrk") is None:
        return "wrk is not installed; install it with: sudo apt-get install wrk (Debian/Ubuntu package 'wrk')"
    return None


def measure(ctx: Context, contenders: Sequence[Contender]) -> list[Run]:
    """Warm each contender up, then measure them in alternation for the mode's rounds."""
    failed = [c for c in ctx.checks if not c.ok]
    if failed:
        raise BenchError(
            "refusing to measure after failed checks:\n  " + "\n  ".join(f"{c.name}: {c.detail}" for c in failed)
        )
    if ctx.mode.warmup:
        for contender in contenders:
            _wrk(ctx, contender, ctx.mode.warmup)
    runs: list[Run] = []
    for round_ in range(ctx.mode.rounds):
        for contender in contenders:
            runs.append(_measured(ctx, contender, round_))
    return runs


def _measured(ctx: Context, contender: Contender, round_: int) -> Run:
    pid = contender.server.pid
    assert pid is not None
    core = ctx.pinning.server
    cpu_before, core_before = process_ticks(pid), core_ticks(core)
    child_before = _children_cpu()
    start = time.monotonic()
    stats = _wrk(ctx, contender, ctx.mode.seconds)
    wall = time.monotonic() - start
    cpu = (process_ticks(pid) - cpu_before) / CLK_TCK
    loadgen = _children_cpu() - child_before
    if not contender.server.running():
        raise BenchError(f"{contender.server.name} died during the run; see {contender.server.log_path}")
    other: float | None = None
    if core is not None:
        busy, total = (after - before for after, before in zip(core_ticks(core), core_before, strict=True))
        other = max(0.0, busy / total - cpu / wall) if total else None
    requests = int(stats["requests"])
    seconds = stats["duration_us"] / 1e6
    return Run(
        contender=contender.name,
        round=round_,
        requests=requests,
        seconds=seconds,
        rps=requests / seconds if seconds else 0.0,
        p50_ms=stats["p50_us"] / 1000,
        p99_ms=stats["p99_us"] / 1000,
        bad_status=int(stats["status"]),
        socket_errors=int(stats["connect"] + stats["read"] + stats["write"] + stats["timeout"]),
        server_cpu=cpu / wall,
        cpu_us_per_request=cpu / requests * 1e6 if requests else 0.0,
        other_load=other,
        loadgen_cpu=loadgen / wall,
    )


@contextmanager
def wrk_in_background(ctx: Context, contender: Contender, seconds: int) -> Iterator[None]:
    """wrk loads `contender` while the block runs (for a profiler); its numbers are not kept."""
    load = subprocess.Popen(
        _wrk_command(ctx, contender, seconds), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO
    )
    try:
        time.sleep(0.5)  # connections open and the server is busy before sampling starts
        yield
    finally:
        load.terminate()
        load.wait(timeout=30)


def _wrk_command(ctx: Context, contender: Contender, seconds: int) -> list[str]:
    script = LUA / ("rotate_tokens.lua" if contender.tokens else "summary.lua")
    cmd = [
        *ctx.pinning.wrk_prefix(),
        "wrk",
        f"-t{THREADS}",
        f"-c{CONNECTIONS}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        str(script),
    ]
    for name, value in contender.headers.items():
        cmd += ["-H", f"{name}: {value}"]
    cmd.append(contender.url)
    if contender.tokens:
        cmd += ["--", str(contender.tokens)]
    return cmd


def _wrk(ctx: Context, contender: Contender, seconds: int) -> dict[str, float]:
    cmd = _wrk_command(ctx, contender, seconds)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, cwd=REPO)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise BenchError(f"wrk failed for {contender.name} (exit {done.returncode}):\n{done.stdout}{done.stderr}")
    return {k: float(v) for k, v in json.loads(line.removeprefix("BENCH_JSON ")).items()}


def process_ticks(pid: int) -> int:
    """utime + stime of every thread of `pid`, in clock ticks (proc(5): fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def process_rss(pid: int) -> int:
    """VmRSS of `pid` in bytes, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise BenchError(f"no VmRSS for process {pid}")


def core_ticks(cpu: int | None) -> tuple[int, int]:
    """(busy, total) ticks of one core from /proc/stat; idle and iowait are not busy."""
    if cpu is None:
        return (0, 0)
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            values = [int(v) for v in line.split()[1:9]]  # user nice system idle iowait irq softirq steal
            return (sum(values) - values[3] - values[4], sum(values))
    raise BenchError(f"core {cpu} is not in /proc/stat")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
