"""The `auth-service` command: serve, users, clients, keys, revoke, db, demo.

Administrative commands work on the same database and keystore as a running server, which
notices their changes within a second (keys) or half a second (revocations).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import uvicorn
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from resource_service.logs import configure_logging
from resource_service.serving import ServerConfig, limits_of, raise_open_file_limit

from .cli_accounts import add_commands, with_store
from .cli_accounts import revoker as make_revoker
from .config import Settings
from .directory import DirectoryError, NotFound
from .storage import Conflict, SchemaBehind, open_store
from .storage.keyfiles import KeystoreError


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings()
        # Log lines go to stderr (JSON unless it is a terminal); command output stays on stdout.
        configure_logging(settings.log_format, settings.log_level)
        return int(args.run(args) or 0)
    except NotFound as exc:
        print(f"auth-service: {exc}", file=sys.stderr)
        return 1
    except (
        ValidationError,
        KeystoreError,
        Conflict,
        DirectoryError,
        SchemaBehind,
        SQLAlchemyError,
        ValueError,
        OSError,
    ) as exc:
        print(f"auth-service: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="auth-service", description=__doc__)
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(run=_serve)

    add_commands(sub)

    keys = sub.add_parser("keys", help="signing keys").add_subparsers(required=True, metavar="ACTION")
    keys.add_parser("list", help="every key with its state").set_defaults(run=_keys_list)
    keys.add_parser("rotate", help="publish a new key now; it signs after the publish lead").set_defaults(
        run=_keys_rotate
    )

    revoke = sub.add_parser("revoke", help="revoke a token, a login session or all of a subject's tokens")
    # Ids are URL-safe base64 and may begin with "-": write --jti=ID, as argparse reads "-x" as an option.
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("--jti", help="one access token")
    which.add_argument("--sid", help="one login session (refresh family) and its access tokens")
    which.add_argument("--sub", help="every token of this subject issued until now")
    revoke.set_defaults(run=_revoke)

    db = sub.add_parser("db", help="database schema").add_subparsers(required=True, metavar="ACTION")
    db.add_parser("upgrade", help="migrate the schema to this version's (transactional)").set_defaults(run=_db_upgrade)
    db.add_parser("current", help="the schema revision the database is at").set_defaults(run=_db_current)

    demo = sub.add_parser("demo", help="run the horizontal-scaling demo on loopback")
    demo.add_argument("--replicas", type=int, default=3)
    demo.set_defaults(run=_demo)
    return parser


def _serve(args: argparse.Namespace) -> None:
    from .app import create_app

    settings = Settings()
    if "issuer" not in settings.model_fields_set:
        settings = Settings(issuer=f"http://{args.host}:{args.port}")  # validated: loopback or refused
    # A schema that needs `db upgrade` or a keystore that cannot be read is said plainly,
    # in one line, before serving.
    _with_keys(lambda keys: keys.reload_if_changed(), settings)
    app = create_app(settings)
    # log_config=None: uvicorn's loggers go through our handler (configure_logging), and its
    # access log stays off: ours (AUTH_ACCESS_LOG) leaves out the query string.
    config = ServerConfig(
        app,
        limits=limits_of(settings),
        host=args.host,
        port=args.port,
        access_log=False,
        timeout_graceful_shutdown=3,
        log_config=None,
        log_level=settings.log_level.lower(),
    )
    raise_open_file_limit()
    _Server(config, app).run()


def _shutdown_streams(app: Any) -> None:
    issuer = getattr(app.state, "issuer", None)
    if issuer is not None:
        issuer.feed.close()


class _Server(uvicorn.Server):
    """uvicorn's server, ending the revocation push streams as soon as it is told to stop.

    uvicorn waits for open responses before shutting down; a push stream never ends by
    itself, so without this every stop would wait out the graceful timeout and then
    cancel the streams with a traceback. Replicas reconnect (to another instance) and pull.
    """

    def __init__(self, config: uvicorn.Config, app: Any) -> None:
        super().__init__(config)
        self._app = app

    def handle_exit(self, sig: int, frame: Any) -> None:
        try:
            asyncio.get_running_loop().call_soon_threadsafe(_shutdown_streams, self._app)
        except RuntimeError:
            pass  # no loop yet: nothing is streaming
        super().handle_exit(sig, frame)


def _db_upgrade(_: argparse.Namespace) -> None:
    from .storage import migration_engine
    from .storage.schema import upgrade

    async def run() -> tuple[str | None, str]:
        engine = migration_engine(Settings().sqlalchemy_url)
        try:
            return await upgrade(engine)
        finally:
            await engine.dispose()

    before, after = asyncio.run(run())
    print(json.dumps({"from": before, "to": after}))


def _db_current(_: argparse.Namespace) -> None:
    from .storage import migration_engine
    from .storage.schema import current, head

    async def run() -> str | None:
        engine = migration_engine(Settings().sqlalchemy_url)
        try:
            return await current(engine)
        finally:
            await engine.dispose()

    print(json.dumps({"current": asyncio.run(run()), "head": head()}))


def _with_keys(job: Callable[[Any], Awaitable[Any]], settings: Settings | None = None) -> Any:
    from .app import open_keys

    settings = settings or Settings()

    async def run() -> Any:
        store = await open_store(settings.sqlalchemy_url)
        try:
            return await job(open_keys(settings, store))
        finally:
            await store.close()

    return asyncio.run(run())


def _keys_list(_: argparse.Namespace) -> None:
    async def load(keys: Any) -> Any:
        await keys.reload_if_changed()
        return keys

    keys = _with_keys(load)
    now = int(time.time())
    states = keys.states(now)
    for record in sorted(keys.records(), key=lambda r: r.activates_at):
        print(
            json.dumps(
                {
                    "kid": record.kid,
                    "alg": record.alg,
                    "state": states[record.kid].value,
                    "created_at": record.created_at,
                    "activates_at": record.activates_at,
                }
            )
        )


def _keys_rotate(_: argparse.Namespace) -> None:
    record = _with_keys(lambda keys: keys.rotate(int(time.time())))
    print(
        json.dumps(
            {"kid": record.kid, "alg": record.alg, "created_at": record.created_at, "activates_at": record.activates_at}
        )
    )


def _revoke(args: argparse.Namespace) -> None:
    async def job(store: Any) -> Any:
        revoker = make_revoker(store)
        if args.jti:
            return await revoker.jti(args.jti)
        if args.sid:
            return await revoker.sid(args.sid)
        return await revoker.sub(args.sub)

    entry = with_store(job)
    print(json.dumps(entry.as_json() if entry else {"already_revoked": True}))


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args.replicas)
