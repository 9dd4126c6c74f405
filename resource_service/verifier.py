"""The decision at a replica: is this bearer token good right now?

Keys come from the issuer's JWKS, revocations from its feed, both held in
memory and refreshed in the background; a request costs no network round trip.
A token verified once is remembered (bounded), but expiry, the key that signed
it and the revocation list are checked again on every request, so a cache hit
is exactly as strict as a miss. The two last are checked by version: a hit compares
the key set and the revocation list it was last checked against with the current
ones (an identity and an integer), and looks again only when one has changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx

from ._backoff import Backoff
from .config import ResourceSettings
from .discovery import Metadata, discover
from .errors import InvalidToken, Unavailable
from .jose import Key, TokenError, decode_with_key, header_kid
from .jwks import JwksCache
from .metrics import ResourceMetrics
from .revocation_sync import PUSH_AUDIENCE, PUSH_TYP, RevocationSync

if TYPE_CHECKING:
    from redis.asyncio import Redis
from .revocations import RevocationList

__all__ = ["Verifier"]

logger = logging.getLogger(__name__)
security = logging.getLogger("resource_service.security")

ACCESS_TOKEN_TYP = "at+jwt"  # RFC 9068 section 2.1
_ACCESS_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "jti", "client_id")
_Rule = tuple[str, str, tuple[str, ...]]  # typ, audience, required claims
_PUSH_RULE: _Rule = (PUSH_TYP, PUSH_AUDIENCE, ("iss", "aud", "exp", "iat", "event", "data"))
_HTTP_TIMEOUT = httpx.Timeout(5.0)


class _Verified:
    """A token accepted before, with what it was last checked against."""

    __slots__ = ("claims", "expires", "key", "keys", "listed")

    def __init__(self, claims: dict[str, Any], key: Key, leeway: float, keys: Mapping[str, Key], listed: int) -> None:
        self.claims = claims
        self.key = key
        self.expires: float = claims["exp"] + leeway  # refused from this instant on
        self.keys = keys  # the key set (a JwksCache.keys mapping) it was found published in
        self.listed = listed  # the RevocationList.version it was found unrevoked at


class Verifier:
    """Verifies access tokens for one audience against one issuer.

    `start()` never fails because the issuer is down: it tries once, then keeps
    trying in the background; until keys are loaded `verify` raises `Unavailable`.
    """

    def __init__(
        self,
        settings: ResourceSettings,
        *,
        clock: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.revocations = RevocationList(snapshot_interval=settings.revocation_snapshot_interval)
        self.metadata: Metadata | None = None
        self._clock = clock
        self._sleep = sleep  # between retries; injected so tests need not wait
        self._client = httpx.AsyncClient(transport=transport, timeout=_HTTP_TIMEOUT, follow_redirects=False)
        self._redis: Redis | None = None
        if settings.redis_url:  # imported here: a replica without Redis never loads the client
            from redis.asyncio import Redis

            self._redis = Redis.from_url(settings.redis_url, socket_connect_timeout=2, health_check_interval=15)
        self._jwks: JwksCache | None = None
        self._sync: RevocationSync | None = None
        self._cache: OrderedDict[bytes, _Verified] = OrderedDict()  # by the token's bytes
        self._task: asyncio.Task[None] | None = None
        self._refusing: str | None = None  # why requests get 503 (fail closed), logged on change
        # Read by BearerAuthMiddleware and Authenticated, served by `metrics_endpoint`.
        self.metrics: ResourceMetrics | None = ResourceMetrics(self) if settings.metrics_enabled else None

    @property
    def jwks(self) -> JwksCache | None:
        return self._jwks

    @property
    def sync(self) -> RevocationSync | None:
        return self._sync

    async def start(self) -> None:
        """Load metadata, keys and revocations once if the issuer answers; then keep them fresh."""
        try:
            jwks, sync = await self._discover()
            await jwks.refresh()
            await sync.pull()
        except (httpx.HTTPError, ValueError) as exc:
            logger.warning("issuer not usable yet (%s); retrying in the background", exc)
        self._task = asyncio.create_task(self._run(), name="resource-service-verifier")

    async def stop(self) -> None:
        """End the background work and close connections; a stopped verifier stays stopped."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._client.aclose()
        if self._redis is not None:
            await self._redis.aclose()

    async def verify(self, token: str) -> dict[str, Any]:
        """The claims of a valid, unrevoked access token; raises `AuthError` otherwise."""
        # UTF-8 with surrogatepass is one-to-one, so a key never stands for another string.
        key = token.encode("utf-8", "surrogatepass")
        claims = self.cached(key)
        if claims is not None:
            return claims
        now = self._clock()
        jwks = self._ready(now)
        seen = self._cache.pop(key, None)  # what a hit could not vouch for is decided afresh
        if seen is not None and now >= seen.expires:
            raise InvalidToken("token has expired", reason="expired")  # no need to parse it again
        claims, signer = await self._decode(token, jwks, now)
        if self.revocations.is_revoked(claims):
            raise InvalidToken("token has been revoked", reason="revoked")
        self._remember(key, _Verified(claims, signer, self.settings.leeway, jwks.keys, self.revocations.version))
        return dict(claims)  # a copy: callers must not be able to edit the cache

    def cached(self, token: bytes) -> dict[str, Any] | None:
        """The claims of `token` (its bytes, as in the Authorization header) if this verifier
        accepted it before and it passes every check still: not expired, its key still
        published, not revoked, the replica not failing closed. None otherwise: then
        `verify` decides, and says why it refuses.

        Synchronous, for `BearerAuthMiddleware`'s path of a token seen before: no
        coroutine, no parsing; the key set and the revocation list are looked at again
        only when they changed since this token was last checked against them.
        """
        entry = self._cache.get(token)
        if entry is None or self._refusing is not None:
            return None
        now = self._clock()
        if now >= entry.expires:
            return None
        if self._too_stale(self.revocations.staleness(now)):
            return None
        jwks = self._jwks
        assert jwks is not None  # an entry exists only once keys were loaded
        keys = jwks.keys
        if entry.keys is not keys:
            if keys.get(entry.key.kid) is not entry.key:
                return None
            entry.keys = keys
        version = self.revocations.version
        if entry.listed != version:
            if self.revocations.is_revoked(entry.claims):
                return None
            entry.listed = version
        self._cache.move_to_end(token)
        return dict(entry.claims)  # a copy: callers must not be able to edit the cache

    def status(self) -> dict[str, Any]:
        """Freshness of what this replica knows, for health checks."""
        now = self._clock()
        return {
            "revocation_staleness": self.revocations.staleness(now),
            "jwks_age": self._jwks.age() if self._jwks else None,
            "keys": len(self._jwks.keys) if self._jwks else 0,
            "revocation_push": None
            if self._sync is None
            else {
                "source": self._sync.push_source,
                "connected": self._sync.push_connected,
                "pushed": self._sync.pushed,
                "pulled": self._sync.pulled,
                "refused": self._sync.refused_pushes,
            },
        }

    def readiness(self) -> dict[str, str]:
        """What a balancer needs to know: can this replica decide requests now?

        Not "is the issuer up": with keys and a current revocation copy a replica serves
        through an issuer outage, and taking every replica out with the issuer would turn
        it into a full outage. Unready means no keys, never synced, or past the
        fail-closed staleness bound (when requests would get 503 anyway)."""
        now = self._clock()
        checks = {"keys": "ok" if self._jwks is not None and self._jwks.keys else "not loaded"}
        staleness = self.revocations.staleness(now)
        bound = self.settings.max_revocation_staleness
        if staleness is None:
            checks["revocations"] = "never synced"
        elif bound is not None and staleness > bound:
            checks["revocations"] = f"stale ({staleness:.0f} s > {bound:.0f} s)"
        else:
            checks["revocations"] = "ok"
        return checks

    def _ready(self, now: float) -> JwksCache:
        jwks = self._jwks
        if jwks is None or not jwks.keys:
            self._fail_closed("keys_missing")
            raise Unavailable("signing keys are not loaded yet", retry_after=1.0)
        staleness = self.revocations.staleness(now)
        if self._too_stale(staleness):
            # Fail closed: serving on an old list could honour a revoked token.
            self._fail_closed("revocations_stale", staleness=staleness)
            raise Unavailable("revocation list is stale", retry_after=self.settings.revocation_poll_interval)
        if self._refusing is not None:
            security.info("fail_closed", extra={"state": "recovered", "reason": self._refusing})
            self._refusing = None
        return jwks

    def _too_stale(self, staleness: float | None) -> bool:
        """Past RESOURCE_MAX_REVOCATION_STALENESS, or never synced when there is a bound:
        requests get 503, on the cached path as on the full one."""
        bound = self.settings.max_revocation_staleness
        return bound is not None and (staleness is None or staleness > bound)

    def _fail_closed(self, reason: str, **fields: Any) -> None:
        """One security event when this replica starts refusing requests (503), not one per request."""
        if self._refusing != reason:
            self._refusing = reason
            security.warning("fail_closed", extra={"state": "refusing", "reason": reason, **fields})

    async def _decode(
        self, token: str, jwks: JwksCache, now: float, rule: _Rule | None = None
    ) -> tuple[dict[str, Any], Key]:
        try:
            return self._decode_with(token, jwks, now, rule)
        except TokenError as exc:
            if exc.reason != "unknown_kid":
                raise self._refusal(exc) from None
            kid = header_kid(token)
            if kid is None or await jwks.get_or_refetch(kid) is None:
                raise self._refusal(exc) from None
        try:
            return self._decode_with(token, jwks, self._clock(), rule)
        except TokenError as exc:
            raise self._refusal(exc) from None

    def _decode_with(self, token: str, jwks: JwksCache, now: float, rule: _Rule | None) -> tuple[dict[str, Any], Key]:
        typ, audience, required = rule or (ACCESS_TOKEN_TYP, self.settings.audience, _ACCESS_CLAIMS)
        return decode_with_key(
            token,
            jwks.keys,
            typ=typ,
            issuer=self.settings.expected_issuer,
            audience=audience,
            now=now,
            leeway=self.settings.leeway,
            required=required,
        )

    async def _open_push(self, message: str) -> tuple[str, Any]:
        """A Redis push's (event, data) if one of the issuer's keys signed it, else ValueError."""
        if self._jwks is None:
            raise ValueError("no_keys_yet")
        try:
            claims, _ = await self._decode(message, self._jwks, self._clock(), _PUSH_RULE)
        except InvalidToken as exc:
            raise ValueError(exc.reason) from None
        event, data = claims.get("event"), claims.get("data")
        if not isinstance(event, str):
            raise ValueError("bad_claim")
        return event, data

    @staticmethod
    def _refusal(exc: TokenError) -> InvalidToken:
        logger.debug("token refused: %s", exc.reason)  # never the token itself
        return InvalidToken(exc.description, reason=exc.reason)

    def _remember(self, token: bytes, entry: _Verified) -> None:
        size = self.settings.token_cache_size
        if size <= 0:
            return
        self._cache[token] = entry
        while len(self._cache) > size:
            self._cache.popitem(last=False)

    async def _discover(self) -> tuple[JwksCache, RevocationSync]:
        if self._jwks is not None and self._sync is not None:
            return self._jwks, self._sync
        settings = self.settings
        self.metadata = await discover(
            self._client, settings.auth_url, settings.expected_issuer, settings.allowed_metadata_hosts
        )
        self._jwks = JwksCache(
            self._client,
            self.metadata.jwks_uri,
            min_refetch_interval=settings.jwks_min_refetch_interval,
            clock=self._clock,
            on_fetch=self.metrics.jwks_fetched if self.metrics is not None else None,
        )
        self._sync = RevocationSync(
            self.revocations,
            self._client,
            list_uri=self.metadata.revocation_list_uri,
            stream_uri=self.metadata.revocation_stream_uri,
            poll_interval=settings.revocation_poll_interval,
            push=settings.revocation_push,
            redis_client=self._redis,
            redis_channel=f"{settings.redis_prefix}revocations",
            open_push=self._open_push,
            clock=self._clock,
            sleep=self._sleep,
        )
        return self._jwks, self._sync

    async def _run(self) -> None:
        backoff = Backoff(initial=0.5, cap=30.0)
        while True:
            try:
                jwks, sync = await self._discover()
                break
            except (httpx.HTTPError, ValueError) as exc:
                logger.warning("issuer metadata not available: %s", exc)
            await self._sleep(backoff.next())
        async with asyncio.TaskGroup() as group:
            group.create_task(jwks.run())
            group.create_task(sync.run())
