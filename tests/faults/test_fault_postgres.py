"""The issuer on a PostgreSQL of the test's own (never the machine's): the database
stopped and started again under a login and refresh storm, and the issuer killed
(SIGKILL) under one. During the outage every answer is 200 or an RFC 6749 503 with
Retry-After, never a 500; afterwards the service answers by itself and nothing that was
committed is lost."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from tests.conftest import PASSWORD, Stack, eventually
from tests.faults.storm import (
    STORM_ENV,
    PostgresDb,
    Storm,
    add_users,
    check_clients,
    check_database,
    is_unavailable,
)
from tests.own_servers import OwnPostgres

pytestmark = pytest.mark.fault

USERS = [f"storm-{i}" for i in range(6)]


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[OwnPostgres]:
    server = OwnPostgres()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture
def issuer_on_postgres(stack: Stack, own_postgres: OwnPostgres) -> tuple[Stack, str]:
    if not own_postgres.running():
        own_postgres.start()
    url = own_postgres.database()
    add_users(url, USERS, PASSWORD)
    stack.start_auth(AUTH_DATABASE_URL=url, AUTH_KEYS_PASSPHRASE="a sixteen-plus passphrase", **STORM_ENV)
    return stack, url


@pytest.mark.parametrize("mode", ["fast", "immediate"])  # sessions told to end; a crash, recovered from the WAL
def test_a_postgresql_restart_under_load_answers_503_then_recovers_losing_nothing(
    issuer_on_postgres: tuple[Stack, str], own_postgres: OwnPostgres, mode: str
) -> None:
    stack, url = issuer_on_postgres
    assert stack.auth is not None
    storm = Storm(stack.auth.url, USERS, PASSWORD, workers=6, unavailable_ok=True).start()
    try:
        assert eventually(lambda: storm.count("refresh ok") >= 60, timeout=30)
        own_postgres.stop(mode)  # in-flight transactions roll back; committed ones stay
        assert eventually(lambda: storm.count("login 503") >= 3 and storm.count("refresh 503") >= 3, timeout=20), (
            f"{dict(storm.counts)} {storm.broken[:3]}"
        )
        login = {"grant_type": "password", "username": USERS[0], "password": PASSWORD}
        assert all(is_unavailable(stack.http.post(f"{stack.auth.url}/token", data=login)) for _ in range(3))
        readiness = stack.http.get(f"{stack.auth.url}/readyz")
        assert readiness.status_code == 503 and readiness.json()["checks"]["database"].startswith("unavailable")
        assert is_unavailable(stack.http.get(f"{stack.auth.url}/revocations"))  # the feed says so too
        own_postgres.start()
        recovered = storm.count("refresh ok"), storm.count("login ok")
        assert eventually(
            lambda: storm.count("refresh ok") >= recovered[0] + 30 and storm.count("login ok") >= recovered[1] + 3,
            timeout=30,
        ), dict(storm.counts)
    finally:
        storm.stop()
    assert not storm.broken, storm.broken[:5]  # only 200s and RFC 6749 503s, never a 500
    assert storm.count("transport error") == 0  # the service itself stayed up
    assert stack.http.get(f"{stack.auth.url}/readyz").status_code == 200

    db = PostgresDb(url)
    check_database(db, storm)
    outcomes = check_clients(stack.auth.url, db, storm)
    check_database(db, storm)
    if mode == "fast":  # a session told to end answers its commit first: no 503 hides a committed rotation
        assert storm.count("retry refused") == outcomes["unsure -> refused"] == 0, "a 503 cost a client its session"
    own_postgres.amcheck(url)
    log = stack.auth.log_path.read_text()
    assert "Traceback" not in log, log[log.index("Traceback") - 300 :][:3000]
    print(f"storm: {dict(storm.counts)}; after: {dict(outcomes)}")


def test_a_sigkill_during_a_login_and_refresh_storm_loses_nothing_on_postgresql(
    issuer_on_postgres: tuple[Stack, str], own_postgres: OwnPostgres
) -> None:
    stack, url = issuer_on_postgres
    auth = stack.auth
    assert auth is not None
    storm = Storm(auth.url, USERS, PASSWORD, workers=8).start()
    try:
        assert eventually(
            lambda: storm.count("refresh ok") >= 150 and storm.count("login ok") >= 8, timeout=30, interval=0.01
        ), dict(storm.counts)
        auth.stop(signal.SIGKILL)
    finally:
        storm.stop()
    assert not storm.broken, storm.broken[:5]

    db = PostgresDb(url)
    check_database(db, storm)  # PostgreSQL enforces the foreign keys itself; the checks cover the rest
    own_postgres.amcheck(url)
    auth.start()  # same port, same database
    outcomes = check_clients(auth.url, db, storm)
    check_database(db, storm)
    print(f"storm: {dict(storm.counts)}; after restart: {dict(outcomes)}")
