"""Keeps a `RevocationList` in step with the issuer: SSE push, pull to catch up, poll.

Push makes revocation fast; pull makes it correct. The stream carries no
backlog, so every (re)connect and every gap is answered by a pull, and a pull
also runs every `poll_interval` in which the copy was not confirmed in sync, in
case the stream is down or silently stuck. A dropped stream (the issuer
restarted) is reconnected with capped backoff, forever.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import httpx

from ._backoff import Backoff
from ._bounded import fetch, parse_json, sse_events
from .revocations import RevocationList

if TYPE_CHECKING:  # redis is imported only by a replica that has RESOURCE_REDIS_URL set
    from redis.asyncio import Redis

__all__ = ["PUSH_AUDIENCE", "PUSH_LIFETIME", "PUSH_TYP", "RevocationSync"]

logger = logging.getLogger(__name__)
security = logging.getLogger("resource_service.security")

# A Redis push is a JWS signed by one of the issuer's keys (docs/wire.md): anyone who can
# reach Redis can PUBLISH, so an unsigned or badly signed message is dropped.
PUSH_TYP = "revocation-push+jwt"
PUSH_AUDIENCE = "urn:stateless-auth:revocation-push"
PUSH_LIFETIME = 60  # seconds a signed push is accepted for

# Opens a signed push: its (event, data), or raises ValueError naming why it was refused.
OpenPush = Callable[[str], Awaitable[tuple[str, Any]]]

# Entries per pulled page. Each page is parsed into short-lived dicts before it lands in
# the compact list; 2,000 (not the issuer's maximum of 10,000) keeps that transient at a
# few MB, so a million-entry snapshot peaks near what the list itself holds.
PULL_PAGE = 2000

# The issuer heartbeats on the stream (every 60 s at most); if nothing at all arrives
# for this long the connection is presumed dead and reopened.
_STREAM_READ_TIMEOUT = 90.0
_MAX_PUSH_BYTES = 16_384  # a signed entry or heartbeat is well under 2 KB
_MAX_EVENT_BYTES = 16_384  # one SSE line or event: an entry or a heartbeat is a few hundred bytes
_MAX_PAGE_BYTES = 16 * 1024 * 1024  # one pull page: 2,000 entries are about 400 KB, the issuer's cap 10,000


_SECONDS = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,6})?")  # Unix seconds, as the issuer writes them


def _read_at(value: str | None) -> float | None:
    """A pull answer's `Feed-Read-At` (docs/wire.md): when the issuer read its feed for it.

    None for anything but plain non-negative decimal seconds: no sign, exponent, NaN,
    infinity or padding. The copy then counts as read on arrival, as before issuers sent it."""
    if value is None or _SECONDS.fullmatch(value) is None:
        return None
    return float(value)


class RevocationSync:
    """Moves feed data between the issuer and one `RevocationList`."""

    def __init__(
        self,
        revocations: RevocationList,
        client: httpx.AsyncClient,
        *,
        list_uri: str,
        stream_uri: str,
        poll_interval: float,
        push: bool = True,
        redis_client: Redis | None = None,
        redis_channel: str = "auth:revocations",
        open_push: OpenPush | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._revocations = revocations
        self._client = client
        self._list_uri = list_uri
        self._stream_uri = stream_uri
        self._poll_interval = poll_interval
        self._push = push
        self._redis = redis_client
        self._redis_channel = redis_channel
        self._push_errors: tuple[type[BaseException], ...] = (httpx.HTTPError, ValueError, OSError)
        if redis_client is not None:
            from redis.exceptions import RedisError

            self._push_errors += (RedisError,)
        self._open_push = open_push
        if redis_client is not None and open_push is None:
            raise ValueError("a Redis push needs open_push to check its signatures")
        self.refused_pushes = 0  # messages on the channel that were not signed by the issuer
        self.push_connected = False
        self.pushed = 0  # entries that arrived by push (SSE or Redis)
        self.pulled = 0  # entries that arrived by pull
        self._clock = clock
        self._sleep = sleep  # between reconnects; injected so tests need not wait
        self._pull_wanted = asyncio.Event()
        self._attempted_at: float | None = None  # when the poller last pulled, successfully or not

    @property
    def pull_wanted(self) -> bool:
        return self._pull_wanted.is_set()

    def request_pull(self) -> None:
        """Ask the poller to pull now; requests made before it runs fold into one."""
        self._pull_wanted.set()

    async def pull(self) -> bool:
        """`GET revocation_list_uri`, page after page; True if the copy is in sync afterwards.

        Between pages the event loop serves requests: a million-entry snapshot arrives
        in bounded pieces instead of one long stall."""
        try:
            while True:
                feed_before, cursor_before = self._revocations.feed, self._revocations.cursor
                params = {**self._revocations.pull_params(self._clock()), "limit": str(PULL_PAGE)}
                response, content = await fetch(self._client, self._list_uri, params=params, max_bytes=_MAX_PAGE_BYTES)
                response.raise_for_status()
                body = parse_json(content, "revocation pull")
                read_at = _read_at(response.headers.get("feed-read-at"))
                more = self._revocations.apply_pull(body, self._clock(), read_at=read_at)
                self.pulled += len(body["entries"])
                if not more:
                    return True
                if self._revocations.feed == feed_before and self._revocations.cursor <= cursor_before:
                    logger.warning("revocation pull says more but its cursor did not advance")
                    return False
                await asyncio.sleep(0)
        except (httpx.HTTPError, ValueError) as exc:
            logger.warning("revocation pull failed: %s", exc)
            return False

    @property
    def push_source(self) -> str | None:
        if not self._push:
            return None
        return "redis" if self._redis is not None else "sse"

    def handle_event(self, event: str, data: str) -> None:
        """Apply one server-sent event, asking for a pull when it shows a gap."""
        if event not in ("heartbeat", "revocation"):
            return
        try:
            payload = parse_json(data, "revocation event")
        except ValueError:
            logger.warning("revocation stream sent a %s that is not JSON", event)
            self.request_pull()
            return
        self._apply_event(event, payload)

    def _apply_event(self, event: str, payload: object) -> None:
        now = self._clock()
        if event == "heartbeat":
            needs_pull = self._revocations.apply_heartbeat(payload, now)
        else:
            self.pushed += 1
            needs_pull = self._revocations.apply_push(payload, now)
        if needs_pull:
            self.request_pull()

    async def listen(self) -> int:
        """Hold one push connection until it ends; the events handled."""
        if self._redis is not None:
            return await self._listen_redis(self._redis)
        timeout = httpx.Timeout(10.0, read=_STREAM_READ_TIMEOUT)
        # Uncompressed: httpx inflates each chunk of a compressed stream whole, unbounded
        # (resource_service/_bounded.py), and an event stream gains nothing from gzip.
        headers = {"Accept": "text/event-stream", "Accept-Encoding": "identity", "Cache-Control": "no-store"}
        async with self._client.stream("GET", self._stream_uri, timeout=timeout, headers=headers) as response:
            response.raise_for_status()
            if response.headers.get("content-type", "").partition(";")[0].strip() != "text/event-stream":
                raise ValueError("the revocation stream is not text/event-stream")
            if response.headers.get("content-encoding", "identity").strip().lower() != "identity":
                raise ValueError("the revocation stream is compressed, though we asked for identity")
            self.push_connected = True
            self.request_pull()  # no backlog on the stream: catch up by pull
            handled = 0
            try:
                async for event, data in sse_events(
                    response.aiter_bytes(), max_line=_MAX_EVENT_BYTES, max_event=_MAX_EVENT_BYTES
                ):
                    self.handle_event(event, data)
                    handled += 1
            finally:
                self.push_connected = False
        return handled

    async def _listen_redis(self, client: Redis) -> int:
        """Subscribe to the issuers' Redis channel; each message is a signed push."""
        assert self._open_push is not None
        handled = 0
        async with client.pubsub() as pubsub:
            await pubsub.subscribe(self._redis_channel)
            self.push_connected = True
            self.request_pull()  # pub/sub has no backlog either
            try:
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    data = message["data"]
                    try:
                        if len(data) > _MAX_PUSH_BYTES:
                            raise ValueError("too_large")
                        event, payload = await self._open_push(
                            data.decode("ascii") if isinstance(data, bytes) else str(data)
                        )
                    except (ValueError, UnicodeDecodeError) as exc:
                        self.refused_pushes += 1
                        reason = str(exc) if isinstance(exc, ValueError) else "not_ascii"
                        security.warning("revocation_push_refused", extra={"reason": reason, "source": "redis"})
                        continue
                    if event in ("heartbeat", "revocation"):
                        self._apply_event(event, payload)
                    handled += 1
            finally:
                self.push_connected = False
        return handled

    async def run(self) -> None:
        """Listen (unless push is off) and poll until cancelled."""
        async with asyncio.TaskGroup() as group:
            if self._push:
                group.create_task(self.listen_forever())
            group.create_task(self.poll_forever())

    async def listen_forever(self) -> None:
        backoff = Backoff(initial=0.5, cap=30.0)
        while True:
            try:
                if await self.listen():
                    backoff.reset()  # it worked for a while: reconnect promptly
                logger.info("revocation stream ended; reconnecting")
            except self._push_errors as exc:
                logger.warning("revocation push (%s) failed: %s", self.push_source, type(exc).__name__)
            except Exception:
                logger.exception("revocation stream handler failed")
            await self._sleep(backoff.next())

    async def poll_forever(self) -> None:
        if self._revocations.staleness(self._clock()) is None:
            self.request_pull()
        while True:
            # Sleep until the copy turns one poll interval old: a pull (or a heartbeat)
            # resets that clock, so without push a pull runs every interval, not every two.
            # A pull that failed counts as a poll too: an issuer that is down (or cannot read its
            # feed) gets one pull per interval from each replica, never a tight loop of them.
            now = self._clock()
            quiet = self._revocations.staleness(now)
            if self._attempted_at is not None:
                quiet = min(now - self._attempted_at, quiet if quiet is not None else math.inf)
            due = self._poll_interval if quiet is None else max(0.0, self._poll_interval - quiet)
            try:  # asyncio.timeout: wait_for can drop a cancellation on 3.11 (CPython gh-86296)
                async with asyncio.timeout(due):
                    await self._pull_wanted.wait()
            except TimeoutError:
                staleness = self._revocations.staleness(self._clock())
                if staleness is not None and staleness < self._poll_interval:
                    self._revocations.prune(self._clock())
                    continue  # a heartbeat confirmed us in sync meanwhile: no pull needed
            self._pull_wanted.clear()
            self._attempted_at = self._clock()
            try:
                await self.pull()
            except Exception:
                logger.exception("revocation pull failed unexpectedly")
