"""Forged tokens against the issuer's own token-taking endpoints, and refresh tokens replayed.

/logout answers a bad Bearer credential the RFC 6750 way; /revoke answers 200 to any token it
does not recognise (RFC 7009 section 2.2) and revokes nothing; /introspect says
`{"active": false}` (RFC 7662 section 2.2); the refresh grant answers `invalid_grant` (RFC 6749
section 5.2). In every case the revocation feed, the issuer's only state a forged token could
touch, stays where it was. Replayed refresh tokens end their whole login session.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from auth_service.forms import MAX_VALUE
from tests.attack.forge import (
    Target,
    assert_bearer_refusal,
    assert_oauth_error,
    cases,
    start_target,
)
from tests.attack.hostile import HOSTILE, Attack
from tests.conftest import claims_of, eventually

pytestmark = pytest.mark.slow

SVC = ("svc", "svc-secret-of-at-least-32-characters")


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    yield from start_target(tmp_path_factory.mktemp("attack-issuer"), clients=("svc",))


def post(target: Target, path: str, auth: tuple[str, str] | None = None, **form: str) -> httpx.Response:
    return target.http.post(f"{target.auth_url}{path}", data=form, auth=auth)  # type: ignore[arg-type]


def logout(target: Target, token: str) -> httpx.Response:
    return target.http.post(f"{target.auth_url}/logout", headers={"Authorization": f"Bearer {token}"})


def assert_too_long(response: httpx.Response, parameter: str) -> None:
    assert_oauth_error(response, status=400, error="invalid_request", description=f"parameter '{parameter}' too long")


# -- /logout, /revoke and the refresh grant, one forged token each ---------------------------


def test_the_controls_a_forged_copy_is_acted_on_and_the_feed_shows_it(target: Target) -> None:
    feed, cursor, _ = target.cursor()
    assert logout(target, target.forger.token()).status_code == 204
    assert post(target, "/revoke", token=target.forger.token()).status_code == 200
    assert target.cursor()[:2] == (feed, cursor + 2)
    unknown = target.stack.token(grant_type="refresh_token", refresh_token=target.refresh_forger.token())
    # Valid but for never having been stored: only the store refuses it.
    assert_oauth_error(unknown, status=400, error="invalid_grant", description="refresh token unknown")


@cases(HOSTILE)
def test_the_issuer_acts_on_no_forged_token(target: Target, case: Attack) -> None:
    before = target.cursor()
    access, refresh = case.build(target.forger), case.build(target.refresh_forger)
    # /logout takes a Bearer credential: RFC 6750 section 3.
    response = logout(target, access)
    assert_bearer_refusal(
        response, status=401, error="invalid_token", realm="auth", description=case.description("at+jwt"), token=access
    )
    assert response.headers["cache-control"] == "no-store"
    # /revoke: RFC 7009 section 2.2, 200 for a token that is not ours, and nothing revoked.
    for token in (access, refresh):
        response = post(target, "/revoke", token=token)
        if len(token) > MAX_VALUE:
            assert_too_long(response, "token")
        else:
            assert response.status_code == 200, response.text
            assert response.content == b"" and response.headers["cache-control"] == "no-store"
    # The refresh grant: RFC 6749 section 5.2 invalid_grant.
    response = target.stack.token(grant_type="refresh_token", refresh_token=refresh)
    if len(refresh) > MAX_VALUE:
        assert_too_long(response, "refresh_token")
    else:
        assert_oauth_error(
            response,
            status=400,
            error="invalid_grant",
            description="refresh token invalid: " + case.description("rt+jwt"),
        )
    assert target.cursor() == before


LOGOUT_HEADERS: dict[str, Callable[[str], list[tuple[str, str]]]] = {
    "two Authorization headers": lambda t: [("Authorization", f"Bearer {t}")] * 2,
    "scheme without a token": lambda t: [("Authorization", "Bearer")],
    "a token of 9000 characters": lambda t: [("Authorization", "Bearer " + "A" * 9000)],
}


@pytest.mark.parametrize("headers", list(LOGOUT_HEADERS.values()), ids=list(LOGOUT_HEADERS))
def test_logout_refuses_a_malformed_authorization_header(
    target: Target, headers: Callable[[str], list[tuple[str, str]]]
) -> None:
    before = target.cursor()
    sent = [(name, value.encode()) for name, value in headers(target.access)]
    response = target.raw_request("POST", f"{target.auth_url}/logout", sent)
    # RFC 6750 section 3: no usable access token, so the challenge is sent, here with invalid_request.
    assert_bearer_refusal(
        response,
        status=400,
        error="invalid_request",
        realm="auth",
        description="malformed Authorization header",
        token=target.access,
    )
    assert target.cursor() == before


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Basic YWxpY2U6c2VjcmV0"}], ids=["no credential", "scheme Basic"]
)
def test_logout_without_a_bearer_credential_sends_a_bare_challenge(target: Target, headers: dict[str, str]) -> None:
    before = target.cursor()
    response = target.http.post(f"{target.auth_url}/logout", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="auth"'  # RFC 6750 section 3.1: no error code
    assert target.cursor() == before


# -- /introspect (RFC 7662) --------------------------------------------------------------------

# Introspection authenticates its client with an Argon2 hash per call: one row per class of attack.
INTROSPECTED = [
    "alg none over the issuer's real signature",
    "alg HS256 keyed with the RSA public key PEM (CVE-2016-10555)",
    "alg PS256 signed by the issuer's own RSA key",
    "jwk header with the attacker's key, signed by it (CVE-2018-0114)",
    "jku to the issuer's own JWKS, signed by the issuer",
    "crit naming an unknown extension",
    "kid path traversal to the issuer's key file",
    "typ JWT, a generic JWT",
    "iss with a trailing slash",
    "aud list without ours",
    "expired an hour ago",
    "exp as a string",
    "claims with sub twice",
    "payload is a JSON array",
    "empty signature (CVE-2020-28042)",
    "signature of another token over escalated claims",
    "payload with a lone surrogate escape",
]


def test_introspection_refuses_two_authorization_headers(target: Target) -> None:
    """The client is authenticated from one credential, never the first of several."""
    response = target.http.post(
        f"{target.auth_url}/introspect",
        data={"token": target.access},
        headers=[("Authorization", "Basic c3ZjOnN2Yy1zZWNyZXQ="), ("Authorization", "Basic ZXZpbDp4")],
    )
    assert_oauth_error(
        response, status=400, error="invalid_request", description="several Authorization headers were sent"
    )


def test_the_control_introspection_finds_a_forged_copy_active(target: Target) -> None:
    body = post(target, "/introspect", auth=SVC, token=target.forger.token()).json()
    assert body["active"] is True and body["token_type"] == "Bearer"


@cases({name: HOSTILE[name] for name in INTROSPECTED})
def test_introspection_reports_a_forged_token_inactive(target: Target, case: Attack) -> None:
    before = target.cursor()
    for forger in (target.forger, target.refresh_forger):
        response = post(target, "/introspect", auth=SVC, token=case.build(forger))
        assert response.status_code == 200
        assert response.json() == {"active": False}
        assert response.headers["cache-control"] == "no-store"
    assert target.cursor() == before


# -- tokens of one kind presented as the other ----------------------------------------------


def test_an_access_token_is_no_refresh_token_and_a_refresh_token_no_access_token(target: Target) -> None:
    before = target.cursor()
    as_refresh = target.stack.token(grant_type="refresh_token", refresh_token=target.access)
    assert_oauth_error(
        as_refresh, status=400, error="invalid_grant", description="refresh token invalid: token typ must be rt+jwt"
    )
    assert_bearer_refusal(
        logout(target, target.refresh),
        status=401,
        error="invalid_token",
        realm="auth",
        description="token typ must be at+jwt",
        token=target.refresh,
    )
    assert target.cursor() == before


# -- refresh tokens replayed -------------------------------------------------------------------


def refused_as_revoked(target: Target, access: str) -> bool:
    response = target.me(access)
    return response.status_code == 401 and 'error_description="token has been revoked"' in response.headers.get(
        "www-authenticate", ""
    )


def test_replaying_a_rotated_refresh_token_ends_the_whole_session(target: Target) -> None:
    first = target.stack.login()
    second = target.stack.token(grant_type="refresh_token", refresh_token=first["refresh_token"]).json()
    assert target.me(second["access_token"]).status_code == 200
    feed, cursor, _ = target.cursor()
    replay = target.stack.token(grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert_oauth_error(
        replay, status=400, error="invalid_grant", description="refresh token already used; the session is revoked"
    )
    entries = target.http.get(f"{target.auth_url}/revocations", params={"after": cursor, "feed": feed}).json()
    sid = claims_of(str(first["access_token"]))[1]["sid"]
    assert [(e["kind"], e["value"]) for e in entries["entries"]] == [("sid", sid)]
    # The newest refresh token of the family is refused too, and so is the replay, again.
    for token in (second["refresh_token"], first["refresh_token"]):
        again = target.stack.token(grant_type="refresh_token", refresh_token=token)
        assert_oauth_error(again, status=400, error="invalid_grant", description="refresh token revoked")
    assert target.cursor()[1] == cursor + 1, "a second replay appends nothing"
    for access in (first["access_token"], second["access_token"]):
        assert eventually(lambda a=access: refused_as_revoked(target, str(a)), timeout=5)


def test_a_refresh_token_is_dead_after_logout(target: Target) -> None:
    login = target.stack.login()
    assert logout(target, str(login["access_token"])).status_code == 204
    before = target.cursor()
    refreshed = target.stack.token(grant_type="refresh_token", refresh_token=login["refresh_token"])
    assert_oauth_error(refreshed, status=400, error="invalid_grant", description="refresh token revoked")
    assert logout(target, str(login["access_token"])).status_code == 204  # idempotent: nothing new revoked
    assert target.cursor() == before
    assert eventually(lambda: refused_as_revoked(target, str(login["access_token"])), timeout=5)


def test_a_refresh_token_is_dead_after_its_revocation(target: Target) -> None:
    login = target.stack.login()
    revoked = post(target, "/revoke", token=str(login["refresh_token"]), token_type_hint="refresh_token")
    assert revoked.status_code == 200
    refreshed = target.stack.token(grant_type="refresh_token", refresh_token=login["refresh_token"])
    assert_oauth_error(refreshed, status=400, error="invalid_grant", description="refresh token revoked")
    assert eventually(lambda: refused_as_revoked(target, str(login["access_token"])), timeout=5)


def test_another_client_cannot_use_or_burn_a_public_clients_refresh_token(target: Target) -> None:
    login = target.stack.login()
    before = target.cursor()
    stolen = post(target, "/token", auth=SVC, grant_type="refresh_token", refresh_token=str(login["refresh_token"]))
    assert_oauth_error(
        stolen, status=400, error="invalid_grant", description="refresh token was issued to another client"
    )
    assert target.cursor() == before
    owner = target.stack.token(grant_type="refresh_token", refresh_token=login["refresh_token"])
    assert owner.status_code == 200, "the owner's session must be untouched"


def test_a_confidential_clients_refresh_token_needs_its_secret(target: Target) -> None:
    login = post(
        target, "/token", auth=SVC, grant_type="password", username="alice", password="correct horse battery staple"
    ).json()
    refresh = str(login["refresh_token"])
    before = target.cursor()
    no_secret = target.stack.token(grant_type="refresh_token", refresh_token=refresh, client_id="svc")
    assert_oauth_error(no_secret, status=401, error="invalid_client", description="client authentication failed")
    wrong = post(target, "/token", auth=("svc", "guess"), grant_type="refresh_token", refresh_token=refresh)
    assert_oauth_error(wrong, status=401, error="invalid_client", description="client authentication failed")
    assert wrong.headers["www-authenticate"] == 'Basic realm="auth"'
    as_public = target.stack.token(grant_type="refresh_token", refresh_token=refresh)
    assert_oauth_error(
        as_public, status=400, error="invalid_grant", description="refresh token was issued to another client"
    )
    assert target.cursor() == before
    assert post(target, "/token", auth=SVC, grant_type="refresh_token", refresh_token=refresh).status_code == 200


def test_asking_more_scope_on_refresh_is_refused_without_burning_the_token(target: Target) -> None:
    login = target.stack.login(scope="profile")
    wider = target.stack.token(
        grant_type="refresh_token", refresh_token=login["refresh_token"], scope="profile reports:read"
    )
    assert_oauth_error(wider, status=400, error="invalid_scope", description="requested scope exceeds what was granted")
    again = target.stack.token(grant_type="refresh_token", refresh_token=login["refresh_token"])
    assert again.status_code == 200 and again.json()["scope"] == "profile"
