"""The admin HTTP API (`/admin`), in process: each endpoint changes what the CLI would, and
only an admin client's own token for this issuer may call it.

The admin client `ops` is registered with the `admin` scope and the issuer as its audience,
and takes its token with client credentials and `resource=<issuer>`, as docs/http-api.md says.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import delete

from auth_service.storage.tables import clients
from tests.unit.inprocess_issuer import PASSWORD, SECRET, Running, running_issuer

pytestmark = pytest.mark.anyio

NEW_PASSWORD = "a quite different passphrase"
OTHER_SECRET = "another-secret-of-at-least-32-characters"


class Admin:
    """The running issuer and the admin client's bearer header."""

    def __init__(self, issuer: Running, headers: dict[str, str]) -> None:
        self.issuer, self.headers = issuer, headers

    async def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        return await self.issuer.client.request(method, path, json=body, headers=self.headers, **kwargs)


async def _client_token(issuer: Running, client_id: str, secret: str, **form: str) -> str:
    answer = await issuer.token(grant_type="client_credentials", auth=(client_id, secret), **form)
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


async def _register_admin(issuer: Running, client_id: str, secret: str = SECRET, scope: str = "admin") -> str:
    """An admin client as the docs register it; its token for this issuer."""
    own = issuer.issuer.settings.issuer
    await issuer.register(client_id, secret=secret, scope=scope, audiences=(own,))
    return await _client_token(issuer, client_id, secret, resource=own)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def admin(tmp_path: Path) -> AsyncIterator[Admin]:
    async with running_issuer(tmp_path) as issuer:
        yield Admin(issuer, _bearer(await _register_admin(issuer, "ops")))


async def _password_login(issuer: Running, username: str = "alice", password: str = PASSWORD, **extra: str) -> Any:
    return await issuer.token(grant_type="password", username=username, password=password, **extra)


# -- users -------------------------------------------------------------------------------


async def test_users_are_listed_a_page_at_a_time_and_next_asks_for_the_following_page(admin: Admin) -> None:
    for name in ("bob", "carol"):
        assert (await admin.call("POST", "/admin/users", {"username": name, "password": PASSWORD})).status_code == 201
    first = await admin.call("GET", "/admin/users", params={"limit": 2})
    assert first.status_code == 200 and first.headers["cache-control"] == "no-store"
    assert [u["username"] for u in first.json()["users"]] == ["alice", "bob"]
    assert first.json()["next"] == "bob"
    rest = (await admin.call("GET", "/admin/users", params={"limit": 2, "after": "bob"})).json()
    assert ([u["username"] for u in rest["users"]], rest["next"]) == (["carol"], None)


async def test_an_added_user_can_log_in_with_the_scope_given(admin: Admin) -> None:
    added = await admin.call("POST", "/admin/users", {"username": "bob", "password": PASSWORD, "scope": "reports:read"})
    assert added.status_code == 201
    assert added.json() | {"sub": "-"} == {
        "username": "bob",
        "sub": "-",
        "scope": "reports:read",
        "disabled": False,
        "disabled_at": None,
        "password_changed_at": admin.issuer.clock.now,
        "name": None,
        "email": None,
        "email_verified": False,
    }
    assert PASSWORD not in added.text
    login = await _password_login(admin.issuer, "bob")
    assert (login.status_code, login.json()["scope"]) == (200, "reports:read")


async def test_show_user_answers_the_users_view(admin: Admin) -> None:
    shown = await admin.call("GET", "/admin/users/alice")
    assert shown.status_code == 200
    assert (shown.json()["username"], shown.json()["scope"]) == ("alice", "reports:read reports:write")
    assert shown.json()["sub"] == (await admin.issuer.directory.user("alice")).id


async def test_set_scope_narrows_what_the_next_login_is_granted(admin: Admin) -> None:
    changed = await admin.call("PUT", "/admin/users/alice/scope", {"scope": "reports:read"})
    assert (changed.status_code, changed.json()["scope"]) == (200, "reports:read")
    assert (await admin.issuer.login())["scope"] == "reports:read"


async def test_set_password_changes_the_login_and_revokes_the_users_sessions(admin: Admin) -> None:
    session = await admin.issuer.login()
    admin.issuer.clock.now += 1
    changed = await admin.call("PUT", "/admin/users/alice/password", {"password": NEW_PASSWORD})
    assert changed.status_code == 200 and NEW_PASSWORD not in changed.text
    assert (await _password_login(admin.issuer)).json()["error"] == "invalid_grant"
    assert (await _password_login(admin.issuer, password=NEW_PASSWORD)).status_code == 200
    refresh = await admin.issuer.token(grant_type="refresh_token", refresh_token=session["refresh_token"])
    assert refresh.json()["error"] == "invalid_grant", "the old session ended"


async def test_disable_stops_password_logins_and_enable_lets_them_in_again(admin: Admin) -> None:
    disabled = await admin.call("POST", "/admin/users/alice/disable")
    assert (disabled.status_code, disabled.json()["disabled"]) == (200, True)
    assert (await _password_login(admin.issuer)).json()["error"] == "invalid_grant"
    enabled = await admin.call("POST", "/admin/users/alice/enable")
    assert (enabled.status_code, enabled.json()["disabled"]) == (200, False)
    assert (await _password_login(admin.issuer)).status_code == 200


async def test_delete_user_removes_it(admin: Admin) -> None:
    deleted = await admin.call("DELETE", "/admin/users/alice")
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert (await _password_login(admin.issuer)).json()["error"] == "invalid_grant"
    assert (await admin.call("GET", "/admin/users/alice")).status_code == 404


# -- clients -----------------------------------------------------------------------------


async def test_list_and_show_clients_answer_their_views_without_secrets(admin: Admin) -> None:
    listed = await admin.call("GET", "/admin/clients")
    assert listed.status_code == 200
    assert [c["client_id"] for c in listed.json()["clients"]] == ["ops", "public"]
    shown = (await admin.call("GET", "/admin/clients/ops")).json()
    assert (shown["type"], shown["scope"], shown["audiences"]) == (
        "confidential",
        "admin",
        [admin.issuer.issuer.settings.issuer],
    )
    assert "secret_hash" not in listed.text and "argon2" not in listed.text


async def test_an_added_confidential_client_gets_a_generated_secret_that_gets_tokens(admin: Admin) -> None:
    added = await admin.call("POST", "/admin/clients", {"client_id": "cron", "scope": "reports:read"})
    assert added.status_code == 201
    body = added.json()
    assert (body["type"], body["grant_types"]) == ("confidential", ["client_credentials"])
    token = await admin.issuer.token(grant_type="client_credentials", auth=("cron", body["client_secret"]))
    assert (token.status_code, token.json()["scope"]) == (200, "reports:read")


async def test_a_client_added_with_its_secret_uses_it_and_no_secret_is_answered(admin: Admin) -> None:
    registration = {"client_id": "cron", "secret": OTHER_SECRET, "scope": "reports:read"}
    added = await admin.call("POST", "/admin/clients", registration)
    assert added.status_code == 201 and "client_secret" not in added.json() and OTHER_SECRET not in added.text
    assert (await admin.issuer.token(grant_type="client_credentials", auth=("cron", OTHER_SECRET))).status_code == 200


async def test_an_added_public_client_serves_password_logins(admin: Admin) -> None:
    registration = {"client_id": "cli", "public": True, "grant_types": ["password"], "scope": "reports:read"}
    added = await admin.call("POST", "/admin/clients", registration)
    assert (added.status_code, added.json()["type"]) == (201, "public")
    assert (await _password_login(admin.issuer, client_id="cli")).json()["scope"] == "reports:read"


async def test_rotating_a_secret_stops_the_old_one_at_once(admin: Admin) -> None:
    await admin.issuer.register("cron", secret=OTHER_SECRET)
    rotated = await admin.call("POST", "/admin/clients/cron/secret")
    assert rotated.status_code == 200
    assert rotated.json().keys() == {"client_id", "rotated", "client_secret"}
    old = await admin.issuer.token(grant_type="client_credentials", auth=("cron", OTHER_SECRET))
    assert (old.status_code, old.json()["error"]) == (401, "invalid_client")
    new = await admin.issuer.token(grant_type="client_credentials", auth=("cron", rotated.json()["client_secret"]))
    assert new.status_code == 200


async def test_rotating_to_a_given_secret_answers_no_secret(admin: Admin) -> None:
    await admin.issuer.register("cron", secret=OTHER_SECRET)
    given = "a-given-secret-of-at-least-32-characters!"
    rotated = await admin.call("POST", "/admin/clients/cron/secret", {"secret": given})
    assert rotated.json() == {"client_id": "cron", "rotated": True}
    assert (await admin.issuer.token(grant_type="client_credentials", auth=("cron", given))).status_code == 200


async def test_a_deleted_admin_clients_token_is_refused_at_admin(admin: Admin) -> None:
    other = _bearer(await _register_admin(admin.issuer, "ops2", OTHER_SECRET))
    assert (await admin.issuer.client.get("/admin/clients", headers=other)).status_code == 200
    assert (await admin.call("DELETE", "/admin/clients/ops2")).status_code == 204
    refused = await admin.issuer.client.get("/admin/clients", headers=other)
    assert (refused.status_code, refused.json()["error"]) == (401, "invalid_token")
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]


async def test_a_token_whose_client_is_gone_is_refused_though_no_revocation_names_it(admin: Admin) -> None:
    """The registration check on its own: the row removed behind the registry's back."""
    other = _bearer(await _register_admin(admin.issuer, "ops2", OTHER_SECRET))
    async with admin.issuer.issuer.store.engine.begin() as conn:
        await conn.execute(delete(clients).where(clients.c.client_id == "ops2"))
    refused = await admin.issuer.client.get("/admin/clients", headers=other)
    assert refused.status_code == 401
    assert refused.json() == {
        "error": "invalid_token",
        "error_description": "the token's client is no longer registered",
    }


# -- refusals ----------------------------------------------------------------------------


async def test_no_token_gets_the_bare_bearer_challenge(admin: Admin) -> None:
    answer = await admin.issuer.client.get("/admin/users")
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == 'Bearer realm="auth"'
    assert answer.json()["error"] == "invalid_request"


async def test_a_malformed_authorization_header_is_400_with_a_challenge(admin: Admin) -> None:
    answer = await admin.issuer.client.get("/admin/users", headers={"Authorization": "Bearer "})
    assert answer.status_code == 400
    assert answer.headers["www-authenticate"].startswith('Bearer realm="auth", error="invalid_request"')


async def test_a_users_token_is_refused_403_even_with_the_admin_scope_for_this_issuer(admin: Admin) -> None:
    own = admin.issuer.issuer.settings.issuer
    await admin.issuer.directory.set_scope("alice", "admin reports:read", actor="test")
    await admin.issuer.register("console", grant_types=("password",), scope="admin", audiences=(own,))
    login = await _password_login(admin.issuer, client_id="console", resource=own)
    assert login.json()["scope"] == "admin"
    answer = await admin.issuer.client.get("/admin/users", headers=_bearer(login.json()["access_token"]))
    assert answer.status_code == 403
    assert answer.json()["error"] == "insufficient_scope"
    assert answer.headers["www-authenticate"].startswith(
        'Bearer realm="auth", error="insufficient_scope", scope="admin", error_description='
    )


async def test_alices_ordinary_login_token_is_for_another_audience_and_refused(admin: Admin) -> None:
    token = (await admin.issuer.login())["access_token"]
    answer = await admin.issuer.client.get("/admin/users", headers=_bearer(token))
    assert (answer.status_code, answer.json()["error"]) == (401, "invalid_token")


async def test_an_admin_clients_token_without_the_admin_scope_is_refused_403(admin: Admin) -> None:
    narrow = _bearer(await _register_admin(admin.issuer, "reader", OTHER_SECRET, scope="admin reports:read"))
    own = admin.issuer.issuer.settings.issuer
    token = await _client_token(admin.issuer, "reader", OTHER_SECRET, resource=own, scope="reports:read")
    assert (await admin.issuer.client.get("/admin/users", headers=narrow)).status_code == 200
    answer = await admin.issuer.client.get("/admin/users", headers=_bearer(token))
    assert (answer.status_code, answer.json()["error"]) == (403, "insufficient_scope")
    assert 'scope="admin"' in answer.headers["www-authenticate"]


async def test_an_admin_clients_token_for_another_audience_is_refused_401(admin: Admin) -> None:
    await admin.issuer.register("ops-api", secret=OTHER_SECRET, scope="admin")  # audience: the default "api"
    token = await _client_token(admin.issuer, "ops-api", OTHER_SECRET)
    answer = await admin.issuer.client.get("/admin/users", headers=_bearer(token))
    assert (answer.status_code, answer.json()["error"]) == (401, "invalid_token")


async def test_a_revoked_admin_token_is_refused_401(admin: Admin) -> None:
    token = admin.headers["Authorization"].removeprefix("Bearer ")
    assert (await admin.issuer.client.post("/revoke", data={"token": token}, auth=("ops", SECRET))).status_code == 200
    answer = await admin.call("GET", "/admin/users")
    assert answer.status_code == 401
    assert answer.json() == {"error": "invalid_token", "error_description": "token revoked"}


async def test_an_expired_admin_token_is_refused_401(admin: Admin) -> None:
    admin.issuer.clock.now += admin.issuer.issuer.settings.access_token_ttl + admin.issuer.issuer.settings.leeway + 1
    answer = await admin.call("GET", "/admin/users")
    assert (answer.status_code, answer.json()["error"]) == (401, "invalid_token")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/admin/users/nobody", None),
        ("PUT", "/admin/users/nobody/scope", {"scope": "x"}),
        ("PUT", "/admin/users/nobody/password", {"password": NEW_PASSWORD}),
        ("POST", "/admin/users/nobody/disable", None),
        ("POST", "/admin/users/nobody/enable", None),
        ("DELETE", "/admin/users/nobody", None),
        ("GET", "/admin/clients/nobody", None),
        ("POST", "/admin/clients/nobody/secret", None),
        ("DELETE", "/admin/clients/nobody", None),
    ],
)
async def test_an_unknown_name_is_404_not_found(admin: Admin, method: str, path: str, body: Any) -> None:
    answer = await admin.call(method, path, body)
    assert answer.status_code == 404
    assert answer.json()["error"] == "not_found" and "nobody" not in answer.text


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/admin/users", {"username": "ALICE", "password": PASSWORD}),  # names compare after casefold
        ("/admin/clients", {"client_id": "public", "public": True, "grant_types": ["password"]}),
    ],
)
async def test_a_taken_name_is_409_conflict(admin: Admin, path: str, body: dict[str, Any]) -> None:
    answer = await admin.call("POST", path, body)
    assert (answer.status_code, answer.json()["error"]) == (409, "conflict")
    assert PASSWORD not in answer.text


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/admin/users", {"username": "bob", "password": PASSWORD, "admin": True}),  # an unknown field
        ("/admin/users", {"username": "bob", "password": "tiny-pw"}),  # under 8 characters
        ("/admin/users", {"username": "bob\x00", "password": PASSWORD}),  # the directory's own check
        ("/admin/users", {"username": "bob", "password": PASSWORD, "scope": "a  b"}),
        ("/admin/clients", {"client_id": "web", "public": "yes", "grant_types": ["password"]}),  # strict types
        ("/admin/clients", {"client_id": "web", "public": True}),  # a public client needs a grant
        ("/admin/clients", {"client_id": "web", "redirect_uris": ["http://app.example/cb"]}),
        ("/admin/clients", {"client_id": "web", "secret": "tiny-secret"}),  # under 32 characters
    ],
)
async def test_a_bad_body_is_400_invalid_request_without_echoing_secrets(
    admin: Admin, path: str, body: dict[str, Any]
) -> None:
    answer = await admin.call("POST", path, body)
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_request")
    assert not any(value in answer.text for value in (PASSWORD, "tiny-pw", "tiny-secret"))
    assert [u.username for u in await admin.issuer.directory.users()] == ["alice"]
    assert {c.client_id for c in await admin.issuer.registry.clients()} == {"ops", "public"}


async def test_malformed_json_is_400(admin: Admin) -> None:
    headers = admin.headers | {"Content-Type": "application/json"}
    answer = await admin.issuer.client.post("/admin/users", content=b"{not json", headers=headers)
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_request")


@pytest.mark.parametrize("declared", [True, False])
async def test_a_body_over_16_kib_is_refused_400_before_it_is_parsed(admin: Admin, declared: bool) -> None:
    # A valid JSON body with a long scope: only its size can refuse it.
    body = b'{"username": "bob", "password": "%s", "scope": "%s"}' % (PASSWORD.encode(), b"a" * 16_400)

    async def chunks() -> AsyncIterator[bytes]:
        yield body

    content = body if declared else chunks()  # without a Content-Length: chunked, counted as read
    answer = await admin.issuer.client.post(
        "/admin/users", content=content, headers=admin.headers | {"Content-Type": "application/json"}
    )
    assert answer.status_code == 400
    assert answer.json() == {"error": "invalid_request", "error_description": "request body larger than 16384 bytes"}


async def test_a_path_parameter_past_its_bound_is_400(admin: Admin) -> None:
    assert (await admin.call("GET", "/admin/users/" + "a" * 257)).status_code == 400
    assert (await admin.call("GET", "/admin/clients/" + "a" * 129)).status_code == 400
    assert (await admin.call("GET", "/admin/users/" + "a" * 256)).status_code == 404


# -- the security log --------------------------------------------------------------------


async def test_every_call_is_one_admin_call_event_with_the_client_and_route_and_no_secret(
    admin: Admin, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="auth_service.security")
    await admin.call("PUT", "/admin/users/alice/password", {"password": NEW_PASSWORD})
    await admin.call("GET", "/admin/users/nobody")
    await admin.issuer.client.get("/admin/users")  # no token
    calls = [r for r in caplog.records if r.name == "auth_service.security" and r.getMessage() == "admin_call"]
    assert [(r.client_id, r.method, r.route, r.status) for r in calls] == [  # type: ignore[attr-defined]
        ("ops", "PUT", "/admin/users/{username}/password", 200),
        ("ops", "GET", "/admin/users/{username}", 404),
        (None, "GET", "/admin/users", 401),
    ]
    changed = [r for r in caplog.records if r.getMessage() == "user_password_set"]
    assert [r.actor for r in changed] == ["ops"]  # type: ignore[attr-defined]
    logged = " ".join(str(v) for r in caplog.records for v in vars(r).values())
    assert NEW_PASSWORD not in logged and "alice" not in logged and "nobody" not in logged
