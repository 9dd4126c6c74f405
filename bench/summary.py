"""Markdown for the README from one results file: `python -m bench.summary bench/results/<stamp>-full.json`.

Prints two tables, both read from that one run and nothing else:

- the four strategies and the peers side by side (per-request CPU, login cost, memory,
  what a replica's death costs), the "Why tokens" table;
- the fleet suite's rows with one column per fleet size (when the run has it);
- every row that carries a target, with the median, min-max and whether it was met.

With no argument it takes the newest file in bench/results/.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench import REPO

RESULTS = REPO / "bench" / "results"
STRATEGIES = ("tokens", "redis", "sticky", "cluster")
STRATEGY_NAMES = {
    "tokens": "stateless tokens (this project)",
    "redis": "shared session store (Redis GET)",
    "sticky": "sticky sessions (in-process dict)",
    "cluster": "session clustering (HTTP fan-out)",
}


def _rows(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{**row, "suite": suite["name"]} for suite in data["suites"] for row in suite.get("rows", [])]


def _find(rows: Sequence[Mapping[str, Any]], suite: str, contender: str, metric: str) -> Mapping[str, Any] | None:
    return next(
        (r for r in rows if r["suite"] == suite and r["contender"] == contender and r["metric"] == metric), None
    )


def _fmt(row: Mapping[str, Any] | None, digits: int = 0, unit: str = "") -> str:
    if row is None:
        return "n/a"
    value = row["median"]
    text = f"{value:,.{digits}f}" if abs(value) >= 10 or digits == 0 else f"{value:.{max(digits, 2)}g}"
    return f"{text}{unit}"


def strategy_table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    sizes = sorted(
        {
            int(r["contender"].rsplit("x", 1)[1])
            for r in rows
            if r["suite"] == "strategies" and r["contender"].startswith("tokens x")
        }
    )
    if not sizes:
        return ["(no strategies suite in this run)"]
    top = sizes[-1]
    lines = [
        (
            f"| strategy | CPU per request, 1 replica | at {top} replicas | ÷ Redis store by CPU | "
            "login (session creation) CPU | RSS per replica, 100,000 sessions | replica death: sessions kept, "
            "users logged out |"
        ),
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in STRATEGIES:
        one, many = f"{s} x1", f"{s} x{top}"
        cpu1 = _find(rows, "strategies", one, "CPU per request, replicas summed")
        cpun = _find(rows, "strategies", many, "CPU per request, replicas summed")
        redis_cpu = _find(rows, "strategies", one, "Redis server CPU per request")
        ratio = _find(rows, "strategies", one, "÷ redis, by CPU/request (incl. Redis server)")
        login = _find(rows, "strategies", many, "login: session creation CPU (incl. replication)") or _find(
            rows, "strategies", many, "login: password grant CPU (Argon2-bound)"
        )
        refresh = _find(rows, "strategies", many, "login: refresh grant CPU (no password)")
        memory = _find(rows, "strategies", many, "RSS growth per replica") or _find(
            rows, "strategies", one, "RSS growth per replica"
        )
        kept = _find(rows, "strategies", many, "death: sessions kept")
        forced = _find(rows, "strategies", many, "death: users forced to log in again")
        cpu_text = _fmt(cpu1, 0, " µs") + (f" (+{_fmt(redis_cpu, 0)} µs in Redis)" if redis_cpu else "")
        login_text = _fmt(login, 0, " µs")
        if refresh is not None:
            login_text += f" (refresh: {_fmt(refresh, 0, ' µs')})"
        kept_text = "n/a" if kept is None else f"{100 * kept['median']:.0f} %, {_fmt(forced)}"
        lines.append(
            f"| {STRATEGY_NAMES[s]} | {cpu_text} | {_fmt(cpun, 0, ' µs')} | "
            f"{'1' if s == 'redis' else _fmt(ratio, 2, 'x')} | {login_text} | {_fmt(memory, 1, ' MB')} | "
            f"{kept_text} |"
        )
    return lines


def peer_table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    peers = [r for r in rows if r["suite"] == "peers" and r["metric"].startswith("÷ ") and "by CPU" not in r["metric"]]
    verify = [r for r in rows if r["suite"] == "verify" and r["metric"] == "÷ no auth, by CPU/request"]
    lines = ["| contender | ratio | median | min-max | target | met |", "| --- | --- | --- | --- | --- | --- |"]
    for r in [*verify, *peers]:
        lines.append(
            f"| {r['contender']} | {r['metric']} | {r['median']:.2f} | {r['min']:.2f}-{r['max']:.2f} | "
            f"{'' if r['target'] is None else r['target']} | {_met(r)} |"
        )
    return lines


def fleet_table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The fleet suite's rows ("x<N> <what>") side by side, one column per fleet size."""
    fleet = [r for r in rows if r["suite"] == "fleet" and r["contender"].startswith("x")]
    sizes: list[int] = []
    cells: dict[tuple[str, str], dict[int, Mapping[str, Any]]] = {}
    for r in fleet:
        head, _, what = r["contender"].partition(" ")
        if not head[1:].isdigit():
            continue
        size = int(head[1:])
        if size not in sizes:
            sizes.append(size)
        cells.setdefault((what, r["metric"]), {})[size] = r
    if not sizes:
        return ["(no fleet suite in this run)"]
    lines = [
        f"| row | metric | {' | '.join(f'x{n:,}' for n in sizes)} | unit |",
        f"| --- | --- | {' | '.join('---:' for _ in sizes)} | --- |",
    ]
    for (what, metric), by_size in cells.items():
        unit = next(iter(by_size.values()))["unit"]
        values = []
        for n in sizes:
            cell = by_size.get(n)
            if cell is None:
                values.append("")
                continue
            text = _num(cell["median"])
            if cell["min"] != cell["max"]:
                text += f" ({_num(cell['min'])}-{_num(cell['max'])})"
            if cell.get("met") is False:
                text = f"**{text}** missed"
            values.append(text)
        lines.append(f"| {what} | {metric} | {' | '.join(values)} | {unit} |")
    return lines


def _num(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def target_table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = [
        "| suite | contender | metric | median | min-max | target | met |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        if r.get("target") is None:
            continue
        lines.append(
            f"| {r['suite']} | {r['contender']} | {r['metric']} | {r['median']:.3g} {r['unit']} | "
            f"{r['min']:.3g}-{r['max']:.3g} | {r['target']:.3g} | {_met(r)} |"
        )
    return lines


def _met(row: Mapping[str, Any]) -> str:
    return {True: "yes", False: "**MISSED**", None: ""}[row.get("met")]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    path = Path(args[0]) if args else max(RESULTS.glob("*-*.json"), default=None, key=lambda p: p.stat().st_mtime)
    if path is None:
        print("no results yet: run python -m bench first", file=sys.stderr)
        return 2
    data = json.loads(path.read_text())
    rows = _rows(data)
    print(f"<!-- from {path.name}: mode {data['mode']['name']}; {data['pinning']['note']} -->\n")
    for title, table in (
        ("Strategies", strategy_table(rows)),
        ("Verify cost and peers", peer_table(rows)),
        ("Fleet", fleet_table(rows)),
        ("Every target", target_table(rows)),
    ):
        print(f"### {title}\n")
        print("\n".join(table))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
