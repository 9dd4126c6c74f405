"""Websocket handshakes need a bearer token too: a real uvicorn process, a real websockets client."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from auth_service.launch import free_port
from tests.conftest import Stack, bearer, claims_of, eventually

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def app_url(issuer: Stack) -> Iterator[str]:
    """tests/integration/websocket_app.py under uvicorn (its default websocket implementation)."""
    assert issuer.auth is not None
    port = free_port()
    env = {**os.environ, "RESOURCE_AUTH_URL": issuer.auth.url}
    log_path = issuer.tmp / "websocket_app.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "tests.integration.websocket_app:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"127.0.0.1:{port}"
    try:
        assert eventually(lambda: _healthy(f"http://{url}/healthz"), timeout=30), log_path.read_text()
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def test_websocket_without_a_token_is_refused_with_a_401_challenge(app_url: str) -> None:
    with pytest.raises(InvalidStatus) as refused, connect(f"ws://{app_url}/live", open_timeout=10):
        pass
    response = refused.value.response
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'


def test_websocket_with_a_forged_token_is_refused(issuer: Stack, app_url: str) -> None:
    token = str(issuer.login("alice")["access_token"])
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with (
        pytest.raises(InvalidStatus) as refused,
        connect(f"ws://{app_url}/live", additional_headers=bearer(forged), open_timeout=10),
    ):
        pass
    assert refused.value.response.status_code == 401
    assert 'error="invalid_token"' in refused.value.response.headers["WWW-Authenticate"]


def test_websocket_with_a_valid_token_connects_and_sees_its_claims(issuer: Stack, app_url: str) -> None:
    token = str(issuer.login("alice")["access_token"])
    with connect(f"ws://{app_url}/live", additional_headers=bearer(token), open_timeout=10) as websocket:
        received = websocket.recv(timeout=10)
    assert received == claims_of(token)[1]["sub"]
