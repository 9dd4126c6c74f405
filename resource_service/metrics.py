"""Prometheus metrics of a replica: what it decided, how fresh its keys and list are, how fast.

Each `Verifier` owns a `ResourceMetrics` with a registry of its own (never the process-wide
default one): tests and benchmarks build several verifiers in one process, and a user's
app may already use the default registry for its own metrics. Serve it with
`metrics_endpoint(verifier)`:

    from resource_service import BearerAuthMiddleware, RequestIdMiddleware, metrics_endpoint
    from resource_service.asgi import DEFAULT_EXEMPT
    from resource_service.metrics import RequestTimer

    app.add_route("/metrics", metrics_endpoint(verifier), include_in_schema=False)
    app.add_middleware(BearerAuthMiddleware, verifier=verifier, exempt=(*DEFAULT_EXEMPT, "/metrics"))
    # optional, outermost: request ids, and every request timed into the latency histogram
    app.add_middleware(RequestIdMiddleware, observe=RequestTimer(verifier.metrics.latency, app.routes))

Verification outcomes are counted by `BearerAuthMiddleware` and `Authenticated` (each
request once; a scope refusal after a verified token counts as `insufficient_scope` too).

The verified path pays one dict update: outcomes are plain ints, turned into a counter
family when Prometheus scrapes. Gauges (keys, list size, staleness) are read from the
verifier when Prometheus scrapes, so they cost nothing between scrapes. With
`RESOURCE_METRICS_ENABLED=false` the verifier has no metrics object and nothing is counted.
"""

from __future__ import annotations

import itertools
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

if TYPE_CHECKING:
    from .verifier import Verifier

__all__ = ["CONTENT_TYPE", "LATENCY_BUCKETS", "LatencyHistogram", "RequestTimer", "ResourceMetrics", "metrics_endpoint"]

# The Prometheus text format every scraper reads (exposition format 0.0.4).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Seconds. A verified request takes well under a millisecond and a login tens of them;
# Prometheus' default buckets start at 5 ms and would put every replica request in one.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# Every reason a request can be refused for (TokenError.reason and AuthError.reason), plus
# "ok" and "insufficient_scope": the label's whole value set, bound up front.
OUTCOMES = (
    "ok",
    "missing_credentials",
    "invalid_request",
    "malformed",
    "bad_header",
    "unsupported_alg",
    "alg_mismatch",
    "wrong_typ",
    "unknown_kid",
    "bad_signature",
    "missing_claim",
    "bad_claim",
    "wrong_issuer",
    "wrong_audience",
    "expired",
    "not_yet_valid",
    "iat_in_future",
    "revoked",
    "unavailable",
    "insufficient_scope",
)
JWKS_OUTCOMES = ("ok", "not_modified", "error")

# Methods outside this set are labelled "other": a client picks the method, and every
# distinct label value is a time series Prometheus keeps.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class ResourceMetrics:
    """The metrics of one verifier, in a registry of their own."""

    def __init__(self, verifier: Verifier) -> None:
        self.registry = CollectorRegistry()
        # Not prometheus_client's `Counter`: its `inc` takes a lock, about 0.4 µs a request
        # on a path that costs a few. Outcomes are counted on the event loop's one thread,
        # so plain ints do, and the counter family is built when Prometheus scrapes.
        self._outcomes = dict.fromkeys(OUTCOMES, 0)
        self.registry.register(_Outcomes(self._outcomes))
        fetches = Counter(
            "resource_jwks_fetches", "JWKS fetches from the issuer, by outcome", ["outcome"], registry=self.registry
        )
        self._fetches = {outcome: fetches.labels(outcome).inc for outcome in JWKS_OUTCOMES}
        self.latency = LatencyHistogram(
            "resource_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template",
            registry=self.registry,
        )
        self.registry.register(_VerifierState(verifier))

    def ok(self) -> None:
        """Count a verified request (the hot path: one dict update)."""
        self._outcomes["ok"] += 1

    def refused(self, reason: str) -> None:
        """Count a refusal (an `AuthError.reason`) or an insufficient scope."""
        self._outcomes[reason] = self._outcomes.get(reason, 0) + 1

    def jwks_fetched(self, outcome: str) -> None:
        """Count a JWKS fetch: ok (a new key set), not_modified (304) or error."""
        self._fetches[outcome]()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class LatencyHistogram(Collector):
    """Request durations by (method, route template, status), as a Prometheus histogram.

    Not prometheus_client's `Histogram`: its `observe` takes a lock and walks the buckets in
    Python, about 2 µs a request, which the verified path measurably felt (bench suite
    "verify", metrics on ÷ off). Requests are observed on the event loop's one thread, so
    plain lists do: a bisect and two additions per request; the cumulative buckets are
    built when Prometheus scrapes.
    """

    LABELS = ("method", "route", "status")

    def __init__(
        self,
        name: str,
        documentation: str,
        *,
        buckets: Sequence[float] = LATENCY_BUCKETS,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._name, self._documentation = name, documentation
        self._bounds = tuple(sorted(buckets))
        self._les = [floatToGoString(b) for b in self._bounds] + ["+Inf"]  # type: ignore[no-untyped-call]  # prometheus_client leaves it unannotated
        # Per series: a count per bucket (the last one past every bound), then the sum.
        self._series: dict[tuple[str, str, int], list[float]] = {}
        if registry is not None:
            registry.register(self)

    def observe(self, key: tuple[str, str, int], seconds: float) -> None:
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = [0] * (len(self._bounds) + 2)
        series[bisect_left(self._bounds, seconds)] += 1  # a bucket counts values <= its bound
        series[-1] += seconds

    def describe(self) -> Iterable[Metric]:
        return [HistogramMetricFamily(self._name, self._documentation, labels=self.LABELS)]

    def collect(self) -> Iterable[Metric]:
        family = HistogramMetricFamily(self._name, self._documentation, labels=self.LABELS)
        for (method, route, status), series in list(self._series.items()):
            cumulative = itertools.accumulate(series[:-1])
            family.add_metric([method, route, str(status)], list(zip(self._les, cumulative, strict=False)), series[-1])
        return [family]


class _Outcomes(Collector):
    """`resource_verifications_total{outcome}`, read from the counts `ResourceMetrics` keeps."""

    _NAME, _HELP = "resource_verifications", "Requests decided by the verifier, by outcome: ok or the refusal reason"

    def __init__(self, counts: dict[str, int]) -> None:
        self._counts = counts

    def describe(self) -> Iterable[Metric]:
        return [CounterMetricFamily(self._NAME, self._HELP, labels=["outcome"])]

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(self._NAME, self._HELP, labels=["outcome"])
        for outcome, count in list(self._counts.items()):
            family.add_metric([outcome], count)
        return [family]


class _VerifierState(Collector):
    """Gauges read from the verifier at scrape time rather than kept up to date per change."""

    def __init__(self, verifier: Verifier) -> None:
        self._verifier = verifier

    def describe(self) -> Iterable[Metric]:
        # Families without a value carry no sample: the registry learns the names without
        # reading the verifier (which may not have fetched anything yet).
        return self._families(keys=None, size=None, staleness=None, push=None)

    def collect(self) -> Iterable[Metric]:
        status = self._verifier.status()
        push = status["revocation_push"]
        return self._families(
            keys=status["keys"],
            size=len(self._verifier.revocations),
            staleness=status["revocation_staleness"],
            push=None if push is None or push["source"] is None else float(push["connected"]),
        )

    @staticmethod
    def _families(*, keys: int | None, size: int | None, staleness: float | None, push: float | None) -> list[Metric]:
        # Staleness is absent until the first sync: there is no age to report, and a made-up
        # number (0, or infinity) would either hide the problem or page someone at start-up.
        return [
            GaugeMetricFamily(
                "resource_jwks_keys", "Signing keys this replica holds from the issuer's JWKS", value=keys
            ),
            GaugeMetricFamily(
                "resource_revocation_list_size", "Entries in this replica's revocation list copy", value=size
            ),
            GaugeMetricFamily(
                "resource_revocation_staleness_seconds",
                "Seconds since the revocation list copy was last known current",
                value=staleness,
            ),
            # Absent when push is off (RESOURCE_REVOCATION_PUSH=false): nothing to be connected.
            GaugeMetricFamily(
                "resource_revocation_push_connected",
                "1 while the revocation push (SSE stream or Redis subscription) is connected, else 0",
                value=push,
            ),
        ]


def metrics_endpoint(verifier: Verifier) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette/FastAPI endpoint serving `verifier`'s metrics in the Prometheus text format.

        app.add_route("/metrics", metrics_endpoint(verifier), include_in_schema=False)

    Exempt its path from `BearerAuthMiddleware` (the `exempt` argument) so Prometheus can
    scrape it, and keep it off the public network. Raises `ValueError` when the verifier
    counts nothing (`RESOURCE_METRICS_ENABLED=false`).
    """
    metrics = verifier.metrics
    if metrics is None:
        raise ValueError("this verifier has no metrics (RESOURCE_METRICS_ENABLED is false)")

    async def endpoint(request: Request) -> Response:
        # On the event loop, not in a thread: the gauges read the verifier's state, which
        # only the loop changes. A replica's registry renders in well under a millisecond.
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    return endpoint


class RequestTimer:
    """Observes one request's duration under its method, route template and status.

    The route label is the matched route's template (`/users/{id}`, never `/users/42`), or
    "other" when nothing matched, so a scan of random paths cannot grow the series count.
    A request refused before routing (a 401 from the bearer middleware) is matched against
    `routes` here, so it is labelled with the route it was aimed at. Pass it as `observe`
    to the outermost `RequestIdMiddleware`, which times every request once for its access
    line and for this.
    """

    def __init__(self, histogram: LatencyHistogram, routes: Sequence[BaseRoute] = ()) -> None:
        self._observe = histogram.observe
        self._routes = routes  # the app's route list (a live reference)

    def __call__(self, scope: Scope, status: int, seconds: float) -> None:
        route = scope.get("route")  # set by Starlette's router on a match
        template = getattr(route, "path", None) if route is not None else self._match(scope)
        method = scope["method"] if scope["method"] in _METHODS else "other"
        self._observe((method, template or "other", status), seconds)

    def _match(self, scope: Scope) -> str | None:
        for route in self._routes:
            match, _ = route.matches(scope)
            if match is not Match.NONE:
                return getattr(route, "path", None)
        return None
