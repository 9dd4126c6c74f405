"""Compact JWS access tokens, parsed and checked by rules written down here.

`jwt.decode` is not used: it keeps the last of duplicate JSON members, reads
time claims with `int()` (so `true` and "1700000000" pass as dates), accepts
NaN and lenient base64url, and lets the token's header choose among the allowed
algorithms. PyJWT serves for the signature primitives only (see `jwk.py`); the
rules of RFC 7515, RFC 7519 section 7.2, RFC 8725 and RFC 9068 are applied here.
Pure: no I/O, the clock is an argument.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Collection, Mapping
from typing import Any

from .jwk import ALGORITHMS, Key, key_from_jwk

__all__ = ["Key", "TokenError", "decode", "decode_with_key", "header_kid", "key_from_jwk"]

# A token larger than this is refused before any decoding work (RFC 8725 section 3.1
# asks for limits; ours are ~1 KiB).
MAX_TOKEN_LENGTH = 8192

# A compact JWS is base64url segments and dots; anything else is refused before decoding.
_JWS_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
_TO_STANDARD = bytes.maketrans(b"-_", b"+/")  # base64url to base64: one C pass
# The last character of an unpadded segment carries unused low bits that must be
# zero; anything else is a second spelling of the same bytes (RFC 4648 section 3.5).
_CANONICAL_LAST = {2: frozenset(b"AQgw"), 3: frozenset(b"AEIMQUYcgkosw048")}
_MAX_NUMERIC_DATE = 2**53  # beyond the integers JSON numbers carry exactly

# Header members we refuse outright, with the reason a client may read.
_REFUSED_HEADERS: dict[str, str] = {
    "jwk": "embedded keys are not accepted",
    "jku": "key URLs in the token are not accepted",
    "x5u": "certificate URLs in the token are not accepted",
    "x5c": "embedded certificates are not accepted",
    "crit": "critical header extensions are not supported",  # RFC 7515 section 4.1.11
    "zip": "compressed payloads are not supported",
    "cty": "nested tokens are not supported",
}
_ALWAYS_REQUIRED = ("iss", "aud", "exp", "iat")
_STRING_CLAIMS = ("iss", "sub", "jti", "client_id", "sid", "scope")


class TokenError(Exception):
    """A token was refused.

    `reason` is a short machine code for logs, metrics and control flow (the
    verifier refetches its key set on "unknown_kid"); `description` is safe to
    send to the client: it names the rule that failed, never the token's content.
    """

    def __init__(self, reason: str, description: str) -> None:
        super().__init__(description)
        self.reason = reason
        self.description = description


def _b64decode(segment: bytes) -> bytes:
    # `_split` has already limited segments to the url-safe alphabet and refused empty ones.
    remainder = len(segment) % 4
    if remainder == 1 or (remainder and segment[-1] not in _CANONICAL_LAST[remainder]):
        raise TokenError("malformed", "token is not canonical base64url")
    # base64.urlsafe_b64decode would re-validate and translate through three layers;
    # mapping the two url-safe characters and decoding once is the same, faster.
    return binascii.a2b_base64(segment.translate(_TO_STANDARD) + b"=" * (-len(segment) % 4))


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):  # RFC 8725 section 3.1 / RFC 7515 section 5.2
        raise TokenError("malformed", "token JSON has duplicate member names")
    return result


def _no_constant(name: str) -> Any:
    raise TokenError("malformed", "token JSON has a non-standard number")


# One decoder for every call: json.loads with hooks would build a new one each time.
_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constant)


def _json_object(segment: bytes, part: str) -> dict[str, Any]:
    try:
        text = _b64decode(segment).decode("utf-8")
        value = _DECODER.decode(text)
        if "\\u" in text:
            # A \u escape can spell a lone surrogate, which is no Unicode text (RFC 8259
            # section 8.2) and would fail later, when the claims are encoded again.
            json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (UnicodeError, ValueError, RecursionError):
        raise TokenError("malformed", f"token {part} is not UTF-8 JSON") from None
    if not isinstance(value, dict):
        raise TokenError("malformed", f"token {part} is not a JSON object")
    return value


def _split(token: str) -> tuple[bytes, bytes, bytes]:
    if len(token) > MAX_TOKEN_LENGTH:
        raise TokenError("malformed", "token is too long")
    try:
        raw = token.encode("ascii")
    except UnicodeEncodeError:
        raise TokenError("malformed", "token is not three base64url segments") from None
    segments = raw.split(b".")
    # translate(None, allowed) deletes every allowed byte: anything left is not base64url.
    if len(segments) != 3 or not all(segments) or raw.translate(None, _JWS_CHARS):
        raise TokenError("malformed", "token is not three base64url segments")
    header, payload, signature = segments
    return header, payload, signature


def _normalize_typ(typ: str) -> str:
    # RFC 7515 section 4.1.9: media types compare case-insensitively and
    # "application/" may be left out.
    typ = typ.lower()
    return typ.removeprefix("application/") if typ.count("/") == 1 else typ


def _check_header(header: dict[str, Any], typ: str) -> tuple[str, str]:
    for name, description in _REFUSED_HEADERS.items():
        if name in header:
            raise TokenError("bad_header", description)
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALGORITHMS:
        raise TokenError("unsupported_alg", "token alg is not supported")
    token_typ = header.get("typ")
    if not isinstance(token_typ, str) or _normalize_typ(token_typ) != _normalize_typ(typ):
        raise TokenError("wrong_typ", f"token typ must be {typ}")
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise TokenError("bad_header", "token header has no kid")
    return alg, kid


_HEADER_MEMO: dict[tuple[bytes, str], tuple[str, str]] = {}
_HEADER_MEMO_SIZE = 256  # far more than the keys an issuer publishes at once


def _header(segment: bytes, typ: str) -> tuple[str, str]:
    """(alg, kid) of a header segment that passes the header rules.

    Every token one key signs carries the same header segment, and the check is a pure
    function of its text, so a passing result is remembered; a refused one is not. A
    flood of distinct headers only empties the memo.
    """
    memo_key = (segment, typ)
    result = _HEADER_MEMO.get(memo_key)
    if result is None:
        result = _check_header(_json_object(segment, "header"), typ)
        if len(_HEADER_MEMO) >= _HEADER_MEMO_SIZE:
            _HEADER_MEMO.clear()
        _HEADER_MEMO[memo_key] = result
    return result


def _is_numeric_date(value: Any) -> bool:
    # Exact types keep `true` out (bool is an int subclass). The range check also
    # refuses NaN and infinity, and compares a huge int without converting it to float.
    return type(value) in (int, float) and 0 <= value <= _MAX_NUMERIC_DATE


def _check_audience(aud: Any, audience: str | frozenset[str]) -> None:
    """RFC 7519 section 4.1.3, exact string match. `audience` is ours, or (for an issuer
    reading its own tokens) the set of audiences it issues for: one of them must match."""
    ours = frozenset([audience]) if isinstance(audience, str) else audience
    if isinstance(aud, str):
        matched = aud in ours
    elif isinstance(aud, list) and all(isinstance(item, str) for item in aud):
        matched = not ours.isdisjoint(aud)
    else:
        raise TokenError("bad_claim", "aud must be a string or a list of strings")
    if not matched:
        raise TokenError("wrong_audience", "token is not meant for this audience")


def _check_claims(
    claims: dict[str, Any],
    *,
    issuer: str,
    audience: str | frozenset[str],
    now: float,
    leeway: float,
    required: Collection[str],
) -> None:
    for name in (*_ALWAYS_REQUIRED, *required):
        if name not in claims:
            raise TokenError("missing_claim", f"token has no {name} claim")
    for name in _STRING_CLAIMS:
        if name in claims and not isinstance(claims[name], str):
            raise TokenError("bad_claim", f"{name} must be a string")
    for name in ("exp", "iat", "nbf"):
        if name in claims and not _is_numeric_date(claims[name]):
            raise TokenError("bad_claim", f"{name} must be a NumericDate")
    if claims["iss"] != issuer:
        raise TokenError("wrong_issuer", "token was not issued by the expected issuer")
    _check_audience(claims["aud"], audience)
    if now >= claims["exp"] + leeway:
        raise TokenError("expired", "token has expired")
    if claims["iat"] > now + leeway:
        raise TokenError("iat_in_future", "token was issued in the future")
    if "nbf" in claims and claims["nbf"] > now + leeway:
        raise TokenError("not_yet_valid", "token is not valid yet")


def decode_with_key(
    token: str,
    keys: Mapping[str, Key],
    *,
    typ: str,
    issuer: str,
    audience: str | frozenset[str],
    now: float,
    leeway: float,
    required: Collection[str] = ("iss", "sub", "aud", "exp", "iat", "jti", "client_id"),
) -> tuple[dict[str, Any], Key]:
    """`decode`, also returning the key that verified the signature."""
    header_segment, payload_segment, signature_segment = _split(token)
    alg, kid = _header(header_segment, typ)
    key = keys.get(kid)
    if key is None:
        raise TokenError("unknown_kid", "token is signed by an unknown key")
    if alg != key.alg:  # the key decides the algorithm, never the token
        raise TokenError("alg_mismatch", "token alg does not match its key")
    signing_input = b"%s.%s" % (header_segment, payload_segment)
    if not key.verify(signing_input, _b64decode(signature_segment)):
        raise TokenError("bad_signature", "token signature is invalid")
    claims = _json_object(payload_segment, "payload")
    _check_claims(claims, issuer=issuer, audience=audience, now=now, leeway=leeway, required=required)
    return claims, key


def decode(
    token: str,
    keys: Mapping[str, Key],
    *,
    typ: str,
    issuer: str,
    audience: str | frozenset[str],
    now: float,
    leeway: float,
    required: Collection[str] = ("iss", "sub", "aud", "exp", "iat", "jti", "client_id"),
) -> dict[str, Any]:
    """Verify a compact JWS and return its claims, or raise `TokenError`.

    `iss`, `aud`, `exp` and `iat` are always required and checked; `required`
    names more claims that must be present. There is no switch to skip a check.
    """
    claims, _ = decode_with_key(
        token,
        keys,
        typ=typ,
        issuer=issuer,
        audience=audience,
        now=now,
        leeway=leeway,
        required=required,
    )
    return claims


def header_kid(token: str) -> str | None:
    """The `kid` of a well-formed token header, else None. Unverified: a hint only."""
    try:
        kid = _json_object(_split(token)[0], "header").get("kid")
    except TokenError:
        return None
    return kid if isinstance(kid, str) else None
