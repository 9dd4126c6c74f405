"""Benchmarks of the verifier against the no-auth route and the peers a FastAPI team would use.

Run `python -m bench --quick` (about a minute per suite) or `--full`; see `bench/README.md`.
Suites live in `bench/suites/`, the harness (processes, pinning, wrk, CPU accounting,
alternation) in `bench/harness.py`, the table, JSON and plots in `bench/report.py`.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
