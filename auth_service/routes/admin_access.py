"""Who may call `/admin`, and the record of every call.

The caller is an admin client holding its own access token for this issuer (client
credentials, `resource=<AUTH_ISSUER>`, scope `admin`): see `admin_client`. `AdminRoute`
bounds each call's body before anything parses it and writes one `admin_call` security
event with how the call ended, whatever ended it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Coroutine, Iterator
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import OAuth2PasswordBearer
from starlette.exceptions import HTTPException

from ..deps import ClockDep, IssuerDep, MinterDep, RevocationsDep, SettingsDep
from ..directory import Directory, Invalid, NotFound
from ..errors import (
    InsufficientScope,
    InvalidRequest,
    InvalidToken,
    OAuthError,
    ResourceConflict,
    ResourceNotFound,
)
from ..forms import bearer_token, read_body
from ..registry import Registry
from ..revocation import access_token_revoked
from ..storage import Conflict
from ..storage.unavailable import database_unavailable
from ..tokens import TokenError

security = logging.getLogger("auth_service.security")

ADMIN_SCOPE = "admin"
MAX_BODY = 16 * 1024  # bytes: far above any admin request, refused before parsing
MAX_CLIENT_ID = 128

# Declares the Bearer credential in the OpenAPI document, so Swagger's Authorize works here.
_bearer = OAuth2PasswordBearer(tokenUrl="token", auto_error=False)


class AdminRoute(APIRoute):
    """Each /admin call: its body bounded before anything parses it, and one security event
    with how the call ended, whatever ended it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        route = self.path_format

        async def audited(request: Request) -> Response:
            status = 500
            try:
                await _bounded_body(request)
                response = await handler(request)
                status = response.status_code
                return response
            except (OAuthError, HTTPException) as exc:
                status = exc.status_code
                raise
            except RequestValidationError:
                status = 400  # rendered by errors.install_handlers
                raise
            except Exception as exc:
                status = 503 if database_unavailable(exc) else 500
                raise
            finally:
                client_id = getattr(request.state, "admin_client", None)
                fields = {"client_id": client_id, "method": request.method, "route": route, "status": status}
                security.info("admin_call", extra=fields)

        return audited


async def _bounded_body(request: Request) -> None:
    request._body = await read_body(request, MAX_BODY)  # what FastAPI parses next, already read


async def _directory(issuer: IssuerDep) -> Directory:
    return Directory(issuer.store, issuer.revoker, issuer.hasher, issuer.clock)


async def _registry(issuer: IssuerDep) -> Registry:
    return Registry(issuer.store, issuer.revoker, issuer.hasher, issuer.clock)


DirectoryDep = Annotated[Directory, Depends(_directory)]
RegistryDep = Annotated[Registry, Depends(_registry)]


async def admin_client(
    request: Request,
    minter: MinterDep,
    revocations: RevocationsDep,
    registry: RegistryDep,
    settings: SettingsDep,
    clock: ClockDep,
    _: str | None = Depends(_bearer),  # declares the Bearer credential in the OpenAPI document
) -> str:
    """The id of the admin client calling: its own unrevoked access token for this issuer,
    with the `admin` scope, while it is still registered. Else an RFC 6750 refusal."""
    token = bearer_token(request)
    now = clock()
    try:
        claims = minter.read_access(token, now, frozenset({settings.issuer}))
    except TokenError as exc:
        raise InvalidToken(exc.description) from None
    client_id = claims.get("client_id")
    if not isinstance(client_id, str):
        raise InvalidToken("token names no client")
    request.state.admin_client = client_id  # signed, so worth logging even when refused below
    revoked = await access_token_revoked(revocations, claims, now)
    if revoked:
        raise InvalidToken("token revoked")
    try:
        await registry.client(client_id)
    except NotFound:
        raise InvalidToken("the token's client is no longer registered") from None
    if claims["sub"] != client_id or "sid" in claims:
        raise InsufficientScope("a user's token cannot administer; use the admin client's own", scope=ADMIN_SCOPE)
    if ADMIN_SCOPE not in str(claims.get("scope", "")).split(" "):
        raise InsufficientScope("the token lacks the admin scope", scope=ADMIN_SCOPE)
    return client_id


AdminDep = Annotated[str, Depends(admin_client)]


@contextlib.contextmanager
def refusals(kind: str) -> Iterator[None]:
    """The service layers' failures as API errors. Names are not quoted back: a name may be a
    password typed in the wrong field."""
    try:
        yield
    except NotFound:
        raise ResourceNotFound(f"no such {kind}") from None
    except Invalid as exc:
        raise InvalidRequest(str(exc)) from None
    except Conflict:
        raise ResourceConflict(f"that {kind} exists") from None
