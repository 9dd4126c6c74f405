"""The embedded backend: one SQLite file, WAL, writers queued on one connection."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from .schema import upgrade
from .sql import SqlStore

_BUSY_TIMEOUT_MS = 10_000

# aiosqlite logs every call with its bound values at DEBUG, so an application logging at
# DEBUG would write password and client-secret hashes to its logs (hide_parameters below
# covers SQLAlchemy's messages only).
logging.getLogger("aiosqlite").setLevel(logging.INFO)


def _engine(url: str, *, immediate: bool) -> AsyncEngine:
    # A writer begins IMMEDIATE: it takes the write lock up front, so two processes (a
    # server and the CLI) wait on busy_timeout instead of deadlocking on a lock upgrade.
    # hide_parameters: a database error's message would otherwise quote the bound values
    # (a password hash, a client secret's hash) into whatever log records the error.
    engine = create_async_engine(
        url,
        pool_size=1 if immediate else 5,
        max_overflow=0,
        hide_parameters=True,
        connect_args={"timeout": _BUSY_TIMEOUT_MS / 1000},
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (SQLAlchemy's aiosqlite recipe)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def engine(url: str) -> AsyncEngine:
    return _engine(url, immediate=True)


async def open_sqlite(url: str) -> SqlStore:
    path = url.split("///", 1)[1] if "///" in url else ""
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    writer = _engine(url, immediate=True)
    await upgrade(writer)  # embedded: one owner, so it migrates itself at start
    store = SqlStore(writer=writer, reader=_engine(url, immediate=False))
    if path and path != ":memory:":
        # Password and client-secret hashes live here: owner-only, like the keystore.
        # SQLite gives the -wal and -shm files the database file's mode.
        os.chmod(path, 0o600)
    return store
