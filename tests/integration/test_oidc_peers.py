"""A stranger's OpenID Connect client against a running issuer: authlib's OAuth 2.0 client (sync
and async) runs the authorization code flow with PKCE S256, a person's browser is an httpx
client posting the hosted login form, joserfc verifies the ID token from the published JWKS,
and the tokens are used at /userinfo and at a replica, refreshed, and ended by RP-initiated
logout, after which the replica refuses them (the revocation feed crossed the processes).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio.from_thread
import httpx
import pytest
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet

from auth_service.launch import Service
from tests.conftest import PASSWORD, Stack, bearer, eventually
from tests.signin_pages import form_fields, query_of

with warnings.catch_warnings():  # authlib prefers the httpx2 fork; its httpx support is what our callers use
    import authlib.deprecate  # noqa: F401  (its import switches its warnings on: silence this one after)

    warnings.filterwarnings("ignore", message="The httpx module is deprecated")
    from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuth2Client

CALLBACK = "http://127.0.0.1:8765/callback"  # never requested: the test reads the redirect itself
SIGNED_OUT = "http://127.0.0.1:8765/signed-out"


@pytest.fixture(scope="module")
def signin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Service]]:
    """An issuer with alice (a name and an email) and the public client `spa`, and one replica."""
    stack = Stack(Path(tmp_path_factory.mktemp("oidc-peers")))
    try:
        stack.start_auth()
        stack.add_user("alice", scope="reports:read")
        stack.cli("users", "set-profile", "alice", "--display-name", "Alice", "--email", "alice@example.com")
        stack.cli(
            "clients",
            "add",
            "spa",
            "--public",
            "--grant=authorization_code",
            "--grant=refresh_token",
            f"--redirect-uri={CALLBACK}",
            f"--post-logout-redirect-uri={SIGNED_OUT}",
            "--scope=openid profile email reports:read",
            "--first-party",
        )
        replica = stack.start_replicas(1)[0]
        yield stack, replica
    finally:
        stack.stop()


@pytest.fixture(params=["OAuth2Client", "AsyncOAuth2Client"])
def relying_party(request: pytest.FixtureRequest) -> Iterator[tuple[Any, Callable[..., Any]]]:
    """authlib's client for `spa` (no secret: PKCE instead) and `run(method, ...)`, sync or async."""
    options = {"client_id": "spa", "token_endpoint_auth_method": "none", "redirect_uri": CALLBACK}
    options |= {"scope": "openid profile email reports:read", "code_challenge_method": "S256", "timeout": 10}
    if request.param == "OAuth2Client":
        client = OAuth2Client(**options)
        yield client, lambda method, *args, **kwargs: method(*args, **kwargs)
        client.close()
        return
    with anyio.from_thread.start_blocking_portal() as portal:
        aclient = AsyncOAuth2Client(**options)

        def run(method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            return portal.call(functools.partial(method, *args, **kwargs))

        yield aclient, run
        portal.call(aclient.aclose)


def _sign_in_as_a_person(browser: httpx.Client, url: str) -> str:
    """Open the authorization URL, fill in the hosted login form, and return where it sends us."""
    page = browser.get(url)
    assert page.status_code == 200 and 'name="password"' in page.text, page.text
    fields = form_fields(page.text)
    action = fields.pop("_action")
    answer = browser.post(action, data={**fields, "username": "alice", "password": PASSWORD})
    assert answer.status_code == 303, answer.text
    return answer.headers["location"]


def test_authlib_runs_the_code_flow_with_pkce_and_joserfc_verifies_the_id_token(
    signin: tuple[Stack, Service], relying_party: tuple[Any, Callable[..., Any]]
) -> None:
    stack, replica = signin
    client, run = relying_party
    assert stack.auth is not None
    metadata = stack.http.get(f"{stack.auth.url}/.well-known/openid-configuration").json()
    verifier = "v" * 20 + "-" + "x" * 30  # 51 unreserved characters (RFC 7636 4.1)
    url, state = client.create_authorization_url(
        metadata["authorization_endpoint"], code_verifier=verifier, nonce="nonce-from-the-rp"
    )
    with httpx.Client(timeout=10) as browser:
        location = _sign_in_as_a_person(browser, url)
        assert location.startswith(CALLBACK + "?")
        returned = query_of(location)
        assert returned["state"] == state and returned["iss"] == metadata["issuer"]
        token = run(
            client.fetch_token, metadata["token_endpoint"], authorization_response=location, code_verifier=verifier
        )

        keys = KeySet.import_key_set(stack.http.get(metadata["jwks_uri"]).json())
        id_token = jose_jwt.decode(
            token["id_token"], keys, algorithms=metadata["id_token_signing_alg_values_supported"]
        )
        jose_jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": metadata["issuer"]},
            aud={"essential": True, "value": "spa"},
            nonce={"essential": True, "value": "nonce-from-the-rp"},
            sub={"essential": True},
            sid={"essential": True},
            auth_time={"essential": True},
        ).validate(id_token.claims)
        assert id_token.claims["name"] == "Alice" and id_token.claims["email"] == "alice@example.com"

        userinfo = run(client.get, metadata["userinfo_endpoint"]).json()
        assert userinfo["sub"] == id_token.claims["sub"] and userinfo["email"] == "alice@example.com"
        assert stack.me(replica, token["access_token"]).status_code == 200

        refreshed = run(client.refresh_token, metadata["token_endpoint"])
        assert refreshed["access_token"] != token["access_token"]
        assert stack.me(replica, refreshed["access_token"]).status_code == 200

        bye = browser.get(
            metadata["end_session_endpoint"],
            params={"id_token_hint": token["id_token"], "post_logout_redirect_uri": SIGNED_OUT, "state": "bye"},
        )
        assert bye.status_code == 303 and bye.headers["location"] == f"{SIGNED_OUT}?state=bye"

    for access in (token["access_token"], refreshed["access_token"]):  # the feed reached the replica
        assert eventually(lambda a=access: stack.me(replica, a).status_code == 401, timeout=10)
    refused = stack.http.get(metadata["userinfo_endpoint"], headers=bearer(refreshed["access_token"]))
    assert refused.status_code == 401 and "invalid_token" in refused.headers["www-authenticate"]
    again = stack.token(grant_type="refresh_token", refresh_token=refreshed["refresh_token"], client_id="spa")
    assert again.json()["error"] == "invalid_grant"
