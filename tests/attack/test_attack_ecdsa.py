"""Signature tricks against an ES256 issuer's replica: psychic signatures (CVE-2022-21449),
algorithm confusion with an EC key, embedded and invalid-curve keys, and malleated signatures.

The tokens are forged from scratch in the issuer's exact form (its header, its claims, its key
from the keystore); the control copy must be accepted before any defect means anything.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Iterator

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from jwt.algorithms import ECAlgorithm

from tests.attack.forge import (
    DROP,
    Forger,
    Target,
    assert_bearer_refusal,
    attacker_ec,
    attacker_ed25519,
    attacker_rsa,
    b64,
    sign,
    unb64,
)
from tests.attack.hostile import ALG_MISMATCH, BAD_SIGNATURE, UNSUPPORTED_ALG
from tests.conftest import Stack, eventually

pytestmark = pytest.mark.slow

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    tmp = tmp_path_factory.mktemp("attack-ecdsa")
    stack = Stack(tmp)
    try:
        stack.start_auth(AUTH_SIGNING_ALG="ES256")
        stack.default_client()  # the /revoke below names no client
        stack.start_replicas(1)
        (key_file,) = (tmp / "keys").glob("*.json")
        record = json.loads(key_file.read_text())
        private = serialization.load_pem_private_key(record["private_key"].encode(), None)
        assert stack.auth is not None
        now = int(time.time())
        claims = {
            "iss": stack.auth.url,
            "sub": secrets.token_urlsafe(16),
            "aud": "api",
            "client_id": "public",
            "scope": "reports:read",
            "sid": "",
            "iat": now,
            "exp": now + 900,
            "jti": "",
        }
        forger = Forger({"alg": "ES256", "kid": key_file.stem, "typ": "at+jwt"}, claims, private)
        control = forger.token()
        target = Target(stack, control, control)
        target.__dict__["forger"] = forger  # the cached property, set: there is no issued token to copy
        assert target.me(control).status_code == 200, "the replica must accept the forged control token"
        target.keys = target.replica_keys()
        yield target
    finally:
        stack.stop()


def _rs(token: str) -> tuple[int, int]:
    signature = unb64(token.split(".")[2])
    return int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")


def _with_signature(signature: Callable[[str], bytes]) -> Callable[[Forger], str]:
    def build(f: Forger) -> str:
        token = f.token()
        header, payload, _ = token.split(".")
        return f"{header}.{payload}.{b64(signature(token))}"

    return build


def _fixed(r: int, s: int) -> bytes:
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _hmac_with(public: Callable[[Forger], bytes]) -> Callable[[Forger], str]:
    def build(f: Forger) -> str:
        signing_input = f"{b64(f.header_bytes(alg='HS256'))}.{b64(f.payload_bytes())}"
        return f"{signing_input}.{b64(hmac.new(public(f), signing_input.encode(), hashlib.sha256).digest())}"

    return build


def _public(encoding: serialization.Encoding, fmt: serialization.PublicFormat) -> Callable[[Forger], bytes]:
    return lambda f: f.private.public_key().public_bytes(encoding, fmt)  # type: ignore[no-any-return]


def _off_curve_jwk() -> dict[str, object]:
    jwk = ECAlgorithm.to_jwk(attacker_ec().public_key(), as_dict=True)
    return {**jwk, "y": b64(b"\x01" * 32)}  # a point of another curve: the invalid-curve attack


SIGNATURE_TRICKS: dict[str, tuple[Callable[[Forger], str], str]] = {
    "psychic signature r = s = 0 (CVE-2022-21449)": (_with_signature(lambda t: _fixed(0, 0)), BAD_SIGNATURE),
    "r = s = n, the curve order": (_with_signature(lambda t: _fixed(P256_ORDER, P256_ORDER)), BAD_SIGNATURE),
    "r = 0 with the real s": (_with_signature(lambda t: _fixed(0, _rs(t)[1])), BAD_SIGNATURE),
    "the real r with s = 0": (_with_signature(lambda t: _fixed(_rs(t)[0], 0)), BAD_SIGNATURE),
    "r and s swapped": (_with_signature(lambda t: _fixed(_rs(t)[1], _rs(t)[0])), BAD_SIGNATURE),
    "zero signature in DER form": (_with_signature(lambda t: encode_dss_signature(0, 0)), BAD_SIGNATURE),
    "the real signature in DER form": (_with_signature(lambda t: encode_dss_signature(*_rs(t))), BAD_SIGNATURE),
    "the real signature and one more byte": (
        _with_signature(lambda t: unb64(t.split(".")[2]) + b"\x00"),
        BAD_SIGNATURE,
    ),
    "empty-looking signature of 64 zero bytes but one": (_with_signature(lambda t: bytes(63) + b"\x01"), BAD_SIGNATURE),
    "signed by the attacker's P-256 key under the issuer's kid": (
        lambda f: sign(f.header_bytes(), f.payload_bytes(), "ES256", attacker_ec()),
        BAD_SIGNATURE,
    ),
    "alg RS256 under the ES256 kid, signed by the attacker's RSA key": (
        lambda f: sign(f.header_bytes(alg="RS256"), f.payload_bytes(), "RS256", attacker_rsa()),
        ALG_MISMATCH,
    ),
    "alg EdDSA under the ES256 kid, signed by the attacker": (
        lambda f: sign(f.header_bytes(alg="EdDSA"), f.payload_bytes(), "EdDSA", attacker_ed25519()),
        ALG_MISMATCH,
    ),
    "alg ES384 signed by the issuer's own P-256 key": (
        lambda f: f.raw(f.header_bytes(alg="ES384"), f.payload_bytes(), alg="ES384"),
        UNSUPPORTED_ALG,
    ),
    "alg none over the issuer's real signature": (
        lambda f: f.raw(f.header_bytes(alg="none"), f.payload_bytes()),
        UNSUPPORTED_ALG,
    ),
    "alg HS256 keyed with the EC public key PEM": (
        _hmac_with(_public(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)),
        UNSUPPORTED_ALG,
    ),
    "alg HS256 keyed with the EC public key in OpenSSH format (CVE-2024-33663)": (
        _hmac_with(_public(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)),
        UNSUPPORTED_ALG,
    ),
    "alg HS256 keyed with the uncompressed EC point": (
        _hmac_with(_public(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)),
        UNSUPPORTED_ALG,
    ),
    "jwk header with the attacker's P-256 key (CVE-2018-0114)": (
        lambda f: sign(
            f.header_bytes(kid=DROP, jwk=ECAlgorithm.to_jwk(attacker_ec().public_key(), as_dict=True)),
            f.payload_bytes(),
            "ES256",
            attacker_ec(),
        ),
        "embedded keys are not accepted",
    ),
    "jwk header with a point off the curve (invalid-curve attack)": (
        lambda f: sign(f.header_bytes(jwk=_off_curve_jwk()), f.payload_bytes(), "ES256", attacker_ec()),
        "embedded keys are not accepted",
    ),
}


@pytest.mark.parametrize("case", list(SIGNATURE_TRICKS.values()), ids=list(SIGNATURE_TRICKS))
def test_a_signature_trick_is_refused_as_invalid_token(
    target: Target, case: tuple[Callable[[Forger], str], str]
) -> None:
    build, description = case
    token = build(target.forger)
    assert_bearer_refusal(
        target.me(token), status=401, error="invalid_token", realm="api", description=description, token=token
    )
    assert target.me(target.access).status_code == 200
    assert target.replica_keys() == target.keys


def test_the_malleated_twin_of_a_revoked_token_is_revoked_too(target: Target) -> None:
    """ECDSA signatures come in pairs, (r, s) and (r, n - s), both valid: a deny-list keyed on
    the token's text would miss the twin. Revocation goes by jti, so both fall together."""
    token = target.forger.token()
    header, payload, _ = token.split(".")
    r, s = _rs(token)
    twin = f"{header}.{payload}.{b64(_fixed(r, P256_ORDER - s))}"
    target.forger.private.public_key().verify(  # raises unless the twin is a valid signature
        encode_dss_signature(r, P256_ORDER - s), f"{header}.{payload}".encode(), ec.ECDSA(hashes.SHA256())
    )
    assert target.me(token).status_code == target.me(twin).status_code == 200
    assert target.http.post(f"{target.auth_url}/revoke", data={"token": twin}).status_code == 200

    def both_revoked() -> bool:
        return all(target.me(t).status_code == 401 for t in (token, twin))

    assert eventually(both_revoked, timeout=5)
    for t in (token, twin):
        assert_bearer_refusal(
            target.me(t), status=401, error="invalid_token", realm="api", description="token has been revoked", token=t
        )
