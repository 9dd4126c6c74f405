"""`python -m bench.inprocess` measures verified requests, and says so when it cannot."""

from __future__ import annotations

import asyncio
import re

import pytest

from bench import inprocess


def test_every_contender_is_measured_on_a_verified_request(capsys: pytest.CaptureFixture[str]) -> None:
    asyncio.run(inprocess._main(requests=20))

    lines = capsys.readouterr().out.splitlines()
    assert [line.split("  ")[0] for line in lines] == [
        "no auth (baseline)",
        "demo /me, cached token",
        "demo /me, metrics off",
        "demo /me, no edge layer",
    ]
    assert all(re.search(r"\d+\.\d µs", line) for line in lines)


def test_a_refused_request_stops_the_measurement() -> None:
    token, public = inprocess._token_and_key()
    app = inprocess._demo(public)
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    headers = [(b"authorization", f"Bearer {forged}".encode())]

    with pytest.raises(SystemExit, match="answered \\[401\\]"):
        asyncio.run(inprocess._per_request(app, headers, requests=1))
