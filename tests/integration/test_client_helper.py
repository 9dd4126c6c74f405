"""The client helpers (`ClientCredentials`, `UserLogin`) against a real issuer and a real replica.

Every test runs twice, through `httpx.Client` and through `httpx.AsyncClient` (on an event
loop in a thread, behind the same blocking calls), so one body checks both flows. A
recording transport wraps the real one: the tests count what reached the issuer's /token.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from typing import Any, NamedTuple
from urllib.parse import parse_qs

import anyio.from_thread
import httpx
import pytest

from auth_service.launch import Service
from resource_service import ClientCredentials, TokenRequestError, UserLogin
from tests.conftest import PASSWORD, Stack, claims_of, eventually

TTL = 900  # the issuer's default AUTH_ACCESS_TOKEN_TTL; the helpers renew 60 s before it ends


class Sent(NamedTuple):
    path: str
    authorization: str
    content: bytes


class _Recorder(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Passes every request to the real transport and notes what was sent (a retried request
    is the same object with a new header, so the note is taken now)."""

    def __init__(self, inner: Any, seen: list[Sent]) -> None:
        self._inner, self._seen = inner, seen

    def _note(self, request: httpx.Request) -> None:
        self._seen.append(Sent(request.url.path, request.headers.get("authorization", ""), request.content))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self._note(request)
        return self._inner.handle_request(request)  # type: ignore[no-any-return]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._note(request)
        return await self._inner.handle_async_request(request)  # type: ignore[no-any-return]

    def close(self) -> None:
        self._inner.close()

    async def aclose(self) -> None:
        await self._inner.aclose()


class Session:
    """One httpx client, sync or async, with `auth`; blocking calls either way."""

    def __init__(self, auth: httpx.Auth, portal: anyio.from_thread.BlockingPortal | None) -> None:
        self.seen: list[Sent] = []
        self._portal = portal
        if portal is None:
            self._client: Any = httpx.Client(
                auth=auth, timeout=10, transport=_Recorder(httpx.HTTPTransport(), self.seen)
            )
        else:
            self._client = httpx.AsyncClient(
                auth=auth, timeout=10, transport=_Recorder(httpx.AsyncHTTPTransport(), self.seen)
            )

    def get(self, url: str) -> httpx.Response:
        if self._portal is None:
            return self._client.get(url)  # type: ignore[no-any-return]
        return self._portal.call(self._client.get, url)

    def get_many(self, url: str, n: int) -> list[httpx.Response]:
        """`n` requests at once: threads for the sync client, tasks for the async one."""
        if self._portal is None:
            with concurrent.futures.ThreadPoolExecutor(n) as pool:
                return list(pool.map(lambda _: self._client.get(url), range(n)))

        async def gather() -> list[httpx.Response]:
            return list(await asyncio.gather(*(self._client.get(url) for _ in range(n))))

        return self._portal.call(gather)

    def post_streamed(self, url: str, chunks: list[bytes]) -> httpx.Response:
        """POST a body from a generator: it can be read only once unless the helper keeps it."""
        if self._portal is None:
            return self._client.post(url, content=iter(chunks))  # type: ignore[no-any-return]

        async def stream() -> AsyncIterator[bytes]:
            for chunk in chunks:
                yield chunk

        return self._portal.call(lambda: self._client.post(url, content=stream()))

    @property
    def grants(self) -> list[str]:
        """The grant_type of every request that reached the token endpoint, in order."""
        return [parse_qs(r.content.decode())["grant_type"][0] for r in self.seen if r.path == "/token"]

    @property
    def bearers(self) -> list[str]:
        """The access token of every request the helper authorized, in order."""
        return [r.authorization.removeprefix("Bearer ") for r in self.seen if r.authorization.startswith("Bearer ")]

    def close(self) -> None:
        if self._portal is None:
            self._client.close()
        else:
            self._portal.call(self._client.aclose)


@pytest.fixture(params=["sync", "async"])
def connect(request: pytest.FixtureRequest) -> Iterator[Callable[[httpx.Auth], Session]]:
    """Opens `Session`s of the parametrized kind; closes them after the test."""
    with ExitStack() as stack:
        portal = stack.enter_context(anyio.from_thread.start_blocking_portal()) if request.param == "async" else None
        sessions: list[Session] = []
        stack.callback(lambda: [s.close() for s in sessions])

        def open_session(auth: httpx.Auth) -> Session:
            sessions.append(Session(auth, portal))
            return sessions[-1]

        yield open_session


@pytest.fixture(scope="module")
def replica(issuer: Stack) -> Service:
    issuer.add_user("mallory")  # wrong passwords go to her: alice must not get rate limited
    issuer.add_client("locked", "right-secret-of-at-least-32-chars")  # the same for wrong client secrets
    return issuer.start_replicas(1)[0]


def _revoke(issuer: Stack, replica: Service, token: str, client: tuple[str, str] | None = None) -> None:
    """Revoke `token` at the issuer (RFC 7009) and wait until the replica refuses the access token."""
    assert issuer.auth is not None
    access = token if claims_of(token)[0]["typ"] == "at+jwt" else None
    response = issuer.http.post(f"{issuer.auth.url}/revoke", data={"token": token}, auth=client)
    assert response.status_code == 200, response.text
    if access is not None:
        assert eventually(lambda: issuer.me(replica, access).status_code == 401)


def test_client_credentials_token_is_fetched_once_and_shared(issuer: Stack, replica: Service, connect: Any) -> None:
    assert issuer.auth is not None
    session = connect(ClientCredentials(issuer.auth.url, "svc", "svc-secret-of-at-least-32-characters"))
    # The first burst is concurrent: its requests wait for one token fetch instead of each making one.
    responses = session.get_many(f"{replica.url}/me", 20) + [session.get(f"{replica.url}/me") for _ in range(5)]
    assert [r.status_code for r in responses] == [200] * 25
    assert responses[0].json()["claims"]["sub"] == "svc"
    assert session.grants == ["client_credentials"]
    assert len(set(session.bearers)) == 1
    assert sum(r.path.endswith("/oauth-authorization-server") for r in session.seen) == 1


def test_client_credentials_renews_shortly_before_expiry(issuer: Stack, replica: Service, connect: Any) -> None:
    assert issuer.auth is not None
    now = [1000.0]
    session = connect(
        ClientCredentials(issuer.auth.url, "svc", "svc-secret-of-at-least-32-characters", clock=lambda: now[0])
    )
    assert session.get(f"{replica.url}/me").status_code == 200
    now[0] += TTL - 60 - 1  # one second before the 60 s margin: still the same token
    assert session.get(f"{replica.url}/me").status_code == 200
    assert session.grants == ["client_credentials"]
    now[0] += 1
    assert session.get(f"{replica.url}/me").status_code == 200
    assert session.grants == ["client_credentials"] * 2
    first, *_, last = session.bearers
    assert first != last and claims_of(last)[1]["jti"] != claims_of(first)[1]["jti"]


def test_client_credentials_replaces_a_revoked_token_once_and_retries(
    issuer: Stack, replica: Service, connect: Any
) -> None:
    assert issuer.auth is not None
    session = connect(
        ClientCredentials(issuer.auth.url, "svc", "svc-secret-of-at-least-32-characters", scope="reports:read")
    )
    assert session.get(f"{replica.url}/reports").status_code == 200
    revoked = session.bearers[-1]
    _revoke(issuer, replica, revoked, client=("svc", "svc-secret-of-at-least-32-characters"))
    response = session.get(f"{replica.url}/reports")
    assert response.status_code == 200
    assert session.grants == ["client_credentials"] * 2
    assert session.bearers[-2:] == [revoked, session.bearers[-1]] and session.bearers[-1] != revoked
    assert session.get(f"{replica.url}/reports").status_code == 200
    assert session.grants == ["client_credentials"] * 2  # the new token is kept


def test_a_request_refused_for_its_token_is_sent_again_with_its_body(
    issuer: Stack, replica: Service, connect: Any
) -> None:
    assert issuer.auth is not None
    session = connect(ClientCredentials(issuer.auth.url, "svc", "svc-secret-of-at-least-32-characters"))
    assert session.get(f"{replica.url}/me").status_code == 200
    _revoke(issuer, replica, session.bearers[-1], client=("svc", "svc-secret-of-at-least-32-characters"))
    response = session.post_streamed(f"{replica.url}/me", [b"part one, ", b"part two"])
    assert response.status_code == 405  # past the token check: /me has no POST
    posts = [sent for sent in session.seen if sent.path == "/me" and sent.content]
    assert [sent.content for sent in posts] == [b"part one, part two"] * 2
    assert posts[0].authorization != posts[1].authorization


def test_client_credentials_with_a_wrong_secret_raises_invalid_client(
    issuer: Stack, replica: Service, connect: Any
) -> None:
    assert issuer.auth is not None
    auth = ClientCredentials(issuer.auth.url, "locked", "wrong-secret")
    session = connect(auth)
    with pytest.raises(TokenRequestError) as caught:
        session.get(f"{replica.url}/me")
    assert (caught.value.error, caught.value.status_code) == ("invalid_client", 401)
    assert "wrong-secret" not in repr(auth) + str(caught.value) + repr(caught.value)
    assert session.bearers == []  # nothing reached the replica


def test_metadata_naming_another_issuer_is_refused_before_any_token_request(
    issuer: Stack, replica: Service, connect: Any
) -> None:
    assert issuer.auth is not None
    session = connect(
        ClientCredentials(issuer.auth.url + "/", "svc", "svc-secret-of-at-least-32-characters")
    )  # not exactly the issuer
    with pytest.raises(TokenRequestError) as caught:
        session.get(f"{replica.url}/me")
    assert caught.value.error == "invalid_metadata"
    assert session.grants == []


def test_user_login_logs_in_once_and_calls_the_api(issuer: Stack, replica: Service, connect: Any) -> None:
    assert issuer.auth is not None
    auth = UserLogin(issuer.auth.url, "alice", PASSWORD, scope="profile")
    session = connect(auth)
    responses = [session.get(f"{replica.url}/me") for _ in range(3)]
    assert [r.status_code for r in responses] == [200] * 3
    claims = responses[0].json()["claims"]
    assert (claims["preferred_username"], claims["scope"], claims["client_id"]) == ("alice", "profile", "public")
    assert session.grants == ["password"] and auth.refresh_token
    assert PASSWORD not in repr(auth) and auth.refresh_token not in repr(auth)


def test_user_login_of_a_confidential_client_authenticates_it(issuer: Stack, replica: Service, connect: Any) -> None:
    assert issuer.auth is not None
    session = connect(
        UserLogin(
            issuer.auth.url, "alice", PASSWORD, client_id="svc", client_secret="svc-secret-of-at-least-32-characters"
        )
    )
    response = session.get(f"{replica.url}/me")
    assert response.status_code == 200 and response.json()["claims"]["client_id"] == "svc"
    token_request = next(r for r in session.seen if r.path == "/token")
    assert (
        token_request.authorization.startswith("Basic ")
        and b"svc-secret-of-at-least-32-characters" not in token_request.content
    )


def test_user_login_refreshes_once_on_a_revoked_token_then_logs_in_again_after_reuse(
    issuer: Stack, replica: Service, connect: Any
) -> None:
    assert issuer.auth is not None
    auth = UserLogin(issuer.auth.url, "alice", PASSWORD)
    session = connect(auth)
    assert session.get(f"{replica.url}/me").status_code == 200
    first_access, first_refresh = session.bearers[-1], auth.refresh_token
    assert first_refresh is not None

    _revoke(issuer, replica, first_access)
    assert session.get(f"{replica.url}/me").status_code == 200
    assert session.grants == ["password", "refresh_token"]
    assert auth.refresh_token not in (None, first_refresh)  # rotated
    second_access = session.bearers[-1]
    assert claims_of(second_access)[1]["sid"] == claims_of(first_access)[1]["sid"]

    # A thief replays the retired refresh token: the issuer revokes the whole session.
    replay = issuer.token(grant_type="refresh_token", refresh_token=first_refresh)
    assert (replay.status_code, replay.json()["error"]) == (400, "invalid_grant")
    assert eventually(lambda: issuer.me(replica, second_access).status_code == 401)

    response = session.get(f"{replica.url}/me")
    assert response.status_code == 200
    assert session.grants == ["password", "refresh_token", "refresh_token", "password"]
    assert response.json()["claims"]["sid"] != claims_of(second_access)[1]["sid"]  # a new session


def test_user_login_without_a_password_raises_once_its_session_ends(
    issuer: Stack, replica: Service, connect: Any
) -> None:
    assert issuer.auth is not None
    tokens = issuer.login()
    auth = UserLogin.from_tokens(issuer.auth.url, tokens)
    session = connect(auth)
    assert session.get(f"{replica.url}/me").status_code == 200
    assert session.grants == []  # the access token it was given serves until refused

    _revoke(issuer, replica, str(tokens["refresh_token"]))  # revokes the session, its access tokens too
    assert eventually(lambda: issuer.me(replica, str(tokens["access_token"])).status_code == 401)
    with pytest.raises(TokenRequestError) as caught:
        session.get(f"{replica.url}/me")
    assert caught.value.error == "invalid_grant" and "log in again" in str(caught.value)
    assert session.grants == ["refresh_token"]
    assert not any(str(tokens[name]) in str(caught.value) for name in ("access_token", "refresh_token"))
    assert auth.refresh_token is None


def test_user_login_with_a_wrong_password_raises_invalid_grant(issuer: Stack, replica: Service, connect: Any) -> None:
    assert issuer.auth is not None
    auth = UserLogin(issuer.auth.url, "mallory", "not her password")
    session = connect(auth)
    with pytest.raises(TokenRequestError) as caught:
        session.get(f"{replica.url}/me")
    assert (caught.value.error, caught.value.status_code) == ("invalid_grant", 400)
    assert "not her password" not in str(caught.value) + repr(caught.value) + repr(auth)
