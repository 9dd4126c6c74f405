"""Prometheus metrics of one auth-service app: tokens, logins, revocations, keys, latency.

One `AuthMetrics` per app, with a registry of its own (never the process-wide default):
tests and benchmarks build several apps in one process. Counters are counted where the
event happens (routes/token.py, grants.py, clients.py, revocation.py); gauges that need
the database are read in the async `/metrics` handler just before rendering, and the
signing-key gauges are read from the `KeyManager` at scrape time. Labels carry only
bounded, public values (grant types, RFC 6749 error codes, kinds, kids): never a token,
a username, a client id or a secret.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Protocol

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from resource_service.metrics import LatencyHistogram, RequestTimer

from .clock import Clock, system_clock
from .errors import OAuthError, RateLimited, Unavailable
from .storage.keystore import KeystoreError
from .storage.unavailable import database_unavailable

if TYPE_CHECKING:
    from .keys import KeyManager
    from .storage import RevocationStore

__all__ = ["NO_METRICS", "AuthMetrics", "Metrics", "NoMetrics", "request_timer", "token_outcome"]

log = logging.getLogger("auth_service")

GRANT_TYPES = ("authorization_code", "password", "refresh_token", "client_credentials")
REVOCATION_KINDS = ("jti", "sid", "sub")
RATE_LIMITED = ("login", "client_secret", "refresh", "revocation_stream", "revocation_pull")


def token_outcome(exc: BaseException) -> str:
    """The outcome label of a refused token request: the RFC 6749 error code sent, except
    "rate_limited" (429) and "unavailable" (503), which share temporarily_unavailable."""
    if isinstance(exc, RateLimited):
        return "rate_limited"
    if isinstance(exc, Unavailable) or database_unavailable(exc):
        return "unavailable"
    if isinstance(exc, OAuthError):
        return exc.error
    return "server_error"


class Metrics(Protocol):
    """What the request path counts. `AuthMetrics` counts; `NO_METRICS` (AUTH_METRICS_ENABLED
    false) does nothing, so callers never check for a missing collaborator."""

    def token_request(self, grant_type: str | None) -> AbstractContextManager[None]: ...

    def login_failed(self) -> None: ...

    def rate_limited(self, what: str) -> None: ...

    def refresh_reused(self) -> None: ...

    def revoked(self, kind: str) -> None: ...


class NoMetrics:
    """Counts nothing: the metrics of an app with AUTH_METRICS_ENABLED=false."""

    @contextmanager
    def token_request(self, grant_type: str | None) -> Iterator[None]:
        yield

    def login_failed(self) -> None:
        pass

    def rate_limited(self, what: str) -> None:
        pass

    def refresh_reused(self) -> None:
        pass

    def revoked(self, kind: str) -> None:
        pass


NO_METRICS = NoMetrics()


class AuthMetrics:
    """Every metric of one app. Counting methods are cheap and never raise."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self._tokens = Counter(
            "auth_token_requests",
            "POST /token requests by grant type and outcome (issued, or the error code sent)",
            ["grant_type", "outcome"],
            registry=r,
        )
        for grant_type in GRANT_TYPES:  # present from the start, so rate() sees the first one
            self._tokens.labels(grant_type, "issued")
        self._login_failures = Counter("auth_login_failures", "Password logins refused for bad credentials", registry=r)
        self._rate_limited = Counter(
            "auth_rate_limited",
            "Requests refused with 429 for too many failed "
            "logins (login) or client secrets (client_secret), refreshes of one "
            "session (refresh), open push streams (revocation_stream) or pull pages rendered (revocation_pull)",
            ["what"],
            registry=r,
        )
        self._reuse = Counter(
            "auth_refresh_reuse_detected",
            "Retired refresh tokens presented again (each revokes its login session)",
            registry=r,
        )
        self._revocations = Counter(
            "auth_revocations", "Entries this instance added to the revocation list, by kind", ["kind"], registry=r
        )
        for what in RATE_LIMITED:
            self._rate_limited.labels(what)
        for kind in REVOCATION_KINDS:
            self._revocations.labels(kind)
        self._list_size = Gauge("auth_revocation_list_size", "Live entries in the revocation list", registry=r)
        self._cursor = Gauge(
            "auth_revocation_feed_cursor", "Sequence number of the newest revocation feed entry", registry=r
        )
        self._streams = Gauge(
            "auth_revocation_streams_open",
            "Revocation push streams (GET /revocations/stream) this instance holds open",
            registry=r,
        )
        self._streams_max = Gauge(
            "auth_revocation_streams_max", "AUTH_REVOCATION_STREAMS_MAX: push streams beyond it get 429", registry=r
        )
        self.latency = LatencyHistogram(
            "auth_http_request_duration_seconds", "Time to answer an HTTP request, by route template", registry=r
        )
        self._signing = _SigningKey()
        r.register(self._signing)

    # -- counting -------------------------------------------------------------------------

    @contextmanager
    def token_request(self, grant_type: str | None) -> Iterator[None]:
        """Count the `POST /token` request run inside: issued, or the error it raised."""
        grant = grant_type if grant_type in GRANT_TYPES else "other"  # a client picks the value
        try:
            yield
        except Exception as exc:  # counted, then rendered by the app's handlers as before
            self._tokens.labels(grant, token_outcome(exc)).inc()
            raise
        self._tokens.labels(grant, "issued").inc()

    def login_failed(self) -> None:
        self._login_failures.inc()

    def rate_limited(self, what: str) -> None:
        self._rate_limited.labels(what).inc()

    def refresh_reused(self) -> None:
        self._reuse.inc()

    def revoked(self, kind: str) -> None:
        self._revocations.labels(kind).inc()

    # -- scraping -------------------------------------------------------------------------

    def watch_streams(self, open_streams: Callable[[], int], cap: int) -> None:
        """Report the open push streams (read at scrape time) and their cap."""
        self._streams.set_function(open_streams)
        self._streams_max.set(cap)

    def watch_keys(self, keys: KeyManager, clock: Clock) -> None:
        """Report the signing key of `keys` (known only once the app has started)."""
        self._signing.keys, self._signing.clock = keys, clock

    async def refresh(self, store: RevocationStore, now: int) -> None:
        """Read the gauges that live in the database. NaN when it cannot be read: a stale
        number would look current to an alert."""
        head: float
        size: float
        try:
            _, head = await store.feed_head()
            size = await store.count_revocations(now)
        except Exception as exc:  # the scrape still answers, with what this process knows
            log.warning("metrics: revocation list not readable: %s", type(exc).__name__)
            head = size = math.nan
        self._cursor.set(head)
        self._list_size.set(size)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _SigningKey(Collector):
    """auth_signing_key_info{kid,alg} and auth_signing_key_age_seconds, read at scrape time."""

    def __init__(self) -> None:
        self.keys: KeyManager | None = None
        self.clock: Clock = system_clock

    def describe(self) -> Iterable[Metric]:
        return self._families(None, 0, None)

    def collect(self) -> Iterable[Metric]:
        if self.keys is None:
            return self._families(None, 0, None)
        now = int(self.clock())
        try:
            kid, alg, _ = self.keys.signing_key(now)
        except KeystoreError:
            return self._families(None, 0, None)
        activated = next((r.activates_at for r in self.keys.records() if r.kid == kid), now)
        return self._families((kid, alg), now, activated)

    @staticmethod
    def _families(key: tuple[str, str] | None, now: int, activated: int | None) -> list[Metric]:
        info = GaugeMetricFamily(
            "auth_signing_key_info",
            "1 for the key that signs now (kid is its public RFC 7638 thumbprint)",
            labels=["kid", "alg"],
        )
        age = GaugeMetricFamily(
            "auth_signing_key_age_seconds",
            "Seconds since the signing key began signing (since the last rotation)",
            value=None if activated is None else max(0, now - activated),
        )
        if key is not None:
            info.add_metric(list(key), 1)
        return [info, age]


def request_timer(app: FastAPI, metrics: AuthMetrics) -> RequestTimer:
    """The timer to pass as `observe` to the app's outermost `RequestIdMiddleware`, which
    times every request once for its access line and for the latency histogram."""
    return RequestTimer(metrics.latency, app.routes)
