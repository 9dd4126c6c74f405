"""Registered clients and resource audiences at `POST /token`, `/revoke` and `/introspect`, in process.

Every caller is a registered client: an unknown `client_id` is refused everywhere; a client
uses only its grants, asks only for its scopes, and gets tokens only for its audiences
(RFC 8707 `resource`). The process boundary (replicas refusing other audiences) is covered by
tests/integration/test_audiences.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from auth_service.directory import Invalid
from auth_service.registry import Registration, check_redirect_uri
from tests.unit.inprocess_issuer import PASSWORD, SECRET, Running, running_issuer

pytestmark = pytest.mark.anyio

API_A, API_B = "https://a.api.example", "https://b.api.example"


@pytest.fixture
async def issuer(tmp_path: Path) -> AsyncIterator[Running]:
    async with running_issuer(tmp_path) as running:
        yield running


def _aud(body: dict[str, Any]) -> str:
    aud: str = jwt.decode(body["access_token"], options={"verify_signature": False})["aud"]
    return aud


async def _password(issuer: Running, client_id: str, **extra: str) -> Any:
    return await issuer.token(grant_type="password", username="alice", password=PASSWORD, client_id=client_id, **extra)


@pytest.mark.parametrize("path", ["/token", "/revoke", "/introspect"])
async def test_a_client_id_nobody_registered_is_refused_on_every_endpoint(issuer: Running, path: str) -> None:
    form = {"grant_type": "password", "username": "alice", "password": PASSWORD, "token": "x", "client_id": "made-up"}
    answer = await issuer.client.post(path, data=form)
    assert answer.status_code == 401
    assert answer.json() == {"error": "invalid_client", "error_description": "client authentication failed"}


async def test_a_request_naming_no_client_is_the_default_public_client_until_it_is_removed(issuer: Running) -> None:
    assert (await issuer.login())["scope"] == "reports:read reports:write"  # it may have what the user has
    await issuer.registry.remove("public", actor="test")
    answer = await issuer.token(grant_type="password", username="alice", password=PASSWORD)
    assert answer.json() == {"error": "invalid_client", "error_description": "client_id required"}


async def test_a_new_database_serves_the_password_grant_to_no_client_until_one_is_registered(tmp_path: Path) -> None:
    async with running_issuer(tmp_path / "new", default_client=False) as new:
        unnamed = await new.token(grant_type="password", username="alice", password=PASSWORD)
        assert unnamed.json() == {"error": "invalid_client", "error_description": "client_id required"}
        await new.register(
            "spa", grant_types=("authorization_code", "refresh_token"), redirect_uris=("https://a.example/cb",)
        )
        refused = await _password(new, "spa")
        assert refused.json()["error"] == "unauthorized_client"  # opt-in: not without --grant password
        await new.register("terminal", grant_types=("password",), scope="reports:read")
        assert (await _password(new, "terminal")).status_code == 200


async def test_a_client_uses_only_the_grants_it_is_registered_for(issuer: Running) -> None:
    await issuer.register("cron", secret=SECRET, scope="reports:read")  # client_credentials only, by default
    own = await issuer.token(grant_type="client_credentials", auth=("cron", SECRET))
    assert own.status_code == 200, own.text
    login = await issuer.token(grant_type="password", username="alice", password=PASSWORD, auth=("cron", SECRET))
    assert login.json() == {
        "error": "unauthorized_client",
        "error_description": "the client is not registered for the password grant",
    }


async def test_a_client_asks_only_for_its_allowed_scopes_whatever_the_user_holds(issuer: Running) -> None:
    await issuer.register("web", grant_types=("password",), scope="reports:read")
    assert (await _password(issuer, "web")).json()["scope"] == "reports:read"  # not the user's reports:write
    wider = await _password(issuer, "web", scope="reports:write")
    assert (wider.status_code, wider.json()["error"]) == (400, "invalid_scope")


async def test_the_access_token_is_for_the_resource_asked_if_the_client_may_ask_for_it(issuer: Running) -> None:
    await issuer.register(
        "web", grant_types=("password", "refresh_token"), scope="reports:read", audiences=(API_A, API_B)
    )
    several = await _password(issuer, "web")
    assert several.json()["error"] == "invalid_target", "two audiences: the client must say which"
    for_a = (await _password(issuer, "web", resource=API_A)).json()
    assert _aud(for_a) == API_A
    other = await _password(issuer, "web", resource="https://c.api.example")
    assert (other.status_code, other.json()["error"]) == (400, "invalid_target")
    # Refresh keeps the session's audience, or moves to another the client may ask for.
    kept = await issuer.token(grant_type="refresh_token", refresh_token=for_a["refresh_token"], client_id="web")
    assert _aud(kept.json()) == API_A
    moved = await issuer.token(
        grant_type="refresh_token", refresh_token=kept.json()["refresh_token"], client_id="web", resource=API_B
    )
    assert _aud(moved.json()) == API_B
    refused = await issuer.token(
        grant_type="refresh_token", refresh_token=moved.json()["refresh_token"], client_id="web", resource="api"
    )
    assert refused.json()["error"] == "invalid_target"


async def test_a_client_with_one_audience_gets_it_by_default_and_others_get_the_issuer_default(
    issuer: Running,
) -> None:
    await issuer.register("only-a", grant_types=("password",), scope="reports:read", audiences=(API_A,))
    assert _aud((await _password(issuer, "only-a")).json()) == API_A
    assert _aud(await issuer.login()) == issuer.issuer.settings.audience == "api"
    assert (await issuer.token(grant_type="password", username="alice", password=PASSWORD, resource=API_A)).json()[
        "error"
    ] == "invalid_target"


async def test_a_rotated_secret_works_and_the_old_one_stops_at_once(issuer: Running) -> None:
    await issuer.register("cron", secret=SECRET, scope="reports:read")
    new = "a-brand-new-secret-of-at-least-32-chars"
    await issuer.registry.rotate_secret("cron", new, actor="test")
    old = await issuer.token(grant_type="client_credentials", auth=("cron", SECRET))
    assert (old.status_code, old.json()["error"]) == (401, "invalid_client")
    assert (await issuer.token(grant_type="client_credentials", auth=("cron", new))).status_code == 200


async def test_removing_a_client_ends_its_sessions_and_its_own_tokens(issuer: Running) -> None:
    await issuer.register("web", grant_types=("password", "refresh_token"), scope="reports:read")
    session = (await _password(issuer, "web")).json()
    await issuer.registry.remove("web", actor="test")
    entries = await issuer.issuer.store.entries_after(0)
    assert [(e.kind, e.value) for e in entries] == [
        ("sid", jwt.decode(session["access_token"], options={"verify_signature": False})["sid"]),
        ("sub", "web"),
    ]
    refresh = await issuer.token(grant_type="refresh_token", refresh_token=session["refresh_token"], client_id="web")
    assert refresh.json()["error"] == "invalid_client", "the client is gone"


@pytest.mark.parametrize(
    ("uri", "ok"),
    [
        ("https://app.example/callback", True),
        ("http://127.0.0.1:8765/cb", True),  # RFC 8252 section 7.3: loopback for native apps
        ("http://[::1]/cb", True),
        ("http://localhost:5173/cb", True),
        ("com.example.app:/oauth2redirect", True),  # RFC 8252 section 7.1: reverse-domain scheme
        ("http://app.example/cb", False),  # plain http off loopback
        ("https://app.example/cb#frag", False),  # RFC 6749 section 3.1.2: no fragment
        ("/relative/cb", False),
        ("javascript:alert(1)", False),
        ("https://user:pw@app.example/cb", False),  # user info: a phishing aid
        ("myapp:/cb", False),  # a private-use scheme must be a reversed domain
        ("https:///no-host", False),
    ],
)
def test_redirect_uris_are_checked_when_registered(uri: str, ok: bool) -> None:
    if ok:
        assert check_redirect_uri(uri) == uri  # stored exactly as given, compared exactly later
    else:
        with pytest.raises(Invalid):
            check_redirect_uri(uri)


@pytest.mark.parametrize(
    ("registration", "message"),
    [
        (Registration("web", public=True), "a public client needs at least one --grant"),
        (Registration("web", public=True, grant_types=("client_credentials",)), "client_credentials is for"),
        (Registration("web", public=True, grant_types=("implicit",)), "unknown grant 'implicit'"),
        (Registration("has space", public=True, grant_types=("password",)), "client_id must be"),
        (Registration("web", public=True, grant_types=("password",), scope="a  b"), "scope must be"),
        (Registration("web", public=True, grant_types=("password",), audiences=("a b",)), "an audience is"),
    ],
)
async def test_a_registration_that_breaks_a_rule_is_refused_and_nothing_is_stored(
    issuer: Running, registration: Registration, message: str
) -> None:
    with pytest.raises(Invalid, match=message):
        await issuer.registry.add(registration, None, actor="test")
    assert [c.client_id for c in await issuer.registry.clients()] == ["public"]


async def test_a_confidential_clients_secret_is_stored_hashed_and_a_short_one_refused(issuer: Running) -> None:
    with pytest.raises(Invalid, match="shorter than 32 characters"):
        await issuer.register("cron", secret="short")
    await issuer.register("cron", secret=SECRET)
    stored = (await issuer.registry.client("cron")).secret_hash
    assert stored is not None and stored.startswith("$argon2id$") and SECRET not in stored


async def test_the_python_helpers_ask_for_the_resource_they_were_given(issuer: Running) -> None:
    from resource_service import ClientCredentials, UserLogin

    await issuer.register(
        "web", grant_types=("password", "refresh_token"), scope="reports:read", audiences=(API_A, API_B)
    )
    await issuer.register("cron", secret=SECRET, scope="reports:read", audiences=(API_A, API_B))
    seen: list[str] = []
    for auth in (
        UserLogin("http://127.0.0.1:8000", "alice", PASSWORD, client_id="web", resource=API_B),
        ClientCredentials("http://127.0.0.1:8000", "cron", SECRET, resource=API_B),
    ):
        issuer.client.auth = auth
        answer = await issuer.client.get("/healthz")  # any request: the helper logs in before it
        assert answer.status_code == 200
        seen.append(_aud({"access_token": answer.request.headers["authorization"].removeprefix("Bearer ")}))
    assert seen == [API_B, API_B]
