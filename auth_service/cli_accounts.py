"""The `auth-service users` and `clients` commands: each through its service layer
(`Directory`, `Registry`), as the admin HTTP API goes, so both check, revoke and log alike."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from .config import Settings
from .directory import MAX_USERS_PAGE, Directory, user_view
from .passwords import MIN_SECRET_LENGTH, hash_sync
from .registry import Registration, Registry, client_view
from .storage import open_store

_ACTOR = "cli"  # who the security log says asked for a change


def add_commands(sub: Any) -> None:
    """Register `users ...` and `clients ...` on the top-level subparsers."""
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
    profile = users.add_parser("set-profile", help="the OpenID Connect claims: name, email (absent: none)")
    profile.add_argument("name")
    profile.add_argument("--display-name", metavar="TEXT", help="the `name` claim (the profile scope)")
    profile.add_argument("--email", metavar="ADDRESS", help="the `email` claim (the email scope)")
    profile.add_argument("--email-verified", action="store_true", help="the address was checked as the user's")
    profile.set_defaults(run=_users_set_profile)
    consents = users.add_parser("consents", help="the clients the user allowed at the consent page")
    consents.add_argument("name")
    consents.set_defaults(run=_users_consents)
    withdraw = users.add_parser("revoke-consent", help="forget what the user allowed a client; it asks again")
    withdraw.add_argument("name")
    withdraw.add_argument("client_id")
    withdraw.set_defaults(run=_users_revoke_consent)
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
    cadd.add_argument(
        "--post-logout-redirect-uri",
        action="append",
        default=[],
        dest="post_logout_redirect_uris",
        metavar="URI",
        help="where RP-initiated logout may send the browser back to (exact string)",
    )
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


def _secret_options(group: argparse._MutuallyExclusiveGroup) -> None:
    group.add_argument(
        "--secret-stdin",
        action="store_true",
        help=f"read the secret (at least {MIN_SECRET_LENGTH} random characters) from stdin",
    )
    group.add_argument(
        "--generate-secret", action="store_true", help="generate a random secret and print it, once, in the output"
    )


def _read_line(what: str) -> str:
    value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        raise ValueError(f"no {what} on standard input")
    return value


def with_store(job: Callable[[Any], Awaitable[Any]]) -> Any:
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
    return with_store(lambda store: job(Directory(store, revoker(store), _CliHasher())))


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


def revoker(store: Any) -> Any:
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


def _users_set_profile(args: argparse.Namespace) -> None:
    user = _with_directory(
        lambda users: users.set_profile(
            args.name, name=args.display_name, email=args.email, email_verified=args.email_verified, actor=_ACTOR
        )
    )
    print(json.dumps(user_view(user)))


def _users_consents(args: argparse.Namespace) -> None:
    for consent in _with_directory(lambda users: users.consents(args.name)):
        print(json.dumps(consent))


def _users_revoke_consent(args: argparse.Namespace) -> None:
    user = _with_directory(lambda users: users.revoke_consent(args.name, args.client_id, actor=_ACTOR))
    print(json.dumps({"username": user.username, "client_id": args.client_id, "consent_revoked": True}))


def _users_change(args: argparse.Namespace) -> None:
    """disable, enable or delete (alias remove); disable and delete end every session of the user."""
    user = _with_directory(lambda users: args.change(users, args.name, actor=_ACTOR))
    print(json.dumps({"username": user.username, "sub": user.id, "action": args.action}))


def _with_registry(job: Callable[[Registry], Awaitable[Any]]) -> Any:
    """Run `job` on the client Registry over the configured store, as the admin API does."""
    return with_store(lambda store: job(Registry(store, revoker(store), _CliHasher())))


def _clients_add(args: argparse.Namespace) -> None:
    registration = Registration(
        client_id=args.name,
        public=args.public,
        grant_types=args.grants,
        redirect_uris=args.redirect_uris,
        post_logout_redirect_uris=args.post_logout_redirect_uris,
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
