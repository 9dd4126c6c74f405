"""Replicas verifying real tokens from a real issuer: no session store, no per-request call."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Stack, claims_of, eventually

pytestmark = pytest.mark.slow


def _three(stack: Stack) -> Stack:
    stack.start_auth()
    stack.add_user("alice", scope="reports:read profile")
    stack.add_user("bob", scope="profile")
    stack.start_replicas(3)
    return stack


@pytest.fixture
def three(stack: Stack) -> Stack:
    """An issuer and three replicas of the test's own (for tests that stop or change them)."""
    return _three(stack)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """An issuer and three replicas shared by the tests that leave them as they found them."""
    s = Stack(tmp_path_factory.mktemp("cluster"))
    try:
        yield _three(s)
    finally:
        s.stop()


def refused_everywhere(stack: Stack, token: str) -> bool:
    return all(stack.me(rep, token).status_code == 401 for rep in stack.replicas)


def test_every_replica_accepts_the_token_and_keeps_doing_so_with_the_issuer_down(three: Stack) -> None:
    token = str(three.login()["access_token"])
    for rep in three.replicas:
        response = three.me(rep, token)
        assert response.status_code == 200
        assert response.headers["x-replica-id"] == rep.name == response.json()["replica"]
        assert response.json()["claims"]["preferred_username"] == "alice"
    assert three.auth is not None
    three.auth.stop()  # verification is local: no call to the issuer per request
    assert [three.me(rep, token).status_code for rep in three.replicas for _ in range(5)] == [200] * 15
    # Still ready: keys and a current revocation copy are all a replica needs to decide.
    assert all(three.http.get(f"{rep.url}/readyz").status_code == 200 for rep in three.replicas)


def test_a_scoped_route_needs_the_scope_and_answers_403_insufficient_scope(cluster: Stack) -> None:
    rep = cluster.replicas[0]
    with_scope = cluster.login("alice")["access_token"]
    without = cluster.login("bob")["access_token"]
    assert cluster.http.get(f"{rep.url}/reports", headers={"Authorization": f"Bearer {with_scope}"}).status_code == 200
    denied = cluster.http.get(f"{rep.url}/reports", headers={"Authorization": f"Bearer {without}"})
    assert denied.status_code == 403
    challenge = denied.headers["www-authenticate"]
    assert challenge.startswith("Bearer") and 'error="insufficient_scope"' in challenge
    assert 'scope="reports:read"' in challenge and denied.headers["x-replica-id"] == rep.name


@pytest.mark.parametrize(
    "header,status,error",
    [
        (None, 401, None),
        ("Bearer garbage", 401, "invalid_token"),
        ("Bearer a.b.c", 401, "invalid_token"),
        ("Basic dXNlcjpwdw==", 401, None),  # RFC 6750 section 3.1: another method gets no error code
        ("Bearer", 400, "invalid_request"),
        ("Bearer " + "x" * 12_000, 400, "invalid_request"),  # over the token limit, under the 16 KiB header cap
    ],
)
def test_bad_credentials_get_rfc6750_challenges(
    cluster: Stack, header: str | None, status: int, error: str | None
) -> None:
    headers = {"Authorization": header} if header else {}
    response = cluster.http.get(f"{cluster.replicas[0].url}/me", headers=headers)
    assert response.status_code == status
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer")
    assert (f'error="{error}"' in challenge) if error else ("error=" not in challenge)


def test_a_refresh_token_is_never_accepted_as_an_access_token(cluster: Stack) -> None:
    refresh = str(cluster.login()["refresh_token"])
    response = cluster.me(cluster.replicas[0], refresh)
    assert response.status_code == 401 and 'error="invalid_token"' in response.headers["www-authenticate"]


def test_key_rotation_while_requests_flow_fails_no_request(cluster: Stack) -> None:
    old = str(cluster.login()["access_token"])
    codes: list[int] = []
    stop = threading.Event()

    def traffic(rep_url: str) -> None:
        with httpx.Client(timeout=10) as http:
            while not stop.is_set():
                codes.append(http.get(f"{rep_url}/me", headers={"Authorization": f"Bearer {old}"}).status_code)

    workers = [threading.Thread(target=traffic, args=(rep.url,)) for rep in cluster.replicas]
    for w in workers:
        w.start()
    rotated = json.loads(cluster.cli("keys", "rotate"))
    time.sleep(max(0.0, rotated["activates_at"] - time.time()) + 0.2)
    new = str(cluster.login()["access_token"])
    assert claims_of(new)[0]["kid"] == rotated["kid"] != claims_of(old)[0]["kid"]
    new_codes = [cluster.me(rep, new).status_code for rep in cluster.replicas]
    stop.set()
    for w in workers:
        w.join()
    assert new_codes == [200, 200, 200]
    assert len(codes) > 50 and set(codes) == {200}


def test_revocations_of_each_kind_reach_every_replica(cluster: Stack) -> None:
    assert cluster.auth is not None
    by_jti, by_sid, by_sub = (cluster.login() for _ in range(3))
    for login in (by_jti, by_sid, by_sub):
        assert all(cluster.me(rep, str(login["access_token"])).status_code == 200 for rep in cluster.replicas)
    cluster.http.post(f"{cluster.auth.url}/revoke", data={"token": by_jti["access_token"]})
    assert eventually(lambda: refused_everywhere(cluster, str(by_jti["access_token"])), timeout=5)
    cluster.http.post(f"{cluster.auth.url}/logout", headers={"Authorization": f"Bearer {by_sid['access_token']}"})
    assert eventually(lambda: refused_everywhere(cluster, str(by_sid["access_token"])), timeout=5)
    sub = str(claims_of(str(by_sub["access_token"]))[1]["sub"])
    cluster.cli("revoke", f"--sub={sub}")  # another process writes; the server pushes it on
    assert eventually(lambda: refused_everywhere(cluster, str(by_sub["access_token"])), timeout=5)
    fresh = str(cluster.login()["access_token"])  # a login after "log out everywhere" works
    assert eventually(lambda: all(cluster.me(rep, fresh).status_code == 200 for rep in cluster.replicas), timeout=5)


def test_replicas_catch_up_after_the_issuer_restarts(three: Stack) -> None:
    assert three.auth is not None
    token = str(three.login()["access_token"])
    three.auth.stop()
    three.cli("revoke", f"--jti={claims_of(token)[1]['jti']}")  # written while no server pushes
    assert all(three.me(rep, token).status_code == 200 for rep in three.replicas)  # nobody told them yet
    three.auth.start()
    assert eventually(lambda: refused_everywhere(three, token), timeout=15)


def test_a_replica_meeting_an_unknown_kid_refetches_the_key_set(three: Stack) -> None:
    assert three.auth is not None
    three.auth.stop()
    shutil.rmtree(three.tmp / "keys")  # a new keystore: its first key signs at once, unannounced
    three.auth.start()
    token = str(three.login()["access_token"])
    # Within one unknown-kid refetch interval (10 s): a replica whose last fetch failed while
    # the issuer restarted may have to wait that long before it asks again.
    assert eventually(lambda: all(three.me(rep, token).status_code == 200 for rep in three.replicas), timeout=15)


def test_a_replica_started_before_the_issuer_serves_once_it_can_reach_it(stack: Stack) -> None:
    from auth_service.launch import auth_process, free_port, replica_process
    from tests.conftest import AUTH_ENV, REPLICA_ENV

    port = free_port()
    rep = replica_process("early", auth_url=f"http://127.0.0.1:{port}", data=stack.tmp, env=REPLICA_ENV).start()
    stack.replicas.append(rep)
    assert stack.http.get(f"{rep.url}/me", headers={"Authorization": "Bearer a.b.c"}).status_code == 503
    unready = stack.http.get(f"{rep.url}/readyz")
    assert unready.status_code == 503 and unready.json()["checks"]["keys"] == "not loaded"
    stack.auth = auth_process(data=stack.tmp, env=AUTH_ENV, port=port).start()
    stack.add_user()
    token = str(stack.login()["access_token"])
    assert eventually(lambda: stack.me(rep, token).status_code == 200, timeout=15)
    assert eventually(lambda: stack.http.get(f"{rep.url}/readyz").status_code == 200, timeout=5)


def test_with_a_staleness_bound_a_cut_off_replica_fails_closed_with_503(stack: Stack) -> None:
    stack.start_auth()
    stack.add_user()
    (rep,) = stack.start_replicas(1, RESOURCE_MAX_REVOCATION_STALENESS="2")
    token = str(stack.login()["access_token"])
    assert stack.me(rep, token).status_code == 200
    assert stack.auth is not None
    stack.auth.stop()
    assert eventually(lambda: stack.me(rep, token).status_code == 503, timeout=10)
    refused = stack.me(rep, token)
    assert "retry-after" in {k.lower() for k in refused.headers}
    health = stack.http.get(f"{rep.url}/healthz")
    assert health.status_code == 200 and health.json()["revocation_staleness"] > 2  # alive, just stale
    ready = stack.http.get(f"{rep.url}/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["revocations"].startswith("stale")
    stack.auth.start()
    assert eventually(lambda: stack.me(rep, token).status_code == 200, timeout=15)
    assert stack.http.get(f"{rep.url}/readyz").status_code == 200


def test_a_pull_only_replica_learns_revocations_within_its_poll_interval(stack: Stack) -> None:
    stack.start_auth()
    stack.add_user()
    (rep,) = stack.start_replicas(1, RESOURCE_REVOCATION_PUSH="false", RESOURCE_REVOCATION_POLL_INTERVAL="1")
    token = str(stack.login()["access_token"])
    assert stack.me(rep, token).status_code == 200
    assert stack.auth is not None
    stack.http.post(f"{stack.auth.url}/revoke", data={"token": token})
    assert eventually(lambda: stack.me(rep, token).status_code == 401, timeout=5)


def test_stopping_the_issuer_ends_push_streams_at_once_without_a_traceback(stack: Stack) -> None:
    stack.start_auth()
    stack.start_replicas(2)
    assert stack.auth is not None
    assert eventually(
        lambda: all(stack.http.get(f"{r.url}/healthz").json()["revocation_push"]["connected"] for r in stack.replicas),
        timeout=10,
    )
    stack.auth.stop()  # SIGTERM; uvicorn re-raises it once shut down, so the exit status is -15
    log = stack.auth.log_path.read_text()
    assert "Finished server process" in log  # a graceful shutdown, not a kill after the timeout
    assert "Traceback" not in log and "graceful shutdown exceeded" not in log
