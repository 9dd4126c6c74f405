"""resource_service.asgi: bearer middleware and replica id, driven as raw ASGI."""

from __future__ import annotations

from typing import Any

import pytest

from resource_service.asgi import BearerAuthMiddleware, ReplicaIdMiddleware, bearer_token, current_claims
from resource_service.errors import InvalidRequest, InvalidToken, MissingCredentials, Unavailable

pytestmark = pytest.mark.anyio
GOOD = "aaa.bbb.ccc"


class StubVerifier:
    """Knows one good token; counts what it is asked."""

    def __init__(self, error: Exception | None = None) -> None:
        self.seen: list[str] = []
        self.error = error

    async def verify(self, token: str) -> dict[str, Any]:
        self.seen.append(token)
        if self.error is not None:
            raise self.error
        if token != GOOD:
            raise InvalidToken("token signature is invalid", reason="bad_signature")
        return {"sub": "u-1", "scope": "reports:read"}


async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The protected app: echoes what the middleware put in the scope."""
    if scope["type"] != "http":
        scope["reached"] = True
        return
    user = scope.get("user")
    body = repr(getattr(user, "claims", None) if user is None or user.is_authenticated else "anonymous").encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


async def call(
    app: Any, headers: list[tuple[bytes, bytes]], path: str = "/me"
) -> tuple[int, dict[bytes, bytes], bytes]:
    scope = {"type": "http", "method": "GET", "path": path, "headers": headers, "query_string": b""}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = sent[0]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], dict(start["headers"]), body


def auth(value: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"host", b"api"), (b"authorization", value)]


async def test_valid_token_reaches_the_app_with_claims_in_scope():
    app = BearerAuthMiddleware(inner, StubVerifier())
    status, _, body = await call(app, auth(b"Bearer " + GOOD.encode()))
    assert status == 200 and b"'sub': 'u-1'" in body


async def test_missing_credentials_is_401_without_error_code():
    status, headers, _ = await call(BearerAuthMiddleware(inner, StubVerifier()), [(b"host", b"api")])
    assert status == 401 and headers[b"www-authenticate"] == b'Bearer realm="api"'


async def test_invalid_token_is_401_with_invalid_token_challenge():
    status, headers, body = await call(BearerAuthMiddleware(inner, StubVerifier()), auth(b"Bearer xxx.yyy.zzz"))
    assert status == 401
    assert headers[b"www-authenticate"] == (
        b'Bearer realm="api", error="invalid_token", error_description="token signature is invalid"'
    )
    assert b"xxx.yyy.zzz" not in body and b"xxx.yyy.zzz" not in headers[b"www-authenticate"]


async def test_unavailable_verifier_is_503():
    app = BearerAuthMiddleware(inner, StubVerifier(Unavailable("revocation list is stale", retry_after=5)))
    status, headers, _ = await call(app, auth(b"Bearer " + GOOD.encode()))
    assert status == 503 and headers[b"retry-after"] == b"5"


MALFORMED = {
    "scheme only": [(b"authorization", b"Bearer")],
    "scheme and blank": [(b"authorization", b"Bearer   ")],
    "no space": [(b"authorization", b"Bearer" + GOOD.encode())],
    "two tokens": [(b"authorization", b"Bearer aaa.bbb.ccc ddd")],
    "comma": [(b"authorization", b"Bearer aaa.bbb,ccc")],
    "dollar": [(b"authorization", b"Bearer aaa.bbb$ccc")],
    "quote": [(b"authorization", b'Bearer "aaa.bbb.ccc"')],
    "NUL byte": [(b"authorization", b"Bearer aaa.bbb.c\x00c")],
    "non-ASCII": [(b"authorization", "Bearer aaa.bbb.cé".encode())],
    "padding in the middle": [(b"authorization", b"Bearer aa=a.bbb.ccc")],
    "only padding": [(b"authorization", b"Bearer ===")],
    "tab after the scheme": [(b"authorization", b"Bearer\taaa.bbb.ccc")],
    "a character outside b64token": [(b"authorization", b"Bearer aaa.bbb.c~c!")],
    "oversized": [(b"authorization", b"Bearer " + b"a" * 9000)],
    "two Authorization headers": [(b"authorization", b"Bearer " + GOOD.encode())] * 2,
}


@pytest.mark.parametrize("headers", MALFORMED.values(), ids=MALFORMED.keys())
async def test_malformed_authorization_header_is_400_and_never_reaches_the_verifier(headers):
    verifier = StubVerifier()
    status, response_headers, _ = await call(BearerAuthMiddleware(inner, verifier), headers)
    assert status == 400
    assert b'error="invalid_request"' in response_headers[b"www-authenticate"]
    assert verifier.seen == []


@pytest.mark.parametrize("value", [b"bearer aaa.bbb.ccc", b"BEARER  aaa.bbb.ccc", b"Bearer aaa.bbb.ccc "])
def test_scheme_is_case_insensitive_and_spacing_per_rfc_6750(value):
    assert bearer_token([(b"authorization", value)]) == GOOD


def test_b64token_keeps_its_trailing_padding_and_every_allowed_character():
    token = "AZaz09-._~+/=="
    assert bearer_token([(b"authorization", b"Bearer " + token.encode())]) == token


async def test_claims_are_in_current_claims_while_the_request_runs_and_gone_after():
    seen = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(current_claims())
        await inner(scope, receive, send)

    status, _, _ = await call(BearerAuthMiddleware(app, StubVerifier()), auth(b"Bearer " + GOOD.encode()))
    assert status == 200 and seen == [{"sub": "u-1", "scope": "reports:read"}]
    assert current_claims() is None


def test_bearer_token_errors_are_the_rfc_6750_kinds():
    with pytest.raises(MissingCredentials):
        bearer_token([])
    with pytest.raises(MissingCredentials):  # an empty field carries no credential either
        bearer_token([(b"authorization", b"  ")])
    with pytest.raises(MissingCredentials):  # section 3.1: an unsupported method is told no error code
        bearer_token([(b"authorization", b"Basic dXNlcjpwYXNz")])
    with pytest.raises(InvalidRequest):
        bearer_token([(b"authorization", b"Bearer:x")])


@pytest.mark.parametrize("path", ["/healthz", "/docs", "/openapi.json", "/docs/oauth2-redirect"])
async def test_exempt_paths_pass_without_credentials(path):
    verifier = StubVerifier()
    status, _, body = await call(BearerAuthMiddleware(inner, verifier), [], path=path)
    assert status == 200 and body == b"'anonymous'" and verifier.seen == []


async def test_exempt_paths_can_be_chosen():
    app = BearerAuthMiddleware(inner, StubVerifier(), exempt=("/public",))
    assert (await call(app, [], path="/public"))[0] == 200
    assert (await call(app, [], path="/healthz"))[0] == 401


async def test_lifespan_scopes_pass_untouched():
    verifier = StubVerifier()
    scope: dict[str, Any] = {"type": "lifespan"}
    await BearerAuthMiddleware(inner, verifier)(scope, None, None)
    assert scope.get("reached") and "auth" not in scope and verifier.seen == []


async def handshake(
    app: Any, headers: list[tuple[bytes, bytes]], *, http_response: bool, path: str = "/ws"
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One websocket scope through `app`: the scope after the call and what was sent."""
    extensions = {"websocket.http.response": {}} if http_response else {}
    scope: dict[str, Any] = {
        "type": "websocket",
        "path": path,
        "headers": headers,
        "query_string": b"",
        "extensions": extensions,
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return scope, sent


@pytest.mark.parametrize("headers", [[], auth(b"Bearer forged.token.x")], ids=["no token", "bad token"])
async def test_websocket_refused_before_accept_with_a_401_when_the_server_can_send_one(headers):
    scope, sent = await handshake(BearerAuthMiddleware(inner, StubVerifier()), headers, http_response=True)
    assert not scope.get("reached")
    start = sent[0]
    assert start["type"] == "websocket.http.response.start" and start["status"] == 401
    assert dict(start["headers"])[b"www-authenticate"].startswith(b'Bearer realm="api"')
    assert {m["type"] for m in sent} == {"websocket.http.response.start", "websocket.http.response.body"}


async def test_websocket_refused_with_1008_before_accept_when_the_server_cannot_send_a_response():
    scope, sent = await handshake(BearerAuthMiddleware(inner, StubVerifier()), [], http_response=False)
    assert not scope.get("reached")
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": "unauthorized"}]


async def test_websocket_with_a_valid_token_reaches_the_app_with_claims():
    scope, sent = await handshake(
        BearerAuthMiddleware(inner, StubVerifier()), auth(b"Bearer " + GOOD.encode()), http_response=True
    )
    assert scope["reached"] and scope["user"].claims["sub"] == "u-1" and sent == []
    assert scope["auth"].scopes == ["reports:read"]


async def test_exempt_websocket_paths_pass_without_credentials():
    verifier = StubVerifier()
    app = BearerAuthMiddleware(inner, verifier, exempt=("/ws/public",))
    scope, sent = await handshake(app, [], http_response=False, path="/ws/public")
    assert scope["reached"] and sent == [] and verifier.seen == []


async def test_replica_id_is_added_to_refusals_and_successes():
    app = ReplicaIdMiddleware(BearerAuthMiddleware(inner, StubVerifier()), "r7")
    for headers in ([], auth(b"Bearer " + GOOD.encode())):
        _, response_headers, _ = await call(app, headers)
        assert response_headers[b"x-replica-id"] == b"r7"


async def test_replica_id_passes_non_http_scopes_untouched():
    scope: dict[str, Any] = {"type": "lifespan"}
    await ReplicaIdMiddleware(inner, "r7")(scope, None, None)
    assert scope["reached"]
