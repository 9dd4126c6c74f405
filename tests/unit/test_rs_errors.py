"""resource_service.errors: every refusal rendered in the RFC 6750 format."""

from __future__ import annotations

import json

import pytest

from resource_service.errors import (
    InsufficientScope,
    InvalidRequest,
    InvalidToken,
    MissingCredentials,
    Unavailable,
    render,
)


def test_invalid_token_is_401_with_code_and_description_in_the_challenge():
    response = render(InvalidToken("token has expired", reason="expired"))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        'Bearer realm="api", error="invalid_token", error_description="token has expired"'
    )
    assert json.loads(response.body) == {
        "error": "invalid_token",
        "error_description": "token has expired",
    }


def test_missing_credentials_is_401_without_an_error_code():
    response = render(MissingCredentials())
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="api"'
    assert "error" not in json.loads(response.body)


def test_invalid_request_is_400():
    response = render(InvalidRequest("the Authorization header is not 'Bearer <token>'"))
    assert response.status_code == 400
    assert 'error="invalid_request"' in response.headers["www-authenticate"]


def test_insufficient_scope_is_403_and_names_the_required_scopes():
    response = render(InsufficientScope(["reports:read", "reports:write"]))
    assert response.status_code == 403
    assert response.headers["www-authenticate"].endswith(
        'error="insufficient_scope", error_description="the token lacks a required scope", '
        'scope="reports:read reports:write"'
    )


def test_unavailable_is_503_with_retry_after_and_no_bearer_challenge():
    response = render(Unavailable("revocation list is stale", retry_after=4.2))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert "www-authenticate" not in response.headers


@pytest.mark.parametrize("hostile", ['say "hi"', "back\\slash", "line\r\nX-Injected: 1", "é"])
def test_description_cannot_break_out_of_its_quoted_string(hostile):
    header = render(InvalidToken(f"bad {hostile}")).headers["www-authenticate"]
    value = header.split('error_description="', 1)[1]
    assert value.count('"') == 1 and value.endswith('"')
    assert "\\" not in value and "\r" not in value and "\n" not in value


def test_scope_values_cannot_break_out_of_their_quoted_string():
    header = render(InsufficientScope(['a"b', "c\\d"])).headers["www-authenticate"]
    assert header.endswith('scope="ab cd"')


def test_reason_defaults_to_the_code_for_logs():
    assert InvalidRequest("x").reason == "invalid_request"
    assert InvalidToken("x", reason="revoked").reason == "revoked"
