"""GET /metrics on real processes: a scripted run moves every counter by exactly what it did.

The scrape before and after is parsed with prometheus_client's own parser, and the counters
are compared as a whole: the ones the script should move moved by the expected amount, and
no other counter moved at all.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.attack.forge import Forger
from tests.conftest import PASSWORD, Stack, bearer, eventually

pytestmark = pytest.mark.slow

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(http: httpx.Client, url: str) -> tuple[str, Samples]:
    response = http.get(f"{url}/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return response.text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def moved(before: Samples, after: Samples, prefix: str) -> dict[tuple[str, ...], float]:
    """Every `<prefix>*_total` sample that changed, keyed by (name, label values...)."""
    out: dict[tuple[str, ...], float] = {}
    for key in before.keys() | after.keys():
        name, labels = key
        if name.startswith(prefix) and name.endswith("_total"):
            delta = after.get(key, 0.0) - before.get(key, 0.0)
            if delta:
                out[(name, *(v for _, v in labels))] = delta
    return out


def labelled(samples: Samples, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


def tamper_signature(token: str) -> str:
    head, payload, signature = token.split(".")
    middle = len(signature) // 2
    swapped = "A" if signature[middle] != "A" else "B"
    return f"{head}.{payload}.{signature[:middle]}{swapped}{signature[middle + 1 :]}"


@pytest.fixture
def metered(stack: Stack) -> Stack:
    stack.start_auth(AUTH_LOGIN_MAX_FAILURES="2")
    stack.add_user("alice", scope="reports:read profile")
    stack.add_user("bob", scope="profile")
    stack.add_client("svc", "svc-secret-of-at-least-32-characters", scope="reports:read")
    stack.start_replicas(1)
    return stack


def test_a_scripted_run_moves_every_counter_by_exactly_what_happened(metered: Stack) -> None:
    s, http = metered, metered.http
    assert s.auth is not None
    auth, replica = s.auth.url, s.replicas[0].url
    mallory = s.add_user("mallory", scope="profile")
    _, auth_before = scrape(http, auth)
    _, replica_before = scrape(http, replica)
    [(old_kid_labels, one)] = labelled(auth_before, "auth_signing_key_info").items()
    assert one == 1

    # -- the issuer: logins, client credentials, refresh and its replay, odd grants --------------
    a1, a2, b1 = s.login("alice"), s.login("alice"), s.login("bob")
    assert s.token(grant_type="password", username="carol", password=PASSWORD).status_code == 400
    assert [s.token(grant_type="password", username="mallory", password="wrong").status_code for _ in range(3)] == [
        400,
        400,
        429,
    ]
    assert (
        http.post(
            f"{auth}/token",
            data={"grant_type": "client_credentials"},
            auth=("svc", "svc-secret-of-at-least-32-characters"),
        ).status_code
        == 200
    )
    assert [
        http.post(f"{auth}/token", data={"grant_type": "client_credentials"}, auth=("ghost", "guess")).status_code
        for _ in range(3)
    ] == [401, 401, 429]
    assert s.token(grant_type="refresh_token", refresh_token=str(a1["refresh_token"])).status_code == 200
    replay = s.token(grant_type="refresh_token", refresh_token=str(a1["refresh_token"]))
    assert replay.status_code == 400 and "already used" in replay.json()["error_description"]
    assert s.token(grant_type="foo").json()["error"] == "unsupported_grant_type"
    assert s.token(username="alice").json()["error"] == "invalid_request"
    assert http.get(f"{auth}/no/such/path/42").status_code == 404

    # -- revocations of each kind: jti (RFC 7009), sid (refresh token, logout), sub (the CLI) ----
    assert http.post(f"{auth}/revoke", data={"token": a2["access_token"]}).status_code == 200
    assert http.post(f"{auth}/revoke", data={"token": b1["refresh_token"]}).status_code == 200
    c1 = s.login("alice")
    assert http.post(f"{auth}/logout", headers=bearer(str(c1["access_token"]))).status_code == 204
    s.cli("revoke", f"--sub={mallory}")  # another process: seen in the list gauges, not this counter

    # -- the replica: one request per outcome ------------------------------------------------------
    d, e = str(s.login("alice")["access_token"]), str(s.login("bob")["access_token"])
    assert [s.me(s.replicas[0], d).status_code for _ in range(3)] == [200] * 3
    assert http.get(f"{replica}/reports", headers=bearer(d)).status_code == 200
    assert http.get(f"{replica}/reports", headers=bearer(e)).status_code == 403  # ok, then insufficient_scope
    assert http.get(f"{replica}/me").status_code == 401
    assert http.get(f"{replica}/me", headers={"Authorization": "Bearer"}).status_code == 400
    assert http.get(f"{replica}/me", headers=bearer("garbage")).status_code == 401
    assert eventually(lambda: value(scrape(http, replica)[1], "resource_revocation_list_size") == 5)
    assert s.me(s.replicas[0], str(a2["access_token"])).status_code == 401  # its jti
    assert s.me(s.replicas[0], str(a1["access_token"])).status_code == 401  # its session, by the replay
    forger = Forger.of(d, s.tmp / "keys")
    now = int(time.time())
    refused = [
        forger.token(exp=now - 120, iat=now - 1000),
        forger.token({"typ": "JWT"}),
        forger.token(aud="other-api"),
        forger.token(iss="https://evil.example"),
        forger.token({"kid": "no-such-key"}),
        tamper_signature(d),
    ]
    assert [s.me(s.replicas[0], token).status_code for token in refused] == [401] * 6
    assert http.get(f"{replica}/no/such/path/42", headers=bearer(d)).status_code == 404  # ok, then 404

    # -- a key rotation: the new key signs after the publish lead (2 * 1 s + 2 s here) -------------
    s.cli("keys", "rotate")
    assert eventually(
        lambda: labelled(scrape(http, auth)[1], "auth_signing_key_info").keys() != {old_kid_labels}, timeout=15
    )
    f = str(s.login("alice")["access_token"])
    assert s.me(s.replicas[0], f).status_code == 200

    auth_text, auth_after = scrape(http, auth)
    replica_text, replica_after = scrape(http, replica)

    assert moved(auth_before, auth_after, "auth_") == {
        ("auth_token_requests_total", "password", "issued"): 7,
        ("auth_token_requests_total", "password", "invalid_grant"): 3,
        ("auth_token_requests_total", "password", "rate_limited"): 1,
        ("auth_token_requests_total", "client_credentials", "issued"): 1,
        ("auth_token_requests_total", "client_credentials", "invalid_client"): 2,
        ("auth_token_requests_total", "client_credentials", "rate_limited"): 1,
        ("auth_token_requests_total", "refresh_token", "issued"): 1,
        ("auth_token_requests_total", "refresh_token", "invalid_grant"): 1,
        ("auth_token_requests_total", "other", "unsupported_grant_type"): 1,
        ("auth_token_requests_total", "other", "invalid_request"): 1,
        ("auth_login_failures_total",): 3,
        ("auth_rate_limited_total", "login"): 1,
        ("auth_rate_limited_total", "client_secret"): 1,
        ("auth_refresh_reuse_detected_total",): 1,
        ("auth_revocations_total", "jti"): 1,
        ("auth_revocations_total", "sid"): 3,  # the replay, the revoked refresh token, the logout
    }
    for gauge in ("auth_revocation_list_size", "auth_revocation_feed_cursor"):
        assert value(auth_after, gauge) - value(auth_before, gauge) == 5, gauge
    [(new_kid_labels, one)] = labelled(auth_after, "auth_signing_key_info").items()
    assert one == 1 and dict(new_kid_labels)["kid"] != dict(old_kid_labels)["kid"]
    assert dict(new_kid_labels)["alg"] == "RS256"
    assert 0 <= value(auth_after, "auth_signing_key_age_seconds") < 15

    def token_latency(samples: Samples, status: str) -> float:
        return value(samples, "auth_http_request_duration_seconds_count", method="POST", route="/token", status=status)

    assert {
        status: token_latency(auth_after, status) - token_latency(auth_before, status)
        for status in ("200", "400", "401", "429")
    } == {"200": 9, "400": 6, "401": 2, "429": 2}
    assert value(auth_after, "auth_http_request_duration_seconds_count", method="GET", route="other", status="404") == 1
    assert "/no/such/path" not in auth_text

    assert moved(replica_before, replica_after, "resource_verifications") == {
        ("resource_verifications_total", outcome): count
        for outcome, count in {
            "ok": 7,
            "insufficient_scope": 1,
            "missing_credentials": 1,
            "invalid_request": 1,
            "malformed": 1,
            "revoked": 2,
            "expired": 1,
            "wrong_typ": 1,
            "wrong_audience": 1,
            "wrong_issuer": 1,
            "unknown_kid": 1,
            "bad_signature": 1,
        }.items()
    }

    def replica_latency(samples: Samples, route: str, status: str) -> float:
        return value(samples, "resource_http_request_duration_seconds_count", method="GET", route=route, status=status)

    assert {
        (route, status): replica_latency(replica_after, route, status) - replica_latency(replica_before, route, status)
        for route, status in [
            ("/me", "200"),
            ("/me", "400"),
            ("/me", "401"),
            ("/reports", "200"),
            ("/reports", "403"),
            ("other", "404"),
        ]
    } == {
        ("/me", "200"): 4,
        ("/me", "400"): 1,
        ("/me", "401"): 10,
        ("/reports", "200"): 1,
        ("/reports", "403"): 1,
        ("other", "404"): 1,
    }
    assert "/no/such/path" not in replica_text
    assert value(replica_after, "resource_revocation_list_size") == 5
    assert 0 <= value(replica_after, "resource_revocation_staleness_seconds") < 5
    assert value(replica_after, "resource_revocation_push_connected") == 1  # its SSE stream is open
    assert value(replica_after, "resource_jwks_keys") == 2  # the old key and the new one
    # JWKS fetches follow the issuer's 1 s max-age here: they moved, and none failed.
    assert value(replica_after, "resource_jwks_fetches_total", outcome="error") == 0
    assert (
        sum(
            value(replica_after, "resource_jwks_fetches_total", outcome=o)
            - value(replica_before, "resource_jwks_fetches_total", outcome=o)
            for o in ("ok", "not_modified")
        )
        > 0
    )

    secrets = [
        PASSWORD,
        "svc-secret-of-at-least-32-characters",
        "guess",
        "mallory",
        "carol",
        "ghost",
        d,
        e,
        f,
        *(str(t[k]) for t in (a1, a2, b1, c1) for k in ("access_token", "refresh_token")),
    ]
    for text in (auth_text, replica_text):
        assert not [secret for secret in secrets if secret in text]


def test_jwks_fetches_are_counted_by_outcome(stack: Stack) -> None:
    # A long max-age: no scheduled refetch during the test, so every fetch is one we caused.
    stack.start_auth(AUTH_JWKS_MAX_AGE="300")
    stack.add_user("alice")
    [replica] = stack.start_replicas(1, RESOURCE_JWKS_MIN_REFETCH_INTERVAL="1")
    http = stack.http

    def fetches() -> dict[str, float]:
        samples = scrape(http, replica.url)[1]
        return {o: value(samples, "resource_jwks_fetches_total", outcome=o) for o in ("ok", "not_modified", "error")}

    assert fetches() == {"ok": 1, "not_modified": 0, "error": 0}  # the fetch at start-up
    junk = Forger.of(str(stack.login()["access_token"]), stack.tmp / "keys").token({"kid": "no-such-key"})
    time.sleep(1.1)  # past the refetch interval since start-up
    assert [stack.me(replica, junk).status_code for _ in range(2)] == [401, 401]
    assert fetches() == {"ok": 1, "not_modified": 1, "error": 0}  # one refetch (ETag: 304), then the limit
    assert stack.auth is not None
    stack.auth.stop()
    time.sleep(1.1)
    assert stack.me(replica, junk).status_code == 401
    assert fetches() == {"ok": 1, "not_modified": 1, "error": 1}
    samples = scrape(http, replica.url)[1]
    assert value(samples, "resource_verifications_total", outcome="unknown_kid") == 3
    assert value(samples, "resource_jwks_keys") == 1  # a failed fetch keeps the last good set


def test_metrics_are_off_the_openapi_documents_and_absent_when_disabled(stack: Stack) -> None:
    stack.start_auth(AUTH_METRICS_ENABLED="false")
    stack.add_user("alice")
    [plain] = stack.start_replicas(1, RESOURCE_METRICS_ENABLED="false")
    for url in (stack.auth.url, plain.url):  # type: ignore[union-attr]
        response = stack.http.get(f"{url}/metrics")
        assert response.status_code == 404, url
        assert "/metrics" not in stack.http.get(f"{url}/openapi.json").json()["paths"]
    assert stack.me(plain, str(stack.login()["access_token"])).status_code == 200
    [metered] = stack.start_replicas(1)
    assert stack.http.get(f"{metered.url}/metrics").status_code == 200  # no token needed
    assert "/metrics" not in stack.http.get(f"{metered.url}/openapi.json").json()["paths"]


def test_the_issuers_metrics_stay_out_of_its_openapi_document(issuer: Stack) -> None:
    assert issuer.auth is not None
    assert issuer.http.get(f"{issuer.auth.url}/metrics").status_code == 200
    assert "/metrics" not in issuer.http.get(f"{issuer.auth.url}/openapi.json").json()["paths"]


def _names(text: str) -> Iterable[str]:
    return (family.name for family in text_string_to_metric_families(text))


def test_every_agreed_metric_is_exposed(issuer: Stack) -> None:
    assert issuer.auth is not None
    issuer.login()
    text, _ = scrape(issuer.http, issuer.auth.url)
    assert set(_names(text)) >= {
        "auth_token_requests",
        "auth_login_failures",
        "auth_rate_limited",
        "auth_refresh_reuse_detected",
        "auth_revocations",
        "auth_signing_key_info",
        "auth_signing_key_age_seconds",
        "auth_revocation_list_size",
        "auth_revocation_feed_cursor",
        "auth_revocation_streams_open",
        "auth_revocation_streams_max",
        "auth_http_request_duration_seconds",
    }
