"""`POST /token` (RFC 6749 sections 4.3, 4.4, 6): form in, JSON tokens or an RFC error out."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..deps import AddressDep, ClientsDep, FormDep, GrantsDep, MetricsDep
from ..forms import FORM_TYPE, MAX_VALUE
from ..grants import GRANT_TYPES, MAX_USERNAME_LENGTH
from ..grants.common import MAX_RESOURCE
from ..passwords import MAX_PASSWORD_LENGTH
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
                        "grant_type": {"type": "string", "enum": list(GRANT_TYPES)},
                        "username": {"type": "string", "maxLength": MAX_VALUE},
                        "password": {"type": "string", "format": "password", "maxLength": MAX_VALUE},
                        "refresh_token": {"type": "string", "maxLength": MAX_VALUE},
                        # The authorization code grant (RFC 6749 4.1.3) and its PKCE verifier (RFC 7636 4.5).
                        "code": {"type": "string", "maxLength": MAX_VALUE},
                        "redirect_uri": {"type": "string", "maxLength": MAX_VALUE},
                        "code_verifier": {"type": "string", "maxLength": MAX_VALUE},
                        "scope": {"type": "string", "maxLength": MAX_VALUE},
                        "client_id": {"type": "string", "maxLength": 128},
                        # RFC 8707: the API the access token is for (its `aud`); one of the client's audiences.
                        "resource": {"type": "string", "maxLength": MAX_RESOURCE},
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
                            "authorization_code",
                            {
                                "required": ["code", "redirect_uri", "code_verifier"],
                                "properties": {
                                    "code": {"minLength": 1},
                                    "redirect_uri": {"minLength": 1},
                                    "code_verifier": {"pattern": "^[A-Za-z0-9._~-]{43,128}$"},
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
async def token(
    request: Request, form: FormDep, grants: GrantsDep, clients: ClientsDep, address: AddressDep, metrics: MetricsDep
) -> JSONResponse:
    grant_type = form.get("grant_type", "")
    with metrics.token_request(grant_type):
        grant = grants[grant_type]  # before authentication: an unknown grant costs no hash
        caller = await clients.caller(request, form)
        caller.require_grant(grant_type)
        tokens = await grant(form, caller, address)
    return JSONResponse(tokens.body(), headers=NO_STORE)
