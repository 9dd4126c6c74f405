"""The quickstart works as documented: examples/quickstart.py under uvicorn, against a real issuer."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from auth_service.launch import free_port
from tests.conftest import Stack, eventually

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "quickstart.py"
DOC = ROOT / "docs" / "quickstart.md"


def test_the_quickstart_doc_shows_the_example_file_verbatim() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert EXAMPLE.read_text() in blocks, "docs/quickstart.md must hold examples/quickstart.py as one python block"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One issuer for the module: tests log in afresh, so they share nothing else."""
    s = Stack(tmp_path_factory.mktemp("quickstart"))
    try:
        s.start_auth()
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def subs(stack: Stack) -> dict[str, str]:
    """alice may write items, bob has no scope at all; their `sub`s."""
    return {name: stack.add_user(name, scope=scope) for name, scope in (("alice", "items:write"), ("bob", ""))}


@pytest.fixture(scope="module")
def quickstart(stack: Stack, subs: dict[str, str]) -> Iterator[str]:
    """The example app as a real uvicorn process, configured by environment as a user would."""
    assert stack.auth is not None
    port = free_port()
    env = {**os.environ, "RESOURCE_AUTH_URL": stack.auth.url, "RESOURCE_REVOCATION_POLL_INTERVAL": "1"}
    log_path = stack.tmp / "quickstart.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "examples.quickstart:app", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log_path.read_text()
            try:
                httpx.get(f"{url}/items", timeout=1.0)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the example did not start"
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _get(url: str, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(f"{url}/items", headers=headers, timeout=5.0)


def test_without_a_token_the_example_answers_401_with_the_bare_bearer_challenge(stack: Stack, quickstart: str) -> None:
    response = _get(quickstart)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="api"'  # RFC 6750 section 3.1: no error code


def test_a_forged_token_is_refused_as_invalid_token(stack: Stack, quickstart: str) -> None:
    token = str(stack.login("alice")["access_token"])
    header, payload, signature = token.split(".")
    forged = f"{header}.{payload}.{signature[:-4]}AAAA"
    response = _get(quickstart, forged)
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_a_token_from_the_issuer_opens_the_example(stack: Stack, subs: dict[str, str], quickstart: str) -> None:
    body = stack.login("alice")
    response = _get(quickstart, str(body["access_token"]))
    assert response.status_code == 200, response.text
    assert response.json() == {"owner": subs["alice"], "items": ["hammer", "saw"]}


def test_the_scoped_route_needs_its_scope(stack: Stack, quickstart: str) -> None:
    alice, bob = (str(stack.login(name)["access_token"]) for name in ("alice", "bob"))
    refused = httpx.delete(f"{quickstart}/items/saw", headers={"Authorization": f"Bearer {bob}"})
    assert refused.status_code == 403
    challenge = refused.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge and 'scope="items:write"' in challenge
    allowed = httpx.delete(f"{quickstart}/items/saw", headers={"Authorization": f"Bearer {alice}"})
    assert allowed.status_code == 200
    assert allowed.json()["deleted"] == "saw"


def test_a_logout_at_the_issuer_reaches_the_example(stack: Stack, quickstart: str) -> None:
    token = str(stack.login("alice")["access_token"])
    assert _get(quickstart, token).status_code == 200
    assert (
        stack.http.post(
            f"{stack.auth.url}/logout",  # type: ignore[union-attr]
            headers={"Authorization": f"Bearer {token}"},
        ).status_code
        == 204
    )
    assert eventually(lambda: _get(quickstart, token).status_code == 401, timeout=10)
