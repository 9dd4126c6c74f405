"""The replica's copy of the issuer's JWKS: parsed keys by kid, refreshed politely.

What goes wrong otherwise (PyJWT's PyJWKClient shows it): a failed fetch drops
every key, and a token with a junk kid costs a fetch at the issuer. Here a failed
or unusable fetch keeps the last good set, refreshes run one at a time, and an
unknown kid causes at most one fetch per `min_refetch_interval`, shared by every
request waiting on it. Requests never wait for the background refresh.

The scheduled refresh comes a random part of `REFRESH_SPREAD` of the max-age early, never
late: replicas started together (a fleet-wide deploy) would otherwise all fetch in the same
second of every max-age, and the issuer's publish lead counts on a refresh within max-age.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from ._backoff import Backoff
from ._bounded import fetch, parse_json
from .jose import Key, key_from_jwk

__all__ = ["JwksCache"]

logger = logging.getLogger(__name__)

MAX_JWKS_BYTES = 1024 * 1024  # a key set of a few keys is a few KB; room for many

_DEFAULT_MAX_AGE = 300.0  # when the issuer sends no Cache-Control max-age
_LONGEST_MAX_AGE = 86_400.0
_SHORTEST_MAX_AGE = 1.0  # no issuer gets a scheduled fetch more than once a second per replica
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)
REFRESH_SPREAD = 0.2  # scheduled refreshes come up to this share of the max-age early
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-cache|no-store)\s*(?:,|$)", re.IGNORECASE)


class JwksCache:
    """Keys fetched from `uri`, by kid."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        uri: str,
        *,
        min_refetch_interval: float,
        clock: Callable[[], float] = time.time,
        on_fetch: Callable[[str], None] | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._client = client
        self._rand = rand  # in [0, 1): where in the spread this replica's next refresh falls
        self._on_fetch = on_fetch  # told each fetch's outcome: ok, not_modified or error
        self._uri = uri
        self._min_refetch_interval = min_refetch_interval
        self._clock = clock
        self._keys: dict[str, Key] = {}
        self._jwks: dict[str, dict[str, Any]] = {}  # the JWK each Key came from
        self._etag: str | None = None
        self._max_age = _DEFAULT_MAX_AGE
        self._confirmed_at: float | None = None  # last 200 with keys, or 304
        self._attempted_at: float | None = None
        self._inflight: asyncio.Task[bool] | None = None

    @property
    def keys(self) -> Mapping[str, Key]:
        """The current key set; replaced whole on refresh, never mutated in place."""
        return self._keys

    @property
    def max_age(self) -> float:
        return self._max_age

    def age(self) -> float | None:
        """Seconds since the issuer last confirmed this copy; None before the first fetch."""
        if self._confirmed_at is None:
            return None
        return max(0.0, self._clock() - self._confirmed_at)

    def due_in(self) -> float:
        """Seconds until the copy is older than the issuer's max-age."""
        age = self.age()
        return 0.0 if age is None else max(0.0, self._max_age - age)

    def next_refresh_in(self) -> float:
        """Seconds until the scheduled refresh: when the copy turns max-age old, less a random
        part of `REFRESH_SPREAD` of the max-age, so a fleet's refreshes spread out."""
        due = self.due_in()
        return 0.0 if due == 0.0 else max(0.0, due - REFRESH_SPREAD * self._max_age * self._rand())

    async def refresh(self) -> bool:
        """Fetch now, or join the fetch already running. True if the copy is confirmed."""
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.ensure_future(self._fetch())
        # shield: a cancelled request must not cancel the fetch others are waiting on.
        return await asyncio.shield(self._inflight)

    async def get_or_refetch(self, kid: str) -> Key | None:
        """The key for `kid`, refetching the set first if that is allowed now.

        Called when a token names a kid we do not hold: normally a key we have not
        seen yet (the issuer publishes before signing, so this is rare), or junk.
        """
        key = self._keys.get(kid)
        if key is not None:
            return key
        running = self._inflight is not None and not self._inflight.done()
        attempted = self._attempted_at
        if not running and attempted is not None and self._clock() - attempted < self._min_refetch_interval:
            return None
        await self.refresh()
        return self._keys.get(kid)

    async def run(self) -> None:
        """Refresh whenever the copy outlives max-age; back off while the issuer fails."""
        backoff = Backoff(initial=1.0, cap=max(30.0, self._min_refetch_interval))
        while True:
            await asyncio.sleep(self.next_refresh_in())
            try:
                confirmed = await self.refresh()
            except Exception:
                logger.exception("JWKS refresh failed unexpectedly")
                confirmed = False
            if confirmed:
                backoff.reset()
            else:
                await asyncio.sleep(backoff.next())

    async def _fetch(self) -> bool:
        try:
            outcome = await self._fetch_once()
        except Exception:  # unexpected: counted as the failed fetch it is, then raised
            if self._on_fetch is not None:
                self._on_fetch("error")
            raise
        if self._on_fetch is not None:
            self._on_fetch(outcome)
        return outcome != "error"

    async def _fetch_once(self) -> str:
        """One fetch; returns "ok", "not_modified" or "error"."""
        self._attempted_at = self._clock()
        headers = {"If-None-Match": self._etag} if self._etag and self._keys else {}
        try:
            response, content = await fetch(self._client, self._uri, headers=headers, max_bytes=MAX_JWKS_BYTES)
            if response.status_code == 304 and self._keys:
                self._confirm(response)
                return "not_modified"
            if response.status_code != 200:
                logger.warning("JWKS fetch answered %s; keeping the last key set", response.status_code)
                return "error"
            keys = self._parse(parse_json(content, "JWKS"))
        except (httpx.HTTPError, ValueError) as exc:
            logger.warning("JWKS fetch failed (%s); keeping the last key set", exc)
            return "error"
        self._keys, self._jwks = keys
        self._etag = response.headers.get("etag")
        self._confirm(response)
        return "ok"

    def _confirm(self, response: httpx.Response) -> None:
        self._confirmed_at = self._clock()
        # The scheduled refresh follows the issuer's max-age: the issuer publishes a new key
        # a lead ahead of signing, sized on that max-age. `min_refetch_interval` limits
        # refetches a token's unknown kid can cause; flooring the schedule with it made a
        # short max-age late for the lead (a fresh key unknown for seconds after it signed).
        self._max_age = _max_age(response.headers.get("cache-control", ""), floor=_SHORTEST_MAX_AGE)

    def _parse(self, document: Any) -> tuple[dict[str, Key], dict[str, dict[str, Any]]]:
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ValueError("JWKS is not an object with a keys list")
        keys: dict[str, Key] = {}
        jwks: dict[str, dict[str, Any]] = {}
        for jwk in document["keys"]:
            kid = jwk.get("kid") if isinstance(jwk, dict) else None
            if not isinstance(kid, str) or kid in keys:
                logger.warning("JWKS entry skipped: no kid, or a kid seen twice")
                continue
            if self._jwks.get(kid) == jwk:
                keys[kid] = self._keys[kid]  # unchanged: keep its identity (see Key)
            else:
                try:
                    keys[kid] = key_from_jwk(jwk)
                except ValueError as exc:
                    logger.warning("JWKS key %s skipped: %s", kid, exc)
                    continue
            jwks[kid] = jwk
        if not keys:
            # An issuer always publishes its signing key; an empty set is a fault,
            # and adopting it would refuse every token.
            raise ValueError("JWKS holds no usable key")
        return keys, jwks


def _max_age(cache_control: str, *, floor: float) -> float:
    if _NO_CACHE.search(cache_control):
        return floor
    match = _MAX_AGE.search(cache_control)
    seconds = float(match.group(1)) if match else _DEFAULT_MAX_AGE
    return min(max(seconds, floor), _LONGEST_MAX_AGE)
