"""The driver's side of the simulator processes (`bench.fleet.sim`): spawn, command, collect."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

from bench import REPO
from bench.harness import BenchError, Pinning

__all__ = ["Simulators"]


class _Process:
    def __init__(self, index: int, log: Path) -> None:
        self.index = index
        self.log = log
        with open(log, "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bench.fleet.sim"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                cwd=REPO,
                text=True,
                bufsize=1,
                start_new_session=True,
            )
        self.hello = self._read()
        self.pid = int(self.hello["pid"])

    @property
    def _stdin(self) -> IO[str]:
        assert self.proc.stdin is not None
        return self.proc.stdin

    def send(self, command: dict[str, Any]) -> None:
        self._stdin.write(json.dumps(command) + "\n")
        self._stdin.flush()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            tail = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise BenchError(f"simulator {self.index} exited (code {self.proc.poll()}); its log ends:\n{tail}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise BenchError(f"simulator {self.index}: {answer['error']} (log: {self.log})")
        return answer

    def ask(self, command: dict[str, Any]) -> dict[str, Any]:
        self.send(command)
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send({"op": "exit"})
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


class Simulators:
    """`processes` simulator processes; a fleet of `count` replicas is split evenly among them."""

    def __init__(self, processes: int, workdir: Path, pinning: Pinning) -> None:
        with ThreadPoolExecutor(processes) as pool:
            self._procs = list(pool.map(lambda i: _Process(i, workdir / f"sim-{i}.log"), range(processes)))
        for proc in self._procs:
            pinning.pin(proc.pid, "load")
        self.count = 0

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    def all(self, command: dict[str, Any], per_process: Sequence[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """Send `command` (merged with `per_process[i]`) to every process at once; every answer."""
        for i, proc in enumerate(self._procs):
            proc.send({**command, **(per_process[i] if per_process else {})})
        return [proc._read() for proc in self._procs]

    def build(self, count: int, **command: Any) -> list[dict[str, Any]]:
        shares = [count // len(self._procs) + (i < count % len(self._procs)) for i in range(len(self._procs))]
        self.count = count
        return self.all(
            {"op": "build", **command},
            [{"count": share, "name": f"{command.get('name', 'sim')}{i}"} for i, share in enumerate(shares)],
        )

    def close(self) -> None:
        with ThreadPoolExecutor(len(self._procs)) as pool:
            list(pool.map(_Process.close, self._procs))
