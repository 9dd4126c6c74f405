"""The auth service down for a while: replicas verify on with the keys they hold and say
how stale their revocation copy grows; one with a fail-closed bound refuses (503) past
it and reports unready; when the issuer is back on the same port and data, every replica
recovers by itself."""

from __future__ import annotations

import signal

import httpx
import pytest

from tests.conftest import PASSWORD, Stack, claims_of, eventually
from tests.faults.storm import add_users

pytestmark = pytest.mark.fault

BOUND = 3.0  # seconds of staleness the bounded replica tolerates


def staleness(stack: Stack, url: str, path: str = "/healthz") -> float:
    value = stack.http.get(f"{url}{path}").json()["revocation_staleness"]
    assert isinstance(value, float | int)
    return float(value)


def test_replicas_ride_out_an_issuer_outage_and_recover_when_it_returns(stack: Stack) -> None:
    add_users(f"sqlite+aiosqlite:///{stack.tmp / 'data' / 'auth.db'}", ["alice"], PASSWORD, "reports:read")
    auth = stack.start_auth()
    (open_rep,) = stack.start_replicas(1)
    (bounded,) = stack.start_replicas(1, RESOURCE_MAX_REVOCATION_STALENESS=str(BOUND))
    valid = str(stack.login()["access_token"])
    revoked = str(stack.login()["access_token"])
    stack.http.post(f"{auth.url}/revoke", data={"token": revoked})
    assert eventually(lambda: all(stack.me(r, revoked).status_code == 401 for r in (open_rep, bounded)))
    assert all(stack.me(r, valid).status_code == 200 for r in (open_rep, bounded))

    auth.stop(signal.SIGKILL)
    with pytest.raises(httpx.ConnectError):
        stack.login()

    # Past the bound, and still growing: the copy is not refreshed while the issuer is away.
    assert eventually(lambda: staleness(stack, bounded.url) > BOUND + 1, timeout=20, interval=0.1)
    first = staleness(stack, open_rep.url)
    assert eventually(lambda: staleness(stack, open_rep.url) > first + 1, timeout=10, interval=0.1)
    assert staleness(stack, open_rep.url, "/readyz") > first

    # Unbounded: verifies on with the cached keys and the last revocation copy; still ready.
    assert [stack.me(open_rep, valid).status_code for _ in range(5)] == [200] * 5
    assert stack.me(open_rep, revoked).status_code == 401
    ready = stack.http.get(f"{open_rep.url}/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["revocations"] == "ok"

    # Bounded: fails closed, the RFC 6750 way for "try later", and tells the balancer it is unready.
    for token in (valid, revoked, "not.a.token"):
        refused = stack.me(bounded, token)
        assert refused.status_code == 503, refused.text
        body = refused.json()
        assert body["error"] == "temporarily_unavailable" and "stale" in body["error_description"]
        assert int(refused.headers["retry-after"]) >= 1
        assert "www-authenticate" not in refused.headers  # not a verdict on the token
        assert refused.headers["x-replica-id"] == bounded.name
    health = stack.http.get(f"{bounded.url}/healthz")
    assert health.status_code == 200 and health.json()["revocation_staleness"] > BOUND  # alive, just stale
    unready = stack.http.get(f"{bounded.url}/readyz")
    assert unready.status_code == 503 and unready.json()["checks"]["revocations"].startswith("stale")

    auth.start()  # the same port and data directory: the same keys and feed
    assert eventually(lambda: stack.me(bounded, valid).status_code == 200, timeout=20, interval=0.1)
    assert eventually(
        lambda: all(stack.http.get(f"{r.url}/readyz").status_code == 200 for r in (open_rep, bounded)), timeout=10
    )
    # The unbounded replica was ready all along, so its readiness says nothing about its copy:
    # wait for its own next pull or reconnect (the stream's backoff grew during the outage).
    assert eventually(lambda: all(staleness(stack, r.url) < BOUND for r in (open_rep, bounded)), timeout=35)
    assert all(stack.me(r, revoked).status_code == 401 for r in (open_rep, bounded))

    fresh = stack.login()  # signed with the same key: no replica needs a refetch
    assert claims_of(str(fresh["access_token"]))[0]["kid"] == claims_of(valid)[0]["kid"]
    assert all(stack.me(r, str(fresh["access_token"])).status_code == 200 for r in (open_rep, bounded))
    stack.http.post(f"{auth.url}/revoke", data={"token": valid})  # and revocations flow again
    assert eventually(lambda: all(stack.me(r, valid).status_code == 401 for r in (open_rep, bounded)), timeout=10)
