"""`GET`/`POST /userinfo` (OpenID Connect Core section 5.3): the signed-in person's claims, for
a bearer access token that carries the `openid` scope and is not revoked."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from fastapi.security import OAuth2AuthorizationCodeBearer

from ..deps import AudiencesDep, ClockDep, MinterDep, RevocationsDep, UsersDep
from ..errors import InsufficientScope, InvalidToken
from ..forms import bearer_token
from ..oidc import user_claims
from ..revocation import access_token_revoked
from ..tokens import TokenError
from .responses import errors
from .token import NO_STORE

router = APIRouter(tags=["openid"])

_bearer = OAuth2AuthorizationCodeBearer(authorizationUrl="authorize", tokenUrl="token", auto_error=False)


async def userinfo(
    request: Request,
    minter: MinterDep,
    revocations: RevocationsDep,
    users: UsersDep,
    clock: ClockDep,
    audiences: AudiencesDep,
    _: str | None = Depends(_bearer),
) -> JSONResponse:
    token = bearer_token(request)
    now = clock()
    try:
        claims = minter.read_access(token, now, audiences)
    except TokenError as exc:
        raise InvalidToken(exc.description) from None
    revoked = await access_token_revoked(revocations, claims, now)
    if revoked:
        raise InvalidToken("token is revoked")
    scope = str(claims.get("scope", ""))
    if "openid" not in scope.split():
        raise InsufficientScope("the token was not granted the openid scope", scope="openid")
    user = await users.user_by_id(claims["sub"])
    if user is None or user.disabled_at is not None:
        raise InvalidToken("the user no longer exists or is disabled")
    return JSONResponse({"sub": user.id, **user_claims(user, scope)}, headers=NO_STORE)


for _method in ("GET", "POST"):
    router.add_api_route(
        "/userinfo",
        userinfo,
        methods=[_method],
        name=f"userinfo_{_method.lower()}",
        operation_id=f"userinfo_{_method.lower()}",
        summary="Claims about the signed-in user (OpenID Connect UserInfo)",
        responses=errors(400, 401, 403, 503),
    )
