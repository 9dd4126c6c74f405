"""Which storage failures mean "the database cannot be reached now", not "this query is wrong".

A database restarting, refusing connections or dropping them mid-query is an outage the
client may retry through: the HTTP layer answers those 503 (RFC 6749 temporarily_unavailable,
Retry-After) instead of a 500. The driver raises some of them raw (asyncpg while
connecting), and SQLAlchemy wraps the rest; both are recognised here.
"""

from __future__ import annotations

from sqlalchemy import exc as sa

try:
    from asyncpg import exceptions as pg

    _DRIVER_GONE: tuple[type[BaseException], ...] = (
        pg.PostgresConnectionError,  # SQLSTATE class 08: the connection failed or is gone
        pg.OperatorInterventionError,  # class 57: shutting down, starting up, admin shutdown
        pg.TooManyConnectionsError,
        pg.InterfaceError,  # the client side: the connection is closed
        pg.InternalClientError,  # a connection left mid-operation when the server went away
    )
except ImportError:  # SQLite-only installs
    _DRIVER_GONE = ()

# The base classes whose instances may be an outage: handlers are registered for these.
CANDIDATES: tuple[type[BaseException], ...] = (sa.SQLAlchemyError, OSError, *_DRIVER_GONE)


def database_unavailable(error: BaseException) -> bool:
    if isinstance(error, sa.DBAPIError):
        if error.connection_invalidated or isinstance(error, sa.OperationalError | sa.InterfaceError):
            return True  # OperationalError: refused, locked, I/O error; InterfaceError: connection closed
        cause = error.orig.__cause__ if error.orig is not None else None
        return isinstance(cause, _DRIVER_GONE) if cause is not None else False
    if isinstance(error, sa.TimeoutError | sa.DisconnectionError):  # pool exhausted or ping failed
        return True
    return isinstance(error, (OSError, *_DRIVER_GONE))  # refused, reset, timed out; raw driver errors
