"""What the endpoints answer, declared once for the OpenAPI document.

Every refusal is an RFC 6749 section 5.2 body rendered by `errors.py`; the document says
so, per status, so that clients (and tests/integration/test_openapi_fuzz.py) can hold the
service to it. Success bodies are spelled out where docs/wire.md fixes them.
"""

from __future__ import annotations

from typing import Any

JSON = "application/json"

_ERROR_CODES: dict[int, list[str]] = {
    400: [
        "invalid_request",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
        "unsupported_token_type",
        "invalid_target",
    ],
    401: ["invalid_client", "invalid_token", "invalid_request"],
    403: ["insufficient_scope"],
    404: ["not_found"],
    405: ["method_not_allowed"],
    409: ["conflict"],
    429: ["temporarily_unavailable"],
    503: ["temporarily_unavailable"],
}
_DESCRIPTIONS = {
    400: "Refused: the request is malformed or the grant is invalid (RFC 6749 section 5.2)",
    401: "Client authentication failed, or the bearer token is missing or invalid",
    403: "The bearer token is valid but may not do this (RFC 6750 section 3.1)",
    404: "No such resource",
    405: "The path exists for other methods (a path parameter holding a `/` can land on one)",
    409: "The name is taken",
    429: "Too many failed logins or client secrets, or too many open push streams; retry after `Retry-After` seconds",
    503: "Busy; retry after `Retry-After` seconds",
}
_RETRY_AFTER = {
    "Retry-After": {
        "required": True,
        "description": "Seconds to wait before retrying",
        "schema": {"type": "integer", "minimum": 1},
    }
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": '`Basic realm="auth"` when the client used HTTP Basic; a Bearer challenge at /logout and /admin',
            "schema": {"type": "string"},
        }
    },
    403: {
        "WWW-Authenticate": {
            "required": True,
            "description": 'RFC 6750 section 3: `Bearer realm="auth", error="insufficient_scope", scope="..."`',
            "schema": {"type": "string"},
        }
    },
    429: _RETRY_AFTER,
    503: _RETRY_AFTER,
}


def _json(schema: dict[str, Any], description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {JSON: {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The refusals an endpoint can answer, for `responses=`."""
    return {
        status: _json(
            {
                "type": "object",
                "required": ["error", "error_description"],
                "properties": {
                    "error": {"type": "string", "enum": _ERROR_CODES[status]},
                    "error_description": {"type": "string"},
                },
            },
            _DESCRIPTIONS[status],
            _HEADERS.get(status),
        )
        for status in statuses
    }


def ok(
    schema: dict[str, Any], description: str = "Successful Response", status: int = 200
) -> dict[int | str, dict[str, Any]]:
    return {status: _json(schema, description)}


TOKEN = {
    "type": "object",
    "required": ["access_token", "token_type", "expires_in", "scope"],
    "additionalProperties": False,
    "properties": {
        "access_token": {"type": "string"},
        "token_type": {"type": "string", "enum": ["Bearer"]},
        "expires_in": {"type": "integer", "minimum": 1},
        "scope": {"type": "string"},
        "refresh_token": {"type": "string"},
    },
}

INTROSPECTION = {  # RFC 7662 section 2.2
    "type": "object",
    "required": ["active"],
    "properties": {
        "active": {"type": "boolean"},
        "token_type": {"type": "string", "enum": ["Bearer", "refresh_token"]},
        "scope": {"type": "string"},
        "client_id": {"type": "string"},
        "username": {"type": "string"},
        "sub": {"type": "string"},
        "aud": {"type": "string"},
        "iss": {"type": "string"},
        "exp": {"type": "integer"},
        "iat": {"type": "integer"},
        "nbf": {"type": "integer"},
        "jti": {"type": "string"},
        "sid": {"type": "string"},
    },
}

REVOCATION_PULL = {  # docs/wire.md, "Pull"
    "type": "object",
    "required": ["feed", "cursor", "snapshot", "more", "entries"],
    "additionalProperties": False,
    "properties": {
        "feed": {"type": "string"},
        "cursor": {"type": "integer", "minimum": 0},
        "snapshot": {"type": "boolean"},
        "more": {"type": "boolean"},
        "entries": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["seq", "kind", "value", "before", "expires_at"],
                "additionalProperties": False,
                "properties": {
                    "seq": {"type": "integer", "minimum": 1},
                    "kind": {"type": "string", "enum": ["jti", "sid", "sub"]},
                    "value": {"type": "string"},
                    "before": {"type": ["integer", "null"]},
                    "expires_at": {"type": "integer"},
                },
            },
        },
    },
}

METADATA = {  # RFC 8414 section 2, OpenID Connect Discovery 1.0 section 3, and docs/wire.md
    "type": "object",
    "required": [
        "issuer",
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
        "end_session_endpoint",
        "revocation_endpoint",
        "introspection_endpoint",
        "grant_types_supported",
        "response_types_supported",
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
        "scopes_supported",
        "claims_supported",
        "code_challenge_methods_supported",
        "revocation_list_uri",
    ],
    "properties": {
        name: {"type": "string"}
        for name in (
            "issuer",
            "authorization_endpoint",
            "token_endpoint",
            "userinfo_endpoint",
            "jwks_uri",
            "end_session_endpoint",
            "revocation_endpoint",
            "introspection_endpoint",
            "revocation_list_uri",
            "revocation_stream_uri",
            "logout_endpoint",
        )
    }
    | {
        name: {"type": "array", "items": {"type": "string"}}
        for name in (
            "scopes_supported",
            "response_types_supported",
            "response_modes_supported",
            "grant_types_supported",
            "subject_types_supported",
            "id_token_signing_alg_values_supported",
            "token_endpoint_auth_methods_supported",
            "revocation_endpoint_auth_methods_supported",
            "introspection_endpoint_auth_methods_supported",
            "code_challenge_methods_supported",
            "claims_supported",
            "prompt_values_supported",
        )
    }
    | {
        name: {"type": "boolean"}
        for name in (
            "authorization_response_iss_parameter_supported",
            "request_parameter_supported",
            "request_uri_parameter_supported",
            "claims_parameter_supported",
        )
    },
}

JWKS = {  # RFC 7517 section 5; public members only
    "type": "object",
    "required": ["keys"],
    "properties": {
        "keys": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["kid", "kty", "alg", "use"],
                "not": {"anyOf": [{"required": [name]} for name in ("d", "p", "q", "dp", "dq", "qi", "k")]},
                "properties": {
                    "kid": {"type": "string"},
                    "kty": {"type": "string"},
                    "alg": {"type": "string"},
                    "use": {"type": "string", "enum": ["sig"]},
                },
            },
        }
    },
}

# -- /admin (docs/http-api.md, "Admin API"): the JSON views of directory.py and registry.py --

USER = {
    "type": "object",
    "required": [
        *("username", "sub", "scope", "disabled", "disabled_at", "password_changed_at"),
        *("name", "email", "email_verified"),
    ],
    "additionalProperties": False,
    "properties": {
        "name": {"type": ["string", "null"], "description": "the OpenID Connect `name` claim"},
        "email": {"type": ["string", "null"]},
        "email_verified": {"type": "boolean"},
        "username": {"type": "string"},
        "sub": {"type": "string"},
        "scope": {"type": "string"},
        "disabled": {"type": "boolean"},
        "disabled_at": {"type": ["integer", "null"]},
        "password_changed_at": {"type": "integer"},
    },
}

USER_LIST = {
    "type": "object",
    "required": ["users", "next"],
    "additionalProperties": False,
    "properties": {
        "users": {"type": "array", "items": USER},
        "next": {"type": ["string", "null"], "description": "`after` for the next page; null on the last"},
    },
}

_STRINGS = {"type": "array", "items": {"type": "string"}}
_CLIENT_PROPERTIES: dict[str, Any] = {
    "client_id": {"type": "string"},
    "type": {"type": "string", "enum": ["public", "confidential"]},
    "name": {"type": "string"},
    "grant_types": _STRINGS,
    "redirect_uris": _STRINGS,
    "post_logout_redirect_uris": _STRINGS,
    "scope": {"type": ["string", "null"], "description": "null: any scope the user holds"},
    "audiences": _STRINGS,
    "first_party": {"type": "boolean"},
    "created_at": {"type": "integer"},
}

CLIENT = {
    "type": "object",
    "required": list(_CLIENT_PROPERTIES),
    "additionalProperties": False,
    "properties": _CLIENT_PROPERTIES,
}

NEW_CLIENT = {
    **CLIENT,
    "properties": {
        **_CLIENT_PROPERTIES,
        "client_secret": {"type": "string", "description": "the generated secret, shown this once"},
    },
}

CLIENT_LIST = {
    "type": "object",
    "required": ["clients"],
    "additionalProperties": False,
    "properties": {"clients": {"type": "array", "items": CLIENT}},
}

ROTATED = {
    "type": "object",
    "required": ["client_id", "rotated"],
    "additionalProperties": False,
    "properties": {
        "client_id": {"type": "string"},
        "rotated": {"type": "boolean", "enum": [True]},
        "client_secret": {"type": "string", "description": "the generated secret, shown this once"},
    },
}
