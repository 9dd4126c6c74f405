"""The `auth-service` command's entry point, importable without the issuer's dependencies.

`pip install stateless-auth` installs the verifier alone, yet the console script comes with
it. Run without the `server` extra, the command says in one line what to install instead of
ending in a traceback about a missing module.
"""

from __future__ import annotations

import importlib.util
import sys

__all__ = ["main"]

# One module of each distribution the `server` extra (and the `replica` extra it includes)
# installs: SQLAlchemy, aiosqlite, asyncpg, alembic, libpass, argon2-cffi, Jinja2, redis,
# uvicorn with uvloop and httptools.
_SERVER_MODULES = (
    "sqlalchemy",
    "aiosqlite",
    "asyncpg",
    "alembic",
    "passlib",
    "argon2",
    "jinja2",
    "redis",
    "uvicorn",
    "uvloop",
    "httptools",
)
_INSTALL = "pip install 'stateless-auth[server]'"


def main() -> int:
    missing = [name for name in _SERVER_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        print(f"auth-service: the issuer is not installed (no module {missing[0]}); run: {_INSTALL}", file=sys.stderr)
        return 1
    from .cli import main as run

    return run()
