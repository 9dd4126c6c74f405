"""resource_service.cli: the resource-service command."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import uvicorn

from resource_service import cli
from resource_service.serving import GuardedHttpToolsProtocol


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("RESOURCE_"):
            monkeypatch.delenv(name)


def test_help_works_without_any_configuration():
    result = subprocess.run(
        [sys.executable, "-m", "resource_service.cli", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert result.returncode == 0 and "serve" in result.stdout


def test_serve_help_lists_the_flags(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["serve", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--host", "--port", "--replica-id", "--auth-url"):
        assert flag in out


def test_no_command_prints_help_and_fails(capsys):
    assert cli.main([]) == 2
    assert "serve" in capsys.readouterr().out


def test_flags_override_the_environment(monkeypatch):
    monkeypatch.setenv("RESOURCE_AUTH_URL", "https://env-auth:8000")
    monkeypatch.setenv("RESOURCE_PORT", "9001")
    monkeypatch.setenv("RESOURCE_REPLICA_ID", "from-env")
    args = cli._parser().parse_args(["serve", "--port", "9002", "--host", "0.0.0.0"])
    settings = cli.settings_from_args(args)
    assert (settings.auth_url, settings.port, settings.host, settings.replica_id) == (
        "https://env-auth:8000",
        9002,
        "0.0.0.0",
        "from-env",
    )
    args = cli._parser().parse_args(["serve", "--replica-id", "r2", "--auth-url", "https://a:1"])
    assert cli.settings_from_args(args).replica_id == "r2"


def test_invalid_settings_exit_with_a_message_instead_of_a_traceback(capsys):
    assert cli.main(["serve", "--auth-url", "not-a-url"]) == 2
    assert "invalid settings" in capsys.readouterr().err


def test_server_runs_one_uvloop_guarded_httptools_worker_without_access_log_or_proxy_headers():
    args = cli._parser().parse_args(["serve", "--auth-url", "https://a:1", "--port", "8123", "--host", "127.0.0.2"])
    config = cli.server_config(cli.settings_from_args(args))
    assert isinstance(config, uvicorn.Config)
    assert (config.host, config.port, config.workers) == ("127.0.0.2", 8123, 1)
    assert (config.loop, config.http, config.access_log, config.lifespan) == (
        "uvloop",
        GuardedHttpToolsProtocol,
        False,
        "on",
    )
    assert config.proxy_headers is False  # X-Forwarded-For from loopback is not the client
    assert (config.limit_concurrency, config.backlog) == (1_000, 2_048)
    assert config.timeout_graceful_shutdown is not None


def test_serve_runs_uvicorn_with_that_config(monkeypatch):
    ran: list[uvicorn.Config] = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: ran.append(self.config))
    assert cli.main(["serve", "--auth-url", "https://a:1", "--port", "8124"]) == 0
    assert ran and ran[0].port == 8124


def test_serve_without_uvicorn_names_the_extra_in_one_line(monkeypatch, capsys):
    real = cli.importlib.util.find_spec
    monkeypatch.setattr(cli.importlib.util, "find_spec", lambda name: None if name == "uvicorn" else real(name))
    assert cli.main(["serve", "--auth-url", "https://a:1"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'stateless-auth[replica]'" in err
