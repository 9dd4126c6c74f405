"""The example single-page app (examples/spa) in Debian's chromium: sign in at the issuer's hosted
login page (authorization code + PKCE, by oidc-client-ts), call a replica's /me from the page's own
origin (CORS at both services), refresh, sign out; then the replica refuses the old tokens."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from auth_service.launch import free_port
from tests.browser.test_swagger_login import _OFF_LOOPBACK, page  # noqa: F401 (the page fixture)
from tests.conftest import PASSWORD, Stack, eventually, require

if TYPE_CHECKING:
    from playwright.sync_api import Page, Response

pytestmark = pytest.mark.slow

SPA_DIR = Path(__file__).resolve().parents[2] / "examples" / "spa"
LIBRARY = SPA_DIR / "node_modules" / "oidc-client-ts" / "dist" / "browser" / "oidc-client-ts.min.js"
SCOPE = "openid profile reports:read"


@pytest.fixture(scope="module")
def oidc_client_ts() -> Path:
    """oidc-client-ts as package-lock.json pins it, installed by `npm ci` into examples/spa/node_modules."""
    npm = shutil.which("npm")
    require(None if npm else "npm (apt-get install npm)")
    assert npm is not None
    command = [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--prefer-offline"]
    try:
        done = subprocess.run(command, cwd=SPA_DIR, capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        done = None
    if done is None or done.returncode != 0:
        why = " ".join(done.stderr.splitlines()[:4]) if done else "timed out"  # the first lines name the cause
        require(f"the npm registry (`npm ci` in {SPA_DIR} failed: {why})")
    assert LIBRARY.is_file()
    return LIBRARY


@contextmanager
def _serve_spa(port: int, *, issuer: str, api: str, log: Path) -> Iterator[str]:
    """examples/spa/serve.py in a process of its own on `port`; its origin."""
    origin = f"http://127.0.0.1:{port}"
    argv = [sys.executable, str(SPA_DIR / "serve.py"), "--port", str(port), "--issuer", issuer, "--api", api]
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:

        def up() -> bool:
            assert proc.poll() is None, log.read_text()
            try:
                return httpx.get(f"{origin}/app.js", timeout=1.0).status_code == 200
            except httpx.HTTPError:
                return False

        assert eventually(up, timeout=15.0, interval=0.05), f"the SPA server did not start; see {log}"
        yield origin
    finally:
        proc.terminate()
        proc.wait(10)


def _bearer(response: Response) -> str:
    """The access token a request to the replica carried."""
    return (response.request.header_value("authorization") or "").removeprefix("Bearer ")


def test_the_spa_signs_in_calls_me_refreshes_and_signs_out(
    stack: Stack,
    page: Page,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
    oidc_client_ts: Path,
) -> None:
    spa_port = free_port()
    spa = f"http://127.0.0.1:{spa_port}"  # known before the services start: both let this origin in
    auth = stack.start_auth(AUTH_CORS_ORIGINS=json.dumps([spa]))
    stack.cli(
        "clients",
        "add",
        "spa",
        "--public",
        "--grant=authorization_code",
        "--grant=refresh_token",
        f"--redirect-uri={spa}/callback",
        f"--post-logout-redirect-uri={spa}/",
        "--scope",
        SCOPE,
        "--first-party",
    )
    sub = stack.add_user("alice", scope="reports:read profile")
    (replica,) = stack.start_replicas(1, RESOURCE_CORS_ORIGINS=json.dumps([spa]))

    off_loopback: list[str] = []
    page.on("request", lambda request: off_loopback.extend([request.url] if _OFF_LOOPBACK.match(request.url) else []))
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    error = page.locator("#error")

    def shown_me() -> dict[str, object]:
        return json.loads(page.locator("#me").inner_text())  # type: ignore[no-any-return]

    with _serve_spa(spa_port, issuer=auth.url, api=replica.url, log=tmp_path / "spa.log"):
        page.goto(f"{spa}/")
        page.locator("#signin").click()
        page.wait_for_url(f"{auth.url}/authorize**")
        page.get_by_label("Username").fill("alice")
        page.get_by_label("Password").fill(PASSWORD)
        page.screenshot(path=tmp_path / "login.png", full_page=True)
        with page.expect_response(f"{replica.url}/me") as me:
            with page.expect_response(f"{auth.url}/authorize/login") as login:
                page.get_by_role("button", name="Sign in").click()
            # A 303 to the redirect URI with the code; anything else is the issuer refusing the form.
            assert login.value.status == 303, f"{login.value.status}: {page.locator('body').inner_text()[:300]}"

        page.wait_for_url(f"{spa}/")  # the callback traded the code and cleaned the address bar
        page.locator("body[data-state=signed-in]").wait_for()
        page.locator("#me", has_text=sub).wait_for()
        assert error.inner_text() == "", f"{error.inner_text()}; console: {console}"
        assert shown_me()["replica"] == replica.name
        page.screenshot(path=tmp_path / "signed-in.png", full_page=True)
        assert me.value.status == 200
        first = _bearer(me.value)

        with page.expect_response(f"{auth.url}/token") as refreshed, page.expect_response(f"{replica.url}/me") as me:
            page.locator("#refresh").click()
        form = refreshed.value.request.post_data or ""
        assert refreshed.value.status == 200, f"{form}: {refreshed.value.text()}"
        assert "grant_type=refresh_token" in form
        page.locator("#me", has_text=sub).wait_for()
        assert error.inner_text() == "", f"{error.inner_text()}; console: {console}"
        assert me.value.status == 200
        second = _bearer(me.value)
        assert second != first  # the page called /me with the refreshed access token

        page.locator("#signout").click()  # to the end_session_endpoint and back
        page.locator("body[data-state=signed-out]").wait_for()
        page.wait_for_url(f"{spa}/")
        assert error.inner_text() == "", f"{error.inner_text()}; console: {console}"
        assert page.locator("#signin").is_visible()

    # Ending the issuer session revoked its tokens; the feed carries that to the replica.
    for token in (first, second):
        assert eventually(lambda token=token: stack.me(replica, token).status_code == 401, timeout=10.0)
        assert stack.me(replica, token).headers["www-authenticate"].startswith("Bearer ")
    assert off_loopback == []  # oidc-client-ts came from the SPA's own server, no CDN
    for shot in ("login.png", "signed-in.png"):
        assert (tmp_path / shot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
