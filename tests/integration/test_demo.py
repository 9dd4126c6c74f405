"""The README's main command, run as a user runs it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from auth_service import demo
from auth_service.balancer import find_nginx

pytestmark = pytest.mark.slow


def test_the_demo_passes_every_check_and_shows_no_token(tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "auth_service", "demo", "--replicas", "3"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "RESULT: all checks passed" in out
    assert "0 failed requests" in out and "revocation reached all 3 replicas" in out
    assert ("through nginx" in out) == (find_nginx() is not None)
    assert "eyJ" not in out + done.stderr  # no token (a JWS starts with eyJ) is ever printed
    assert not (tmp_path / "keys").exists() and not (tmp_path / "data").exists()  # nothing left behind


def test_without_nginx_the_demo_says_so_and_spreads_requests_itself(monkeypatch, capsys) -> None:
    monkeypatch.setattr(demo, "find_nginx", lambda: None)
    assert demo.run_demo(2) == 0
    out = capsys.readouterr().out
    assert "nginx is not installed" in out and "round robin by the demo itself" in out
