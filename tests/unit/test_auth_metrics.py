"""auth_service.metrics: outcome labels, bounded label values, gauges that survive a broken database."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from auth_service.errors import (
    InvalidClient,
    InvalidGrant,
    InvalidRequest,
    RateLimited,
    Unavailable,
    UnsupportedGrantType,
)
from auth_service.metrics import AuthMetrics, token_outcome
from auth_service.storage import open_store

pytestmark = pytest.mark.anyio


def samples(metrics: AuthMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(metrics.render().decode())
        for s in f.samples
    }


@pytest.mark.parametrize(
    "error,outcome",
    [
        (InvalidGrant("bad password"), "invalid_grant"),
        (InvalidClient("no such client"), "invalid_client"),
        (UnsupportedGrantType("nope"), "unsupported_grant_type"),
        (RateLimited(5), "rate_limited"),  # 429 and 503 share temporarily_unavailable: told apart here
        (Unavailable("hasher busy"), "unavailable"),
        (OperationalError("SELECT 1", {}, ConnectionRefusedError()), "unavailable"),  # rendered as a 503
        (RuntimeError("bug"), "server_error"),
    ],
)
def test_a_refused_token_request_is_labelled_with_the_code_sent(error: Exception, outcome: str) -> None:
    assert token_outcome(error) == outcome


def test_a_grant_type_the_client_made_up_is_labelled_other() -> None:
    metrics = AuthMetrics()
    with pytest.raises(UnsupportedGrantType), metrics.token_request("x" * 500):
        raise UnsupportedGrantType("no such grant")
    with pytest.raises(InvalidRequest), metrics.token_request(None):
        raise InvalidRequest("missing parameter 'grant_type'")
    got = samples(metrics)
    assert got[("auth_token_requests_total", (("grant_type", "other"), ("outcome", "unsupported_grant_type")))] == 1
    assert got[("auth_token_requests_total", (("grant_type", "other"), ("outcome", "invalid_request")))] == 1
    assert not any("xxx" in str(labels) for _, labels in got)


async def test_database_gauges_are_read_at_scrape_time_and_nan_when_unreadable(tmp_path: Path) -> None:
    store = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}")
    try:
        metrics = AuthMetrics()
        await store.revoke_jti("j1", 2**31, 0)
        await metrics.refresh(store, 0)
        assert samples(metrics)[("auth_revocation_list_size", ())] == 1
        assert samples(metrics)[("auth_revocation_feed_cursor", ())] == 1
        async with store.engine.begin() as conn:
            await conn.execute(text("DROP TABLE revocations"))
        await metrics.refresh(store, 0)  # answers all the same
        assert math.isnan(samples(metrics)[("auth_revocation_list_size", ())])
    finally:
        await store.close()


def test_no_signing_key_gauge_before_the_keys_are_known() -> None:
    got = samples(AuthMetrics())
    assert not [name for name, _ in got if name.startswith("auth_signing_key")]
