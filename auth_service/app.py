"""`create_app(settings)`: wires the store, keys, grants, routes and background tasks, once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from resource_service.apidocs import install_docs
from resource_service.logs import RequestIdMiddleware

from .clients import PUBLIC_CLIENT, ClientAuthenticator
from .clock import Clock, system_clock
from .config import Settings
from .deps import Issuer
from .errors import install_handlers
from .grants import grant_table
from .keys import KeyManager
from .login import PasswordCheck
from .metrics import NO_METRICS, AuthMetrics, Metrics, request_timer
from .passwords import PasswordHasher
from .ratelimit import Limits, LoginLimiter, MemoryLoginLimiter
from .revocation import Publisher, RevocationFeed, Revoker
from .routes import admin, operations, revocations, revoke, signin, token, userinfo, wellknown
from .signin.flow import SignIn
from .signin.logout import EndSession
from .storage import SqlStore, open_store
from .storage.keyfiles import FileKeyStore
from .storage.keystore import KeyStore
from .streams import PullBudget, StreamSlots
from .tokens import TokenMinter

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("auth_service")

_KEY_RELOAD_EVERY = 1.0  # seconds: notice keys written by another process (CLI, instance)
_PRUNE_EVERY = 60.0


def open_keys(settings: Settings, store: SqlStore) -> KeyManager:
    """Keys live with the data: in PostgreSQL (always encrypted) when the database is
    PostgreSQL, so instances on different machines share them; else in AUTH_KEYS_DIR."""
    passphrase = settings.keys_passphrase.get_secret_value().encode() if settings.keys_passphrase else None
    keystore: KeyStore
    if store.engine.dialect.name == "postgresql":
        from .storage.keydb import SqlKeyStore

        keystore = SqlKeyStore(store.engine, passphrase)
    else:
        keystore = FileKeyStore(settings.keys_dir, passphrase)
    return KeyManager(
        keystore,
        alg=settings.signing_alg,
        interval=settings.key_rotation_interval,
        lead=settings.publish_lead,
        max_token_lifetime=settings.max_token_lifetime,
    )


def create_app(settings: Settings, *, clock: Clock = system_clock) -> FastAPI:
    """The issuer as an ASGI app. `clock` is the one time source of every part (tests set it)."""
    metrics = AuthMetrics() if settings.metrics_enabled else None  # AUTH_METRICS_ENABLED

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = await open_store(settings.sqlalchemy_url)
        keys = open_keys(settings, store)
        await keys.maintain(int(clock()))
        redis_client = _redis(settings)
        issuer = _wire(settings, clock, store, keys, redis_client, metrics)
        app.state.issuer = issuer
        tasks = [
            asyncio.create_task(issuer.feed.run(), name="revocation-feed"),
            asyncio.create_task(_every(_KEY_RELOAD_EVERY, _key_keeper(keys, settings, clock)), name="keys"),
            asyncio.create_task(_every(_PRUNE_EVERY, lambda: _prune(store, clock)), name="prune"),
        ]
        log.info("auth service ready: issuer %s, %d signing key(s)", settings.issuer, len(keys.records()))
        if await store.client(PUBLIC_CLIENT) is not None:
            log.info(
                "client %r answers requests that name no client (password and refresh grants, any scope the user "
                "holds); `auth-service clients remove %s` once every caller has its own client",
                PUBLIC_CLIENT,
                PUBLIC_CLIENT,
            )
        try:
            yield
        finally:
            issuer.feed.close()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            issuer.hasher.close()
            if redis_client is not None:
                await redis_client.aclose()
            await store.close()

    # No slash redirects: Starlette builds them from the request's Host, so `POST /token/` with
    # `Host: evil.example` would send the client (and its credentials) there.
    app = FastAPI(
        title="auth-service",
        version="0.1.0",
        lifespan=lifespan,
        redirect_slashes=False,
        docs_url=None,
        redoc_url=None,
        description="Issues signed JWT access and refresh tokens; see docs/wire.md.",
    )
    install_docs(app)  # Swagger UI and ReDoc from the package, not a CDN
    install_handlers(app)
    if settings.cors_origins:
        # Swagger UI's token request sends X-Requested-With; without it the preflight fails.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-Requested-With", "X-Request-Id"],
            expose_headers=["X-Request-Id"],
            max_age=600,
        )
    routers = (token, revoke, signin, userinfo, wellknown, revocations, operations, admin)
    for module in routers:
        app.include_router(module.router)
    timer = None
    if metrics is not None:
        app.include_router(operations.metrics_router(metrics))
        timer = request_timer(app, metrics)
    # Added last, so outermost: every log line of a request (a CORS preflight's too) carries its id
    # and the client address (security events above all), and the one timing of each request feeds
    # both the access line and the latency histogram.
    app.add_middleware(
        RequestIdMiddleware,
        access_log=settings.access_log,
        logger="auth_service.access",
        observe=timer,
        client_address=True,
    )
    if settings.trusted_proxies:
        # Outermost of all: the client address every limit and log line sees is the forwarded one,
        # believed only from these peers (uvicorn's own proxy_headers is off, see resource_service.serving).
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    return app


def _wire(
    settings: Settings,
    clock: Clock,
    store: SqlStore,
    keys: KeyManager,
    redis_client: Redis | None,
    metrics: AuthMetrics | None,
) -> Issuer:
    """Every collaborator, built once, each handed the narrow parts it uses."""
    counting: Metrics = metrics if metrics is not None else NO_METRICS
    if metrics is not None:
        metrics.watch_keys(keys, clock)
    minter = TokenMinter(settings, keys, clock=clock)
    feed = RevocationFeed(
        store,
        heartbeat=settings.revocation_heartbeat,
        poll=settings.revocation_tail_interval,
        publisher=_publisher(settings, redis_client, minter),
        clock=clock,
    )
    hasher = PasswordHasher(settings.password_hash_concurrency)
    limiter = _limiter(settings, redis_client)
    passwords = PasswordCheck(
        users=store, revocations=store, hasher=hasher, limiter=limiter, clock=clock, metrics=counting
    )
    revoker = Revoker(
        store, feed, access_ttl=settings.access_token_ttl, leeway=settings.leeway, metrics=counting, clock=clock
    )
    grants = grant_table(
        settings=settings,
        users=store,
        families=store,
        revocations=store,
        sign_in=store,
        minter=minter,
        passwords=passwords,
        revoker=revoker,
        clock=clock,
        metrics=counting,
    )
    sign_in = SignIn(
        settings=settings,
        clients=store,
        users=store,
        sign_in=store,
        passwords=passwords,
        minter=minter,
        revoker=revoker,
        clock=clock,
    )
    streams = StreamSlots(settings.revocation_streams_max, settings.revocation_streams_per_address)
    if metrics is not None:
        metrics.watch_streams(lambda: streams.open, settings.revocation_streams_max)
    end_session = EndSession(
        clients=store, users=store, sign_in=store, minter=minter, revoker=revoker, clock=clock, pages=sign_in
    )
    return Issuer(
        settings=settings,
        clock=clock,
        store=store,
        keys=keys,
        minter=minter,
        feed=feed,
        revoker=revoker,
        grants=grants,
        hasher=hasher,
        clients=ClientAuthenticator(store, hasher, limiter, clock=clock, metrics=counting),
        streams=streams,
        pull_budget=PullBudget(settings.revocation_pull_budget),
        metrics=counting,
        signin=sign_in,
        end_session=end_session,
        redis=redis_client,
    )


def _redis(settings: Settings) -> Redis | None:
    if settings.redis_url is None:
        return None
    import redis.asyncio as redis

    return redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=15)


def _limiter(settings: Settings, client: Redis | None) -> LoginLimiter:
    limits = Limits(
        max_failures=settings.login_max_failures,
        max_attempts_per_address=settings.login_max_attempts_per_ip,
        ceiling=settings.login_max_failures_per_user,
        window=settings.login_window,
    )
    if client is None:
        return MemoryLoginLimiter(limits)
    from .storage.redis_limits import RedisLoginLimiter

    return RedisLoginLimiter(client, prefix=settings.redis_prefix, limits=limits)


def _publisher(settings: Settings, client: Redis | None, minter: TokenMinter) -> Publisher | None:
    if client is None:
        return None
    from .storage.redis_bus import RedisPublisher

    return RedisPublisher(client, settings.redis_prefix, minter.signed_event)


async def _every(seconds: float, job: Callable[[], Awaitable[None]]) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            await job()
        except Exception as exc:  # keep the loop alive; the next round retries
            log.warning("background job failed: %s: %s", type(exc).__name__, exc)


def _key_keeper(keys: KeyManager, settings: Settings, clock: Clock) -> Callable[[], Awaitable[None]]:
    """Every call (each second): notice keystore changes and log keys that began or stopped
    signing. Every half max-age (at most a minute): run the rotation schedule, which creates
    and forgets keys."""
    last_maintained = time.monotonic()

    async def keep() -> None:
        nonlocal last_maintained
        await keys.reload_if_changed()
        keys.log_transitions(int(clock()))  # key_activated / key_retired, within a second
        if time.monotonic() - last_maintained >= min(60.0, settings.jwks_max_age / 2):
            last_maintained = time.monotonic()
            await keys.maintain(int(clock()))

    return keep


async def _prune(store: SqlStore, clock: Clock) -> None:
    now = int(clock())
    await store.prune_revocations(now)
    await store.prune_families(now)
    await store.prune_sign_in(now)
