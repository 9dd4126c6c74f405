"""Discovery (RFC 8414) and the key set (RFC 7517). Every URL comes from AUTH_ISSUER."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response

from ..conditional import none_match
from ..config import Settings
from ..deps import ClockDep, KeysDep, SettingsDep
from ..grants import GRANT_TYPES
from ..oidc import CLAIMS_SUPPORTED, IDENTITY_SCOPES
from .responses import JWKS, METADATA, ok

router = APIRouter(tags=["discovery"])


def metadata(settings: Settings, signing_algs: list[str]) -> dict[str, Any]:
    """RFC 8414 and OpenID Connect Discovery 1.0 section 3, in one document served at both paths.
    `signing_algs`: what signs now and what will (`KeyManager.signing_algs`)."""
    base = settings.issuer
    client_auth = ["client_secret_basic", "client_secret_post", "none"]
    return {
        "issuer": base,
        "authorization_endpoint": f"{base}/authorize",
        "token_endpoint": f"{base}/token",
        "userinfo_endpoint": f"{base}/userinfo",
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "end_session_endpoint": f"{base}/end-session",
        "revocation_endpoint": f"{base}/revoke",
        "introspection_endpoint": f"{base}/introspect",
        "scopes_supported": sorted(IDENTITY_SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": list(GRANT_TYPES),
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": signing_algs,
        "token_endpoint_auth_methods_supported": client_auth,
        "revocation_endpoint_auth_methods_supported": client_auth,
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": list(CLAIMS_SUPPORTED),
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "authorization_response_iss_parameter_supported": True,  # RFC 9207
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "claims_parameter_supported": False,
        "revocation_list_uri": f"{base}/revocations",
        "revocation_stream_uri": f"{base}/revocations/stream",
        "logout_endpoint": f"{base}/logout",
    }


async def _metadata(settings: SettingsDep, keys: KeysDep, clock: ClockDep) -> Response:
    body = json.dumps(metadata(settings, keys.signing_algs(int(clock()))), separators=(",", ":"))
    return Response(
        body, media_type="application/json", headers={"Cache-Control": f"public, max-age={settings.jwks_max_age}"}
    )


router.add_api_route(
    "/.well-known/oauth-authorization-server",
    _metadata,
    methods=["GET"],
    summary="Authorization server metadata (RFC 8414)",
    responses=ok(METADATA),
)
router.add_api_route(
    "/.well-known/openid-configuration",
    _metadata,
    methods=["GET"],
    summary="The same metadata at the OpenID Connect discovery path",
    responses=ok(METADATA),
)


@router.get(
    "/.well-known/jwks.json",
    summary="Public signing keys (RFC 7517)",
    responses={**ok(JWKS), 304: {"description": "Not Modified: `If-None-Match` holds the current ETag"}},
)
async def jwks(request: Request, keys: KeysDep, settings: SettingsDep) -> Response:
    body, etag = keys.jwks()
    headers = {"Cache-Control": f"public, max-age={settings.jwks_max_age}", "ETag": etag}
    if none_match(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)
