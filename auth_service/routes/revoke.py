"""`POST /revoke` (RFC 7009), `POST /introspect` (RFC 7662) and `POST /logout`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import OAuth2PasswordBearer

from ..clients import Caller
from ..deps import AudiencesDep, ClientsDep, ClockDep, FamiliesDep, FormDep, MinterDep, RevocationsDep, RevokerDep
from ..errors import InvalidClient, InvalidToken, UnauthorizedClient
from ..forms import FORM_TYPE, bearer_token, require
from ..revocation import access_token_revoked
from ..routes.token import NO_STORE
from ..storage import FamilyStore, RevocationStore
from ..tokens import TokenError, TokenMinter
from .responses import INTROSPECTION, errors, ok

router = APIRouter(tags=["revocation"])

_TOKEN_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            FORM_TYPE: {
                "schema": {
                    "type": "object",
                    "required": ["token"],
                    "properties": {
                        "token": {"type": "string", "maxLength": 4096},
                        # RFC 7009 section 2.1: a hint we do not know is ignored, not refused.
                        "token_type_hint": {"type": "string", "examples": ["access_token", "refresh_token"]},
                        "client_id": {"type": "string"},
                        "client_secret": {"type": "string", "format": "password"},
                    },
                }
            }
        },
    }
}

# Declares the Bearer credential in the OpenAPI document, so Swagger's Authorize works here.
_bearer = OAuth2PasswordBearer(tokenUrl="token", auto_error=False)


@router.post(
    "/revoke",
    openapi_extra=_TOKEN_FORM,
    summary="Revoke a token (RFC 7009)",
    response_class=Response,
    responses={
        200: {"description": "Revoked, or not a token of ours (RFC 7009 section 2.2)"},
        **errors(400, 401, 429, 503),
    },
)
async def revoke(
    request: Request,
    form: FormDep,
    clients: ClientsDep,
    minter: MinterDep,
    families: FamiliesDep,
    revoker: RevokerDep,
    clock: ClockDep,
    audiences: AudiencesDep,
) -> Response:
    token = require(form, "token")
    caller = await clients.caller(request, form)
    now = clock()
    # RFC 7009 section 2.2: an invalid, expired or unknown token is answered 200 all the same.
    if (claims := _read(minter.read_refresh, token, now)) is not None:
        _owned(claims, caller)
        record = await families.refresh_record(claims["jti"])
        if record is not None:
            await revoker.sid(record.sid)
    elif (claims := _read(lambda t, at: minter.read_access(t, at, audiences), token, now)) is not None:
        _owned(claims, caller)
        await revoker.jti(claims["jti"], int(claims["exp"]))
    return Response(status_code=200, headers=NO_STORE)


@router.post(
    "/introspect",
    openapi_extra=_TOKEN_FORM,
    summary="Introspect a token (RFC 7662)",
    responses={**ok(INTROSPECTION), **errors(400, 401, 429, 503)},
)
async def introspect(
    request: Request,
    form: FormDep,
    clients: ClientsDep,
    minter: MinterDep,
    families: FamiliesDep,
    revocations: RevocationsDep,
    clock: ClockDep,
    audiences: AudiencesDep,
) -> JSONResponse:
    caller = await clients.caller(request, form)
    if not caller.confidential:
        raise InvalidClient("introspection requires client authentication")
    token = require(form, "token")
    answer = await _introspect(minter, families, revocations, token, caller, clock(), audiences)
    return JSONResponse(answer, headers=NO_STORE)


@router.post(
    "/logout",
    status_code=204,
    summary="End the caller's login session",
    response_class=Response,
    responses=errors(400, 401, 503),
)
async def logout(
    request: Request,
    minter: MinterDep,
    revoker: RevokerDep,
    clock: ClockDep,
    audiences: AudiencesDep,
    _: str | None = Depends(_bearer),
) -> Response:
    token = bearer_token(request)
    try:
        claims = minter.read_access(token, clock(), audiences)
    except TokenError as exc:
        raise InvalidToken(exc.description) from None
    if "sid" in claims:
        await revoker.sid(claims["sid"])
    else:
        await revoker.jti(claims["jti"], int(claims["exp"]))
    return Response(status_code=204, headers=NO_STORE)


async def _introspect(
    minter: TokenMinter,
    families: FamilyStore,
    revocations: RevocationStore,
    token: str,
    caller: Caller,
    now: float,
    audiences: frozenset[str],
) -> dict[str, Any]:
    """RFC 7662 section 2.2: a token the caller may not learn about is answered inactive.
    A client learns about its own tokens; one registered with the `introspect` scope, about any."""
    if (claims := _read(minter.read_refresh, token, now)) is not None:
        record = await families.refresh_record(claims["jti"]) if _may_see(caller, claims) else None
        if record is None or record.used_at is not None or record.family_revoked_at is not None:
            return {"active": False}
        return {"active": True, "token_type": "refresh_token", **_public(claims)}
    if (claims := _read(lambda t, at: minter.read_access(t, at, audiences), token, now)) is not None:
        if not _may_see(caller, claims) or await access_token_revoked(revocations, claims, now):
            return {"active": False}
        return {"active": True, "token_type": "Bearer", **_public(claims)}
    return {"active": False}


def _may_see(caller: Caller, claims: dict[str, Any]) -> bool:
    return caller.may_introspect_any or caller.owns(claims)


def _public(claims: dict[str, Any]) -> dict[str, Any]:
    names = ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "nbf", "jti", "sid")
    out = {name: claims[name] for name in names if name in claims}
    if "preferred_username" in claims:
        out["username"] = claims["preferred_username"]
    return out


def _read(reader: Callable[[str, float], dict[str, Any]], token: str, now: float) -> dict[str, Any] | None:
    try:
        return reader(token, now)
    except TokenError:
        return None


def _owned(claims: dict[str, Any], caller: Caller) -> None:
    """RFC 7009 section 2.1: a client revokes only tokens issued to it."""
    if not caller.owns(claims):
        raise UnauthorizedClient("the token was not issued to this client")
