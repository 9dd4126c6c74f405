"""`GET /revocations/stream` is capped per client address and in all; X-Forwarded-For counts
only from a configured proxy."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from auth_service.launch import Service, auth_process
from tests.conftest import AUTH_ENV, Stack, eventually

PER_ADDRESS = 3


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(tmp_path_factory.mktemp("streams"))
    try:
        stack.start_auth(AUTH_REVOCATION_STREAMS_PER_ADDRESS=str(PER_ADDRESS), AUTH_REVOCATION_STREAMS_MAX="10")
        stack.add_user()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def behind_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """An issuer that believes X-Forwarded-For from loopback, as behind a balancer on the same host."""
    service = auth_process(
        data=tmp_path_factory.mktemp("proxied"),
        env={
            **AUTH_ENV,
            "AUTH_TRUSTED_PROXIES": '["127.0.0.1"]',
            "AUTH_REVOCATION_STREAMS_PER_ADDRESS": str(PER_ADDRESS),
            "AUTH_REVOCATION_STREAMS_MAX": "10",
        },
    ).start()
    try:
        yield service
    finally:
        service.stop()


def _open(
    streams: contextlib.ExitStack,
    client: httpx.Client,
    url: str,
    forwarded_for: str | None = None,
) -> httpx.Response:
    """One stream held open until `streams` closes; its first event read when it was accepted."""
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    response = streams.enter_context(client.stream("GET", f"{url}/revocations/stream", headers=headers))
    if response.status_code == 200:
        lines = response.iter_lines()
        streams.callback(lines.close)  # held: a dropped line iterator would close the stream
        assert next(lines).startswith("event: heartbeat")
    else:
        response.read()
    return response


def _refused(response: httpx.Response) -> bool:
    return (
        response.status_code == 429
        and response.json()["error"] == "temporarily_unavailable"
        and int(response.headers["retry-after"]) >= 1
    )


def _sample(url: str, name: str, labels: dict[str, str] | None = None) -> float:
    """One sample of the issuer's /metrics."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == (labels or {}):
                return float(sample.value)
    raise AssertionError(f"no {name} {labels} in /metrics")


def test_streams_beyond_the_per_address_cap_get_429_while_token_and_healthz_answer(capped: Stack) -> None:
    assert capped.auth is not None
    url = capped.auth.url
    refused_before = _sample(url, "auth_rate_limited_total", {"what": "revocation_stream"})
    with httpx.Client(timeout=10) as client, contextlib.ExitStack() as streams:
        held = [_open(streams, client, url) for _ in range(PER_ADDRESS)]
        assert [r.status_code for r in held] == [200] * PER_ADDRESS
        assert _sample(url, "auth_revocation_streams_open") == PER_ADDRESS  # what an operator graphs against the cap
        assert _sample(url, "auth_revocation_streams_max") == 10
        assert _refused(_open(streams, client, url))
        assert _sample(url, "auth_rate_limited_total", {"what": "revocation_stream"}) == refused_before + 1
        assert httpx.get(f"{url}/healthz").status_code == 200
        assert capped.login()["token_type"] == "Bearer"
        held[0].close()  # a client that hangs up gives its slot back

        def reopened() -> bool:
            with contextlib.ExitStack() as again:
                return _open(again, client, url).status_code == 200

        assert eventually(reopened)


def test_x_forwarded_for_from_an_unconfigured_peer_is_ignored(capped: Stack) -> None:
    assert capped.auth is not None
    with httpx.Client(timeout=10) as client, contextlib.ExitStack() as streams:
        held = [_open(streams, client, capped.auth.url, f"203.0.113.{i}") for i in range(PER_ADDRESS)]
        assert [r.status_code for r in held] == [200] * PER_ADDRESS
        assert _refused(_open(streams, client, capped.auth.url, "203.0.113.99")), "all count as 127.0.0.1"


def test_x_forwarded_for_from_a_trusted_proxy_names_the_client(behind_proxy: Service) -> None:
    url = behind_proxy.url
    with httpx.Client(timeout=10) as client, contextlib.ExitStack() as streams:
        held = [_open(streams, client, url, f"203.0.113.{i}") for i in range(PER_ADDRESS + 1)]
        assert [r.status_code for r in held] == [200] * (PER_ADDRESS + 1), "each client has a cap of its own"
        same = [_open(streams, client, url, "198.51.100.1") for _ in range(PER_ADDRESS + 1)]
        assert [r.status_code for r in same[:PER_ADDRESS]] == [200] * PER_ADDRESS
        assert _refused(same[-1])
