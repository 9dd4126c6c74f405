"""Signing keys: generate, publish, activate, retire, forget; and the JWKS they make.

A key's state is never stored: it follows from the keys' activation times (pure functions
below, tested without I/O). The key with the newest `activates_at` not in the future signs;
a newer one is pending; an older one is retiring until every token it signed has expired
(its successor's activation plus the longest token lifetime), then it is gone.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import hashlib
import json
import logging
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from .conditional import strong_etag
from .storage.keystore import KeyRecord, KeyStore, KeystoreError

# Key lifecycle events (key_created, key_activated, key_retired, key_removed, and
# key_rewrapped: an older-format key re-encrypted at a rotation) are security events: ids and
# times only, never key material.
security = logging.getLogger("auth_service.security")


class KeyState(enum.Enum):
    PENDING = "pending"
    ACTIVE = "active"
    RETIRING = "retiring"
    GONE = "gone"


@dataclass(frozen=True, slots=True)
class _Alg:
    generate: Callable[[], PrivateKeyTypes]
    to_jwk: Callable[[Any], dict[str, Any]]
    thumbprint_members: tuple[str, ...]  # RFC 7638 section 3.2
    signature: Callable[[bytes, Any], bytes]  # (JWS signing input, private key) -> signature


# RFC 8032 Ed25519 keys and signatures, under either of its JOSE names: `Ed25519` (RFC 9864,
# fully specified) or `EdDSA` (RFC 8037, polymorphic, deprecated by RFC 9864 and kept for the
# verifiers that know no other). A key keeps the name it was made under. PyJWT 2 knows only
# `EdDSA`; its primitive signs both (see `sign`).
_ED25519 = _Alg(
    ed25519.Ed25519PrivateKey.generate,
    lambda pub: OKPAlgorithm.to_jwk(pub, as_dict=True),
    ("crv", "kty", "x"),
    OKPAlgorithm().sign,
)

ALGORITHMS: dict[str, _Alg] = {
    "RS256": _Alg(
        lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
        lambda pub: RSAAlgorithm.to_jwk(pub, as_dict=True),
        ("e", "kty", "n"),
        RSAAlgorithm(RSAAlgorithm.SHA256).sign,
    ),
    "ES256": _Alg(
        lambda: ec.generate_private_key(ec.SECP256R1()),
        lambda pub: ECAlgorithm.to_jwk(pub, as_dict=True),
        ("crv", "kty", "x", "y"),
        ECAlgorithm(ECAlgorithm.SHA256).sign,  # r || s (RFC 7518 section 3.4)
    ),
    "Ed25519": _ED25519,
    "EdDSA": _ED25519,
}


def states(records: Iterable[KeyRecord], now: int, max_token_lifetime: int) -> dict[str, KeyState]:
    """The state of every key at `now`."""
    ordered = sorted(records, key=lambda r: (r.activates_at, r.created_at))
    out: dict[str, KeyState] = {}
    started = [r for r in ordered if r.activates_at <= now]
    for r in ordered:
        if r.activates_at > now:
            out[r.kid] = KeyState.PENDING
    for i, r in enumerate(started):
        if i == len(started) - 1:
            out[r.kid] = KeyState.ACTIVE
            continue
        superseded_at = started[i + 1].activates_at
        out[r.kid] = KeyState.GONE if superseded_at + max_token_lifetime <= now else KeyState.RETIRING
    return out


def next_activation(records: Iterable[KeyRecord], now: int, *, interval: int, lead: int, alg: str) -> int | None:
    """When a new key should start signing, if one should be created now; else None.

    None while a key is pending (one rotation at a time). With no key at all the first one
    signs at once: no verifier can have cached a key set yet.
    """
    current = states(records, now, max_token_lifetime=0)
    by_kid = {r.kid: r for r in records}
    if KeyState.PENDING in current.values():
        return None
    active = [by_kid[k] for k, s in current.items() if s is KeyState.ACTIVE]
    if not active:
        return now
    if active[0].alg != alg or now >= active[0].activates_at + interval - lead:
        return now + lead
    return None


def public_jwk(kid: str, alg: str, key: PrivateKeyTypes) -> dict[str, Any]:
    jwk = ALGORITHMS[alg].to_jwk(key.public_key())
    jwk.pop("key_ops", None)  # RFC 7517 4.3: `use` and `key_ops` should not appear together
    return {**jwk, "kid": kid, "alg": alg, "use": "sig"}


def sign(claims: dict[str, Any], *, kid: str, alg: str, key: PrivateKeyTypes, typ: str) -> str:
    """`claims` as a compact JWS (RFC 7515 section 7.1) with header `{"alg", "kid", "typ"}`.

    The JSON is written as `jwt.encode` writes it; the signature is PyJWT's primitive for the
    algorithm, looked up in our table rather than by the header's name, which PyJWT's own
    registry would not know for `Ed25519`.
    """
    header = json.dumps({"alg": alg, "kid": kid, "typ": typ}, separators=(",", ":"), sort_keys=True)
    signing_input = _b64(header.encode()) + b"." + _b64(json.dumps(claims, separators=(",", ":")).encode())
    return (signing_input + b"." + _b64(ALGORITHMS[alg].signature(signing_input, key))).decode("ascii")


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def thumbprint(alg: str, key: PrivateKeyTypes) -> str:
    """RFC 7638 JWK thumbprint (SHA-256), our kid."""
    jwk = ALGORITHMS[alg].to_jwk(key.public_key())
    members = {name: jwk[name] for name in ALGORITHMS[alg].thumbprint_members}
    digest = hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class KeyManager:
    """The keys of one instance: kept in step with the keystore, which other processes
    (another instance, `auth-service keys rotate`) may change at any time."""

    def __init__(self, store: KeyStore, *, alg: str, interval: int, lead: int, max_token_lifetime: int) -> None:
        self._store = store
        self._alg = alg
        self._interval = interval
        self._lead = lead
        self._max_token_lifetime = max_token_lifetime
        self._keys: dict[str, tuple[KeyRecord, PrivateKeyTypes]] = {}
        self._fingerprint: Hashable | None = None
        self._jwks: tuple[bytes, str] = (b'{"keys":[]}', '""')
        self._seen: dict[str, KeyState] | None = None  # states at the last log_transitions

    # -- reading ---------------------------------------------------------------------

    async def reload_if_changed(self) -> bool:
        """Re-read the keystore when it changed. Cheap enough to call every second."""
        fingerprint = await self._store.fingerprint()
        if fingerprint == self._fingerprint:
            return False
        keys = await self._store.load()
        self._keys, self._fingerprint = keys, fingerprint
        self._jwks = _render_jwks(keys)
        return True

    def records(self) -> list[KeyRecord]:
        return [record for record, _ in self._keys.values()]

    def signing_key(self, now: int) -> tuple[str, str, PrivateKeyTypes]:
        """(kid, alg, private key) of the key that signs at `now`."""
        started = [r for r, _ in self._keys.values() if r.activates_at <= now]
        if not started:
            raise KeystoreError("no active signing key")
        record = max(started, key=lambda r: (r.activates_at, r.created_at))
        return record.kid, record.alg, self._keys[record.kid][1]

    def jwks(self) -> tuple[bytes, str]:
        """(JSON body, strong ETag) of every published key."""
        return self._jwks

    def public_jwks(self) -> list[dict[str, Any]]:
        return [public_jwk(r.kid, r.alg, key) for r, key in self._keys.values()]

    def states(self, now: int) -> dict[str, KeyState]:
        return states(self.records(), now, self._max_token_lifetime)

    def signing_algs(self, now: int) -> list[str]:
        """The algorithms of the key that signs at `now` and of a pending one: both while
        AUTH_SIGNING_ALG changes (discovery publishes them; a retiring key signs no more).
        Before the first key exists, the configured one."""
        current = self.states(now)
        ordered = sorted(self.records(), key=lambda r: (r.activates_at, r.created_at))
        signing = [r.alg for r in ordered if current[r.kid] in (KeyState.ACTIVE, KeyState.PENDING)]
        return list(dict.fromkeys(signing)) or [self._alg]

    def log_transitions(self, now: int) -> None:
        """Log each key that began or stopped signing since the last call (the key keeper
        calls this every second). A key's state follows from the clock, so no write to
        the keystore marks these moments; the first call only takes the baseline."""
        current = self.states(now)
        previous, self._seen = self._seen, current
        if previous is None:
            return
        for kid, state in current.items():
            before = previous.get(kid)
            if state is KeyState.ACTIVE and before is not KeyState.ACTIVE:
                security.info("key_activated", extra={"kid": kid, "alg": self._keys[kid][0].alg})
            elif state is not KeyState.ACTIVE and before is KeyState.ACTIVE:
                security.info("key_retired", extra={"kid": kid})

    # -- changing (under the keystore's lock, shared by every instance and the CLI) -----

    async def maintain(self, now: int) -> list[tuple[str, dict[str, Any]]]:
        """Forget gone keys and create the next key when the schedule says so; returns the
        events logged."""
        events: list[tuple[str, dict[str, Any]]] = []
        async with self._store.locked():
            await self._reload()
            for kid, state in self.states(now).items():
                if state is KeyState.GONE:
                    await self._store.delete(kid)
                    events.append(("key_removed", {"kid": kid}))
            activates_at = next_activation(self.records(), now, interval=self._interval, lead=self._lead, alg=self._alg)
            if activates_at is not None:
                kid = await self._create(now, activates_at)
                events.append(
                    ("key_created", {"kid": kid, "alg": self._alg, "activates_at": activates_at, "trigger": "schedule"})
                )
                events.extend(("key_rewrapped", {"kid": old}) for old in await self._store.rewrap())
            await self._reload()
        for event, fields in events:
            security.info(event, extra=fields)
        return events

    async def rotate(self, now: int) -> KeyRecord:
        """On-demand rotation: a new key, published now, signing after the publish lead.
        Idempotent while a rotation is pending: returns the pending key. Every rotation also
        re-encrypts keys stored in an older format."""
        async with self._store.locked():
            await self._reload()
            pending = [r for r in self.records() if r.activates_at > now]
            if pending:
                return pending[0]
            activates_at = now + self._lead if self._keys else now
            kid = await self._create(now, activates_at)
            rewrapped = await self._store.rewrap()
            await self._reload()
        security.info(
            "key_created", extra={"kid": kid, "alg": self._alg, "activates_at": activates_at, "trigger": "on_demand"}
        )
        for old in rewrapped:
            security.info("key_rewrapped", extra={"kid": old})
        return self._keys[kid][0]

    async def _reload(self) -> None:
        self._fingerprint = None
        await self.reload_if_changed()

    async def _create(self, now: int, activates_at: int) -> str:
        key = await asyncio.to_thread(ALGORITHMS[self._alg].generate)  # RSA generation takes a while
        kid = thumbprint(self._alg, key)
        await self._store.write(KeyRecord(kid=kid, alg=self._alg, created_at=now, activates_at=activates_at), key)
        return kid


def _render_jwks(keys: dict[str, tuple[KeyRecord, PrivateKeyTypes]]) -> tuple[bytes, str]:
    ordered = sorted(keys.values(), key=lambda item: item[0].activates_at)
    body = json.dumps({"keys": [public_jwk(r.kid, r.alg, key) for r, key in ordered]}, separators=(",", ":")).encode()
    return body, strong_etag(body)
