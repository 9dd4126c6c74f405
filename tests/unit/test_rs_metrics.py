"""resource_service.metrics: each request counted once, by outcome; gauges read at scrape time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Security
from prometheus_client.parser import text_string_to_metric_families

from resource_service import (
    Authenticated,
    BearerAuthMiddleware,
    RequestIdMiddleware,
    ResourceSettings,
    Verifier,
    create_app,
    install_error_handlers,
    metrics_endpoint,
)
from resource_service.metrics import LatencyHistogram, RequestTimer, ResourceMetrics
from tests.unit import fakes
from tests.unit.fakes import ISSUER, Issuer

pytestmark = pytest.mark.anyio
NOW = int(fakes.NOW)


def counts(metrics: ResourceMetrics | None, name: str) -> dict[tuple[str, ...], float]:
    """Non-zero samples of `name`, keyed by their label values."""
    assert metrics is not None
    out: dict[tuple[str, ...], float] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            if sample.name == name and sample.value:
                out[tuple(sample.labels.values())] = sample.value
    return out


def verifier(issuer: Issuer, **settings: Any) -> Verifier:
    return Verifier(
        ResourceSettings(auth_url=ISSUER, **settings), clock=lambda: NOW + 1, transport=httpx.MockTransport(issuer)
    )


@pytest.fixture
def issuer() -> Issuer:
    return Issuer("ed-1", "EdDSA")


async def get(app: Any, path: str, token: str | None = None, method: str = "GET") -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        return await client.request(method, path, headers=headers)


@pytest.fixture
async def demo(issuer: Issuer) -> AsyncIterator[FastAPI]:
    app = create_app(ResourceSettings(auth_url=ISSUER), verifier=verifier(issuer))
    async with app.router.lifespan_context(app):
        yield app


async def test_the_demo_counts_each_request_once_and_scope_refusals_apart(demo: FastAPI, issuer: Issuer) -> None:
    v: Verifier = demo.state.verifier
    assert (await get(demo, "/me", issuer.mint())).status_code == 200
    assert (await get(demo, "/reports", issuer.mint(scope="profile"))).status_code == 403
    assert (await get(demo, "/me", issuer.mint(exp=NOW - 100))).status_code == 401
    assert (await get(demo, "/me")).status_code == 401
    assert counts(v.metrics, "resource_verifications_total") == {
        ("ok",): 2,
        ("insufficient_scope",): 1,
        ("expired",): 1,
        ("missing_credentials",): 1,
    }


async def test_the_demo_serves_metrics_without_a_token_and_reads_gauges_at_scrape_time(demo: FastAPI) -> None:
    response = await get(demo, "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples = {s.name: s.value for f in text_string_to_metric_families(response.text) for s in f.samples}
    assert samples["resource_jwks_keys"] == 1
    assert samples["resource_revocation_list_size"] == 0
    assert samples["resource_revocation_staleness_seconds"] == 0  # synced at start, by this clock
    assert counts(demo.state.verifier.metrics, "resource_jwks_fetches_total") == {("ok",): 1}


async def test_staleness_is_absent_before_the_first_sync_and_refusals_count_as_unavailable(issuer: Issuer) -> None:
    v = verifier(issuer)  # never started: no keys, no revocation copy
    app = FastAPI()
    app.add_middleware(BearerAuthMiddleware, verifier=v)
    assert (await get(app, "/me", issuer.mint())).status_code == 503
    assert counts(v.metrics, "resource_verifications_total") == {("unavailable",): 1}
    assert v.metrics is not None
    names = {s.name for f in text_string_to_metric_families(v.metrics.render().decode()) for s in f.samples}
    assert "resource_revocation_staleness_seconds" not in names and "resource_jwks_keys" in names
    assert "resource_revocation_push_connected" not in names  # no push source before discovery


async def test_the_dependency_counts_when_no_middleware_decided(issuer: Issuer) -> None:
    v = verifier(issuer)
    await v.start()
    try:
        auth = Authenticated(v, token_url=f"{ISSUER}/token")
        app = FastAPI()
        install_error_handlers(app)

        @app.get("/reports")
        async def reports(claims: dict[str, Any] = Security(auth, scopes=["reports:read"])) -> dict[str, Any]:
            return claims

        assert (await get(app, "/reports", issuer.mint())).status_code == 200
        assert (await get(app, "/reports", issuer.mint(scope=""))).status_code == 403
        assert (await get(app, "/reports", issuer.mint(kid="ed-1", aud="elsewhere"))).status_code == 401
        assert counts(v.metrics, "resource_verifications_total") == {
            ("ok",): 2,
            ("insufficient_scope",): 1,
            ("wrong_audience",): 1,
        }
    finally:
        await v.stop()


async def test_jwks_fetch_errors_are_counted_and_the_last_key_set_kept(issuer: Issuer) -> None:
    v = verifier(issuer, jwks_min_refetch_interval=1.0)
    await v.start()
    try:
        issuer.down = True
        assert v.jwks is not None and not await v.jwks.refresh()
        assert counts(v.metrics, "resource_jwks_fetches_total") == {("ok",): 1, ("error",): 1}
        assert counts(v.metrics, "resource_jwks_keys") == {(): 1}
    finally:
        await v.stop()


async def test_a_disabled_verifier_counts_nothing_and_has_no_endpoint(issuer: Issuer) -> None:
    v = verifier(issuer, metrics_enabled=False)
    assert v.metrics is None
    with pytest.raises(ValueError, match="RESOURCE_METRICS_ENABLED"):
        metrics_endpoint(v)
    app = create_app(ResourceSettings(auth_url=ISSUER, metrics_enabled=False), verifier=v)
    async with app.router.lifespan_context(app):
        assert (await get(app, "/me", issuer.mint())).status_code == 200
        assert (await get(app, "/metrics")).status_code == 404


async def test_each_verifier_keeps_its_own_registry(issuer: Issuer) -> None:
    one, two = verifier(issuer), verifier(issuer)
    assert one.metrics is not None and two.metrics is not None
    one.metrics.ok()
    assert counts(one.metrics, "resource_verifications_total") == {("ok",): 1}
    assert counts(two.metrics, "resource_verifications_total") == {}


async def test_latency_is_labelled_by_route_template_with_bounded_values(issuer: Issuer) -> None:
    metrics = verifier(issuer).metrics
    assert metrics is not None
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("bug")

    app.add_middleware(RequestIdMiddleware, observe=RequestTimer(metrics.latency, app.routes))
    for path in ("/items/1", "/items/2", "/items/3"):
        assert (await get(app, path)).status_code == 200
    assert (await get(app, "/items/4", method="POST")).status_code == 405
    assert (await get(app, "/random/a1b2c3")).status_code == 404
    assert (await get(app, "/items/5", method="BREW")).status_code == 405
    assert (await get(app, "/boom")).status_code == 500
    assert counts(metrics, "resource_http_request_duration_seconds_count") == {
        ("GET", "/items/{item_id}", "200"): 3,
        ("POST", "/items/{item_id}", "405"): 1,
        ("GET", "other", "404"): 1,
        ("other", "/items/{item_id}", "405"): 1,
        ("GET", "/boom", "500"): 1,
    }


async def test_a_request_refused_before_routing_is_timed_under_its_route(issuer: Issuer) -> None:
    v = verifier(issuer)
    assert v.metrics is not None
    app = FastAPI()

    @app.get("/users/{user_id}")
    async def user(user_id: str) -> dict[str, str]:
        return {"id": user_id}

    app.add_middleware(BearerAuthMiddleware, verifier=v)
    app.add_middleware(RequestIdMiddleware, observe=RequestTimer(v.metrics.latency, app.routes))
    assert (await get(app, "/users/alice")).status_code == 401
    assert counts(v.metrics, "resource_http_request_duration_seconds_count") == {("GET", "/users/{user_id}", "401"): 1}


def test_the_latency_histogram_renders_cumulative_buckets_with_inclusive_bounds() -> None:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    registry = CollectorRegistry()
    histogram = LatencyHistogram("t_seconds", "test", buckets=(0.001, 0.01), registry=registry)
    for seconds in (0.001, 0.005, 0.02, 0.0001):  # on a bound, between bounds, past every bound, below all
        histogram.observe(("GET", "/me", 200), seconds)
    (family,) = text_string_to_metric_families(generate_latest(registry).decode())
    samples = {(s.name, s.labels.get("le")): s.value for s in family.samples}

    assert family.type == "histogram"
    assert {s.labels["route"] for s in family.samples} == {"/me"}
    assert samples == {
        ("t_seconds_bucket", "0.001"): 2,  # 0.0001 and 0.001: a bound is inclusive
        ("t_seconds_bucket", "0.01"): 3,
        ("t_seconds_bucket", "+Inf"): 4,
        ("t_seconds_count", None): 4,
        ("t_seconds_sum", None): pytest.approx(0.0261),
    }
