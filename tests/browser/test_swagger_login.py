"""A person's path through a replica's Swagger UI, in Debian's chromium driven by Playwright:
Authorize opens the issuer's login page in a pop-up (authorization code flow with PKCE), the
replica's /docs/oauth2-redirect hands the code back and /docs exchanges it at the issuer's /token
(a cross-origin request), then /me shows the caller's claims."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import pytest

from auth_service.launch import Service, free_port, replica_process
from tests.conftest import PASSWORD, REPLICA_ENV, Stack, require

if TYPE_CHECKING:
    from playwright.sync_api import Page, Response

pytestmark = pytest.mark.slow

# No downloaded browser: Debian's chromium, as root in CI. The network flags keep it from calling
# Google's hosts, which this closed network refuses (and which would slow every start).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
    "--disable-background-networking",
    "--disable-component-update",
]
# Both services serve Swagger UI's files themselves: the page must not ask any other host.
_OFF_LOOPBACK = re.compile(r"^https?://(?!127\.0\.0\.1[:/])")


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    """A page in a headless chromium with a fresh profile under the test's tmp dir."""
    require(None if importlib.util.find_spec("playwright") else "the playwright package (pip install -e '.[test]')")
    chromium = shutil.which("chromium")
    require(None if chromium else "Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            tmp_path / "chromium-profile", executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.set_default_timeout(15_000)
            yield page
        finally:
            context.close()


DOCS_CLIENT = "docs"  # the replica's default RESOURCE_DOCS_CLIENT_ID


def _issuer_and_replica(stack: Stack) -> tuple[Service, str]:
    """An issuer that lets the replica's pages call it (CORS) and knows the docs' public client,
    alice, and the replica; alice's sub."""
    port = free_port()  # the replica's, known before the issuer starts: its origin is the issuer's setting
    origin = f"http://127.0.0.1:{port}"
    stack.start_auth(AUTH_CORS_ORIGINS=json.dumps([origin]))
    assert stack.auth is not None
    stack.cli(
        "clients",
        "add",
        DOCS_CLIENT,
        "--public",
        "--grant",
        "authorization_code",
        "--redirect-uri",
        f"{origin}/docs/oauth2-redirect",
        "--scope",
        "reports:read",
        "--first-party",
    )
    sub = stack.add_user("alice", scope="reports:read")
    replica = replica_process("replica-1", auth_url=stack.auth.url, data=stack.tmp, env=REPLICA_ENV, port=port)
    stack.replicas.append(replica.spawn())
    replica.wait_healthy(30.0)
    return replica, sub


def test_swagger_ui_signs_in_at_the_issuers_login_page_with_pkce_and_shows_the_callers_claims_from_me(
    stack: Stack, page: Page, tmp_path: Path
) -> None:
    replica, sub = _issuer_and_replica(stack)
    assert stack.auth is not None
    me_calls: list[tuple[int, bool]] = []  # (status, sent a bearer token) of each /me the page made

    def on_response(response: Response) -> None:
        if response.url == f"{replica.url}/me":
            bearer = (response.request.header_value("authorization") or "").startswith("Bearer ")
            me_calls.append((response.status, bearer))

    page.on("response", on_response)
    off_loopback: list[str] = []  # of every page of the context: /docs and the login pop-up
    page.context.on(
        "request", lambda request: off_loopback.extend([request.url] if _OFF_LOOPBACK.match(request.url) else [])
    )
    page.goto(f"{replica.url}/docs")
    page.locator(".auth-wrapper .authorize").wait_for()

    page.locator(".auth-wrapper .authorize").click()
    dialog = page.locator(".modal-ux")
    assert dialog.locator("#client_id_authorizationCode").input_value() == DOCS_CLIENT  # from initOAuth
    scope = dialog.locator('.scopes input[data-value="reports:read"]')
    if not scope.is_checked():  # initOAuth preselects the replica's scopes
        dialog.locator(".scopes label", has_text="reports:read").click()
    assert scope.is_checked()
    with page.context.expect_page() as opened:
        dialog.locator(".auth-btn-wrapper .authorize").click()
    login = opened.value
    login.get_by_label("Username").wait_for()

    asked = urlsplit(login.url)
    query = parse_qs(asked.query)
    assert f"{asked.scheme}://{asked.netloc}{asked.path}" == f"{stack.auth.url}/authorize"
    assert query["response_type"] == ["code"] and query["client_id"] == [DOCS_CLIENT]
    assert query["redirect_uri"] == [f"{replica.url}/docs/oauth2-redirect"]
    assert query["scope"] == ["reports:read"] and query["code_challenge_method"] == ["S256"]
    assert query["code_challenge"] and query["state"]

    login.get_by_label("Username").fill("alice")
    login.get_by_label("Password").fill(PASSWORD)
    shot = tmp_path / "swagger-login.png"
    login.screenshot(path=shot, full_page=True)
    # The redirect page hands the code to /docs, whose Swagger UI posts it to /token.
    with page.expect_response(f"{stack.auth.url}/token") as token_reply:
        with login.expect_response(f"{stack.auth.url}/authorize/login") as signed_in:
            login.get_by_role("button", name="Sign in").click()
        assert signed_in.value.status == 303, signed_in.value.text()
    assert token_reply.value.status == 200, token_reply.value.text()
    exchange = parse_qs(token_reply.value.request.post_data or "")
    assert exchange["grant_type"] == ["authorization_code"] and exchange["client_id"] == [DOCS_CLIENT]
    assert exchange["code_verifier"] and "client_secret" not in exchange  # a public client proves PKCE
    assert exchange["redirect_uri"] == [f"{replica.url}/docs/oauth2-redirect"]
    dialog.locator("button", has_text="Logout").wait_for()  # Swagger UI holds the token now
    dialog.locator("button", has_text="Close").click()

    me = page.locator(".opblock-get", has=page.locator('.opblock-summary-path[data-path="/me"]'))
    me.locator(".opblock-summary").click()
    me.locator("button", has_text="Try it out").click()
    with page.expect_response(f"{replica.url}/me"):
        me.locator("button", has_text="Execute").click()
    shown = me.locator(".live-responses-table .response-col_description pre").first
    shown.wait_for()
    body = json.loads(shown.inner_text())

    assert off_loopback == []  # Swagger UI came from the replica itself and the login page from the issuer
    assert me_calls == [(200, True)]
    assert body["replica"] == "replica-1"
    assert body["claims"]["sub"] == sub
    assert "reports:read" in body["claims"]["scope"].split()
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5_000
