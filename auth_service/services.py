"""The objects a request needs, built once per app in `create_app` and found on app.state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import Request

from .config import Settings
from .grants import Grants
from .keys import KeyManager
from .passwords import PasswordHasher
from .ratelimit import LoginLimiter
from .revocation import RevocationFeed, Revoker
from .storage import Store
from .streams import PullBudget, StreamSlots
from .tokens import TokenMinter

if TYPE_CHECKING:
    from .metrics import AuthMetrics


@dataclass
class Services:
    settings: Settings
    store: Store
    keys: KeyManager
    minter: TokenMinter
    hasher: PasswordHasher
    feed: RevocationFeed
    revoker: Revoker
    grants: Grants
    limiter: LoginLimiter  # logins, and client secrets guessed at any endpoint
    streams: StreamSlots  # open revocation push streams
    pull_budget: PullBudget  # revocation pull pages rendered per address
    redis: Any = None  # redis.asyncio.Redis when AUTH_REDIS_URL is set
    metrics: AuthMetrics | None = None  # None when AUTH_METRICS_ENABLED is false


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]
