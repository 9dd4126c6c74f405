"""resource_service.jose: the token rules, including one row per known attack."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from resource_service.jose import (
    MAX_TOKEN_LENGTH,
    Key,
    TokenError,
    decode,
    decode_with_key,
    header_kid,
    key_from_jwk,
)
from tests.unit.fakes import encode, signature

ISSUER = "https://auth.example"
AUDIENCE = "api"
NOW = 1_700_000_000
LEEWAY = 30
DROP = object()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Signer:
    alg: str
    kid: str
    private: Any
    jwk: dict[str, Any]
    key: Key

    def mint(self, claims: dict[str, Any], **header: Any) -> str:
        """A token signed by PyJWT's encoder, as a stranger's issuer would sign it."""
        return encode(claims, self.private, self.alg, {"kid": self.kid, "typ": "at+jwt", **header})

    def raw(self, header: bytes | dict[str, Any], payload: bytes | dict[str, Any]) -> str:
        """A token with exactly these header and payload bytes, validly signed."""
        if isinstance(header, dict):
            fields = {"alg": self.alg, "kid": self.kid, "typ": "at+jwt", **header}
            header = json.dumps({k: v for k, v in fields.items() if v is not DROP}).encode()
        if isinstance(payload, dict):
            payload = json.dumps(payload).encode()
        signing_input = f"{b64(header)}.{b64(payload)}"
        return f"{signing_input}.{b64(signature(signing_input.encode(), self.private, self.alg))}"


def _signer(alg: str, kid: str, private: Any, to_jwk: Callable[..., dict[str, Any]]) -> Signer:
    jwk = {**to_jwk(private.public_key(), as_dict=True), "kid": kid, "alg": alg, "use": "sig"}
    return Signer(alg, kid, private, jwk, key_from_jwk(jwk))


@pytest.fixture(scope="module")
def signers() -> dict[str, Signer]:
    return {
        "RS256": _signer("RS256", "rsa-1", rsa.generate_private_key(65537, 2048), RSAAlgorithm.to_jwk),
        "ES256": _signer("ES256", "ec-1", ec.generate_private_key(ec.SECP256R1()), ECAlgorithm.to_jwk),
        "EdDSA": _signer("EdDSA", "ed-1", ed25519.Ed25519PrivateKey.generate(), OKPAlgorithm.to_jwk),
        "Ed25519": _signer("Ed25519", "ed2-1", ed25519.Ed25519PrivateKey.generate(), OKPAlgorithm.to_jwk),
    }


@pytest.fixture(scope="module")
def keys(signers: dict[str, Signer]) -> dict[str, Key]:
    return {s.kid: s.key for s in signers.values()}


def claims(**changes: Any) -> dict[str, Any]:
    base = {
        "iss": ISSUER,
        "sub": "u-1",
        "aud": AUDIENCE,
        "exp": NOW + 300,
        "iat": NOW,
        "jti": "j-1",
        "client_id": "web",
        "scope": "reports:read",
        "sid": "s-1",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not DROP}


def check(token: str, keys: dict[str, Key], **overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = dict(typ="at+jwt", issuer=ISSUER, audience=AUDIENCE, now=NOW, leeway=LEEWAY)
    options.update(overrides)
    return decode(token, keys, **options)


@pytest.mark.parametrize("alg", ["RS256", "ES256", "Ed25519", "EdDSA"])
def test_valid_token_is_accepted_for_each_algorithm(alg, signers, keys):
    assert check(signers[alg].mint(claims()), keys) == claims()


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt", "Application/AT+JWT"])
def test_typ_compares_case_insensitively_with_optional_application_prefix(typ, signers, keys):
    assert check(signers["ES256"].mint(claims(), typ=typ), keys)["sub"] == "u-1"


def test_expiry_within_leeway_is_accepted(signers, keys):
    token = signers["RS256"].mint(claims(exp=NOW - LEEWAY + 1))
    assert check(token, keys)["jti"] == "j-1"


def test_audience_list_containing_ours_is_accepted(signers, keys):
    token = signers["RS256"].mint(claims(aud=["other", AUDIENCE]))
    assert check(token, keys)["aud"] == ["other", AUDIENCE]


def test_float_times_and_past_nbf_are_accepted(signers, keys):
    token = signers["EdDSA"].mint(claims(exp=NOW + 10.5, iat=NOW - 0.5, nbf=NOW - 1.25))
    assert check(token, keys)["nbf"] == NOW - 1.25


def test_required_names_extra_claims(signers, keys):
    token = signers["RS256"].mint(claims(sid=DROP))
    with pytest.raises(TokenError) as caught:
        check(token, keys, required=("sid",))
    assert caught.value.reason == "missing_claim"


def test_iss_aud_exp_iat_are_checked_even_when_not_listed_as_required(signers, keys):
    token = signers["RS256"].mint(claims(iat=DROP))
    with pytest.raises(TokenError) as caught:
        check(token, keys, required=())
    assert caught.value.reason == "missing_claim"


def test_decode_with_key_returns_the_verifying_key(signers, keys):
    _, key = decode_with_key(
        signers["ES256"].mint(claims()),
        keys,
        typ="at+jwt",
        issuer=ISSUER,
        audience=AUDIENCE,
        now=NOW,
        leeway=LEEWAY,
    )
    assert key is signers["ES256"].key


def test_header_kid_reads_the_kid_and_tolerates_garbage(signers):
    assert header_kid(signers["RS256"].mint(claims())) == "rsa-1"
    assert header_kid("not a token") is None


def _pad_segment(token: str) -> str:
    header, payload, signature = token.split(".")
    return f"{header}=.{payload}.{signature}"


def _non_canonical(token: str) -> str:
    header, payload, signature = token.split(".")
    # Flip an unused low bit of the last character: same bytes, second spelling.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    assert len(signature) % 4 in (2, 3)
    last = alphabet[alphabet.index(signature[-1]) + 1]
    return f"{header}.{payload}.{signature[:-1]}{last}"


def _flip_signature(token: str) -> str:
    header, payload, signature = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
    raw[10] ^= 1
    return f"{header}.{payload}.{b64(bytes(raw))}"


def _truncate_signature(token: str) -> str:
    header, payload, signature = token.split(".")
    return f"{header}.{payload}.{b64(base64.urlsafe_b64decode(signature + '==')[:-1])}"


def _hs256_with_public_key(s: dict[str, Signer]) -> str:
    pem = (
        s["RS256"]
        .private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    header = {"alg": "HS256", "kid": "rsa-1", "typ": "at+jwt"}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims()).encode())}"
    return f"{signing_input}.{b64(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())}"


def _es256_der_signature(s: dict[str, Signer]) -> str:
    signer = s["ES256"]
    header, payload, _ = signer.mint(claims()).split(".")
    from cryptography.hazmat.primitives import hashes

    der = signer.private.sign(f"{header}.{payload}".encode(), ec.ECDSA(hashes.SHA256()))
    return f"{header}.{payload}.{b64(der)}"


def _es256_signature_plus_one_byte(s: dict[str, Signer]) -> str:
    header, payload, signature = s["ES256"].mint(claims()).split(".")
    longer = base64.urlsafe_b64decode(signature + "==") + bytes(1)
    return f"{header}.{payload}.{b64(longer)}"


def _signed_by_stranger(s: dict[str, Signer]) -> str:
    stranger = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(claims(), stranger, algorithm="ES256", headers={"kid": "ec-1", "typ": "at+jwt"})


RS = "RS256"
HEADER_OK = b'{"alg":"RS256","kid":"rsa-1","typ":"at+jwt"}'

# One row per attack: (build the token from the signers, the reason it must be refused for).
HOSTILE: dict[str, tuple[Callable[[dict[str, Signer]], str], str]] = {
    "alg none, empty signature": (lambda s: s[RS].raw({"alg": "none"}, claims()).rsplit(".", 1)[0] + ".", "malformed"),
    "alg none with a signature": (lambda s: s[RS].raw({"alg": "none"}, claims()), "unsupported_alg"),
    "alg HS256 keyed with the RSA public key": (_hs256_with_public_key, "unsupported_alg"),
    "alg RS256 against an ES256 key": (lambda s: s[RS].raw({"kid": "ec-1"}, claims()), "alg_mismatch"),
    # The same Ed25519 signature under either name, valid, but not the name its key was published with.
    "alg EdDSA against an Ed25519 key": (lambda s: s["Ed25519"].raw({"alg": "EdDSA"}, claims()), "alg_mismatch"),
    "alg Ed25519 against an EdDSA key": (lambda s: s["EdDSA"].raw({"alg": "Ed25519"}, claims()), "alg_mismatch"),
    "alg Ed448 (RFC 9864, not ours)": (lambda s: s["Ed25519"].raw({"alg": "Ed448"}, claims()), "unsupported_alg"),
    "alg missing": (lambda s: s[RS].raw({"alg": DROP}, claims()), "unsupported_alg"),
    "embedded jwk": (lambda s: s[RS].mint(claims(), jwk=s[RS].jwk), "bad_header"),
    "jku header": (lambda s: s[RS].mint(claims(), jku="https://evil.example/jwks"), "bad_header"),
    "x5u header": (lambda s: s[RS].mint(claims(), x5u="https://evil.example/cert"), "bad_header"),
    "x5c header": (lambda s: s[RS].mint(claims(), x5c=["MIIB"]), "bad_header"),
    "crit header": (lambda s: s[RS].mint(claims(), crit=["exp"]), "bad_header"),
    "zip header": (lambda s: s[RS].mint(claims(), zip="DEF"), "bad_header"),
    "cty nested token": (lambda s: s[RS].mint(claims(), cty="JWT"), "bad_header"),
    "kid missing": (lambda s: s[RS].raw({"kid": DROP}, claims()), "bad_header"),
    "kid not a string": (lambda s: s[RS].raw({"kid": 7}, claims()), "bad_header"),
    "kid unknown": (lambda s: s[RS].mint(claims(), kid="rsa-9"), "unknown_kid"),
    "typ JWT": (lambda s: s[RS].mint(claims(), typ="JWT"), "wrong_typ"),
    "typ rt+jwt (refresh token)": (lambda s: s[RS].mint(claims(aud=ISSUER), typ="rt+jwt"), "wrong_typ"),
    "typ missing": (lambda s: s[RS].mint(claims(), typ=None), "wrong_typ"),
    "typ with another media type prefix": (lambda s: s[RS].mint(claims(), typ="text/at+jwt"), "wrong_typ"),
    "duplicate header member": (
        lambda s: s[RS].raw(b'{"alg":"RS256","kid":"rsa-1","typ":"at+jwt","kid":"rsa-1"}', claims()),
        "malformed",
    ),
    "duplicate claim": (
        lambda s: s[RS].raw(HEADER_OK, json.dumps(claims())[:-1].encode() + b', "sub": "admin"}'),
        "malformed",
    ),
    "payload is a JSON array": (lambda s: s[RS].raw(HEADER_OK, b"[1, 2]"), "malformed"),
    "header is a JSON string": (lambda s: s[RS].raw(b'"RS256"', claims()), "malformed"),
    "payload is not UTF-8": (lambda s: s[RS].raw(HEADER_OK, b'{"sub": "\xff\xfe"}'), "malformed"),
    "payload has a UTF-8 BOM": (
        lambda s: s[RS].raw(HEADER_OK, b"\xef\xbb\xbf" + json.dumps(claims()).encode()),
        "malformed",
    ),
    "padding characters": (lambda s: _pad_segment(s[RS].mint(claims())), "malformed"),
    "non-canonical base64url": (lambda s: _non_canonical(s[RS].mint(claims())), "malformed"),
    "characters + and / of standard base64": (lambda s: s[RS].mint(claims()) + "+/", "malformed"),
    "four segments": (lambda s: s[RS].mint(claims()) + ".AAAA", "malformed"),
    "two segments": (lambda s: s[RS].mint(claims()).rsplit(".", 1)[0], "malformed"),
    "trailing newline": (lambda s: s[RS].mint(claims()) + "\n", "malformed"),
    "non-ASCII character": (lambda s: s[RS].mint(claims()) + "é", "malformed"),
    "oversize": (lambda s: s[RS].mint(claims(pad="x" * MAX_TOKEN_LENGTH)), "malformed"),
    "exp is a boolean": (lambda s: s[RS].mint(claims(exp=True)), "bad_claim"),
    "exp is a string": (lambda s: s[RS].mint(claims(exp=str(NOW + 300))), "bad_claim"),
    "exp is NaN": (lambda s: s[RS].raw(HEADER_OK, claims(exp=float("nan"))), "malformed"),
    "exp is Infinity": (lambda s: s[RS].raw(HEADER_OK, claims(exp=float("inf"))), "malformed"),
    "exp is Infinity via 1e400": (
        lambda s: s[RS].raw(HEADER_OK, json.dumps(claims(exp="X")).replace('"X"', "1e400").encode()),
        "bad_claim",
    ),
    "exp is a huge integer": (lambda s: s[RS].mint(claims(exp=10**30)), "bad_claim"),
    "exp is an integer too big for a float": (lambda s: s[RS].mint(claims(exp=10**400)), "bad_claim"),
    "exp is negative": (lambda s: s[RS].mint(claims(exp=-1)), "bad_claim"),
    "iat is null": (lambda s: s[RS].mint(claims(iat=None)), "bad_claim"),
    "expired beyond leeway": (lambda s: s[RS].mint(claims(exp=NOW - LEEWAY)), "expired"),
    "nbf in the future": (lambda s: s[RS].mint(claims(nbf=NOW + LEEWAY + 1)), "not_yet_valid"),
    "iat in the future": (lambda s: s[RS].mint(claims(iat=NOW + LEEWAY + 1)), "iat_in_future"),
    "wrong iss": (lambda s: s[RS].mint(claims(iss="https://evil.example")), "wrong_issuer"),
    "iss with our issuer as prefix": (lambda s: s[RS].mint(claims(iss=ISSUER + ".evil.example")), "wrong_issuer"),
    "iss is a prefix of ours": (lambda s: s[RS].mint(claims(iss=ISSUER[:-1])), "wrong_issuer"),
    "iss with a trailing slash": (lambda s: s[RS].mint(claims(iss=ISSUER + "/")), "wrong_issuer"),
    "iss is a list": (lambda s: s[RS].raw({}, claims(iss=[ISSUER])), "bad_claim"),
    "wrong aud": (lambda s: s[RS].mint(claims(aud="other")), "wrong_audience"),
    "aud of the issuer (refresh token audience)": (lambda s: s[RS].mint(claims(aud=ISSUER)), "wrong_audience"),
    "aud list without ours": (lambda s: s[RS].mint(claims(aud=["a", "b"])), "wrong_audience"),
    "aud list with a non-string": (lambda s: s[RS].mint(claims(aud=[AUDIENCE, 1])), "bad_claim"),
    "aud is an object": (lambda s: s[RS].mint(claims(aud={"api": True})), "bad_claim"),
    "missing jti": (lambda s: s[RS].mint(claims(jti=DROP)), "missing_claim"),
    "missing sub": (lambda s: s[RS].mint(claims(sub=DROP)), "missing_claim"),
    "missing client_id": (lambda s: s[RS].mint(claims(client_id=DROP)), "missing_claim"),
    "missing exp": (lambda s: s[RS].mint(claims(exp=DROP)), "missing_claim"),
    "sub is a number": (lambda s: s[RS].mint(claims(sub=42)), "bad_claim"),
    "scope is a list": (lambda s: s[RS].mint(claims(scope=["reports:read"])), "bad_claim"),
    "bad signature": (lambda s: _flip_signature(s[RS].mint(claims())), "bad_signature"),
    "signed by another key with a known kid": (_signed_by_stranger, "bad_signature"),
    "ES256 signature in DER form": (_es256_der_signature, "bad_signature"),
    "ES256 signature of 65 bytes": (_es256_signature_plus_one_byte, "bad_signature"),
    "EdDSA signature of 63 bytes": (lambda s: _truncate_signature(s["EdDSA"].mint(claims())), "bad_signature"),
    "Ed25519 signature of 63 bytes": (lambda s: _truncate_signature(s["Ed25519"].mint(claims())), "bad_signature"),
}


@pytest.mark.parametrize(("build", "reason"), HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_token_is_refused_for_the_right_reason(build, reason, signers, keys):
    token = build(signers)
    with pytest.raises(TokenError) as caught:
        check(token, keys)
    assert caught.value.reason == reason
    # The description names the rule, never the token.
    for segment in token.split("."):
        if len(segment) > 8:
            assert segment not in caught.value.description


def test_token_too_long_is_refused_before_parsing(keys):
    with pytest.raises(TokenError) as caught:
        check("a" * (MAX_TOKEN_LENGTH + 1), keys)
    assert caught.value.description == "token is too long"


def _rsa_jwk(bits: int = 2048, **changes: Any) -> dict[str, Any]:
    public = rsa.generate_private_key(65537, bits).public_key()
    jwk = {**RSAAlgorithm.to_jwk(public, as_dict=True), "kid": "k", "alg": "RS256", "use": "sig"}
    jwk.update(changes)
    return {k: v for k, v in jwk.items() if v is not DROP}


def _ec_jwk(curve: ec.EllipticCurve, **changes: Any) -> dict[str, Any]:
    public = ec.generate_private_key(curve).public_key()
    return {**ECAlgorithm.to_jwk(public, as_dict=True), "kid": "k", "alg": "ES256", **changes}


BAD_JWKS: dict[str, Callable[[], dict[str, Any]]] = {
    "no kid": lambda: _rsa_jwk(kid=DROP),
    "empty kid": lambda: _rsa_jwk(kid=""),
    "no alg": lambda: _rsa_jwk(alg=DROP),
    "alg HS256": lambda: _rsa_jwk(alg="HS256"),
    "alg none": lambda: _rsa_jwk(alg="none"),
    "alg PS256 (not ours)": lambda: _rsa_jwk(alg="PS256"),
    "use enc": lambda: _rsa_jwk(use="enc"),
    "key_ops without verify": lambda: _rsa_jwk(key_ops=["encrypt"]),
    "private member d": lambda: _rsa_jwk(d="AQAB"),
    "RSA key declared ES256": lambda: _rsa_jwk(alg="ES256"),
    "RSA key of 1024 bits": lambda: _rsa_jwk(1024),
    "RSA key without n": lambda: _rsa_jwk(n=DROP),
    "ES256 on P-384": lambda: _ec_jwk(ec.SECP384R1()),
    "ES256 on secp256k1": lambda: _ec_jwk(ec.SECP256K1()),
    "ES256 point not on the curve": lambda: {**_ec_jwk(ec.SECP256R1()), "y": b64(b"\x01" * 32)},
    "EdDSA with Ed448": lambda: {
        **OKPAlgorithm.to_jwk(ed448.Ed448PrivateKey.generate().public_key(), as_dict=True),
        "kid": "k",
        "alg": "EdDSA",
    },
    "EdDSA key declared as kty EC": lambda: {
        **OKPAlgorithm.to_jwk(ed25519.Ed25519PrivateKey.generate().public_key(), as_dict=True),
        "kid": "k",
        "alg": "EdDSA",
        "kty": "EC",
    },
    "Ed25519 with an Ed448 key": lambda: {
        **OKPAlgorithm.to_jwk(ed448.Ed448PrivateKey.generate().public_key(), as_dict=True),
        "kid": "k",
        "alg": "Ed25519",
    },
    "Ed25519 key declared as kty EC": lambda: {
        **OKPAlgorithm.to_jwk(ed25519.Ed25519PrivateKey.generate().public_key(), as_dict=True),
        "kid": "k",
        "alg": "Ed25519",
        "kty": "EC",
    },
    "Ed25519 on an RSA key": lambda: _rsa_jwk(alg="Ed25519"),
    "alg Ed448 (RFC 9864, not ours)": lambda: {
        **OKPAlgorithm.to_jwk(ed448.Ed448PrivateKey.generate().public_key(), as_dict=True),
        "kid": "k",
        "alg": "Ed448",
    },
}


@pytest.mark.parametrize("build", BAD_JWKS.values(), ids=BAD_JWKS.keys())
def test_unusable_jwk_is_refused(build):
    with pytest.raises(ValueError):
        key_from_jwk(build())


def test_jwk_without_use_is_accepted_and_binds_its_alg():
    key = key_from_jwk(_rsa_jwk(use=DROP))
    assert (key.kid, key.alg) == ("k", "RS256")


def test_a_remembered_header_still_answers_to_the_expected_typ(signers, keys):
    token = signers["RS256"].mint(claims())
    assert check(token, keys)["sub"] == "u-1"  # the header passes as at+jwt and is remembered
    with pytest.raises(TokenError) as refused:
        check(token, keys, typ="rt+jwt")  # same header segment, other expectation
    assert refused.value.reason == "wrong_typ"


def test_a_refused_header_is_refused_every_time(signers, keys):
    token = signers["RS256"].raw({"jku": "https://evil.example/jwks"}, claims())
    for _ in range(3):
        with pytest.raises(TokenError) as refused:
            check(token, keys)
        assert refused.value.reason == "bad_header"


def test_the_header_memo_stays_bounded_under_a_flood_of_distinct_headers(signers, keys):
    from resource_service import jose

    for i in range(600):
        check(signers["RS256"].raw({"x-flood": i}, claims()), keys)
    assert len(jose._HEADER_MEMO) <= jose._HEADER_MEMO_SIZE
