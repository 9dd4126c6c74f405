"""Public JWKs (RFC 7517) into verification keys, each bound to one algorithm (RFC 7518).

The algorithm registry lives here: which algorithms we accept, which key type
and curve each needs, and how long its signatures are. A key's algorithm is
fixed when the JWK is parsed; a token never gets to choose it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from jwt.exceptions import PyJWTError

__all__ = ["ALGORITHMS", "Key", "key_from_jwk"]

_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


@dataclass(frozen=True)
class _Algorithm:
    kty: str
    load: Callable[[dict[str, Any]], Any]  # public JWK -> public key, or ValueError
    verify: Callable[[Any, bytes, bytes], bool]  # (public key, signing input, signature)


def _load_rsa(jwk: dict[str, Any]) -> RSAPublicKey:
    key = RSAAlgorithm.from_jwk(jwk)
    if not isinstance(key, RSAPublicKey) or key.key_size < 2048:
        raise ValueError("RS256 needs an RSA public key of at least 2048 bits")
    return key


def _load_p256(jwk: dict[str, Any]) -> EllipticCurvePublicKey:
    key = ECAlgorithm.from_jwk(jwk) if jwk.get("crv") == "P-256" else None
    if not isinstance(key, EllipticCurvePublicKey) or not isinstance(key.curve, SECP256R1):
        raise ValueError("ES256 needs a P-256 public key")
    return key


def _load_ed25519(jwk: dict[str, Any]) -> Ed25519PublicKey:
    key = OKPAlgorithm.from_jwk(jwk) if jwk.get("crv") == "Ed25519" else None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("Ed25519 and EdDSA are accepted with Ed25519 public keys only")
    return key


_RS256 = RSAAlgorithm(RSAAlgorithm.SHA256)
_ES256 = ECAlgorithm(ECAlgorithm.SHA256, expected_curve=SECP256R1)
_EDDSA = OKPAlgorithm()


# Lengths are checked before the primitive runs, so odd encodings never reach it.
def _verify_rs256(key: RSAPublicKey, msg: bytes, sig: bytes) -> bool:
    # RFC 8017 section 8.2.2: exactly the length of the modulus.
    return len(sig) == (key.key_size + 7) // 8 and _RS256.verify(msg, key, sig)


def _verify_es256(key: EllipticCurvePublicKey, msg: bytes, sig: bytes) -> bool:
    # RFC 7518 section 3.4: r || s, 32 bytes each; a DER signature is refused.
    return len(sig) == 64 and _ES256.verify(msg, key, sig)


def _verify_ed25519(key: Ed25519PublicKey, msg: bytes, sig: bytes) -> bool:
    return len(sig) == 64 and _EDDSA.verify(msg, key, sig)  # RFC 8032 section 5.1.6


ALGORITHMS: Mapping[str, _Algorithm] = MappingProxyType(
    {
        "RS256": _Algorithm("RSA", _load_rsa, _verify_rs256),
        "ES256": _Algorithm("EC", _load_p256, _verify_es256),
        # RFC 9864's fully-specified name, and RFC 8037's polymorphic one it deprecates, which we
        # accept for Ed25519 keys alone. Two names, two entries: a key bound to one refuses the other.
        "Ed25519": _Algorithm("OKP", _load_ed25519, _verify_ed25519),
        "EdDSA": _Algorithm("OKP", _load_ed25519, _verify_ed25519),
    }
)


@dataclass(frozen=True, eq=False)
class Key:
    """A public verification key, bound to the one algorithm its JWK names.

    Equality is identity: a verifier can tell "the very key that verified this
    token is still published" with `is`.
    """

    kid: str
    alg: str
    public_key: Any = field(repr=False)

    def verify(self, signing_input: bytes, signature: bytes) -> bool:
        return ALGORITHMS[self.alg].verify(self.public_key, signing_input, signature)


def key_from_jwk(jwk: Mapping[str, Any]) -> Key:
    """Parse one public JWK (RFC 7517) into a `Key`; `ValueError` says why not."""
    kid, alg = jwk.get("kid"), jwk.get("alg")
    if not isinstance(kid, str) or not kid:
        raise ValueError("JWK has no kid")
    if not isinstance(alg, str):
        raise ValueError("JWK has no alg")
    algorithm = ALGORITHMS.get(alg)
    if algorithm is None:
        raise ValueError("JWK alg is not supported")
    if jwk.get("use", "sig") != "sig":
        raise ValueError("JWK use is not sig")
    key_ops = jwk.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        raise ValueError("JWK key_ops does not allow verify")
    if _PRIVATE_JWK_MEMBERS & jwk.keys():
        raise ValueError("JWK carries private key material")
    if jwk.get("kty") != algorithm.kty:
        raise ValueError("JWK kty does not match its alg")
    try:
        public_key = algorithm.load(dict(jwk))
    except (PyJWTError, ValueError, TypeError) as exc:
        raise ValueError(f"JWK is not a usable {alg} key") from exc
    return Key(kid=kid, alg=alg, public_key=public_key)
