"""From runs to rows, and rows to a table, a JSON file and one PNG per suite.

Ratios are taken round by round (each contender divided by the baseline measured in the
same round, seconds apart), then summarised by median and min-max: drift on a shared
machine moves both sides of a ratio together. Every row with a target says beside its
number whether the target was met; failed requests are never averaged away.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from bench.harness import CONNECTIONS, THREADS, Check, Mode, Pinning, Run

__all__ = ["Row", "SuiteResult", "contender_rows", "print_table", "ratio_rows", "write_results"]

CONTENDED = 0.10  # share of the server's core taken by other processes that makes a run suspect
LOAD_BOUND = 0.90  # share of its core wrk used beyond which wrk, not the server, may be the limit
PROFILE_HINT = (
    "a target was missed: profile the contender under the same load before changing code "
    "(py-spy or pyinstrument; the commands are in bench/README.md, 'When a target is missed')"
)


@dataclass(frozen=True)
class Row:
    contender: str
    metric: str
    median: float
    min: float
    max: float
    unit: str
    target: float | None = None  # every target is "at least"
    met: bool | None = None


@dataclass
class SuiteResult:
    name: str
    rows: list[Row] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    # A suite without wrk runs may draw its own figure: called with the PNG's path.
    plot: Callable[[Path], Path] | None = field(default=None, repr=False, compare=False)

    @property
    def failed_requests(self) -> int:
        return sum(run.failed for run in self.runs)

    @property
    def broken(self) -> bool:
        """The bench itself failed here: its numbers must not be trusted."""
        return self.error is not None or self.failed_requests > 0 or not all(c.ok for c in self.checks)


def _row(contender: str, metric: str, values: Sequence[float], unit: str, target: float | None = None) -> Row:
    median = statistics.median(values)
    return Row(
        contender, metric, median, min(values), max(values), unit, target, None if target is None else median >= target
    )


def _per_round(runs: Sequence[Run], name: str) -> dict[int, Run]:
    return {run.round: run for run in runs if run.contender == name}


def contender_rows(runs: Sequence[Run], *, baseline: str, targets: Mapping[str, float]) -> list[Row]:
    """Throughput, ratio to the baseline, latency, CPU and failures of every contender."""
    base = _per_round(runs, baseline)
    rows: list[Row] = []
    for name in dict.fromkeys(run.contender for run in runs):
        mine = _per_round(runs, name)
        sample = list(mine.values())
        rows.append(_row(name, "throughput", [r.rps for r in sample], "req/s"))
        if name != baseline:
            rows += _ratios(mine, base, name, f"÷ {baseline}", targets.get(name))
        rows.append(_row(name, "latency p50", [r.p50_ms for r in sample], "ms"))
        rows.append(_row(name, "latency p99", [r.p99_ms for r in sample], "ms"))
        rows.append(_row(name, "server CPU", [100 * r.server_cpu for r in sample], "% core"))
        rows.append(_row(name, "CPU per request", [r.cpu_us_per_request for r in sample], "µs"))
        others = [100 * r.other_load for r in sample if r.other_load is not None]
        if others:
            rows.append(_row(name, "other load on its core", others, "% core"))
        rows.append(_row(name, "failed requests", [float(r.failed) for r in sample], "per run"))
    return rows


def ratio_rows(runs: Sequence[Run], numerator: str, denominators: Mapping[str, float]) -> list[Row]:
    """`numerator` req/s ÷ each denominator's, round by round, against a target per denominator."""
    top = _per_round(runs, numerator)
    rows = []
    for name, target in denominators.items():
        rows += _ratios(top, _per_round(runs, name), name, f"{numerator} ÷ this", target)
    return rows


def _ratios(
    top: Mapping[int, Run], bottom: Mapping[int, Run], contender: str, metric: str, target: float | None
) -> list[Row]:
    """The req/s ratio, and the same ratio by CPU time per request, each judged by the target.

    On a shared core the req/s of a run fall when a neighbour takes the core, and a lucky
    round can meet a target the code does not; the CPU a request costs barely moves. On a
    quiet core the two agree, so a target counts as met only where both rows say so.
    """
    rounds = [i for i in top if i in bottom and bottom[i].rps and top[i].cpu_us_per_request]
    if not rounds:  # the denominator served nothing: its failures are reported instead
        return []
    return [
        _row(contender, metric, [top[i].rps / bottom[i].rps for i in rounds], "x", target),
        _row(
            contender,
            f"{metric}, by CPU/request",
            [bottom[i].cpu_us_per_request / top[i].cpu_us_per_request for i in rounds],
            "x",
            target,
        ),
    ]


def _fmt(value: float, unit: str = "") -> str:
    if unit == "x":  # a ratio next to its target: enough digits that 2.997 never reads as 3.00
        return f"{value:.3f}"
    if unit == "per run":
        return f"{value:.0f}"
    return f"{value:.2f}" if abs(value) < 100 else f"{value:.0f}"


def print_table(results: Sequence[SuiteResult], out: TextIO = sys.stdout) -> None:
    header = ("suite", "contender", "metric", "median", "min-max", "unit", "target", "met")
    lines: list[tuple[str, ...]] = []
    for result in results:
        for row in result.rows:
            met = "" if row.met is None else ("yes" if row.met else "MISSED")
            lines.append(
                (
                    result.name,
                    row.contender,
                    row.metric,
                    _fmt(row.median, row.unit),
                    f"{_fmt(row.min, row.unit)}-{_fmt(row.max, row.unit)}",
                    row.unit,
                    "" if row.target is None else f">= {row.target:g}",
                    met,
                )
            )
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    right = {3, 4}
    for line in [header, tuple("-" * w for w in widths), *lines]:
        cells = [
            cell.rjust(w) if i in right else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=False))
        ]
        print("  ".join(cells).rstrip(), file=out)
    for result in results:
        _print_problems(result, out)
    if any(row.met is False for result in results for row in result.rows):
        print(f"\nhint: {PROFILE_HINT}", file=out)


def _print_problems(result: SuiteResult, out: TextIO) -> None:
    for note in result.notes:
        print(f"[{result.name}] {note}", file=out)
    for check in result.checks:
        if not check.ok:
            print(f"!!! [{result.name}] CHECK FAILED: {check.name}: {check.detail}", file=out)
    if result.error:
        print(f"!!! [{result.name}] SUITE FAILED: {result.error}", file=out)
    for run in result.runs:
        if run.failed:
            print(
                f"!!! [{result.name}] FAILED REQUESTS: {run.contender} round {run.round + 1}: "
                f"{run.bad_status} responses >= 400, {run.socket_errors} socket errors "
                f"of {run.requests}: this run's numbers are not a benchmark",
                file=out,
            )
    contended = [
        f"{run.contender} round {run.round + 1} ({100 * run.other_load:.0f}%)"
        for run in result.runs
        if run.other_load is not None and run.other_load > CONTENDED
    ]
    bound = [f"{run.contender} round {run.round + 1}" for run in result.runs if run.loadgen_cpu > LOAD_BOUND]
    if bound:
        print(
            f"!!! [{result.name}] LOAD-BOUND: wrk used more than {100 * LOAD_BOUND:.0f}% of its core in: "
            f"{', '.join(bound)}; those req/s measure wrk, not the server",
            file=out,
        )
    if contended:
        print(
            f"[{result.name}] CONTENDED: other processes took more than {100 * CONTENDED:.0f}% of the server's "
            f"core in: {', '.join(contended)}; compare those runs with care",
            file=out,
        )
    for row in result.rows:
        if row.met is False:
            print(
                f"[{result.name}] MISSED: {row.contender} {row.metric} = {_fmt(row.median, row.unit)} "
                f"(min-max {_fmt(row.min, row.unit)}-{_fmt(row.max, row.unit)}), target >= {row.target:g}",
                file=out,
            )


def write_results(
    results: Sequence[SuiteResult], *, mode: Mode, pinning: Pinning, stamp: str, directory: Path
) -> list[Path]:
    """All raw runs, the rows and the checks as JSON; a PNG of throughput and latency per suite."""
    directory.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {
        "stamp": stamp,
        "mode": asdict(mode),
        "pinning": asdict(pinning),
        "wrk": {"threads": THREADS, "connections": CONNECTIONS},
        "suites": [
            {
                "name": r.name,
                "error": r.error,
                "notes": r.notes,
                "rows": [asdict(x) for x in r.rows],
                "checks": [asdict(c) for c in r.checks],
                "runs": [asdict(x) for x in r.runs],
            }
            for r in results
        ],
    }
    written = [directory / f"{stamp}-{mode.name}.json"]
    written[0].write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    for result in results:
        png = directory / f"{stamp}-{mode.name}-{result.name}.png"
        if result.runs:
            written.append(_plot(result, png))
        elif result.plot is not None and not result.broken:
            written.append(result.plot(png))
    return written


def _plot(result: SuiteResult, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(run.contender for run in result.runs))

    def stat(name: str, key: Callable[[Run], float]) -> tuple[float, float, float]:
        values = [key(run) for run in result.runs if run.contender == name]
        return statistics.median(values), min(values), max(values)

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 0.6 * len(names) + 2), sharey=True)
    y = list(range(len(names)))
    rps = [stat(n, lambda r: r.rps) for n in names]
    left.barh(
        y,
        [m for m, _, _ in rps],
        xerr=[[m - lo for m, lo, _ in rps], [hi - m for m, _, hi in rps]],
        color="tab:blue",
        capsize=3,
    )
    left.set_yticks(y, names)
    left.invert_yaxis()
    left.set_xlabel("req/s (median, bars: min-max)")
    for offset, (label, key) in enumerate([("p50", lambda r: r.p50_ms), ("p99", lambda r: r.p99_ms)]):
        med = [stat(n, key)[0] for n in names]
        right.barh([i + 0.4 * offset - 0.2 for i in y], med, height=0.4, label=label)
    right.set_xlabel("latency, ms (median)")
    right.legend()
    fig.suptitle(f"suite {result.name}: {CONNECTIONS} connections, {THREADS} wrk thread")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
