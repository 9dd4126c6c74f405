"""The registry of suites: name -> module exposing `run(ctx: Context) -> SuiteResult`.

Modules are imported only when their suite runs, so a suite whose bench-only dependency
is missing fails alone. A new suite adds one line here; the runner prints every suite's
rows in one table.
"""

from __future__ import annotations

import importlib
from typing import Protocol

from bench.harness import Context
from bench.report import SuiteResult

__all__ = ["SUITES", "Suite", "load"]

SUITES: dict[str, str] = {
    "verify": "bench.suites.verify",
    "peers": "bench.suites.peers",
    "strategies": "bench.suites.strategies",
    "scaleout": "bench.suites.scaleout",
    "propagation": "bench.suites.propagation",
    "rotation": "bench.suites.rotation",
    "login": "bench.suites.login",
    "revocation_scale": "bench.suites.revocation_scale",
    "fleet": "bench.suites.fleet",
}


class Suite(Protocol):
    def run(self, ctx: Context) -> SuiteResult: ...


def load(name: str) -> Suite:
    module: Suite = importlib.import_module(SUITES[name])  # a module with run(), as Suite says
    return module
