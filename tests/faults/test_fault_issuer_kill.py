"""The auth service killed (SIGKILL) in the middle of a storm of logins and refreshes, on
SQLite: after a restart on the same data no user is lost, no refresh family is half
rotated, every refresh token a client holds works or its family was revoked as a whole,
and SQLite finds its file sound. (The PostgreSQL run is in test_fault_postgres.py.)"""

from __future__ import annotations

import signal

import pytest

from tests.conftest import PASSWORD, Stack, eventually
from tests.faults.storm import (
    STORM_ENV,
    SqliteDb,
    Storm,
    add_users,
    check_clients,
    check_database,
)

pytestmark = pytest.mark.fault

USERS = [f"storm-{i}" for i in range(8)]


def test_a_sigkill_during_a_login_and_refresh_storm_loses_nothing_on_sqlite(stack: Stack) -> None:
    db_path = stack.tmp / "data" / "auth.db"
    add_users(f"sqlite+aiosqlite:///{db_path}", USERS, PASSWORD)
    auth = stack.start_auth(**STORM_ENV)
    storm = Storm(auth.url, USERS, PASSWORD, workers=8).start()
    try:
        assert eventually(
            lambda: storm.count("refresh ok") >= 150 and storm.count("login ok") >= 8, timeout=30, interval=0.01
        ), f"the storm did not get going: {storm.counts}"
        auth.stop(signal.SIGKILL)
    finally:
        storm.stop()
    assert auth.stop() == -signal.SIGKILL  # it died by the signal, not by a shutdown
    assert not storm.broken, storm.broken[:5]  # before the kill every answer kept the contract

    db = SqliteDb(db_path)
    assert db.integrity() == ([("ok",)], [])  # the file exactly as the kill left it (WAL replayed)
    check_database(db, storm)

    auth.start()  # same port, same data directory
    outcomes = check_clients(auth.url, db, storm)
    check_database(db, storm)
    assert db.integrity() == ([("ok",)], [])
    assert "Traceback" not in auth.log_path.read_text()
    print(f"storm: {dict(storm.counts)}; after restart: {dict(outcomes)}")
