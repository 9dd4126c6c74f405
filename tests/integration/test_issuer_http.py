"""The auth service over real HTTP: grants, rotation, revocation, introspection, discovery."""

from __future__ import annotations

import concurrent.futures
import json

import httpx
import pytest

from tests.conftest import PASSWORD, Stack, claims_of


def test_metadata_urls_come_from_the_issuer_setting_never_from_the_host_header(issuer: Stack) -> None:
    assert issuer.auth is not None
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
        meta = issuer.http.get(
            issuer.auth.url + path, headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example"}
        ).json()
        assert meta["issuer"] == issuer.auth.url
        assert meta["token_endpoint"] == f"{issuer.auth.url}/token"
        assert meta["jwks_uri"] == f"{issuer.auth.url}/.well-known/jwks.json"
        assert meta["revocation_list_uri"] == f"{issuer.auth.url}/revocations"
        assert not any("evil" in str(v) for v in meta.values())


def test_jwks_is_cacheable_with_max_age_and_etag_and_answers_304_when_unchanged(issuer: Stack) -> None:
    assert issuer.auth is not None
    first = issuer.http.get(f"{issuer.auth.url}/.well-known/jwks.json")
    assert first.headers["cache-control"] == "public, max-age=1"
    again = issuer.http.get(
        f"{issuer.auth.url}/.well-known/jwks.json", headers={"If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 304 and again.content == b""
    key = first.json()["keys"][0]
    assert key["use"] == "sig" and key["alg"] == "RS256" and "d" not in key


def test_password_grant_answers_per_rfc6749_with_an_rfc9068_access_token(issuer: Stack) -> None:
    response = issuer.token(grant_type="password", username="alice", password=PASSWORD, scope="reports:read")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900 and body["scope"] == "reports:read"
    header, claims = claims_of(body["access_token"])
    assert header["typ"] == "at+jwt" and header["alg"] == "RS256" and header["kid"]
    assert set(claims) >= {"iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope", "sid"}
    assert claims["sub"] != "alice" and claims["preferred_username"] == "alice"
    assert claims["exp"] == claims["iat"] + 900  # type: ignore[operator]
    rt_header, rt_claims = claims_of(body["refresh_token"])
    assert rt_header["typ"] == "rt+jwt" and rt_claims["aud"] == rt_claims["iss"]
    assert rt_claims["sid"] == claims["sid"]


def test_swagger_style_form_with_empty_client_fields_logs_in(issuer: Stack) -> None:
    # What FastAPI's OAuth2PasswordRequestForm / Swagger UI's password flow posts.
    response = issuer.token(
        grant_type="password", username="alice", password=PASSWORD, scope="", client_id="", client_secret=""
    )
    assert response.status_code == 200, response.text


def test_wrong_password_and_unknown_user_get_the_same_answer(issuer: Stack) -> None:
    wrong = issuer.token(grant_type="password", username="alice", password="not it")
    unknown = issuer.token(grant_type="password", username="nobody-here", password="not it")
    assert wrong.status_code == unknown.status_code == 400
    assert (
        wrong.json()
        == unknown.json()
        == {"error": "invalid_grant", "error_description": "invalid username or password"}
    )


def test_requesting_a_scope_the_user_lacks_is_invalid_scope(issuer: Stack) -> None:
    response = issuer.token(grant_type="password", username="alice", password=PASSWORD, scope="admin")
    assert response.status_code == 400 and response.json()["error"] == "invalid_scope"


def test_refresh_rotates_and_replaying_the_old_token_revokes_the_whole_family(issuer: Stack) -> None:
    login = issuer.login()
    renewed = issuer.token(grant_type="refresh_token", refresh_token=login["refresh_token"])
    assert renewed.status_code == 200
    new = renewed.json()
    assert new["refresh_token"] != login["refresh_token"]
    sid = claims_of(new["access_token"])[1]["sid"]
    assert sid == claims_of(login["access_token"])[1]["sid"]
    replay = issuer.token(grant_type="refresh_token", refresh_token=login["refresh_token"])
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    # The family is gone: even the newest refresh token no longer works...
    assert issuer.token(grant_type="refresh_token", refresh_token=new["refresh_token"]).status_code == 400
    # ...and its access tokens are revoked by sid in the public feed.
    assert issuer.auth is not None
    feed = issuer.http.get(f"{issuer.auth.url}/revocations").json()
    assert {"kind": "sid", "value": sid} in [{"kind": e["kind"], "value": e["value"]} for e in feed["entries"]]


def test_twenty_concurrent_refreshes_of_one_token_yield_exactly_one_success(issuer: Stack) -> None:
    login = issuer.login()
    assert issuer.auth is not None
    url = f"{issuer.auth.url}/token"

    def refresh(_: int) -> int:
        return httpx.post(
            url, data={"grant_type": "refresh_token", "refresh_token": login["refresh_token"]}, timeout=30
        ).status_code

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        codes = list(pool.map(refresh, range(20)))
    assert codes.count(200) == 1 and codes.count(400) == 19


def test_client_credentials_needs_client_authentication_and_gets_no_refresh_token(issuer: Stack) -> None:
    assert issuer.auth is not None
    ok = issuer.http.post(
        f"{issuer.auth.url}/token",
        data={"grant_type": "client_credentials"},
        auth=("svc", "svc-secret-of-at-least-32-characters"),
    )
    assert ok.status_code == 200 and "refresh_token" not in ok.json()
    claims = claims_of(ok.json()["access_token"])[1]
    assert claims["sub"] == claims["client_id"] == "svc" and "sid" not in claims
    bad = issuer.http.post(f"{issuer.auth.url}/token", data={"grant_type": "client_credentials"}, auth=("svc", "wrong"))
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
    assert bad.headers["www-authenticate"].startswith("Basic")
    anonymous = issuer.token(grant_type="client_credentials")
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "invalid_client"


def test_empty_basic_credentials_name_no_client_as_swagger_ui_sends_them(issuer: Stack) -> None:
    # Swagger UI's password form sends `Authorization: Basic base64(":")` when no client_id is typed.
    assert issuer.auth is not None
    url = f"{issuer.auth.url}/token"
    login = issuer.http.post(
        url, data={"grant_type": "password", "username": "alice", "password": PASSWORD}, auth=("", "")
    )
    assert login.status_code == 200, login.text
    assert claims_of(login.json()["access_token"])[1]["client_id"] == "public"
    # They authenticate no one: a confidential grant is still refused, and so is a secret without an id.
    assert issuer.http.post(url, data={"grant_type": "client_credentials"}, auth=("", "")).status_code == 401
    no_id = issuer.http.post(
        url,
        data={"grant_type": "password", "username": "alice", "password": PASSWORD},
        auth=("", "svc-secret-of-at-least-32-characters"),
    )
    assert no_id.status_code == 401 and no_id.json()["error"] == "invalid_client"


def test_introspection_needs_a_client_and_reports_revocation(issuer: Stack) -> None:
    assert issuer.auth is not None
    token = issuer.login()["access_token"]
    url = f"{issuer.auth.url}/introspect"
    assert issuer.http.post(url, data={"token": token}).status_code == 401
    active = issuer.http.post(url, data={"token": token}, auth=("svc", "svc-secret-of-at-least-32-characters")).json()
    assert active["active"] is True and active["username"] == "alice" and active["token_type"] == "Bearer"
    assert issuer.http.post(f"{issuer.auth.url}/revoke", data={"token": token}).status_code == 200
    assert issuer.http.post(
        url, data={"token": token}, auth=("svc", "svc-secret-of-at-least-32-characters")
    ).json() == {"active": False}
    assert issuer.http.post(
        url, data={"token": "garbage"}, auth=("svc", "svc-secret-of-at-least-32-characters")
    ).json() == {"active": False}


def test_introspection_tells_a_client_only_of_its_own_tokens_unless_it_holds_the_introspect_scope(
    issuer: Stack,
) -> None:
    assert issuer.auth is not None
    issuer.add_client(
        "reader", "reader-secret-of-at-least-32-characters", scope="reports:read"
    )  # confidential, no `introspect`
    url = f"{issuer.auth.url}/introspect"
    login = issuer.login()
    own = issuer.http.post(
        f"{issuer.auth.url}/token",
        data={"grant_type": "client_credentials"},
        auth=("reader", "reader-secret-of-at-least-32-characters"),
    ).json()["access_token"]
    for token in (login["access_token"], login["refresh_token"]):  # issued to the public client
        assert issuer.http.post(
            url, data={"token": token}, auth=("reader", "reader-secret-of-at-least-32-characters")
        ).json() == {"active": False}
        assert (
            issuer.http.post(url, data={"token": token}, auth=("svc", "svc-secret-of-at-least-32-characters")).json()[
                "active"
            ]
            is True
        )
    mine = issuer.http.post(url, data={"token": own}, auth=("reader", "reader-secret-of-at-least-32-characters")).json()
    assert mine["active"] is True and mine["client_id"] == "reader"


def test_revoke_answers_an_unknown_client_id_and_a_secretless_confidential_one_alike(issuer: Stack) -> None:
    assert issuer.auth is not None
    url = f"{issuer.auth.url}/revoke"
    svc_token = issuer.http.post(
        f"{issuer.auth.url}/token",
        data={"grant_type": "client_credentials"},
        auth=("svc", "svc-secret-of-at-least-32-characters"),
    ).json()["access_token"]
    for token in ("garbage", str(issuer.login()["access_token"]), svc_token):
        answers = [
            issuer.http.post(url, data={"token": token, "client_id": client_id})
            for client_id in ("svc", "no-such-client")
        ]
        known, unknown = ({k: v for k, v in r.headers.items() if k not in ("date", "x-request-id")} for r in answers)
        assert (answers[0].status_code, answers[0].content, known) == (
            answers[1].status_code,
            answers[1].content,
            unknown,
        ), token[:12]
    active = issuer.http.post(
        f"{issuer.auth.url}/introspect", data={"token": svc_token}, auth=("svc", "svc-secret-of-at-least-32-characters")
    )
    assert active.json()["active"] is True  # naming svc without its secret revoked nothing


def test_revoking_a_refresh_token_ends_its_session(issuer: Stack) -> None:
    assert issuer.auth is not None
    login = issuer.login()
    assert (
        issuer.http.post(
            f"{issuer.auth.url}/revoke", data={"token": login["refresh_token"], "token_type_hint": "refresh_token"}
        ).status_code
        == 200
    )
    again = issuer.token(grant_type="refresh_token", refresh_token=login["refresh_token"])
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_revoking_garbage_or_unknown_tokens_answers_200_per_rfc7009(issuer: Stack) -> None:
    assert issuer.auth is not None
    for token in ("garbage", "a.b.c", "x" * 4000):
        assert issuer.http.post(f"{issuer.auth.url}/revoke", data={"token": token}).status_code == 200


def test_a_client_cannot_revoke_another_clients_token(issuer: Stack) -> None:
    assert issuer.auth is not None
    token = issuer.login()["access_token"]  # issued to the public client
    response = issuer.http.post(
        f"{issuer.auth.url}/revoke", data={"token": token}, auth=("svc", "svc-secret-of-at-least-32-characters")
    )
    assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"


def test_logout_revokes_the_callers_session(issuer: Stack) -> None:
    assert issuer.auth is not None
    login = issuer.login()
    url = f"{issuer.auth.url}/logout"
    assert issuer.http.post(url).status_code == 401
    assert issuer.http.post(url, headers={"Authorization": "Bearer not-a-token"}).status_code == 401
    done = issuer.http.post(url, headers={"Authorization": f"Bearer {login['access_token']}"})
    assert done.status_code == 204
    assert issuer.token(grant_type="refresh_token", refresh_token=login["refresh_token"]).status_code == 400


def test_the_pull_feed_gives_a_snapshot_then_deltas_after_a_cursor(issuer: Stack) -> None:
    assert issuer.auth is not None
    url = f"{issuer.auth.url}/revocations"
    snapshot = issuer.http.get(url).json()
    assert snapshot["snapshot"] is True
    issuer.cli("revoke", "--jti", "some-jti")
    delta = issuer.http.get(url, params={"after": snapshot["cursor"], "feed": snapshot["feed"]}).json()
    assert delta["snapshot"] is False
    assert [(e["kind"], e["value"], e["seq"]) for e in delta["entries"]] == [
        ("jti", "some-jti", snapshot["cursor"] + 1)
    ]
    other_feed = issuer.http.get(url, params={"after": 1, "feed": "another"}).json()
    assert other_feed["snapshot"] is True


def test_the_push_stream_starts_with_a_heartbeat_and_carries_new_entries(issuer: Stack) -> None:
    assert issuer.auth is not None
    events: list[tuple[str, dict[str, object]]] = []
    with httpx.stream("GET", f"{issuer.auth.url}/revocations/stream", timeout=10) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        kind = ""
        for line in stream.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                events.append((kind, json.loads(line[6:])))
                if kind == "heartbeat" and len(events) == 1:
                    issuer.http.post(f"{issuer.auth.url}/revoke", data={"token": issuer.login()["access_token"]})
                if kind == "revocation":
                    break
    assert events[0][0] == "heartbeat"
    revocation = next(data for kind, data in events if kind == "revocation")
    assert revocation["kind"] == "jti" and revocation["seq"] == events[0][1]["cursor"] + 1  # type: ignore[operator]


@pytest.mark.parametrize(
    "name,request_kwargs,status,error",
    [
        ("json body", {"json": {"grant_type": "password"}}, 400, "invalid_request"),
        ("no content type", {"content": b"grant_type=password"}, 400, "invalid_request"),
        (
            "repeated parameter",
            {
                "content": b"grant_type=password&grant_type=password",
                "headers": {"content-type": "application/x-www-form-urlencoded"},
            },
            400,
            "invalid_request",
        ),
        ("missing grant_type", {"data": {"username": "a"}}, 400, "invalid_request"),
        ("unknown grant_type", {"data": {"grant_type": "implicit"}}, 400, "unsupported_grant_type"),
        ("oversized body", {"data": {"grant_type": "password", "username": "a" * 20000}}, 400, "invalid_request"),
        (
            "non-ascii raw body",
            {
                "content": "grant_type=pässword".encode(),
                "headers": {"content-type": "application/x-www-form-urlencoded"},
            },
            400,
            "invalid_request",
        ),
        (
            "bad percent-encoding",
            {
                "content": b"grant_type=password&username=%ff%fe",
                "headers": {"content-type": "application/x-www-form-urlencoded"},
            },
            400,
            "invalid_request",
        ),
        (
            "control characters",
            {"data": {"grant_type": "password", "username": "a\x00b", "password": "x"}},
            400,
            "invalid_request",
        ),
        ("missing password", {"data": {"grant_type": "password", "username": "alice"}}, 400, "invalid_request"),
        (
            "garbage refresh token",
            {"data": {"grant_type": "refresh_token", "refresh_token": "x.y.z"}},
            400,
            "invalid_grant",
        ),
        (
            "malformed scope",
            {"data": {"grant_type": "password", "username": "alice", "password": "x", "scope": "a  b"}},
            400,
            "invalid_request",
        ),
        (
            "malformed basic auth",
            {"data": {"grant_type": "client_credentials"}, "headers": {"Authorization": "Basic %%%"}},
            401,
            "invalid_client",
        ),
        (
            "unknown auth scheme",
            {"data": {"grant_type": "client_credentials"}, "headers": {"Authorization": "Digest abc"}},
            401,
            "invalid_client",
        ),
    ],
)
def test_bad_token_requests_get_the_rfc6749_error_never_a_500(
    issuer: Stack, name: str, request_kwargs: dict[str, object], status: int, error: str
) -> None:
    assert issuer.auth is not None
    response = issuer.http.post(f"{issuer.auth.url}/token", **request_kwargs)  # type: ignore[arg-type]
    assert response.status_code == status, (name, response.text)
    assert response.json()["error"] == error
    assert "Traceback" not in response.text


def test_other_endpoints_refuse_bad_input_with_standard_errors(issuer: Stack) -> None:
    assert issuer.auth is not None
    url = issuer.auth.url
    assert issuer.http.get(f"{url}/revocations", params={"after": "-1"}).json()["error"] == "invalid_request"
    assert issuer.http.get(f"{url}/revocations", params={"after": "x" * 50}).status_code == 400
    assert issuer.http.get(f"{url}/token").status_code == 405
    assert issuer.http.get(f"{url}/nope").json()["error"] == "not_found"
    assert issuer.http.post(f"{url}/revoke", data={}).json()["error"] == "invalid_request"
    assert issuer.http.post(f"{url}/logout", headers={"Authorization": "Bearer"}).status_code == 400
    assert issuer.http.post(f"{url}/logout", headers={"Authorization": "Basic abc"}).status_code == 401


def test_the_pull_feed_pages_a_long_list_with_more_and_a_cursor(issuer: Stack) -> None:
    assert issuer.auth is not None
    url = f"{issuer.auth.url}/revocations"
    for i in range(5):
        issuer.cli("revoke", "--jti", f"paged-{i}")
    everything = issuer.http.get(url).json()
    seen, params = [], {"limit": 2}
    while True:
        page = issuer.http.get(url, params=params).json()
        assert len(page["entries"]) <= 2
        seen += [e["seq"] for e in page["entries"]]
        if not page["more"]:
            break
        assert page["cursor"] == page["entries"][-1]["seq"]
        params = {"after": page["cursor"], "feed": page["feed"], "limit": 2}
    assert seen == [e["seq"] for e in everything["entries"]]  # each once, in order
    assert page["cursor"] == everything["cursor"]
    for bad in ("0", "10001", "x"):
        assert issuer.http.get(url, params={"limit": bad}).json()["error"] == "invalid_request"


def test_clients_add_can_generate_a_secret_that_authenticates(issuer: Stack) -> None:
    assert issuer.auth is not None
    made = json.loads(issuer.cli("clients", "add", "generated", "--generate-secret"))
    assert len(made["client_secret"]) >= 32
    issued = issuer.http.post(
        f"{issuer.auth.url}/token", data={"grant_type": "client_credentials"}, auth=("generated", made["client_secret"])
    )
    assert issued.status_code == 200, issued.text
