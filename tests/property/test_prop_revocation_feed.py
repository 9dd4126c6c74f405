"""Any sequence of revocations, prunes, restarts and reconnects leaves every replica that has
synced refusing exactly the tokens the auth service refuses.

The issuer is the real one: `create_app` and its lifespan (SQLite store, `Revoker`,
`RevocationFeed`) in a temp directory, reached in-process over ASGI. The replicas are the
real `RevocationList` and `RevocationSync`, pulling `GET /revocations` in pages as small as
one entry. What the issuer refuses is its own answer: `store.is_revoked`, the query behind
/introspect.

Time: the issuer's `Revoker` stamps entries with the wall clock (it takes no clock), so
expiry is driven the other way round. A virtual clock that only moves forward is what the
issuer prunes at (`store.prune_revocations(now)`, what its background task runs) and what
the replicas run on (`clock=`). No step waits for the wall clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from auth_service.app import create_app
from auth_service.config import Settings
from auth_service.deps import Issuer as Wired
from resource_service import revocation_sync
from resource_service.revocation_sync import RevocationSync
from resource_service.revocations import RevocationList

BASE = "https://issuer.test"
ACCESS_TTL = 30  # the least the settings allow: entries expire within a few time steps
LEEWAY = 5
VALUES = ("a", "b", "c")  # one small pool for jti, sid and sub: repeats, and kinds kept apart
NEVER = "never-revoked"
PAGE_SIZES = (1, 2, 3, revocation_sync.PULL_PAGE)
MAX_REPLICAS = 3
KINDS = ("jti", "sid", "sub")

values = st.sampled_from(VALUES)
kinds = st.sampled_from(KINDS)
gaps = st.sampled_from([1, 10, ACCESS_TTL + LEEWAY - 1])  # between two password changes: both entries live


@dataclass
class Replica:
    copy: RevocationList
    client: httpx.AsyncClient
    sync: RevocationSync
    page_size: int
    synced: bool = False  # a complete pull since the issuer's last write


@dataclass(frozen=True)
class IssuerView:
    feed: str
    head: int
    live_values: int  # distinct (kind, value) pairs with a live entry
    refused: list[tuple[dict[str, Any], bool]]  # probe tokens, and whether the issuer refuses each


@dataclass
class Issuer:
    data: Path
    app: Any
    lifespan: contextlib.AbstractAsyncContextManager[None]
    services: Wired = field(init=False)


@contextlib.contextmanager
def page_size(entries: int) -> Iterator[None]:
    """The replica's pull page size (a module constant of `revocation_sync`, read per page)."""
    saved = revocation_sync.PULL_PAGE
    revocation_sync.PULL_PAGE = entries
    try:
        yield
    finally:
        revocation_sync.PULL_PAGE = saved


def issuer_app(data: Path, keys: Path) -> Any:
    settings = Settings(
        issuer=BASE,
        data_dir=data,
        keys_dir=keys,
        signing_alg="ES256",
        access_token_ttl=ACCESS_TTL,
        leeway=LEEWAY,
        revocation_heartbeat=60,
    )
    return create_app(settings)


class RevocationFeedMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.Runner()
        self.tmp = Path(tempfile.mkdtemp(prefix="prop-feed-"))
        self.now = int(time.time())  # the virtual clock: starts at the wall clock, then only moves forward
        self.t0 = self.now
        self.issuer: Issuer | None = None
        self.databases = 0
        self.restarts = 0  # bounded per example: a restart costs more than any other step
        self.batches = 0
        self.replicas: dict[int, Replica] = {}
        self.version = 0  # moves with every change to what the issuer refuses at `now`
        self._view: tuple[int, IssuerView] | None = None

    # -- the issuer --------------------------------------------------------------------------

    def _start_issuer(self, data: Path) -> None:
        app = issuer_app(data, self.tmp / "keys")
        issuer = Issuer(data, app, app.router.lifespan_context(app))
        self.loop.run(issuer.lifespan.__aenter__())
        issuer.services = app.state.issuer
        self.issuer = issuer

    def _stop_issuer(self) -> None:
        if self.issuer is None:
            return
        # Right after a revocation, too: that once hung the issuer's shutdown
        # (test_the_issuer_stops_even_when_a_revocation_wakes_its_feed).
        self.loop.run(self.issuer.lifespan.__aexit__(None, None, None))
        self.issuer = None

    async def _issuer_address(self, scope: Any, receive: Any, send: Any) -> None:
        """The issuer's URL: whichever instance runs now answers, as after a real restart."""
        assert self.issuer is not None
        await self.issuer.app(scope, receive, send)

    @property
    def services(self) -> Wired:
        assert self.issuer is not None
        return self.issuer.services

    def _wrote(self) -> None:
        self.version += 1
        for replica in self.replicas.values():
            replica.synced = False

    @initialize(
        page_sizes=st.lists(st.sampled_from(PAGE_SIZES), min_size=2, max_size=2),
        revoked=st.integers(0, 24),
        password_changes=st.lists(st.tuples(values, gaps), max_size=2),
    )
    def issuer_and_two_replicas_start(
        self, page_sizes: list[int], revoked: int, password_changes: list[tuple[str, int]]
    ) -> None:
        """The issuer starts with `revoked` tokens already on its list, expiring over the next
        minute, and subjects that changed their password twice; the replicas pull them. Their
        tables grow, and shrink as entries expire."""
        self._start_issuer(self.tmp / "data-0")
        self._revoke_tokens(revoked)
        for value, gap in password_changes:
            self.password_changes_twice(value, gap)
        for number, entries in enumerate(page_sizes):
            self._connect(number, entries)
            self._pull(self.replicas[number])

    def _revoke_tokens(self, count: int) -> None:
        async def revoke() -> None:
            for n in range(count):
                # Tokens of many ages: their entries expire at many different times.
                await self.services.revoker.jti(f"jti-{self.batches}-{n}", self.now + (n * 7) % (2 * ACCESS_TTL))

        self.batches += 1
        self.loop.run(revoke())
        self._wrote()

    @rule(kind=kinds, value=values, exp_offset=st.none() | st.integers(-40, 60), our_clock=st.booleans())
    def revoke(self, kind: str, value: str, exp_offset: int | None, our_clock: bool) -> None:
        """One token by jti (RFC 7009; its `exp`, when known, bounds the entry), one login
        session by sid, or a subject's tokens issued so far.

        `Revoker.sub` stamps `before` with the wall clock, which hardly moves during an
        example; with `our_clock` the same store call is made at the virtual time (a password
        change some time later), so a subject gets entries with distinct `before`s."""
        revoker = self.services.revoker
        if kind == "jti":
            self.loop.run(revoker.jti(value, None if exp_offset is None else self.t0 + exp_offset))
        elif kind == "sid":
            self.loop.run(revoker.sid(value))
        elif not our_clock:
            self.loop.run(revoker.sub(value))
        else:
            self._revoke_subject_now(value)
        self._wrote()

    def _revoke_subject_now(self, sub: str) -> None:
        """What `Revoker.sub` does, at the virtual time."""
        revoker, before = self.services.revoker, self.now + 1
        self.loop.run(self.services.store.revoke_subject(sub, self.now, before, revoker.horizon(before)))
        revoker.notify()

    @rule(value=values, gap=gaps)
    def password_changes_twice(self, value: str, gap: int) -> None:
        """Two subject revocations while the first is live: the later `before` must win."""
        self._revoke_subject_now(value)
        self.now += gap
        self._revoke_subject_now(value)
        self._wrote()

    @precondition(lambda self: self.batches < 3)
    @rule(kind=st.sampled_from(["sid", "sub"]), count=st.integers(5, 24))
    def revoke_many(self, kind: str, count: int) -> None:
        """Many sessions or subjects at once (many tokens: the `initialize` step)."""
        self.batches += 1

        async def revoke() -> None:
            for n in range(count):
                await getattr(self.services.revoker, kind)(f"{kind}-{self.batches}-{n}")

        self.loop.run(revoke())
        self._wrote()

    @rule(seconds=st.sampled_from([1, 10, ACCESS_TTL + LEEWAY - 1, ACCESS_TTL + LEEWAY, ACCESS_TTL + LEEWAY + 1, 100]))
    def time_passes(self, seconds: int) -> None:
        self.now += seconds
        self.version += 1

    @rule()
    def issuer_prunes(self) -> None:
        self.loop.run(self.services.store.prune_revocations(self.now))
        self.version += 1

    @precondition(lambda self: self.restarts < 2)
    @rule(new_database=st.booleans())
    def issuer_restarts(self, new_database: bool) -> None:
        """On the same database (same feed id and cursor: replicas go on with deltas), or on a
        new one (a new feed: every replica must replace its copy)."""
        assert self.issuer is not None
        data = self.issuer.data
        self._stop_issuer()
        self.restarts += 1
        if new_database:
            self.databases += 1
            data = self.tmp / f"data-{self.databases}"
            self._wrote()
        self._start_issuer(data)

    # -- the replicas ------------------------------------------------------------------------

    def _connect(self, number: int, entries: int, copy: RevocationList | None = None) -> None:
        if (old := self.replicas.get(number)) is not None:
            self.loop.run(old.client.aclose())
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self._issuer_address), base_url=BASE)
        copy = copy if copy is not None else RevocationList()
        sync = RevocationSync(
            copy,
            client,
            list_uri=f"{BASE}/revocations",
            stream_uri=f"{BASE}/revocations/stream",
            poll_interval=3600.0,
            push=False,
            clock=lambda: float(self.now),
        )
        self.replicas[number] = Replica(copy, client, sync, entries)

    def _pick(self, data: st.DataObject) -> Replica:
        return self.replicas[data.draw(st.sampled_from(sorted(self.replicas)), label="replica")]

    @rule(number=st.integers(0, MAX_REPLICAS - 1), entries=st.sampled_from(PAGE_SIZES), keep_copy=st.booleans())
    def replica_connects(self, number: int, entries: int, keep_copy: bool) -> None:
        """A replica (re)starts from scratch, or reconnects (a new connection and a new
        `RevocationSync`) around the copy it already holds."""
        old = self.replicas.get(number)
        self._connect(number, entries, old.copy if keep_copy and old is not None else None)

    @rule(data=st.data(), everyone=st.booleans())
    def pull(self, data: st.DataObject, everyone: bool) -> None:
        for replica in self.replicas.values() if everyone else [self._pick(data)]:
            self._pull(replica)

    def _pull(self, replica: Replica) -> None:
        started = time.time()
        with page_size(replica.page_size):
            assert self.loop.run(replica.sync.pull()) is True, "a pull from a healthy issuer failed"
        ended = time.time()
        replica.synced = True
        # In sync as of the issuer's read of its feed during this pull (its Feed-Read-At, on the
        # issuer's wall clock, to the millisecond), never later than the replica's virtual clock.
        staleness = replica.copy.staleness(self.now)
        assert staleness is not None
        assert max(0.0, self.now - ended) - 0.001 <= staleness <= max(0.0, self.now - started) + 0.001
        self._assert_same_as_issuer(replica)

    @rule(data=st.data(), value=values, kind=kinds)
    def replica_pulls_while_the_issuer_revokes(self, data: st.DataObject, value: str, kind: str) -> None:
        """On one event loop, the pull's pages and the revocation interleave."""
        replica = self._pick(data)

        async def race() -> None:
            pulled, _ = await asyncio.gather(replica.sync.pull(), getattr(self.services.revoker, kind)(value))
            assert pulled is True

        with page_size(replica.page_size):
            self.loop.run(race())
        self._wrote()  # the pull may or may not have seen the new entry: the next one must

    @rule(data=st.data())
    def replica_prunes(self, data: st.DataObject) -> None:
        """What a replica's poller does between pulls."""
        self._pick(data).copy.prune(self.now)

    # -- the property ------------------------------------------------------------------------

    def _assert_same_as_issuer(self, replica: Replica) -> None:
        view = self._issuer_view()
        replica.copy.prune(self.now)  # as its poller does: the copy is read at `now`
        assert (replica.copy.feed, replica.copy.cursor) == (view.feed, view.head)
        assert len(replica.copy) == view.live_values
        for claims, issuer_refuses in view.refused:
            assert replica.copy.is_revoked(claims) == issuer_refuses, claims

    def _issuer_view(self) -> IssuerView:
        """What the issuer holds and refuses now; asked once per change (writes, prunes, time)."""
        if self._view is None or self._view[0] != self.version:
            self._view = (self.version, self.loop.run(self._ask_issuer()))
        return self._view[1]

    async def _ask_issuer(self) -> IssuerView:
        store = self.services.store
        feed_id, head = await store.feed_head()
        entries = await store.entries_after(0)
        live = [e for e in entries if e.expires_at > self.now]
        # Tokens carrying each value of the small pool (and one never revoked) as jti, as sid
        # and as sub, asked of `store.is_revoked`; a subject's tokens issued at and just before
        # each of its `before`s.
        befores: dict[str, set[int]] = {}
        for e in entries:
            if e.before is not None:
                befores.setdefault(e.value, set()).update((e.before - 1, e.before))
        probes: list[dict[str, Any]] = []
        for name in (*VALUES, NEVER):
            probes.append({"jti": name, "sid": "-", "sub": "-", "iat": self.t0})
            probes.append({"jti": "-", "sid": name, "sub": "-", "iat": self.t0})
            probes.append({"jti": "-", "sub": name, "iat": self.t0})  # client_credentials: no sid
            probes.extend({"jti": "-", "sid": "-", "sub": name, "iat": iat} for iat in sorted(befores.get(name, ())))
        answers = await asyncio.gather(
            *(
                store.is_revoked(
                    jti=claims["jti"], sid=claims.get("sid"), sub=claims["sub"], iat=claims["iat"], now=self.now
                )
                for claims in probes
            )
        )
        refused = list(zip(probes, answers, strict=True))
        # Each value listed in bulk, as what it was listed as: refused while a live entry holds
        # it (the bulk subjects' `before`s are all in the same wall-clock second, so before it).
        for kind, name in sorted({(e.kind, e.value) for e in entries if e.value not in VALUES}):
            holds = any(e.kind == kind and e.value == name for e in live)
            iat = min(befores[name]) if kind == "sub" else self.t0
            refused.append(({"jti": "-", "sid": "-", "sub": "-", kind: name, "iat": iat}, holds))
        return IssuerView(feed_id, head, len({(e.kind, e.value) for e in live}), refused)

    @invariant()
    def a_synced_replica_refuses_what_the_issuer_refuses(self) -> None:
        for replica in self.replicas.values():
            if replica.synced:
                self._assert_same_as_issuer(replica)

    def teardown(self) -> None:
        try:
            for replica in self.replicas.values():
                self.loop.run(replica.client.aclose())
            self._stop_issuer()
        finally:
            self.loop.close()
            shutil.rmtree(self.tmp, ignore_errors=True)


RevocationFeedMachine.TestCase.settings = settings(
    max_examples=30,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_replicas_follow_the_issuers_revocation_feed = RevocationFeedMachine.TestCase


def test_the_issuer_stops_even_when_a_revocation_wakes_its_feed(tmp_path: Path) -> None:
    """Found by the machine above: shutting down right after a revocation hung forever."""

    async def revoke_then_stop() -> bool:
        app = issuer_app(tmp_path / "data", tmp_path / "keys")
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        feed = app.state.issuer.feed
        while not feed._feed_id:  # the tail task has read the feed head ...
            await asyncio.sleep(0)
        for _ in range(3):  # ... and waits for a wake-up
            await asyncio.sleep(0)
        await app.state.issuer.revoker.jti("j-1")  # wakes it, as the lifespan cancels it
        # A healthy shutdown takes milliseconds: the bound only turns a hang into a failure.
        done, _ = await asyncio.wait([asyncio.ensure_future(lifespan.__aexit__(None, None, None))], timeout=2)
        return bool(done)

    assert asyncio.run(revoke_then_stop()), "the issuer's lifespan never finished shutting down"
