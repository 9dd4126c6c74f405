"""A storm of token clients that remembers exactly what it was told, and the checks that
hold after any fault: nothing committed lost, no refresh family half-rotated, the
revocation feed unbroken."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import threading
import time
from collections import Counter
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

from tests.conftest import claims_of

# Storms log in thousands of times from one address and refresh each session back to back;
# the per-address and per-session limits are not what is tested.
STORM_ENV = {"AUTH_LOGIN_MAX_ATTEMPTS_PER_IP": "1000000", "AUTH_REFRESH_RATE": "1000000"}


# -- reading the database behind the service's back ------------------------------------


class Db(Protocol):
    def query(self, sql: str) -> list[tuple[Any, ...]]: ...


class SqliteDb:
    def __init__(self, path: Path) -> None:
        self.path = path

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with closing(sqlite3.connect(self.path, timeout=10)) as conn:
            return [tuple(row) for row in conn.execute(sql).fetchall()]

    def integrity(self) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """(PRAGMA integrity_check, PRAGMA foreign_key_check): [('ok',)] and [] when sound."""
        return self.query("PRAGMA integrity_check"), self.query("PRAGMA foreign_key_check")


class PostgresDb:
    def __init__(self, url: str) -> None:
        self.dsn = url.replace("+asyncpg", "")

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        import asyncpg

        async def run() -> list[tuple[Any, ...]]:
            conn = await asyncpg.connect(self.dsn, timeout=10)
            try:
                return [tuple(row) for row in await conn.fetch(sql)]
            finally:
                await conn.close()

        return asyncio.run(run())


def add_users(database_url: str, names: list[str], password: str, scope: str = "") -> None:
    """Create users through the service's own storage code (the CLI's, without a process each),
    and the default client their logins go through."""
    from auth_service.passwords import hash_sync
    from auth_service.storage import open_store
    from tests.default_client import add_default_client

    password_hash = hash_sync(password)

    async def run() -> None:
        store = await open_store(database_url)
        try:
            for name in names:
                await store.add_user(name, password_hash, scope, int(time.time()))
            await add_default_client(store)  # the storm logs in through it (tests/default_client.py)
        finally:
            await store.close()

    asyncio.run(run())


# -- a storm of token clients ------------------------------------------------------------


@dataclass
class Family:
    """One login session as its client knows it."""

    user: str
    sid: str
    refresh: str  # the newest refresh token this client was given
    access: str
    previous: str | None = None  # the refresh token `refresh` replaced (for replays)
    jtis: list[str] = field(default_factory=list)  # every refresh jti the client was given
    # live: the client knows `refresh` is current. revoked: the client was told the family
    # ended (its replay refused, its logout done). unsure: a request on it got no answer or
    # a 503, so whether the server committed it is unknown.
    state: str = "live"


def is_unavailable(response: httpx.Response) -> bool:
    """The RFC 6749 section 5.2 answer to "try again later": 503, JSON error, Retry-After."""
    try:
        body = response.json()
    except ValueError:
        return False
    return (
        response.status_code == 503
        and isinstance(body, dict)
        and body.get("error") == "temporarily_unavailable"
        and isinstance(body.get("error_description"), str)
        and response.headers.get("retry-after", "").isdigit()
    )


class Storm:
    """Worker threads logging in, refreshing, sometimes replaying a retired refresh token or
    logging out, each with its own httpx client, until stopped. Every answer is judged:
    200, a refresh replay's 400 invalid_grant, and (when `unavailable_ok`) an RFC 6749 503
    are the contract; anything else is collected in `broken`."""

    def __init__(
        self, url: str, users: list[str], password: str, *, workers: int = 6, unavailable_ok: bool = False
    ) -> None:
        self.url = url
        self.users = users
        self.password = password
        self.unavailable_ok = unavailable_ok
        self.families: list[Family] = []
        self.counts: Counter[str] = Counter()
        self.broken: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._work, args=(i,), daemon=True) for i in range(workers)]

    def start(self) -> Storm:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
        assert not any(t.is_alive() for t in self._threads), "a storm worker hangs"

    def count(self, what: str) -> int:
        with self._lock:
            return self.counts[what]

    def _note(self, what: str, broken: str | None = None) -> None:
        with self._lock:
            self.counts[what] += 1
            if broken is not None:
                self.broken.append(broken)

    def _judge(self, kind: str, response: httpx.Response) -> str:
        """'ok', 'unavailable' or 'broken' (recorded)."""
        if response.status_code in (200, 204):
            self._note(f"{kind} ok")
            return "ok"
        if self.unavailable_ok and is_unavailable(response):
            self._note(f"{kind} 503")
            time.sleep(0.02)  # a polite client backs off a little
            return "unavailable"
        self._note(f"{kind} broken", f"{kind}: {response.status_code} {response.text[:300]}")
        return "broken"

    def _work(self, worker: int) -> None:
        rng = random.Random(worker)
        family: Family | None = None
        with httpx.Client(timeout=30) as http:
            while not self._stop.is_set():
                try:
                    live = family is not None and family.state == "live"
                    if family is None or family.state == "revoked" or rng.random() < 0.08:
                        family = self._login(http, self.users[rng.randrange(len(self.users))])
                    elif live and family.previous is not None and rng.random() < 0.03:
                        self._replay(http, family)
                    elif live and rng.random() < 0.02:
                        self._logout(http, family)
                    else:  # live, or unsure after a 503: a client retries with the token it holds
                        self._refresh(http, family)
                except httpx.HTTPError:
                    self._note("transport error")
                    family = None
                    time.sleep(0.02)
                except (ValueError, KeyError) as exc:  # an answer that is not the JSON it should be
                    self._note("broken", f"unreadable answer: {type(exc).__name__}: {exc}")
                    family = None

    def _login(self, http: httpx.Client, user: str) -> Family | None:
        response = http.post(
            f"{self.url}/token", data={"grant_type": "password", "username": user, "password": self.password}
        )
        if self._judge("login", response) != "ok":
            return None
        body = response.json()
        refresh = body["refresh_token"]
        family = Family(
            user=user,
            sid=str(claims_of(refresh)[1]["sid"]),
            refresh=refresh,
            access=body["access_token"],
            jtis=[str(claims_of(refresh)[1]["jti"])],
        )
        with self._lock:
            self.families.append(family)
        return family

    def _refresh(self, http: httpx.Client, family: Family) -> None:
        retry = family.state == "unsure"
        family.state = "unsure"  # until the answer says otherwise
        response = http.post(f"{self.url}/token", data={"grant_type": "refresh_token", "refresh_token": family.refresh})
        if retry and response.status_code == 400 and response.json().get("error") == "invalid_grant":
            # The unanswered attempt had rotated it after all: the retry is a replay, and the
            # family is revoked as a whole. Allowed; check_clients verifies the revocation.
            self._note("retry refused")
            family.state = "revoked"
        elif self._judge("refresh", response) == "ok":
            body = response.json()
            family.previous, family.refresh, family.access = family.refresh, body["refresh_token"], body["access_token"]
            family.jtis.append(str(claims_of(family.refresh)[1]["jti"]))
            family.state = "live"

    def _replay(self, http: httpx.Client, family: Family) -> None:
        family.state = "unsure"
        response = http.post(
            f"{self.url}/token", data={"grant_type": "refresh_token", "refresh_token": family.previous}
        )
        if response.status_code == 400 and response.json().get("error") == "invalid_grant":
            self._note("replay refused")
            family.state = "revoked"
        elif not (self.unavailable_ok and is_unavailable(response)):
            self._note("replay broken", f"replay: {response.status_code} {response.text[:300]}")

    def _logout(self, http: httpx.Client, family: Family) -> None:
        family.state = "unsure"
        response = http.post(f"{self.url}/logout", headers={"Authorization": f"Bearer {family.access}"})
        if self._judge("logout", response) == "ok":
            family.state = "revoked"


# -- what must hold after a fault --------------------------------------------------------


def check_database(db: Db, storm: Storm) -> None:
    """The store as the fault left it: every family whole, at most one live refresh token
    each (exactly one unless revoked), every revoked family on the feed, the feed gapless,
    and everything a client was given still there."""
    families = dict(db.query("SELECT sid, revoked_at FROM families"))
    tokens = db.query("SELECT jti, sid, used_at FROM refresh_tokens")
    live: Counter[str] = Counter(sid for _, sid, used_at in tokens if used_at is None)
    count: Counter[str] = Counter(sid for _, sid, _ in tokens)
    assert not set(count) - set(families), "refresh tokens of a family that does not exist"
    assert all(count[sid] >= 1 for sid in families), "a family without a refresh token"
    assert all(live[sid] <= 1 for sid in families), "a family with two live refresh tokens"
    half = [sid for sid, revoked_at in families.items() if revoked_at is None and live[sid] != 1]
    assert not half, f"{len(half)} unrevoked families without a live refresh token (half-rotated)"
    revoked_on_feed = {value for kind, value in db.query("SELECT kind, value FROM revocations") if kind == "sid"}
    unannounced = [sid for sid, revoked_at in families.items() if revoked_at is not None and sid not in revoked_on_feed]
    assert not unannounced, f"{len(unannounced)} families revoked in the store but not on the feed"
    ((head,),) = db.query("SELECT head FROM feed")
    assert [seq for (seq,) in db.query("SELECT seq FROM revocations ORDER BY seq")] == list(range(1, head + 1))
    given_sids = {f.sid for f in storm.families}
    given_jtis = {jti for f in storm.families for jti in f.jtis}
    assert given_sids <= set(families), f"{len(given_sids - set(families))} families a client was given are lost"
    stored = {jti for jti, _, _ in tokens}
    assert given_jtis <= stored, f"{len(given_jtis - stored)} refresh tokens a client was given are lost"


def check_clients(url: str, db: Db, storm: Storm) -> Counter[str]:
    """Every family's newest refresh token, as its client holds it, against the service:
    it works if nothing was outstanding; if a request was outstanding it works, or the
    family was revoked as a whole (the service had rotated it: the client's token is a
    replay now); a family the client saw end stays ended. Then every user still logs in."""
    outcomes: Counter[str] = Counter()
    ended: list[str] = []
    with httpx.Client(timeout=30) as http:
        for family in storm.families:
            response = http.post(f"{url}/token", data={"grant_type": "refresh_token", "refresh_token": family.refresh})
            works = response.status_code == 200
            refused = response.status_code == 400 and response.json().get("error") == "invalid_grant"
            assert works or refused, f"{family.state} family: {response.status_code} {response.text[:300]}"
            if family.state == "live":
                assert works, f"a refresh token the client held with nothing outstanding: {response.text}"
            elif family.state == "revoked":
                assert refused, "a family its client saw revoked works again"
            outcomes[f"{family.state} -> {'works' if works else 'refused'}"] += 1
            if refused:
                ended.append(family.sid)
        for user in storm.users:
            login = http.post(
                f"{url}/token", data={"grant_type": "password", "username": user, "password": storm.password}
            )
            assert login.status_code == 200, f"user {user} cannot log in after the fault: {login.text}"
    families = dict(db.query("SELECT sid, revoked_at FROM families"))
    on_feed = {value for kind, value in db.query("SELECT kind, value FROM revocations") if kind == "sid"}
    inconsistent = [sid for sid in ended if families.get(sid) is None or sid not in on_feed]
    assert not inconsistent, f"{len(inconsistent)} refused families are not revoked in the store and on the feed"
    return outcomes
