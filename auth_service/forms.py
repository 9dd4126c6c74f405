"""Strict reading of form-encoded OAuth requests (RFC 6749 sections 3.2 and 4.3.2).

FastAPI's form machinery would accept repeated parameters and answer 422; an OAuth
endpoint must refuse both the RFC 6749 way, and bound what it reads before parsing.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import Request

from .errors import BearerRequired, InvalidRequest, MalformedBearer

MAX_BODY = 8192  # bytes: far above any legitimate token request
MAX_FIELDS = 16
MAX_VALUE = 4096  # characters per parameter (a token is well under this)
FORM_TYPE = "application/x-www-form-urlencoded"

Form = dict[str, str]  # the parameters of one request, each present once


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, read no further than `limit` bytes (declared or sent), or InvalidRequest."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise InvalidRequest(f"request body larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise InvalidRequest(f"request body larger than {limit} bytes")
    return bytes(body)


async def read_form(request: Request) -> Form:
    """The request's parameters, each present at most once, or InvalidRequest."""
    return await parse_form(request, max_body=MAX_BODY, max_value=MAX_VALUE)


async def parse_form(request: Request, *, max_body: int, max_value: int) -> Form:
    """`read_form` with other bounds (the sign-in pages' forms carry a signed request)."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != FORM_TYPE:
        raise InvalidRequest(f"content type must be {FORM_TYPE}")
    body = await read_body(request, max_body)
    try:
        text = body.decode("ascii")  # form encoding percent-escapes everything else
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("malformed form body") from None
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise InvalidRequest(f"parameter {name!r} repeated"[:100])
        if len(value) > max_value:
            raise InvalidRequest(f"parameter {name!r} too long"[:100])
        if has_control_characters(value):
            raise InvalidRequest(f"parameter {name!r} contains control characters"[:100])
        params[name] = value
    return params


def has_control_characters(value: str) -> bool:
    """C0 controls but tab, and DEL: never in a parameter, and NUL is refused by PostgreSQL."""
    return any((ord(c) < 0x20 and c != "\t") or c == "\x7f" for c in value)


def require(params: Form, name: str) -> str:
    value = params.get(name)
    if not value:
        raise InvalidRequest(f"missing parameter {name!r}")
    return value


def parse_scope(value: str | None) -> set[str]:
    """RFC 6749 section 3.3: space-delimited tokens of %x21 / %x23-5B / %x5D-7E."""
    if not value:
        return set()
    scopes = set(value.split(" "))
    if "" in scopes or any(not _scope_token_ok(s) for s in scopes):
        raise InvalidRequest("malformed scope")
    return scopes


def _scope_token_ok(token: str) -> bool:
    return all(c == "!" or "#" <= c <= "[" or "]" <= c <= "~" for c in token)


def bearer_token(request: Request) -> str:
    """The Bearer credential of a request (RFC 6750 section 2.1), or the section 3.1 refusal:
    the bare challenge when there is none (or another scheme), invalid_request when malformed."""
    headers = request.headers.getlist("authorization")
    scheme, _, token = headers[0].partition(" ") if headers else ("", "", "")
    if not headers or (len(headers) == 1 and scheme.lower() != "bearer" and headers[0][:6].lower() != "bearer"):
        raise BearerRequired()
    if len(headers) > 1 or scheme.lower() != "bearer" or not token.strip() or len(token) > 8192:
        raise MalformedBearer("malformed Authorization header")
    return token.strip()
