"""Profiles beside missed targets: py-spy samples a server while wrk loads it.

A missed target is reported with where the server's time goes, measured the same way for
every contender: wrk runs against it for a few seconds while `py-spy record` samples the
server process (py-spy on the load core, beside wrk). The collapsed stacks are kept
(`*.collapsed`: input for flamegraph.pl, speedscope or inferno) and summarised in the
report as the share of samples whose innermost Python frame is in each package (self
time), the functions with the most self time, and how much passes through our code.

Sampling pauses the server briefly for each sample, so a profiled run is never a measured
one: profiles are taken after the suite's rounds. Without py-spy the note says so.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.harness import Contender, Context, wrk_in_background
from bench.report import Row

__all__ = ["Profile", "profile", "profile_missed", "summarise"]

SECONDS = 4
RATE = 250  # samples per second
_OURS = ("resource_service", "auth_service")
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>.*?)(?::\d+)?\)$")
_WAITS = frozenset({"wait", "get", "select", "join", "_worker", "acquire"})


@dataclass(frozen=True)
class Profile:
    contender: str
    samples: int
    by_package: list[tuple[str, float]]  # (package, share of samples), innermost frame
    top_functions: list[tuple[str, float]]
    ours_inclusive: float  # share of samples with a frame of ours anywhere on the stack
    path: Path | None  # the collapsed stacks
    idle: int = 0  # samples of threads parked on a lock or queue, left out of the shares

    def note(self) -> str:
        packages = ", ".join(f"{name} {100 * share:.0f}%" for name, share in self.by_package[:8])
        functions = ", ".join(f"{name} {100 * share:.1f}%" for name, share in self.top_functions[:6])
        where = f"; stacks: {self.path.name}" if self.path else ""
        parked = f", {self.idle} of idle pool threads left out" if self.idle else ""
        return (
            f"profile of {self.contender} (py-spy, {self.samples} samples under wrk{parked}): "
            f"self time by package: "
            f"{packages}; our code (resource_service, auth_service) on the stack in "
            f"{100 * self.ours_inclusive:.0f}% of samples; top functions: {functions}{where}"
        )


def _package(path: str) -> str:
    """py-spy names files relative to their import root: `starlette/routing.py` -> starlette,
    `asyncio/runners.py` -> asyncio, `<frozen runpy>` as it is; a full path keeps what follows
    site-packages."""
    parts = Path(path).parts
    for anchor in ("site-packages", "dist-packages"):
        if anchor in parts:
            parts = parts[parts.index(anchor) + 1 :]
    if not parts:
        return path
    return parts[0].removesuffix(".py") if not path.startswith("/") or len(parts) == 1 else parts[-2]


def _idle(func: str, package: str) -> bool:
    """A thread parked on a lock or a selector: waiting, not working (thread pools' idle workers)."""
    return package in ("threading", "queue", "selectors", "concurrent") and func.rsplit(".", 1)[-1] in _WAITS


def summarise(contender: str, lines: Iterable[str], path: Path | None = None) -> Profile:
    """A `Profile` from py-spy's raw output: one `frame;frame;...;innermost COUNT` per line."""
    packages: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    ours = total = idle = 0
    for line in lines:
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        match = _FRAME.match(frames[-1])
        func, file = (match.group("func"), match.group("file")) if match else (frames[-1], "")
        package = _package(file) if file else "?"
        if _idle(func, package):
            idle += count
            continue
        packages[package] += count
        functions[f"{package}:{func}"] += count
        if any(f"({name}/" in frame or f"/{name}/" in frame for frame in frames for name in _OURS):
            ours += count
        total += count
    share = (lambda n: n / total) if total else (lambda n: 0.0)
    return Profile(
        contender,
        total,
        [(k, share(v)) for k, v in packages.most_common()],
        [(k, share(v)) for k, v in functions.most_common(12)],
        share(ours),
        path,
        idle,
    )


def profile(ctx: Context, contender: Contender, directory: Path, seconds: int = SECONDS) -> Profile | str:
    """Profile `contender`'s server under wrk load; a `Profile`, or why there is none."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).is_file():
        return f"no profile of {contender.name}: py-spy is not installed (pip install py-spy)"
    pid = contender.server.pid
    assert pid is not None
    directory.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^A-Za-z0-9]+", "-", contender.name).strip("-").lower()
    out = directory / f"profile-{slug}.collapsed"
    with wrk_in_background(ctx, contender, seconds + 2):
        done = subprocess.run(
            [
                *ctx.pinning.wrk_prefix(),
                spy,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(seconds),
                "--rate",
                str(RATE),
                "--format",
                "raw",
                "--output",
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
        )
    if done.returncode != 0 or not out.is_file():
        return f"no profile of {contender.name}: py-spy failed: {(done.stderr or done.stdout).strip()[-300:]}"
    return summarise(contender.name, out.read_text().splitlines(), out)


def profile_missed(ctx: Context, rows: Iterable[Row], behind: Mapping[str, Sequence[Contender]]) -> list[str]:
    """Notes with a profile of each contender behind each row that missed its target (each
    profiled once), when the run takes profiles (`ctx.profiles`).

    `behind`: for a missed row's contender name, the contenders whose servers explain it (a
    ratio has two sides: profile both)."""
    if ctx.profiles is None:
        return []
    done: set[str] = set()
    notes = []
    for name in dict.fromkeys(r.contender for r in rows if r.met is False):
        for contender in behind.get(name, ()):
            if contender.name in done:
                continue
            done.add(contender.name)
            result = profile(ctx, contender, ctx.profiles)
            notes.append(result if isinstance(result, str) else result.note())
    return notes
