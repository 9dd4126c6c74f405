"""The revocation list: what revokes, and the ordered feed replicas follow.

`Revoker` turns requests (RFC 7009 revocation, logout, the CLI) into feed entries.
`RevocationFeed` answers pulls and runs the push hub: one task tails the store's feed head
(woken at once by local writes, polling for writes by other processes) and fans every new
entry out to the SSE subscribers, with heartbeats in the same queue so their order holds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from .clock import Clock, system_clock
from .feed_pages import Page, PageCache, Pulled
from .metrics import NO_METRICS, Metrics
from .storage import FamilyStore, RevocationEntry, RevocationStore, SignInStore

log = logging.getLogger("auth_service.revocation")
security = logging.getLogger("auth_service.security")

_QUEUE_LIMIT = 10_000  # a subscriber this far behind is dropped; it reconnects and pulls
PAGE_LIMIT = 10_000  # most entries per pull answer
PAGE_DEFAULT = 2_000  # entries per answer unless asked otherwise: a replica's own page


class Publisher(Protocol):
    """Fans feed events out beyond this process (Redis pub/sub when configured)."""

    async def entry(self, feed_id: str, entry: RevocationEntry) -> None: ...

    async def heartbeat(self, feed_id: str, cursor: int, read_at: float) -> None: ...


class RevocationFeed:
    def __init__(
        self,
        store: RevocationStore,
        *,
        heartbeat: float,
        poll: float = 0.5,
        publisher: Publisher | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self._store = store
        self._clock = clock
        self._publisher = publisher
        # Fan-out runs apart from the tail, so a slow or absent Redis never delays the SSE push.
        self._outbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(maxsize=_QUEUE_LIMIT)
        self._heartbeat = heartbeat
        self._poll = poll
        self._wake = asyncio.Event()
        self._subscribers: set[asyncio.Queue[str | None]] = set()
        self._feed_id = ""
        self._cursor = 0
        self._read_at: float | None = None  # when the store last answered the tail
        self._pages = PageCache()

    def notify(self) -> None:
        """A local write appended to the feed: push it now rather than at the next poll."""
        self._wake.set()

    async def pull(
        self,
        after: int | None,
        feed_id: str | None,
        limit: int = PAGE_DEFAULT,
        *,
        may_render: Callable[[int], bool] | None = None,
    ) -> Pulled | None:
        """One pull answer (`_page`), from a cache keyed by (feed, head, after, limit).

        A fleet at one cursor asks for the same pages: each is rendered once per head. A
        page not in the cache is rendered only if `may_render(limit)` agrees (a per-caller
        budget); else None."""
        read_at = self._clock()  # as a heartbeat's time: the start of the read it vouches for
        current_feed, head = await self._store.feed_head()
        snapshot = after is None or feed_id != current_feed or after > head
        key = (current_feed, head, None if snapshot else after, limit)
        if (cached := self._pages.get(key)) is not None:
            return Pulled(cached, read_at)
        if may_render is not None and not may_render(limit):
            return None
        body = json.dumps(await self._page(current_feed, head, snapshot, after, limit), separators=(",", ":")).encode()
        return Pulled(self._pages.add(key, body), read_at)

    def gzipped(self, page: Page) -> bytes:
        """A pulled page gzip-compressed, once per page (`PageCache.gzipped`)."""
        return self._pages.gzipped(page)

    async def _page(
        self, current_feed: str, head: int, snapshot: bool, after: int | None, limit: int
    ) -> dict[str, Any]:
        """Entries after a cursor (or a snapshot), at most `limit` of them.

        When more remain, `more` is true and `cursor` is the seq of the last entry sent:
        the caller pulls again after it. A large list thus arrives in bounded pages."""
        entries = await self._store.entries_after(0 if snapshot or after is None else after, limit)
        more = len(entries) == limit and entries[-1].seq < head
        cursor = entries[-1].seq if more else max([head, *(e.seq for e in entries)])
        return {
            "feed": current_feed,
            "cursor": cursor,
            "snapshot": snapshot,
            "more": more,
            "entries": [e.as_json() for e in entries],
        }

    async def subscribe(self) -> AsyncIterator[str]:
        """Server-sent events: a heartbeat first, then entries and heartbeats as they come."""
        queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=_QUEUE_LIMIT)
        if self._read_at is not None:
            queue.put_nowait(self._heartbeat_event())
        self._subscribers.add(queue)
        try:
            while (item := await queue.get()) is not None:
                yield item
        finally:
            self._subscribers.discard(queue)

    async def run(self) -> None:
        """Tail the feed (and fan it out, when a publisher is set) until cancelled."""
        started = self._clock()
        self._feed_id, self._cursor = await self._store.feed_head()
        self._read_at = started
        if self._publisher is None:
            await self._tail_forever()
            return
        async with asyncio.TaskGroup() as group:
            group.create_task(self._tail_forever())
            group.create_task(self._fan_out())

    async def _tail_forever(self) -> None:
        next_heartbeat = time.monotonic() + self._heartbeat
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation
            # that arrives as the wait completes (CPython gh-86296), and the issuer never stops.
            try:
                async with asyncio.timeout(min(self._poll, self._heartbeat)):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                started = self._clock()  # the read vouches for the feed as of its start
                await self._tail()
                self._read_at, read = started, True
            except Exception as exc:  # a database hiccup must not end the push stream
                log.warning("revocation feed tail failed: %s", type(exc).__name__)
                read = False
            # A heartbeat vouches for a read: while the store does not answer, none goes
            # out, and replicas fall back to pulling (through the balancer, from an
            # instance that can read) or report stale past their bound.
            if read and time.monotonic() >= next_heartbeat:
                self._broadcast(self._heartbeat_event())
                next_heartbeat = time.monotonic() + self._heartbeat
                self._send_out("heartbeat", (self._cursor, self._read_at))

    def close(self) -> None:
        for queue in list(self._subscribers):
            _offer(queue, None, force=True)

    async def _tail(self) -> None:
        feed_id, head = await self._store.feed_head()
        if feed_id != self._feed_id:  # the database was replaced: replicas must resync
            self._feed_id, self._cursor = feed_id, head
            self._broadcast(self._heartbeat_event())
            return
        if head <= self._cursor:
            return
        for entry in await self._store.entries_after(self._cursor):
            self._broadcast(f"event: revocation\nid: {entry.seq}\ndata: {json.dumps(entry.as_json())}\n\n")
            self._cursor = max(self._cursor, entry.seq)
            self._send_out("entry", entry)
        self._cursor = max(self._cursor, head)

    def _send_out(self, kind: str, item: Any) -> None:
        if self._publisher is None:
            return
        try:
            self._outbox.put_nowait((kind, item))
        except asyncio.QueueFull:
            log.warning("revocation fan-out is behind; replicas will catch up by pull")

    async def _fan_out(self) -> None:
        assert self._publisher is not None
        while True:
            kind, item = await self._outbox.get()
            try:
                if kind == "entry":
                    await self._publisher.entry(self._feed_id, item)
                else:
                    await self._publisher.heartbeat(self._feed_id, *item)
            except Exception as exc:  # replicas still pull: an outage must not stop the feed
                log.warning("revocation fan-out failed: %s", type(exc).__name__)

    def _heartbeat_event(self) -> str:
        data = {"feed": self._feed_id, "cursor": self._cursor, "time": round(self._read_at or 0.0, 3)}
        return f"event: heartbeat\ndata: {json.dumps(data)}\n\n"

    def _broadcast(self, event: str) -> None:
        for queue in list(self._subscribers):
            if not _offer(queue, event):
                self._subscribers.discard(queue)


def _offer(queue: asyncio.Queue[str | None], item: str | None, *, force: bool = False) -> bool:
    try:
        queue.put_nowait(item)
        return True
    except asyncio.QueueFull:
        if force:
            queue.get_nowait()
            queue.put_nowait(item)
            return True
        queue.get_nowait()
        queue.put_nowait(None)  # end that stream: the subscriber reconnects and pulls
        return False


async def access_token_revoked(revocations: RevocationStore, claims: dict[str, Any], now: float) -> bool:
    """Whether a live feed entry revokes the verified access token with these claims (the
    issuer's own endpoints that take one: /userinfo, /introspect, /admin)."""
    return await revocations.is_revoked(
        jti=claims["jti"], sid=claims.get("sid"), sub=claims["sub"], iat=int(claims["iat"]), now=int(now)
    )


class RevokingStore(FamilyStore, RevocationStore, SignInStore, Protocol):
    """What the revoker writes: families (sessions), login sessions and the feed, each change
    with its entries."""


class Revoker:
    """Every way a token stops being valid before its expiry."""

    def __init__(
        self,
        store: RevokingStore,
        feed: RevocationFeed,
        *,
        access_ttl: int,
        leeway: int,
        metrics: Metrics = NO_METRICS,
        clock: Clock = system_clock,
    ) -> None:
        self._store = store
        self._feed = feed
        self._metrics = metrics
        self._clock = clock
        self._access_ttl = access_ttl
        self._leeway = leeway

    def notify(self) -> None:
        """The store appended an entry on another path (a refresh replay): push it now."""
        self._feed.notify()

    def _count(self, kind: str, entry: RevocationEntry | None) -> None:
        # None: the session was revoked already and nothing was appended. A jti revoked
        # twice gets its live entry back from the store and is counted again.
        if entry is not None:
            self._metrics.revoked(kind)

    def horizon(self, now: int) -> int:
        """When every access token issued up to `now` has expired, leeway included."""
        return now + self._access_ttl + self._leeway

    async def jti(self, jti: str, exp: int | None = None) -> RevocationEntry:
        now = int(self._clock())
        entry = await self._store.revoke_jti(jti, (exp + self._leeway) if exp else self.horizon(now), now)
        self._feed.notify()
        self._count("jti", entry)
        security.info("revoked", extra={"kind": "jti", "jti": jti, "seq": entry.seq})
        return entry

    async def sid(self, sid: str) -> RevocationEntry | None:
        now = int(self._clock())
        revoked = await self._store.revoke_family(sid, now, self.horizon(now))
        self._feed.notify()
        self._count("sid", revoked.entry)
        security.info("revoked", extra={"kind": "sid", "sid": sid})
        return revoked.entry

    async def login_session(self, session_id: str) -> list[RevocationEntry]:
        """End a browser login session: every app's session it started, at every replica."""
        now = int(self._clock())
        entries = await self._store.end_login_session(session_id, now, self.horizon(now))
        self._feed.notify()
        for entry in entries:
            self._count("sid", entry)
        security.info("login_session_ended", extra={"session": session_id, "sids": [e.value for e in entries]})
        return entries

    async def sub(self, sub: str) -> RevocationEntry | None:
        """Every token of `sub` issued up to now: log out everywhere, password change."""
        now = int(self._clock())
        before = now + 1  # iat has whole seconds: this second's tokens go too; new ones are lifted
        revoked = await self._store.revoke_subject(sub, now, before, self.horizon(before))
        self._feed.notify()
        self._count("sub", revoked.entry)
        security.info("revoked", extra={"kind": "sub", "sub": sub, "before": before})
        return revoked.entry
