"""Forged, mangled and misplaced bearer tokens against a running replica.

Every refusal is RFC 6750 section 3: 401 `invalid_token` for a bad token, 400
`invalid_request` for a malformed Authorization header, 401 without an error code when no
credential was sent; never a 500. After each attack the replica is as it was: the real token
still works and the replica still holds the issuer's keys and nothing else.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator

import pytest

from resource_service.jose import MAX_TOKEN_LENGTH
from tests.attack.forge import (
    Forger,
    Target,
    assert_bearer_refusal,
    cases,
    start_target,
)
from tests.attack.hostile import HOSTILE, Attack

pytestmark = pytest.mark.slow

MALFORMED_HEADER = "the Authorization header is not 'Bearer <token>'"
SEVERAL = "several Authorization headers were sent"


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    yield from start_target(tmp_path_factory.mktemp("attack-bearer"))


def assert_unchanged(target: Target) -> None:
    assert target.me(target.access).status_code == 200, "the real token must still be accepted"
    assert target.replica_keys() == target.keys, "the replica must hold the issuer's keys and no other"


def test_the_control_a_forged_copy_without_defect_is_accepted(target: Target) -> None:
    forger = target.forger
    control = forger.token()
    assert control.split(".")[0] == target.access.split(".")[0], "the forged header must be the issuer's, byte for byte"
    response = target.me(control)
    assert response.status_code == 200, response.text
    assert response.json()["claims"]["sub"] == forger.claims["sub"]


@cases(HOSTILE)
def test_a_forged_token_is_refused_as_invalid_token(target: Target, case: Attack) -> None:
    token = case.build(target.forger)
    for _ in range(2):  # a refusal is not remembered as anything else
        assert_bearer_refusal(
            target.me(token),
            status=401,
            error="invalid_token",
            realm="api",
            description=case.description("at+jwt"),
            token=token,
        )
    assert_unchanged(target)


def test_a_real_refresh_token_presented_as_a_bearer_token_is_refused(target: Target) -> None:
    assert_bearer_refusal(
        target.me(target.refresh),
        status=401,
        error="invalid_token",
        realm="api",
        description="token typ must be at+jwt",
        token=target.refresh,
    )


def test_access_claims_under_the_refresh_typ_are_refused_for_the_typ(target: Target) -> None:
    token = target.forger.token(header={"typ": "rt+jwt"})
    assert_bearer_refusal(
        target.me(token),
        status=401,
        error="invalid_token",
        realm="api",
        description="token typ must be at+jwt",
        token=token,
    )


def test_refresh_claims_under_the_access_typ_are_refused_for_the_audience(target: Target) -> None:
    token = target.refresh_forger.token(header={"typ": "at+jwt"})
    assert_bearer_refusal(
        target.me(token),
        status=401,
        error="invalid_token",
        realm="api",
        description="token is not meant for this audience",
        token=token,
    )


def _sized(forger: Forger, length: int) -> str:
    """The longest token of at most `length` characters signed by the issuer (padded by a claim)."""
    best = forger.token(pad="")
    low, high = 0, length
    while low <= high:
        middle = (low + high) // 2
        token = forger.token(pad="x" * middle)
        if len(token) <= length:
            best, low = token, middle + 1
        else:
            high = middle - 1
    return best


def test_a_token_at_the_length_limit_is_accepted_and_one_past_it_refused(target: Target) -> None:
    at_limit = _sized(target.forger, MAX_TOKEN_LENGTH)
    assert MAX_TOKEN_LENGTH - 2 <= len(at_limit) <= MAX_TOKEN_LENGTH
    assert target.me(at_limit).status_code == 200
    past = target.forger.token(pad="x" * MAX_TOKEN_LENGTH)
    assert_bearer_refusal(
        target.me(past),
        status=400,
        error="invalid_request",
        realm="api",
        description="the Authorization header is too long",
        token=past,
    )
    assert_unchanged(target)


# (headers to send, given the real token) -> status, error, description
HeaderAbuse = tuple[Callable[[str], list[tuple[str, str]]], int, str, str]

HEADER_ABUSE: dict[str, HeaderAbuse] = {
    "two Authorization headers, both the real token": (
        lambda t: [("Authorization", f"Bearer {t}")] * 2,
        400,
        "invalid_request",
        SEVERAL,
    ),
    "a forged token behind the real one in a second header": (
        lambda t: [("Authorization", f"Bearer {t}"), ("Authorization", "Bearer a.b.c")],
        400,
        "invalid_request",
        SEVERAL,
    ),
    "fifty Authorization headers": (  # short ones: fifty of the real token would pass the 16 KiB header cap
        lambda t: [("Authorization", f"Bearer {t}")] + [("Authorization", "Bearer a.b.c")] * 49,
        400,
        "invalid_request",
        SEVERAL,
    ),
    "two tokens in one header, comma-joined": (
        lambda t: [("Authorization", f"Bearer {t}, Bearer {t}")],
        400,
        "invalid_request",
        MALFORMED_HEADER,
    ),
    "scheme and token joined by a colon": (
        lambda t: [("Authorization", f"Bearer:{t}")],
        400,
        "invalid_request",
        MALFORMED_HEADER,
    ),
    "scheme and token joined by a tab": (
        lambda t: [("Authorization", f"Bearer\t{t}")],
        400,
        "invalid_request",
        MALFORMED_HEADER,
    ),
    "no space after the scheme": (
        lambda t: [("Authorization", f"Bearer{t}")],
        400,
        "invalid_request",
        MALFORMED_HEADER,
    ),
    "scheme without a token": (lambda t: [("Authorization", "Bearer")], 400, "invalid_request", MALFORMED_HEADER),
    "scheme and spaces without a token": (
        lambda t: [("Authorization", "Bearer    ")],
        400,
        "invalid_request",
        MALFORMED_HEADER,
    ),
    "scheme and a tab without a token": (
        lambda t: [("Authorization", "Bearer \t")],
        400,
        "invalid_request",
        MALFORMED_HEADER,
    ),
    "a second word after the token": (
        lambda t: [("Authorization", f"Bearer {t} admin")],
        400,
        "invalid_request",
        MALFORMED_HEADER,
    ),
    "a space inside the token": (
        lambda t: [("Authorization", f"Bearer {t[:20]} {t[20:]}")],
        400,
        "invalid_request",
        MALFORMED_HEADER,
    ),
    "padding inside the token": (
        lambda t: [("Authorization", "Bearer {}=.{}.{}".format(*t.split(".")))],
        400,
        "invalid_request",
        MALFORMED_HEADER,
    ),
    "the JWS JSON serialization (CVE-2022-39227 polyglot)": (
        lambda t: [
            (
                "Authorization",
                "Bearer " + json.dumps(dict(zip(("protected", "payload", "signature"), t.split("."), strict=True))),
            )
        ],
        400,
        "invalid_request",
        MALFORMED_HEADER,
    ),
    "a quoted token": (lambda t: [("Authorization", f'Bearer "{t}"')], 400, "invalid_request", MALFORMED_HEADER),
    "12 KiB of token": (
        lambda t: [("Authorization", "Bearer " + "A" * 12_288)],
        400,
        "invalid_request",
        "the Authorization header is too long",
    ),
}


@pytest.mark.parametrize("case", list(HEADER_ABUSE.values()), ids=list(HEADER_ABUSE))
def test_a_malformed_authorization_header_is_refused(target: Target, case: HeaderAbuse) -> None:
    headers, status, error, description = case
    sent = [(name, value.encode()) for name, value in headers(target.access)]
    response = target.raw_request("GET", f"{target.replica_url}/me", sent)
    assert_bearer_refusal(
        response, status=status, error=error, description=description, realm="api", token=target.access
    )
    assert_unchanged(target)


@pytest.mark.parametrize(
    "headers",
    [[("Authorization", "Bearer " + "A" * 65_536)], [("Authorization", "Bearer " + "A" * 1_000)] * 50],
    ids=["64 KiB of token", "fifty 1 KB Authorization headers"],
)
def test_headers_over_16_kib_are_refused_431_before_the_app(target: Target, headers: list[tuple[str, str]]) -> None:
    response = target.raw_request("GET", f"{target.replica_url}/me", [(n, v.encode()) for n, v in headers])
    assert response.status_code == 431
    assert_unchanged(target)


OTHER_SCHEMES: dict[str, Callable[[str], str]] = {
    "scheme Basic": lambda t: "Basic " + base64.b64encode(b"alice:secret").decode(),
    "scheme Token": lambda t: f"Token {t}",
    "scheme JWT": lambda t: f"JWT {t}",
    "scheme DPoP without a proof": lambda t: f"DPoP {t}",
    "a scheme that only ends in bearer": lambda t: f"XBearer {t}",
}


@pytest.mark.parametrize("header", list(OTHER_SCHEMES.values()), ids=list(OTHER_SCHEMES))
def test_another_authentication_scheme_gets_the_bare_challenge(target: Target, header: Callable[[str], str]) -> None:
    """RFC 6750 section 3.1: a client that tried an unsupported method is told only how to
    authenticate: 401 and `Bearer realm`, with no error code."""
    response = target.raw_request(
        "GET", f"{target.replica_url}/me", [("Authorization", header(target.access).encode())]
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="api"'
    assert "error" not in response.json()
    assert_unchanged(target)


def test_a_header_with_bytes_outside_ascii_is_refused(target: Target) -> None:
    response = target.raw_request(
        "GET", f"{target.replica_url}/me", [("Authorization", b"Bearer \xe9" + target.access.encode())]
    )
    assert_bearer_refusal(
        response, status=400, error="invalid_request", description=MALFORMED_HEADER, realm="api", token=target.access
    )


@pytest.mark.parametrize(
    "header",
    [
        "bearer {}",  # RFC 9110 section 11.1: the scheme is case-insensitive
        "BEARER {}",
        "Bearer    {}",  # RFC 6750 section 2.1: 1*SP
        "Bearer {}  ",  # trailing whitespace is not part of the field value (RFC 9110 section 5.5)
    ],
)
def test_the_scheme_in_any_case_and_extra_spaces_are_accepted(target: Target, header: str) -> None:
    sent = [("Authorization", header.format(target.access).encode())]
    response = target.raw_request("GET", f"{target.replica_url}/me", sent)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("where", ["access_token query parameter", "access_token cookie", "X-Access-Token header"])
def test_a_token_anywhere_but_the_authorization_header_counts_as_no_credential(target: Target, where: str) -> None:
    url, kwargs = f"{target.replica_url}/me", {}
    if where.endswith("parameter"):  # RFC 6750 section 2.3: not offered (tokens in URLs leak to logs)
        url += f"?access_token={target.access}"
    elif where.endswith("cookie"):
        kwargs["headers"] = {"Cookie": f"access_token={target.access}"}
    else:
        kwargs["headers"] = {"X-Access-Token": target.access}
    response = target.http.get(url, **kwargs)  # type: ignore[arg-type]
    # RFC 6750 section 3.1: no credential, so no error code.
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="api"'
    assert "error" not in response.json()


def test_every_refusal_keeps_the_scoped_route_closed_too(target: Target) -> None:
    """The dependency path (`/reports`) is as strict as the middleware path (`/me`)."""
    for name in (
        "alg none over the issuer's real signature",
        "jwk header with the issuer's own key, signed by the issuer",
        "typ of the other kind of our tokens",
        "expired an hour ago",
    ):
        case = HOSTILE[name]
        token = case.build(target.forger)
        response = target.http.get(f"{target.replica_url}/reports", headers={"Authorization": f"Bearer {token}"})
        assert_bearer_refusal(
            response,
            status=401,
            error="invalid_token",
            realm="api",
            description=case.description("at+jwt"),
            token=token,
        )
