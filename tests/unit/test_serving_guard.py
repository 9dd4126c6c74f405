"""resource_service.serving: the open-file limit both `serve` commands raise at start."""

from __future__ import annotations

import os
import resource
import subprocess
import sys

import pytest

RAISE_AND_SHOW = (
    "import logging, resource; logging.basicConfig(level='INFO'); "
    "from resource_service.serving import raise_open_file_limit; raise_open_file_limit(); "
    "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])"
)


def test_the_soft_open_file_limit_is_raised_to_the_hard_one_and_logged() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 256:
        pytest.skip("the hard limit leaves nothing to raise")
    done = subprocess.run(
        ["sh", "-c", f'ulimit -Sn 256 && exec "{sys.executable}" -c "{RAISE_AND_SHOW}"'],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 256
    assert "open-file limit raised from 256 to" in done.stderr
