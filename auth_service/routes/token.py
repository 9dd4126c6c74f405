"""`POST /token` (RFC 6749 sections 4.3, 4.4, 6): form in, JSON tokens or an RFC error out."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..clients import authenticate
from ..errors import InvalidRequest, UnsupportedGrantType
from ..forms import FORM_TYPE, read_form
from ..services import services

router = APIRouter(tags=["tokens"])

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

_FORM_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {FORM_TYPE: {"schema": {
            "type": "object",
            "required": ["grant_type"],
            "properties": {
                "grant_type": {"type": "string", "enum": ["password", "refresh_token", "client_credentials"]},
                "username": {"type": "string", "maxLength": 256},
                "password": {"type": "string", "format": "password", "maxLength": 1024},
                "refresh_token": {"type": "string", "maxLength": 4096},
                "scope": {"type": "string", "maxLength": 4096},
                "client_id": {"type": "string", "maxLength": 128},
                "client_secret": {"type": "string", "format": "password", "maxLength": 1024},
            },
        }}},
    }
}


@router.post("/token", openapi_extra=_FORM_SCHEMA, summary="Issue tokens (RFC 6749)")
async def token(request: Request) -> JSONResponse:
    s = services(request)
    params = await read_form(request)
    grant_type = params.get("grant_type")
    if not grant_type:
        raise InvalidRequest("missing parameter 'grant_type'")
    handlers = {"password", "refresh_token", "client_credentials"}
    if grant_type not in handlers:
        raise UnsupportedGrantType("grant_type must be password, refresh_token or client_credentials")
    caller = await authenticate(request, params, s.store, s.hasher)
    if grant_type == "password":
        address = request.client.host if request.client else "unknown"
        body = await s.grants.password(params, caller, address)
    elif grant_type == "refresh_token":
        body = await s.grants.refresh(params, caller)
    else:
        body = await s.grants.client_credentials(params, caller)
    return JSONResponse(body, headers=NO_STORE)
