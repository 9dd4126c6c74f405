"""Run the benchmark suites and print one table of what they measured.

    python -m bench [--quick | --full] [--only NAME [NAME ...]] [--profile | --no-profile]

--quick (the default) runs each contender for a couple of seconds per round, 2 rounds;
--full runs longer and 3 rounds. Results (every raw run, medians, checks) go to
bench/results/ as JSON, with a PNG per suite. Exit status: 0 when every suite measured
without a failed request or check (a missed target is reported, not an error), 1 when a
suite failed, 2 when wrk is missing. In --full (or with --profile) each missed target gets a
py-spy profile of the servers behind it (bench/profile.py), summarised in the report, its
stacks kept beside the JSON.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import RESULTS
from bench.harness import CONNECTIONS, MODES, THREADS, Context, Pinning, wrk_missing
from bench.report import SuiteResult, print_table, write_results
from bench.suites import SUITES, load


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", dest="mode", action="store_const", const="quick", help="about a minute per suite")
    size.add_argument("--full", dest="mode", action="store_const", const="full", help="a few minutes per suite")
    parser.add_argument(
        "--only", nargs="+", choices=list(SUITES), metavar="NAME", help=f"run only these suites ({', '.join(SUITES)})"
    )
    profile = parser.add_mutually_exclusive_group()
    profile.add_argument(
        "--profile",
        dest="profile",
        action="store_true",
        default=None,
        help="profile the servers behind each missed target with py-spy (the default in --full)",
    )
    profile.add_argument("--no-profile", dest="profile", action="store_false", help="take no profiles")
    parser.set_defaults(mode="quick")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    problem = wrk_missing()
    if problem:
        print(f"python -m bench: {problem}", file=sys.stderr)
        return 2
    mode, pinning = MODES[args.mode], Pinning.detect()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    print(
        f"bench {mode.name}: {mode.rounds} rounds x {mode.seconds} s per contender (+{mode.warmup} s warm-up), "
        f"wrk -t{THREADS} -c{CONNECTIONS}; {pinning.note}",
        flush=True,
    )
    if args.profile is None:
        args.profile = args.mode == "full"
    profiles = RESULTS / f"{stamp}-{args.mode}-profiles" if args.profile else None
    shared: dict[str, Any] = {}  # one suite's measurements that a later one reuses (bench.harness.Context)
    results = [
        _run_suite(name, mode_name=args.mode, pinning=pinning, stamp=stamp, profiles=profiles, shared=shared)
        for name in args.only or SUITES
    ]
    print()
    print_table(results)
    for path in write_results(results, mode=mode, pinning=pinning, stamp=stamp, directory=RESULTS):
        print(f"wrote {path.relative_to(RESULTS.parent.parent)}")
    broken = [r.name for r in results if r.broken]
    if broken:
        print(
            f"\n!!! BENCH BROKEN in {', '.join(broken)}: failed requests, failed checks or errors above; "
            "those numbers do not measure what they claim",
            file=sys.stderr,
        )
        return 1
    return 0


def _run_suite(
    name: str, *, mode_name: str, pinning: Pinning, stamp: str, profiles: Path | None, shared: dict[str, Any]
) -> SuiteResult:
    started = time.monotonic()
    print(f"== {name}", flush=True)
    with (
        tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp,
        Context(MODES[mode_name], pinning, Path(tmp), profiles, shared) as ctx,
    ):
        try:
            result = load(name).run(ctx)
        except Exception as exc:
            traceback.print_exc()
            result = SuiteResult(name, checks=ctx.checks, error=f"{type(exc).__name__}: {exc}")
        if result.broken:
            ctx.close()  # flush the servers' logs before keeping them
            logs = RESULTS / f"{stamp}-{name}-logs"
            shutil.copytree(tmp, logs, ignore=shutil.ignore_patterns("*.db*", "keys", "pool-*"))
            result.notes.append(f"server logs kept in {logs}")
    print(f"   {name}: {time.monotonic() - started:.0f} s", flush=True)
    return result


if __name__ == "__main__":
    sys.exit(main())
