"""`httpx.Auth` for callers of protected APIs: get a token from the issuer, keep it, renew it.

    auth = ClientCredentials("https://auth.example", "reports-job", secret)
    with httpx.Client(auth=auth) as http:
        http.get("https://api.example/reports")

One generator, `_TokenAuth._flow`, holds the protocol. It yields the requests to send (the
issuer's metadata, a token request, the caller's request) and two markers around the token
step; `sync_auth_flow` and `async_auth_flow` only drive it, taking a thread lock or an anyio
lock at the markers. So `httpx.Client` and `httpx.AsyncClient` share one implementation,
concurrent requests share one token fetch, and token requests go through the caller's own
client (its TLS settings, proxies and transport).
"""

from __future__ import annotations

import abc
import base64
import math
import re
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from typing import Any
from urllib.parse import quote_plus, urlsplit

import anyio
import httpx

from .discovery import WELL_KNOWN

__all__ = ["ClientCredentials", "TokenRequestError", "UserLogin"]

Clock = Callable[[], float]
_Steps = Generator[Any, Any, Any]  # yields httpx.Request or a lock marker; is sent the response

_LOCK, _UNLOCK = object(), object()
_MAX_MARGIN = 60.0  # renew this many seconds before expiry at most (10% of the lifetime when shorter)
_ERROR_CODE = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]{1,64}")  # RFC 6749 section 5.2 charset
# RFC 6750 section 3.1: the resource server refused the token itself (expired, revoked, ...).
_INVALID_TOKEN = re.compile(r'\berror\s*=\s*"?invalid_token\b', re.IGNORECASE)


class TokenRequestError(Exception):
    """No token could be had from the issuer.

    `error` is the RFC 6749 section 5.2 code the issuer sent (`invalid_client`,
    `invalid_grant`, `temporarily_unavailable`, ...), or one of ours: `invalid_metadata` (the
    discovery document is unusable or names another issuer), `invalid_response` (no usable
    token in the answer), `login_required` (no password held to start a session). The
    message carries the code and the issuer's description, never a secret, password or token.
    """

    def __init__(self, error: str, description: str = "", status_code: int | None = None) -> None:
        self.error = error
        self.description = description[:200]
        self.status_code = status_code
        super().__init__(f"{error}: {self.description}" if self.description else error)


class _TokenAuth(httpx.Auth, abc.ABC):
    # A request refused for its token is sent again with a new one: its body must be replayable.
    requires_request_body = True

    def __init__(
        self,
        issuer_url: str,
        *,
        client_id: str | None,
        client_secret: str | None,
        clock: Clock,
        resource: str | None = None,
    ) -> None:
        self._issuer = issuer_url
        self._client_id = client_id
        self._secret = client_secret
        self._clock = clock
        self._resource = resource  # RFC 8707: the API the tokens are for
        self._token_endpoint: str | None = None
        self._access: str | None = None
        self._renew_at = -math.inf
        self._thread_lock = threading.Lock()
        self._async_lock = anyio.Lock()

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.read()
        flow, held = self._flow(request), False
        try:
            step = next(flow)
            while True:
                reply: httpx.Response | None = None
                if step is _LOCK:
                    self._thread_lock.acquire()
                    held = True
                elif step is _UNLOCK:
                    self._thread_lock.release()
                    held = False
                else:
                    reply = yield step
                    if step is not request:  # our own token request: we read its answer
                        reply.read()
                step = flow.send(reply)
        except StopIteration:
            return
        finally:
            if held:
                self._thread_lock.release()

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        await request.aread()
        flow, held = self._flow(request), False
        try:
            step = next(flow)
            while True:
                reply: httpx.Response | None = None
                if step is _LOCK:
                    await self._async_lock.acquire()
                    held = True
                elif step is _UNLOCK:
                    self._async_lock.release()
                    held = False
                else:
                    reply = yield step
                    if step is not request:
                        await reply.aread()
                step = flow.send(reply)
        except StopIteration:
            return
        finally:
            if held:
                self._async_lock.release()

    def _flow(self, request: httpx.Request) -> _Steps:
        """Send `request` with a current token; once more with a new one if it was refused."""
        yield _LOCK
        token = yield from self._current(stale=None)
        yield _UNLOCK
        response = yield _authorized(request, token)
        if response.status_code != 401 or not _INVALID_TOKEN.search(response.headers.get("www-authenticate", "")):
            return
        yield _LOCK
        token = yield from self._current(stale=token)
        yield _UNLOCK
        yield _authorized(request, token)

    def _current(self, stale: str | None) -> _Steps:
        """The token to send: the one held unless it is due for renewal or is `stale` (refused).
        A token another request renewed meanwhile is not stale: one refusal, one renewal."""
        if self._access is not None and self._access != stale and self._clock() < self._renew_at:
            return self._access
        yield from self._renew()
        return self._access

    @abc.abstractmethod
    def _renew(self) -> _Steps:
        """Get a new token (the grant is the subclass's) and keep it with `_token_request`."""

    def _token_request(self, form: dict[str, str]) -> _Steps:
        """POST `form` to the token endpoint with our client authentication; keep and return the answer."""
        if self._token_endpoint is None:
            metadata = yield httpx.Request(
                "GET", self._issuer.rstrip("/") + WELL_KNOWN, headers={"Accept": "application/json"}
            )
            self._token_endpoint = _token_endpoint(metadata, self._issuer)
        headers = {"Accept": "application/json"}
        if self._secret is not None:  # RFC 6749 section 2.3.1: HTTP Basic of the form-encoded id and secret
            pair = f"{quote_plus(self._client_id or '')}:{quote_plus(self._secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        elif self._client_id is not None:
            form = {**form, "client_id": self._client_id}
        if self._resource is not None:
            form = {**form, "resource": self._resource}
        started = self._clock()
        body = _token_body(_json((yield httpx.Request("POST", self._token_endpoint, data=form, headers=headers))))
        self._keep(body, started)
        return body

    def _keep(self, body: Mapping[str, Any], obtained_at: float) -> None:
        self._access = body.get("access_token")
        lifetime = body.get("expires_in")
        self._renew_at = math.inf if lifetime is None else obtained_at + lifetime - min(_MAX_MARGIN, lifetime / 10)


class ClientCredentials(_TokenAuth):
    """A confidential client's own token (RFC 6749 section 4.4), for service-to-service calls.

    The token endpoint comes from the issuer's metadata (RFC 8414), which must name
    `issuer_url` exactly. The token is fetched on first use, shared by every request, renewed
    shortly before it expires (10% of its lifetime, at most 60 s), and renewed once more
    when an API refuses it with `invalid_token` (revoked), the request then being retried
    once. `clock` (monotonic seconds) is injectable for tests.
    """

    def __init__(
        self,
        issuer_url: str,
        client_id: str,
        client_secret: str,
        scope: str | None = None,
        *,
        resource: str | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(issuer_url, client_id=client_id, client_secret=client_secret, clock=clock, resource=resource)
        self._scope = scope

    def __repr__(self) -> str:
        return f"ClientCredentials(issuer_url={self._issuer!r}, client_id={self._client_id!r}, scope={self._scope!r})"

    def _renew(self) -> _Steps:
        form = {"grant_type": "client_credentials"}
        if self._scope:
            form["scope"] = self._scope
        yield from self._token_request(form)


class UserLogin(_TokenAuth):
    """A user's session: log in with the password grant, then live on refresh tokens.

    On first use it logs in. When an API refuses the access token (`invalid_token`: expired
    or revoked) or it is about to expire, it refreshes once, keeping the new refresh token the
    issuer rotates in, and the refused request is retried once. When the refresh token is
    refused (`invalid_grant`: reused, revoked or expired, i.e. the session is over) it logs in
    again if it holds the password, else raises `TokenRequestError`. `client_id` is the OAuth
    client the session belongs to (the issuer's public client when None); a confidential one
    also passes `client_secret`.
    """

    def __init__(
        self,
        issuer_url: str,
        username: str | None,
        password: str | None,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        scope: str | None = None,
        resource: str | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(issuer_url, client_id=client_id, client_secret=client_secret, clock=clock, resource=resource)
        self._username = username
        self._password = password
        self._scope = scope
        self._refresh: str | None = None

    @classmethod
    def from_tokens(
        cls,
        issuer_url: str,
        tokens: Mapping[str, Any],
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        clock: Clock = time.monotonic,
    ) -> UserLogin:
        """Carry on a session begun elsewhere, from its token response (`refresh_token` and,
        optionally, `access_token` and `expires_in`). Holding no password, it raises
        `TokenRequestError` once that session ends."""
        auth = cls(issuer_url, None, None, client_id=client_id, client_secret=client_secret, clock=clock)
        refresh = tokens.get("refresh_token")
        if not isinstance(refresh, str) or not refresh:
            raise ValueError("tokens must hold a refresh_token")
        if "access_token" in tokens:
            auth._keep(_token_body(tokens), clock())
        auth._refresh = refresh
        return auth

    @property
    def refresh_token(self) -> str | None:
        """The session's current refresh token (it changes at every refresh), e.g. to store it."""
        return self._refresh

    def __repr__(self) -> str:
        return (
            f"UserLogin(issuer_url={self._issuer!r}, username={self._username!r}, "
            f"client_id={self._client_id!r}, scope={self._scope!r})"
        )

    def _renew(self) -> _Steps:
        if self._refresh is not None:
            try:
                body = yield from self._token_request({"grant_type": "refresh_token", "refresh_token": self._refresh})
            except TokenRequestError as exc:
                if exc.error != "invalid_grant":
                    raise
                self._access = self._refresh = None  # the session is over, its access tokens with it
                if self._password is None:
                    raise TokenRequestError(
                        "invalid_grant",
                        "the session ended (its refresh token was refused) and no password is held: log in again",
                        exc.status_code,
                    ) from None
            else:
                # RFC 6749 section 6: the issuer may rotate the refresh token, or keep the old one.
                self._refresh = body.get("refresh_token") or self._refresh
                return
        if self._username is None or self._password is None:
            raise TokenRequestError("login_required", "no session and no password held: log in again")
        form = {"grant_type": "password", "username": self._username, "password": self._password}
        if self._scope:
            form["scope"] = self._scope
        body = yield from self._token_request(form)
        self._refresh = body.get("refresh_token")


def _authorized(request: httpx.Request, token: str) -> httpx.Request:
    request.headers["Authorization"] = f"Bearer {token}"
    return request


def _json(response: httpx.Response) -> tuple[int, Any]:
    try:
        return response.status_code, response.json()
    except ValueError:  # the decoder's message would quote the body, which may hold a token
        return response.status_code, None


def _token_endpoint(response: httpx.Response, issuer: str) -> str:
    status, document = _json(response)
    if status != 200 or not isinstance(document, dict):
        raise TokenRequestError("invalid_metadata", f"the issuer's metadata could not be read (HTTP {status})", status)
    if document.get("issuer") != issuer:  # RFC 8414 section 3.3: exactly the issuer we were given
        raise TokenRequestError("invalid_metadata", "the metadata names another issuer")
    endpoint = document.get("token_endpoint")
    if not isinstance(endpoint, str) or urlsplit(endpoint).scheme not in ("http", "https"):
        raise TokenRequestError("invalid_metadata", "the metadata has no usable token_endpoint")
    return endpoint


def _token_body(answer: tuple[int, Any] | Mapping[str, Any]) -> dict[str, Any]:
    """The token response as `_keep` needs it, or the issuer's refusal as `TokenRequestError`."""
    status, body = answer if isinstance(answer, tuple) else (200, answer)
    if status != 200:
        error = body.get("error") if isinstance(body, dict) else None
        description = body.get("error_description") if isinstance(body, dict) else None
        if not isinstance(error, str) or not _ERROR_CODE.fullmatch(error):
            error = "invalid_response"
        raise TokenRequestError(error, description if isinstance(description, str) else f"HTTP {status}", status)
    if not isinstance(body, Mapping):
        raise TokenRequestError("invalid_response", "the token response is not a JSON object", status)
    access, kind, lifetime = body.get("access_token"), body.get("token_type"), body.get("expires_in")
    if not isinstance(access, str) or not access or not isinstance(kind, str) or kind.lower() != "bearer":
        raise TokenRequestError("invalid_response", "the token response holds no bearer access_token", status)
    if lifetime is not None and (isinstance(lifetime, bool) or not isinstance(lifetime, int | float) or lifetime < 0):
        raise TokenRequestError("invalid_response", "the token response has an unusable expires_in", status)
    return dict(body)
