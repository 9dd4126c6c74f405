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

from .config import Settings
from .directory import MAX_USERS_PAGE, Directory, DirectoryError, NotFound, user_view
from .passwords import MAX_PASSWORD_LENGTH, MIN_SECRET_LENGTH, hash_sync
from .registry import Registration, Registry, client_view
from .storage import Conflict, SchemaBehind, open_store
from .storage.keyfiles import KeystoreError

_ACTOR = "cli"  # who the security log says asked for a users change


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


def _secret_options(group: argparse._MutuallyExclusiveGroup) -> None:
    group.add_argument(
        "--secret-stdin",
        action="store_true",
        help=f"read the secret (at least {MIN_SECRET_LENGTH} random characters) from stdin",
    )
    group.add_argument(
        "--generate-secret", action="store_true", help="generate a random secret and print it, once, in the output"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="auth-service", description=__doc__)
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(run=_serve)

    users = sub.add_parser("users", help="manage users").add_subparsers(required=True, metavar="ACTION")
    add = users.add_parser("add", help="create a user; the password is read from standard input")
    add.add_argument("name")
    add.add_argument("--password-stdin", action="store_true", required=True)
    add.add_argument("--scope", default="", help='space-separated scopes, e.g. "reports:read"')
    add.set_defaults(run=_users_add)
    users.add_parser("list", help="every user, one JSON object a line, in username order").set_defaults(run=_users_list)
    show = users.add_parser("show", help="one user")
    show.add_argument("name")
    show.set_defaults(run=_users_show)
    scope = users.add_parser("set-scope", help="replace what the user may be granted; refreshes narrow to it")
    scope.add_argument("name")
    scope.add_argument("--scope", required=True, help='space-separated scopes; "" for none')
    scope.set_defaults(run=_users_set_scope)
    passwd = users.add_parser("set-password", help="change a password and revoke the user's tokens")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true", required=True)
    passwd.set_defaults(run=_users_set_password)
    for action, aliases, change, what in (
        ("disable", [], Directory.disable, "refuse the user's logins and refreshes and revoke their tokens"),
        ("enable", [], Directory.enable, "let a disabled user log in again"),
        ("delete", ["remove"], Directory.delete, "delete the user and revoke their tokens"),
    ):
        command = users.add_parser(action, aliases=aliases, help=what)
        command.add_argument("name")
        command.set_defaults(run=_users_change, action=action, change=change)

    clients = sub.add_parser("clients", help="manage OAuth clients").add_subparsers(required=True, metavar="ACTION")
    cadd = clients.add_parser("add", help="register a client: public, or confidential with a secret")
    cadd.add_argument("name", help="the client_id")
    kind = cadd.add_mutually_exclusive_group(required=True)
    kind.add_argument("--public", action="store_true", help="a public client: no secret (a browser or mobile app)")
    _secret_options(kind)
    cadd.add_argument(
        "--grant",
        action="append",
        default=[],
        dest="grants",
        metavar="TYPE",
        help="a grant it may use (repeat); default for a confidential client: client_credentials",
    )
    cadd.add_argument("--redirect-uri", action="append", default=[], dest="redirect_uris", metavar="URI")
    cadd.add_argument("--scope", default="", help="the scopes its tokens may carry, space-separated")
    cadd.add_argument(
        "--audience",
        action="append",
        default=[],
        dest="audiences",
        metavar="A",
        help="an API (RFC 8707 resource) it may ask tokens for (repeat); default: AUTH_AUDIENCE",
    )
    cadd.add_argument("--name", default="", dest="name_text", metavar="TEXT", help="a name for people")
    cadd.add_argument("--first-party", action="store_true", help="one of ours: the sign-in page asks no consent")
    cadd.set_defaults(run=_clients_add)
    clients.add_parser("list", help="every client, one JSON object per line").set_defaults(run=_clients_list)
    show = clients.add_parser("show", help="one client as JSON")
    show.add_argument("name")
    show.set_defaults(run=_clients_show)
    rotate = clients.add_parser("rotate-secret", help="replace a confidential client's secret; the old one stops")
    rotate.add_argument("name")
    _secret_options(rotate.add_mutually_exclusive_group(required=True))
    rotate.set_defaults(run=_clients_rotate)
    remove = clients.add_parser("remove", help="delete a client and revoke its sessions and tokens")
    remove.add_argument("name")
    remove.set_defaults(run=_clients_remove)

    keys = sub.add_parser("keys", help="signing keys").add_subparsers(required=True, metavar="ACTION")
    keys.add_parser("list", help="every key with its state").set_defaults(run=_keys_list)
    keys.add_parser("rotate", help="publish a new key now; it signs after the publish lead").set_defaults(
        run=_keys_rotate
    )

    revoke = sub.add_parser("revoke", help="revoke a token, a login session or all of a subject's tokens")
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


def _read_line(what: str) -> str:
    value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        raise ValueError(f"no {what} on standard input")
    return value


def _read_secret(what: str, *, shortest: int) -> str:
    value = _read_line(what)
    if len(value) < shortest:
        raise ValueError(f"{what} shorter than {shortest} characters")
    if len(value) > MAX_PASSWORD_LENGTH:
        raise ValueError(f"{what} longer than {MAX_PASSWORD_LENGTH} characters")
    return value


def _with_store(job: Callable[[Any], Awaitable[Any]]) -> Any:
    async def run() -> Any:
        store = await open_store(Settings().sqlalchemy_url)
        try:
            return await job(store)
        finally:
            await store.close()

    return asyncio.run(run())


def _with_directory(job: Callable[[Directory], Awaitable[Any]]) -> Any:
    """Run `job` on a Directory over the configured store: every users command goes through
    it, as the admin HTTP API will, so both check, revoke and log alike."""
    return _with_store(lambda store: job(Directory(store, _revoker(store), _CliHasher())))


class _CliHasher:
    """`hash_sync` behind the directory's async `hash`: a command has no event loop to keep
    free, so a PasswordHasher's thread pool (and its dummy hash) would be work for nothing."""

    async def hash(self, password: str) -> str:
        return hash_sync(password)


def _users_add(args: argparse.Namespace) -> None:
    password = _read_line("password")
    user = _with_directory(lambda users: users.add_user(args.name, password, args.scope, actor=_ACTOR))
    print(json.dumps({"username": user.username, "sub": user.id, "scope": user.scope}))


def _users_list(_: argparse.Namespace) -> None:
    async def job(users: Directory) -> None:
        after = None
        while page := await users.users(after=after, limit=MAX_USERS_PAGE):
            for user in page:
                print(json.dumps(user_view(user)))
            if len(page) < MAX_USERS_PAGE:
                break
            after = page[-1].username

    _with_directory(job)


def _users_show(args: argparse.Namespace) -> None:
    print(json.dumps(user_view(_with_directory(lambda users: users.user(args.name)))))


def _users_set_scope(args: argparse.Namespace) -> None:
    user = _with_directory(lambda users: users.set_scope(args.name, args.scope, actor=_ACTOR))
    print(json.dumps(user_view(user)))


def _revoker(store: Any) -> Any:
    """A Revoker writing straight to the store; a running server pushes the entries on
    within half a second (its feed tail polls the store)."""
    from .revocation import RevocationFeed, Revoker

    settings = Settings()
    return Revoker(
        store, RevocationFeed(store, heartbeat=1), access_ttl=settings.access_token_ttl, leeway=settings.leeway
    )


def _users_set_password(args: argparse.Namespace) -> None:
    password = _read_line("password")
    user = _with_directory(lambda users: users.set_password(args.name, password, actor=_ACTOR))
    # Revoked by `sub` with before = the change's second + 1 (or a second later, at worst).
    print(
        json.dumps({"username": user.username, "sub": user.id, "tokens_revoked_before": user.password_changed_at + 1})
    )


def _users_change(args: argparse.Namespace) -> None:
    """disable, enable or delete (alias remove); disable and delete end every session of the user."""
    user = _with_directory(lambda users: args.change(users, args.name, actor=_ACTOR))
    print(json.dumps({"username": user.username, "sub": user.id, "action": args.action}))


def _with_registry(job: Callable[[Registry], Awaitable[Any]]) -> Any:
    """Run `job` on the client Registry over the configured store, as the admin API does."""
    return _with_store(lambda store: job(Registry(store, _revoker(store), _CliHasher())))


def _clients_add(args: argparse.Namespace) -> None:
    registration = Registration(
        client_id=args.name,
        public=args.public,
        grant_types=args.grants,
        redirect_uris=args.redirect_uris,
        scope=args.scope,
        audiences=args.audiences,
        name=args.name_text,
        first_party=args.first_party,
    )
    secret = _read_line("secret") if args.secret_stdin else None
    client, generated = _with_registry(lambda registry: registry.add(registration, secret, actor=_ACTOR))
    out = client_view(client)
    print(json.dumps(out | {"client_secret": generated} if generated else out))


def _clients_list(_: argparse.Namespace) -> None:
    for client in _with_registry(lambda registry: registry.clients()):
        print(json.dumps(client_view(client)))


def _clients_show(args: argparse.Namespace) -> None:
    print(json.dumps(client_view(_with_registry(lambda registry: registry.client(args.name)))))


def _clients_rotate(args: argparse.Namespace) -> None:
    secret = _read_line("secret") if args.secret_stdin else None
    generated = _with_registry(lambda registry: registry.rotate_secret(args.name, secret, actor=_ACTOR))
    out = {"client_id": args.name, "rotated": True}
    print(json.dumps(out | {"client_secret": generated} if generated else out))


def _clients_remove(args: argparse.Namespace) -> None:
    revoked = _with_registry(lambda registry: registry.remove(args.name, actor=_ACTOR))
    print(json.dumps({"client_id": args.name, "removed": True, "revocation_entries": revoked}))


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
        revoker = _revoker(store)
        if args.jti:
            return await revoker.jti(args.jti)
        if args.sid:
            return await revoker.sid(args.sid)
        return await revoker.sub(args.sub)

    entry = _with_store(job)
    print(json.dumps(entry.as_json() if entry else {"already_revoked": True}))


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args.replicas)
