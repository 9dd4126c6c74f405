"""The browser sign-in in process: `/authorize`, the hosted login and consent pages, the code
exchange with PKCE, ID tokens, `/userinfo` and RP-initiated logout, against `create_app` with
its real SQLite file, keys and Argon2id (tests/unit/inprocess_issuer.py).

The browser is an httpx client that keeps cookies and follows nothing by itself: each test
reads the page or the redirect it got, as a person's browser would act on it. The real-process
runs (authlib and joserfc as the peers, chromium through the example app) are in
tests/integration/test_oidc_peers.py and tests/browser/.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.signin_pages import form_fields, page_text, pkce_pair, query_of
from tests.unit.inprocess_issuer import PASSWORD, Running, running_issuer

pytestmark = pytest.mark.anyio

ISSUER = "http://127.0.0.1:8000"
APP = "https://app.example/callback"
OTHER_APP = "https://other.example/cb"
THIRD = "https://third.example/cb"
ORIGIN = {"Origin": ISSUER}  # what a browser sends with a form posted from our own page


@pytest.fixture
async def issuer(tmp_path: Path) -> AsyncIterator[Running]:
    async with running_issuer(tmp_path) as running:
        await running.register(
            "app",
            grant_types=("authorization_code", "refresh_token"),
            redirect_uris=(APP,),
            post_logout_redirect_uris=("https://app.example/bye",),
            scope="openid profile email reports:read",
            first_party=True,
            name="The App",
        )
        await running.register(
            "other", grant_types=("authorization_code",), redirect_uris=(OTHER_APP,), scope="openid", first_party=True
        )
        await running.register(
            "third", grant_types=("authorization_code",), redirect_uris=(THIRD,), scope="openid reports:read"
        )
        yield running


def _authorize_params(client_id: str = "app", redirect_uri: str = APP, **extra: str) -> tuple[dict[str, str], str]:
    verifier, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "st-123",
        "scope": "openid profile reports:read",
        "nonce": "n-456",
        **extra,
    }
    return params, verifier


async def _authorize(issuer: Running, **params: str) -> httpx.Response:
    return await issuer.client.get("/authorize", params=params)


async def _submit(
    issuer: Running, page: httpx.Response, *, headers: dict[str, str] | None = None, **fields: str
) -> httpx.Response:
    form = form_fields(page.text)
    action = form.pop("_action").removeprefix(ISSUER)
    return await issuer.client.post(action, data={**form, **fields}, headers=ORIGIN if headers is None else headers)


async def _sign_in(
    issuer: Running, client_id: str = "app", redirect_uri: str = APP, **extra: str
) -> tuple[dict[str, str], str]:
    """Through the login page to the redirect: (its query, the code_verifier)."""
    params, verifier = _authorize_params(client_id, redirect_uri, **extra)
    page = await _authorize(issuer, **params)
    assert page.status_code == 200 and "Sign in" in page.text, page.text
    answer = await _submit(issuer, page, username="alice", password=PASSWORD)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"].startswith(redirect_uri + "?")
    return query_of(answer.headers["location"]), verifier


async def _exchange(
    issuer: Running, code: str, verifier: str, client_id: str = "app", redirect_uri: str = APP
) -> httpx.Response:
    return await issuer.token(
        grant_type="authorization_code",
        code=code,
        redirect_uri=redirect_uri,
        code_verifier=verifier,
        client_id=client_id,
    )


def _claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


# -- the way through -----------------------------------------------------------------------


async def test_the_code_flow_signs_in_at_the_hosted_page_and_returns_tokens_and_an_id_token(issuer: Running) -> None:
    await issuer.directory.set_profile(
        "alice", name="Alice Liddell", email="alice@example.com", email_verified=True, actor="t"
    )
    query, verifier = await _sign_in(issuer)
    assert query["state"] == "st-123" and query["iss"] == ISSUER  # RFC 9207
    answer = await _exchange(issuer, query["code"], verifier)
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert body["scope"] == "openid profile reports:read" and body["token_type"] == "Bearer"
    access, id_token = _claims(body["access_token"]), _claims(body["id_token"])
    assert jwt.get_unverified_header(body["id_token"])["typ"] == "JWT"
    assert id_token["aud"] == "app" and id_token["iss"] == ISSUER and id_token["nonce"] == "n-456"
    assert id_token["sub"] == access["sub"] and id_token["sid"] == access["sid"]
    assert id_token["auth_time"] <= id_token["iat"] and id_token["name"] == "Alice Liddell"
    assert "email" not in id_token  # the email scope was not asked for
    half = hashlib.sha256(body["access_token"].encode()).digest()[:16]  # ES256: SHA-256
    assert id_token["at_hash"] == base64.urlsafe_b64encode(half).rstrip(b"=").decode()
    info = await issuer.client.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert info.json() == {"sub": access["sub"], "preferred_username": "alice", "name": "Alice Liddell"}
    refreshed = await issuer.token(grant_type="refresh_token", refresh_token=body["refresh_token"], client_id="app")
    assert refreshed.status_code == 200 and _claims(refreshed.json()["access_token"])["sid"] == access["sid"]


async def test_a_second_app_in_the_same_browser_signs_in_without_a_password(issuer: Running) -> None:
    await _sign_in(issuer)
    params, verifier = _authorize_params("other", OTHER_APP, scope="openid")
    answer = await _authorize(issuer, **params)
    assert answer.status_code == 303  # straight back with a code: single sign-on
    query = query_of(answer.headers["location"])
    tokens = (await _exchange(issuer, query["code"], verifier, "other", OTHER_APP)).json()
    assert _claims(tokens["id_token"])["aud"] == "other"
    assert "refresh_token" not in tokens  # "other" is not registered for refresh_token


async def test_prompt_login_and_max_age_zero_ask_for_the_password_again(issuer: Running) -> None:
    await _sign_in(issuer)
    for extra in ({"prompt": "login"}, {"max_age": "0"}):
        params, _ = _authorize_params(**extra)
        issuer.clock.now += 1
        page = await _authorize(issuer, **params)
        assert page.status_code == 200 and 'name="password"' in page.text, extra


async def test_prompt_none_without_a_session_is_login_required_at_the_redirect_uri(issuer: Running) -> None:
    params, _ = _authorize_params(prompt="none")
    answer = await _authorize(issuer, **params)
    assert answer.status_code == 303
    assert query_of(answer.headers["location"]) == {
        "error": "login_required",
        "error_description": "the user is not signed in",
        "state": "st-123",
        "iss": ISSUER,
    }


async def test_the_state_comes_back_exactly_and_is_absent_when_none_was_sent(issuer: Running) -> None:
    query, _ = await _sign_in(issuer, state="a b&c=d/é")
    assert query["state"] == "a b&c=d/é"
    params, _ = _authorize_params()
    del params["state"]
    answer = await _authorize(issuer, **params)  # signed in now: straight to the redirect
    assert "state" not in query_of(answer.headers["location"])


# -- consent -------------------------------------------------------------------------------


async def test_a_third_party_app_asks_consent_once_and_the_answer_is_remembered(issuer: Running) -> None:
    await _sign_in(issuer)
    params, verifier = _authorize_params("third", THIRD, scope="openid reports:read")
    page = await _authorize(issuer, **params)
    assert page.status_code == 200 and "Allow access?" in page.text
    assert "Know who you are" in page_text(page.text) and "reports:read" in page.text
    allowed = await _submit(issuer, page, decision="allow")
    code = query_of(allowed.headers["location"])["code"]
    assert (await _exchange(issuer, code, verifier, "third", THIRD)).status_code == 200
    assert [c["client_id"] for c in await issuer.directory.consents("alice")] == ["third"]
    again, _ = _authorize_params("third", THIRD, scope="openid")
    assert (await _authorize(issuer, **again)).status_code == 303  # no page the second time
    await issuer.directory.revoke_consent("alice", "third", actor="t")
    assert (await _authorize(issuer, **again)).status_code == 200  # asked again once revoked


async def test_denying_consent_sends_access_denied_and_prompt_none_gets_consent_required(issuer: Running) -> None:
    await _sign_in(issuer)
    params, _ = _authorize_params("third", THIRD, scope="openid")
    denied = await _submit(issuer, await _authorize(issuer, **params), decision="deny")
    assert query_of(denied.headers["location"])["error"] == "access_denied"
    silent, _ = _authorize_params("third", THIRD, scope="openid", prompt="none")
    assert query_of((await _authorize(issuer, **silent)).headers["location"])["error"] == "consent_required"


# -- codes ---------------------------------------------------------------------------------


async def test_a_code_used_twice_is_refused_and_the_tokens_it_issued_are_revoked(issuer: Running) -> None:
    query, verifier = await _sign_in(issuer)
    first = (await _exchange(issuer, query["code"], verifier)).json()
    head_before = (await issuer.issuer.store.feed_head())[1]
    replay = await _exchange(issuer, query["code"], verifier)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant" and "already used" in replay.json()["error_description"]
    entries = await issuer.issuer.store.entries_after(head_before)
    assert [(e.kind, e.value) for e in entries] == [("sid", _claims(first["access_token"])["sid"])]
    refresh = await issuer.token(grant_type="refresh_token", refresh_token=first["refresh_token"], client_id="app")
    assert refresh.json()["error"] == "invalid_grant"
    info = await issuer.client.get("/userinfo", headers={"Authorization": f"Bearer {first['access_token']}"})
    assert info.status_code == 401 and 'error="invalid_token"' in info.headers["www-authenticate"]


async def test_a_code_is_refused_to_another_client_a_wrong_verifier_and_another_redirect_uri(issuer: Running) -> None:
    query, verifier = await _sign_in(issuer)
    wrong_client = await _exchange(issuer, query["code"], verifier, client_id="other")
    assert wrong_client.json()["error_description"] == "authorization code was issued to another client"
    other_verifier, _ = pkce_pair()
    wrong_verifier = await _exchange(issuer, query["code"], other_verifier)
    assert wrong_verifier.json()["error_description"] == "code_verifier does not match the code_challenge"
    wrong_uri = await _exchange(issuer, query["code"], verifier, redirect_uri=APP + "/")
    assert wrong_uri.json()["error"] == "invalid_grant"
    missing = await issuer.token(grant_type="authorization_code", code=query["code"], redirect_uri=APP, client_id="app")
    assert missing.status_code == 400 and "PKCE" in missing.json()["error_description"]
    assert (await _exchange(issuer, query["code"], verifier)).status_code == 200  # none of those used it up


async def test_a_code_expires_after_sixty_seconds(issuer: Running) -> None:
    query, verifier = await _sign_in(issuer)
    issuer.clock.now += 61
    answer = await _exchange(issuer, query["code"], verifier)
    assert answer.json() == {"error": "invalid_grant", "error_description": "authorization code expired"}


async def test_a_code_issued_before_the_session_ended_gets_no_tokens(issuer: Running) -> None:
    query, verifier = await _sign_in(issuer)
    await issuer.directory.disable("alice", actor="t")
    answer = await _exchange(issuer, query["code"], verifier)
    assert answer.json()["error_description"] == "authorization code session ended"


# -- hostile requests at /authorize -------------------------------------------------------


@pytest.mark.parametrize(
    "redirect_uri",
    [
        APP + "x",  # one character more
        APP[:-1],  # one character less
        "https://app.example/callbacK",
        "https://evil.example/callback",
        APP + "?next=https://evil.example",
        "https://app.example.evil.example/callback",
        "//evil.example/callback",
        "",
    ],
)
async def test_a_redirect_uri_not_registered_exactly_gets_an_error_page_never_a_redirect(
    issuer: Running, redirect_uri: str
) -> None:
    params, _ = _authorize_params(redirect_uri=redirect_uri)
    answer = await _authorize(issuer, **params)
    assert answer.status_code == 400 and "location" not in answer.headers
    assert "cannot be accepted" in page_text(answer.text)


async def test_an_unknown_client_and_a_repeated_redirect_uri_get_an_error_page(issuer: Running) -> None:
    params, _ = _authorize_params(client_id="nobody")
    assert (await _authorize(issuer, **params)).status_code == 400
    params, _ = _authorize_params()
    query = httpx.QueryParams(params).add("redirect_uri", "https://evil.example/cb")
    answer = await issuer.client.get("/authorize", params=query)
    assert answer.status_code == 400 and "location" not in answer.headers


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": ""}, "invalid_request"),
        ({"code_challenge": ""}, "invalid_request"),
        ({"code_challenge": "short"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "reports:write"}, "invalid_scope"),
        ({"resource": "https://unregistered.api"}, "invalid_target"),
        ({"prompt": "none login"}, "invalid_request"),
        ({"request": "eyJ..."}, "request_not_supported"),
        ({"max_age": "-1"}, "invalid_request"),
    ],
)
async def test_a_bad_request_from_a_trusted_client_is_redirected_back_with_the_error(
    issuer: Running, change: dict[str, str], error: str
) -> None:
    params, _ = _authorize_params(**change)
    answer = await _authorize(issuer, **params)
    assert answer.status_code == 303
    query = query_of(answer.headers["location"])
    assert query["error"] == error and query["state"] == "st-123" and query["iss"] == ISSUER


async def test_a_client_not_registered_for_the_code_grant_is_unauthorized_client(issuer: Running) -> None:
    await issuer.register("pw", grant_types=("password",), redirect_uris=("https://pw.example/cb",))
    params, _ = _authorize_params("pw", "https://pw.example/cb")
    assert query_of((await _authorize(issuer, **params)).headers["location"])["error"] == "unauthorized_client"


# -- the login page ------------------------------------------------------------------------


async def test_every_page_forbids_framing_scripts_and_caching_and_sends_no_referrer(issuer: Running) -> None:
    params, _ = _authorize_params()
    page = await _authorize(issuer, **params)
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp and "script-src" not in csp
    assert f"form-action 'self' {APP}" in csp  # the post's redirect back to the app, and nothing else
    assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer" and page.headers["cache-control"] == "no-store"
    error_page = await _authorize(issuer, client_id="nobody")
    assert "frame-ancestors 'none'" in error_page.headers["content-security-policy"]
    assert "http" not in page.text.replace(ISSUER, "")  # no third-party asset, no other host
    assert '<label for="username">Username</label>' in page.text and '<label for="password">' in page.text


async def test_an_unknown_user_and_a_wrong_password_get_the_same_page(issuer: Running) -> None:
    params, _ = _authorize_params()
    page = await _authorize(issuer, **params)
    unknown = await _submit(issuer, page, username="mallory", password=PASSWORD)
    wrong = await _submit(issuer, page, username="alice", password="not the password at all")
    assert unknown.status_code == wrong.status_code == 400
    for answer in (unknown, wrong):
        assert 'role="alert"' in answer.text and "Incorrect username or password." in answer.text
    assert page_text(unknown.text).replace("mallory", "alice") == page_text(wrong.text)
    assert "set-cookie" not in wrong.headers or "auth_session" not in wrong.headers["set-cookie"]


async def test_login_csrf_a_post_without_this_browsers_cookie_or_from_another_site_is_refused(issuer: Running) -> None:
    params, _ = _authorize_params()
    page = await _authorize(issuer, **params)
    cross_site = await _submit(
        issuer, page, headers={"Origin": "https://evil.example"}, username="alice", password=PASSWORD
    )
    assert cross_site.status_code == 403
    fetch_site = await _submit(
        issuer, page, headers={"Origin": "null", "Sec-Fetch-Site": "cross-site"}, username="alice", password=PASSWORD
    )
    assert fetch_site.status_code == 403
    # What chromium sends with our own page's form (its no-referrer policy makes the Origin null):
    same_site = await _submit(
        issuer, page, headers={"Origin": "null", "Sec-Fetch-Site": "same-origin"}, username="alice", password="wrong!"
    )
    assert same_site.status_code == 400 and "Incorrect username or password." in same_site.text
    issuer.client.cookies.clear()  # the attacker's own page, posted from the victim's browser
    forged = await _submit(issuer, page, username="alice", password=PASSWORD)
    assert forged.status_code == 403 and "does not belong to this browser" in page_text(forged.text)
    assert "location" not in forged.headers


async def test_a_session_cookie_from_another_issuer_is_no_session_here(issuer: Running, tmp_path: Path) -> None:
    await _sign_in(issuer)
    cookies = dict(issuer.client.cookies)
    async with running_issuer(tmp_path / "other") as other:
        await other.register(
            "app", grant_types=("authorization_code",), redirect_uris=(APP,), scope="openid", first_party=True
        )
        other.client.cookies.update(cookies)  # same host and cookie names: its value means nothing here
        params, _ = _authorize_params(scope="openid")
        answer = await _authorize(other, **params)
        assert answer.status_code == 200 and 'name="password"' in answer.text
    async with running_issuer(tmp_path / "third", issuer="http://127.0.0.1:9000") as elsewhere:
        names = {name for name in cookies if name.startswith("auth_session_")}
        assert names and not names & {elsewhere.issuer.signin.cookies.session_name}


async def test_the_login_pages_limit_is_the_token_endpoints(issuer: Running) -> None:
    # Fail at /token until alice's (name, address) pair is throttled; the page is then throttled too.
    for _ in range(issuer.issuer.settings.login_max_failures):
        await issuer.token(grant_type="password", username="alice", password="wrong password here", client_id="public")
    params, _ = _authorize_params()
    page = await _authorize(issuer, **params)
    limited = await _submit(issuer, page, username="alice", password=PASSWORD)
    assert limited.status_code == 429 and "retry-after" in limited.headers
    assert "Too many sign-in attempts" in page_text(limited.text)


# -- logout --------------------------------------------------------------------------------


async def test_end_session_with_an_id_token_hint_signs_out_every_app_and_returns_with_state(issuer: Running) -> None:
    query, verifier = await _sign_in(issuer)
    tokens = (await _exchange(issuer, query["code"], verifier)).json()
    params, other_verifier = _authorize_params("other", OTHER_APP, scope="openid")
    other_query = query_of((await _authorize(issuer, **params)).headers["location"])
    other_tokens = (await _exchange(issuer, other_query["code"], other_verifier, "other", OTHER_APP)).json()
    answer = await issuer.client.get(
        "/end-session",
        params={
            "id_token_hint": tokens["id_token"],
            "post_logout_redirect_uri": "https://app.example/bye",
            "state": "s1",
        },
    )
    assert answer.status_code == 303 and answer.headers["location"] == "https://app.example/bye?state=s1"
    for access in (tokens["access_token"], other_tokens["access_token"]):  # both apps' sessions ended
        info = await issuer.client.get("/userinfo", headers={"Authorization": f"Bearer {access}"})
        assert info.status_code == 401
    params, _ = _authorize_params()
    assert 'name="password"' in (await _authorize(issuer, **params)).text  # signed out of the issuer too


async def test_end_session_never_redirects_to_an_unregistered_post_logout_uri(issuer: Running) -> None:
    query, verifier = await _sign_in(issuer)
    tokens = (await _exchange(issuer, query["code"], verifier)).json()
    for target in ("https://evil.example/bye", "https://app.example/bye/", APP):
        answer = await issuer.client.get(
            "/end-session", params={"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": target}
        )
        assert answer.status_code == 400 and "location" not in answer.headers, target
    info = await issuer.client.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert info.status_code == 200  # a refused logout request ended nothing


async def test_end_session_without_a_hint_asks_first_and_a_forged_confirmation_is_refused(issuer: Running) -> None:
    query, verifier = await _sign_in(issuer)
    tokens = (await _exchange(issuer, query["code"], verifier)).json()
    page = await issuer.client.get("/end-session", params={"client_id": "app"})
    assert page.status_code == 200 and "Sign out" in page.text
    forged = await _submit(issuer, page, headers={"Origin": "https://evil.example"}, decision="sign_out")
    assert forged.status_code == 403
    signed_out = await _submit(issuer, page, decision="sign_out")
    assert signed_out.status_code == 200 and "You are signed out" in page_text(signed_out.text)
    info = await issuer.client.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert info.status_code == 401


# -- discovery and userinfo ---------------------------------------------------------------


async def test_the_discovery_document_passes_authlibs_oauth_and_openid_metadata_validation(tmp_path: Path) -> None:
    from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
    from authlib.oidc.discovery import OpenIDProviderMetadata

    # OpenID Connect Discovery requires RS256 among the ID token algorithms: the default signing algorithm.
    async with running_issuer(tmp_path, signing_alg="RS256") as issuer:
        for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
            document = (await issuer.client.get(path)).json()
            AuthorizationServerMetadata(document).validate()
            OpenIDProviderMetadata(document).validate()
            assert document["code_challenge_methods_supported"] == ["S256"]
            assert document["authorization_endpoint"] == f"{ISSUER}/authorize"


async def test_the_discovery_document_advertises_the_algorithm_that_signs(issuer: Running) -> None:
    document = (await issuer.client.get("/.well-known/openid-configuration")).json()
    assert document["id_token_signing_alg_values_supported"] == ["ES256"]  # never RS256 it cannot sign with


async def test_userinfo_needs_the_openid_scope_and_releases_email_only_with_the_email_scope(issuer: Running) -> None:
    await issuer.directory.set_profile("alice", name=None, email="alice@example.com", email_verified=False, actor="t")
    query, verifier = await _sign_in(issuer, scope="openid email")
    tokens = (await _exchange(issuer, query["code"], verifier)).json()
    info = await issuer.client.post("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert info.json() == {
        "sub": _claims(tokens["access_token"])["sub"],
        "email": "alice@example.com",
        "email_verified": False,
    }
    password_login = await issuer.login()  # the password grant: no openid scope
    refused = await issuer.client.get(
        "/userinfo", headers={"Authorization": f"Bearer {password_login['access_token']}"}
    )
    assert (
        refused.status_code == 403
        and 'error="insufficient_scope", scope="openid"' in refused.headers["www-authenticate"]
    )
    bare = await issuer.client.get("/userinfo")
    assert bare.status_code == 401 and bare.headers["www-authenticate"] == 'Bearer realm="auth"'


async def test_failures_at_the_login_page_throttle_the_password_grant_too(issuer: Running) -> None:
    params, _ = _authorize_params()
    page = await _authorize(issuer, **params)
    for _ in range(issuer.issuer.settings.login_max_failures):
        assert (await _submit(issuer, page, username="alice", password="wrong password here")).status_code == 400
    token = await issuer.token(grant_type="password", username="alice", password=PASSWORD, client_id="public")
    assert token.status_code == 429 and token.json()["error"] == "temporarily_unavailable"


async def test_the_pages_show_the_product_name_and_serve_its_logo_themselves(tmp_path: Path) -> None:
    logo = tmp_path / "logo.svg"
    logo.write_text('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')
    async with running_issuer(tmp_path, product_name="Acme Reports", product_logo=logo) as issuer:
        await issuer.register("app", grant_types=("authorization_code",), redirect_uris=(APP,), scope="openid")
        params, _ = _authorize_params(scope="openid")
        page = await _authorize(issuer, **params)
        assert "<title>Sign in · Acme Reports</title>" in page.text
        assert f'<img src="{ISSUER}/signin/logo" alt="Acme Reports">' in page.text
        served = await issuer.client.get("/signin/logo")
        assert (
            served.headers["content-type"] == "image/svg+xml" and "sandbox" in served.headers["content-security-policy"]
        )
        css = await issuer.client.get("/signin/static/signin.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    async with running_issuer(tmp_path / "plain") as plain:
        assert (await plain.client.get("/signin/logo")).status_code == 404  # no logo configured


async def test_the_session_cookie_is_httponly_samesite_lax_and_secure_host_only_on_https(issuer: Running) -> None:
    params, _ = _authorize_params()
    page = await _authorize(issuer, **params)
    answer = await _submit(issuer, page, username="alice", password=PASSWORD)
    set_cookie = next(v for v in answer.headers.get_list("set-cookie") if v.startswith("auth_session_"))
    attributes = {part.strip().split("=")[0].lower() for part in set_cookie.split(";")[1:]}
    assert {"httponly", "path", "samesite", "max-age"} <= attributes and "secure" not in attributes
    assert "samesite=lax" in set_cookie.lower()
    from fastapi.responses import Response

    from auth_service.config import Settings
    from auth_service.signin.pages import Cookies

    https = Cookies(Settings(issuer="https://auth.example"))
    response = Response()
    https.set_session(response, "x" * 43)
    header = response.headers["set-cookie"]
    assert header.startswith("__Host-auth_session_") and "secure" in header.lower() and "domain" not in header.lower()


async def test_prompt_consent_asks_a_third_party_again_and_login_hint_fills_the_username(issuer: Running) -> None:
    await _sign_in(issuer)
    params, _ = _authorize_params("third", THIRD, scope="openid")
    await _submit(issuer, await _authorize(issuer, **params), decision="allow")
    again, _ = _authorize_params("third", THIRD, scope="openid", prompt="consent")
    assert "Allow access?" in (await _authorize(issuer, **again)).text  # remembered, yet asked: prompt=consent
    hinted, _ = _authorize_params(prompt="login", login_hint="alice")
    page = await _authorize(issuer, **hinted)
    assert form_fields(page.text)["username"] == "alice"
