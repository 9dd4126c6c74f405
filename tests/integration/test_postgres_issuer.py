"""The issuer on PostgreSQL: migrations, and several instances sharing one database."""

from __future__ import annotations

import concurrent.futures
import json
import time
from collections.abc import Callable

import httpx
import pytest

from auth_service.launch import auth_process, cli, free_port
from tests.conftest import AUTH_ENV, PASSWORD, REDIS_URL, Stack, claims_of, eventually

pytestmark = pytest.mark.slow


def test_a_database_behind_the_code_is_refused_until_db_upgrade(
    stack: Stack, postgres_database: Callable[..., str]
) -> None:
    url = postgres_database(migrated=False)
    env = {**AUTH_ENV, "AUTH_DATABASE_URL": url, "AUTH_KEYS_PASSPHRASE": "a sixteen-plus passphrase"}
    refused = cli(["serve", "--port", str(free_port())], data=stack.tmp, env=env)
    assert refused.returncode == 2 and "auth-service db upgrade" in refused.stderr
    assert "Traceback" not in refused.stderr
    upgraded = cli(["db", "upgrade"], data=stack.tmp, env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert json.loads(upgraded.stdout) == {"from": None, "to": "0005"}
    assert json.loads(cli(["db", "current"], data=stack.tmp, env=env).stdout) == {"current": "0005", "head": "0005"}
    stack.start_auth(AUTH_DATABASE_URL=url, AUTH_KEYS_PASSPHRASE="a sixteen-plus passphrase")
    stack.add_user()  # the CLI writes to PostgreSQL too
    assert stack.login()["token_type"] == "Bearer"


@pytest.fixture
def two_instances(stack: Stack, postgres_url: str, redis_prefix: str) -> tuple[Stack, str, str]:
    """Two issuer processes on one PostgreSQL database (keys included) and one Redis, with
    separate data directories (nothing shared on disk), one public issuer URL."""
    port_a = free_port()
    issuer = f"http://127.0.0.1:{port_a}"
    env = {
        **AUTH_ENV,
        "AUTH_DATABASE_URL": postgres_url,
        "AUTH_ISSUER": issuer,
        "AUTH_REDIS_URL": REDIS_URL,
        "AUTH_KEYS_PASSPHRASE": "a sixteen-plus passphrase",
        "AUTH_REDIS_PREFIX": redis_prefix,
        "AUTH_LOGIN_MAX_FAILURES": "3",
    }
    stack.env.update(env)  # the CLI talks to the same database
    (stack.tmp / "a").mkdir()
    (stack.tmp / "b").mkdir()
    a = auth_process(data=stack.tmp / "a", env=env, port=port_a).start()
    b = auth_process(data=stack.tmp / "b", env=env).start()
    stack.replicas += [a, b]  # stopped with the stack
    stack.add_user()
    return stack, a.url, b.url


def test_login_on_one_instance_and_refresh_on_the_other(two_instances: tuple[Stack, str, str]) -> None:
    stack, a, b = two_instances
    login = stack.http.post(
        f"{a}/token", data={"grant_type": "password", "username": "alice", "password": PASSWORD}
    ).json()
    renewed = stack.http.post(
        f"{b}/token", data={"grant_type": "refresh_token", "refresh_token": login["refresh_token"]}
    )
    assert renewed.status_code == 200
    assert claims_of(renewed.json()["access_token"])[1]["sid"] == claims_of(login["access_token"])[1]["sid"]
    replay = stack.http.post(
        f"{a}/token", data={"grant_type": "refresh_token", "refresh_token": login["refresh_token"]}
    )
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"


def test_twenty_concurrent_refreshes_across_two_instances_yield_one_success(
    two_instances: tuple[Stack, str, str],
) -> None:
    stack, a, b = two_instances
    login = stack.http.post(
        f"{a}/token", data={"grant_type": "password", "username": "alice", "password": PASSWORD}
    ).json()

    def refresh(i: int) -> int:
        url = a if i % 2 else b
        return httpx.post(
            f"{url}/token", data={"grant_type": "refresh_token", "refresh_token": login["refresh_token"]}, timeout=30
        ).status_code

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        codes = list(pool.map(refresh, range(20)))
    assert codes.count(200) == 1 and codes.count(400) == 19


def test_the_revocation_feed_is_one_ordered_sequence_across_instances(two_instances: tuple[Stack, str, str]) -> None:
    stack, a, b = two_instances
    tokens = [
        stack.http.post(
            f"{a}/token", data={"grant_type": "password", "username": "alice", "password": PASSWORD}
        ).json()["access_token"]
        for _ in range(6)
    ]

    def revoke(i: int) -> int:
        return httpx.post(f"{(a, b)[i % 2]}/revoke", data={"token": tokens[i]}, timeout=30).status_code

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        assert list(pool.map(revoke, range(6))) == [200] * 6
    from_a = stack.http.get(f"{a}/revocations").json()
    from_b = stack.http.get(f"{b}/revocations").json()
    assert from_a == from_b
    assert [e["seq"] for e in from_a["entries"]] == [1, 2, 3, 4, 5, 6]
    assert {e["value"] for e in from_a["entries"]} == {claims_of(t)[1]["jti"] for t in tokens}


def test_login_failures_on_either_instance_count_against_the_same_user(two_instances: tuple[Stack, str, str]) -> None:
    stack, a, b = two_instances
    wrong = {"grant_type": "password", "username": "alice", "password": "wrong"}
    codes = [stack.http.post(f"{url}/token", data=wrong).status_code for url in (a, b, a)]
    assert codes == [400, 400, 400]
    limited = stack.http.post(f"{b}/token", data={"grant_type": "password", "username": "alice", "password": PASSWORD})
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0


def test_without_the_passphrase_an_instance_on_postgresql_refuses_to_start(stack: Stack, postgres_url: str) -> None:
    done = cli(
        ["serve", "--port", str(free_port())], data=stack.tmp, env={**AUTH_ENV, "AUTH_DATABASE_URL": postgres_url}
    )
    assert done.returncode == 2
    assert "must be encrypted: set AUTH_KEYS_PASSPHRASE" in done.stderr and "Traceback" not in done.stderr


def test_a_rotation_on_one_instance_is_seen_by_the_other(two_instances: tuple[Stack, str, str]) -> None:
    stack, a, b = two_instances

    def kids(url: str) -> list[str]:
        return [k["kid"] for k in stack.http.get(f"{url}/.well-known/jwks.json").json()["keys"]]

    assert kids(a) == kids(b) and len(kids(a)) == 1  # both found one key, neither made a second
    rotated = json.loads(stack.cli("keys", "rotate"))
    assert eventually(lambda: kids(a) == kids(b) == [kids(a)[0], rotated["kid"]], timeout=5)
    time.sleep(max(0.0, rotated["activates_at"] - time.time()) + 0.2)
    for url in (a, b):
        token = stack.http.post(
            f"{url}/token", data={"grant_type": "password", "username": "alice", "password": PASSWORD}
        ).json()["access_token"]
        assert claims_of(token)[0]["kid"] == rotated["kid"]
