"""`POST /token` (RFC 6749 sections 4.3, 4.4, 6): form in, JSON tokens or an RFC error out."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..clients import authenticate
from ..errors import InvalidRequest, UnsupportedGrantType
from ..forms import FORM_TYPE, MAX_VALUE, read_form
from ..grants import MAX_USERNAME_LENGTH
from ..metrics import token_outcome
from ..passwords import MAX_PASSWORD_LENGTH
from ..services import Services, services
from .responses import TOKEN, errors, ok

router = APIRouter(tags=["tokens"])

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _when(grant_type: str, then: dict[str, Any]) -> dict[str, Any]:
    return {"if": {"required": ["grant_type"], "properties": {"grant_type": {"const": grant_type}}}, "then": then}


# Every value is at most MAX_VALUE characters; a grant bounds what it reads further and
# ignores the rest (RFC 6749 section 3.2), so the tighter limits hold per grant.
_FORM_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            FORM_TYPE: {
                "schema": {
                    "type": "object",
                    "required": ["grant_type"],
                    "properties": {
                        "grant_type": {"type": "string", "enum": ["password", "refresh_token", "client_credentials"]},
                        "username": {"type": "string", "maxLength": MAX_VALUE},
                        "password": {"type": "string", "format": "password", "maxLength": MAX_VALUE},
                        "refresh_token": {"type": "string", "maxLength": MAX_VALUE},
                        "scope": {"type": "string", "maxLength": MAX_VALUE},
                        "client_id": {"type": "string", "maxLength": 128},
                        "client_secret": {"type": "string", "format": "password", "maxLength": 1024},
                    },
                    "allOf": [
                        _when(
                            "password",
                            {
                                "required": ["username", "password"],
                                "properties": {
                                    "username": {"minLength": 1, "maxLength": MAX_USERNAME_LENGTH},
                                    "password": {"minLength": 1, "maxLength": MAX_PASSWORD_LENGTH},
                                },
                            },
                        ),
                        _when(
                            "refresh_token",
                            {"required": ["refresh_token"], "properties": {"refresh_token": {"minLength": 1}}},
                        ),
                    ],
                }
            }
        },
    }
}


@router.post(
    "/token",
    openapi_extra=_FORM_SCHEMA,
    summary="Issue tokens (RFC 6749)",
    responses={**ok(TOKEN), **errors(400, 401, 429, 503)},
)
async def token(request: Request) -> JSONResponse:
    s = services(request)
    if s.metrics is None:
        return JSONResponse(await _issue(request, s, {}), headers=NO_STORE)
    seen: dict[str, str] = {}  # filled with the grant type once the form is read, for the count
    try:
        body = await _issue(request, s, seen)
    except Exception as exc:  # counted, then rendered by the app's handlers as before
        s.metrics.token(seen.get("grant_type"), token_outcome(exc))
        raise
    s.metrics.token(seen.get("grant_type"), "issued")
    return JSONResponse(body, headers=NO_STORE)


async def _issue(request: Request, s: Services, seen: dict[str, str]) -> dict[str, Any]:
    params = await read_form(request)
    grant_type = seen["grant_type"] = params.get("grant_type", "")
    if not grant_type:
        raise InvalidRequest("missing parameter 'grant_type'")
    handlers = {"password", "refresh_token", "client_credentials"}
    if grant_type not in handlers:
        raise UnsupportedGrantType("grant_type must be password, refresh_token or client_credentials")
    caller = await authenticate(request, params, s.store, s.hasher, s.limiter, metrics=s.metrics)
    if grant_type == "password":
        address = request.client.host if request.client else "unknown"
        body = await s.grants.password(params, caller, address)
    elif grant_type == "refresh_token":
        body = await s.grants.refresh(params, caller)
    else:
        body = await s.grants.client_credentials(params, caller)
    return body
