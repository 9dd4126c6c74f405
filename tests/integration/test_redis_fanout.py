"""Revocation fan-out by Redis pub/sub: two issuer instances on PostgreSQL, three replicas.

The Redis here is the test's own redis-server on its own port, so the test can stop and
restart it; pull over HTTP must carry revocations while it is down.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from auth_service.launch import auth_process, free_port
from tests.conftest import AUTH_ENV, Stack, eventually
from tests.own_servers import OwnRedis

pytestmark = pytest.mark.slow


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path).start()  # skips locally, fails in CI, without redis-server
    yield server
    server.stop()


@pytest.fixture
def scaled(stack: Stack, postgres_url: str, own_redis: OwnRedis) -> tuple[Stack, list[str], OwnRedis]:
    port_a = free_port()
    env = {
        **AUTH_ENV,
        "AUTH_DATABASE_URL": postgres_url,
        "AUTH_ISSUER": f"http://127.0.0.1:{port_a}",
        "AUTH_REDIS_URL": own_redis.url,
        "AUTH_KEYS_PASSPHRASE": "a sixteen-plus passphrase",
    }
    stack.env.update(env)
    (stack.tmp / "a").mkdir()
    (stack.tmp / "b").mkdir()
    issuers = [
        auth_process(data=stack.tmp / "a", env=env, port=port_a).start(),
        auth_process(data=stack.tmp / "b", env=env).start(),
    ]
    stack.auth = issuers[0]
    stack.replicas.append(issuers[1])  # stopped with the stack
    stack.add_user()
    # A long poll interval: an entry that arrives within a second came by push.
    stack.start_replicas(3, RESOURCE_REDIS_URL=own_redis.url, RESOURCE_REVOCATION_POLL_INTERVAL="4")
    return stack, [i.url for i in issuers], own_redis


def push_status(stack: Stack) -> list[dict[str, object]]:
    return [stack.http.get(f"{rep.url}/healthz").json()["revocation_push"] for rep in stack.replicas[1:]]


def test_revocations_reach_every_replica_by_redis_and_by_pull_while_redis_is_down(
    scaled: tuple[Stack, list[str], OwnRedis],
) -> None:
    stack, (a, b), redis = scaled
    replicas = stack.replicas[1:]
    assert eventually(lambda: all(s["source"] == "redis" and s["connected"] for s in push_status(stack)))

    def revoke_on(issuer: str) -> tuple[str, float]:
        token = str(stack.login()["access_token"])
        assert all(stack.me(rep, token).status_code == 200 for rep in replicas)
        stack.http.post(f"{issuer}/revoke", data={"token": token})
        return token, time.monotonic()

    def refused_everywhere(token: str) -> bool:
        return all(stack.me(rep, token).status_code == 401 for rep in replicas)

    # Pushed: revoked at instance B, heard by every replica within a second (polls are 4 s apart).
    pushed_before = [s["pushed"] for s in push_status(stack)]
    token, _ = revoke_on(b)
    assert eventually(lambda: refused_everywhere(token), timeout=1.0, interval=0.01)
    assert all(s["pushed"] > n for s, n in zip(push_status(stack), pushed_before, strict=True))

    # Redis down: the replicas notice, and the next revocation still arrives by pull.
    redis.stop()
    assert eventually(lambda: not any(s["connected"] for s in push_status(stack)), timeout=10)
    pulled_before = [s["pulled"] for s in push_status(stack)]
    token, _ = revoke_on(a)
    assert eventually(lambda: refused_everywhere(token), timeout=10)
    assert all(s["pulled"] > n for s, n in zip(push_status(stack), pulled_before, strict=True))

    # Redis back: the replicas resubscribe by themselves and pushes flow again.
    redis.start()
    assert eventually(lambda: all(s["connected"] for s in push_status(stack)), timeout=40, interval=0.2)
    pushed_before = [s["pushed"] for s in push_status(stack)]
    token, _ = revoke_on(b)
    assert eventually(lambda: refused_everywhere(token), timeout=1.0, interval=0.01)
    assert all(s["pushed"] > n for s, n in zip(push_status(stack), pushed_before, strict=True))


def test_each_entry_is_published_once_though_both_instances_tail_the_feed(
    scaled: tuple[Stack, list[str], OwnRedis],
) -> None:
    stack, (a, b), _ = scaled
    assert eventually(lambda: all(s["connected"] for s in push_status(stack)))
    before = [s["pushed"] for s in push_status(stack)]
    for issuer in (a, b, a):
        stack.http.post(f"{issuer}/revoke", data={"token": str(stack.login()["access_token"])})
    assert eventually(
        lambda: all(s["pushed"] - n == 3 for s, n in zip(push_status(stack), before, strict=True)), timeout=5
    )
    time.sleep(1.0)  # nothing more arrives later: no instance published a duplicate
    assert all(s["pushed"] - n == 3 for s, n in zip(push_status(stack), before, strict=True))


def test_a_rotation_triggered_at_one_instance_is_honoured_by_both_and_every_replica(
    scaled: tuple[Stack, list[str], OwnRedis],
) -> None:
    import json

    from tests.conftest import PASSWORD, claims_of

    stack, (a, b), _ = scaled
    replicas = stack.replicas[1:]
    old = str(stack.login()["access_token"])
    rotated = json.loads(stack.cli("keys", "rotate"))  # on the shared PostgreSQL keystore
    time.sleep(max(0.0, rotated["activates_at"] - time.time()) + 0.3)
    for issuer in (a, b):
        new = stack.http.post(
            f"{issuer}/token", data={"grant_type": "password", "username": "alice", "password": PASSWORD}
        ).json()["access_token"]
        assert claims_of(new)[0]["kid"] == rotated["kid"] != claims_of(old)[0]["kid"]
        assert [stack.me(rep, new).status_code for rep in replicas] == [200, 200, 200]
    assert [stack.me(rep, old).status_code for rep in replicas] == [200, 200, 200]  # the retiring key still verifies


def test_anyone_can_publish_on_the_channel_but_only_the_issuers_signed_pushes_are_applied(
    scaled: tuple[Stack, list[str], OwnRedis],
) -> None:
    import json

    import jwt
    import redis
    from cryptography.hazmat.primitives.asymmetric import ec

    from tests.conftest import claims_of

    stack, _, own = scaled
    replicas = stack.replicas[1:]
    assert eventually(lambda: all(s["connected"] for s in push_status(stack)))
    token = str(stack.login()["access_token"])
    header, claims = claims_of(token)
    now = int(time.time())
    forged = {"seq": 10_000, "kind": "sub", "value": claims["sub"], "before": now + 60, "expires_at": now + 600}
    heartbeat = {"feed": "whatever", "cursor": 10_000, "time": now}
    mallory = ec.generate_private_key(ec.SECP256R1())
    signed_by_mallory = {
        "iss": claims["iss"],
        "aud": "urn:stateless-auth:revocation-push",
        "iat": now,
        "exp": now + 60,
        "event": "revocation",
        "data": forged,
    }
    messages = {
        "unsigned, as pushes used to be": json.dumps({"event": "revocation", "data": forged}),
        "an unsigned heartbeat": json.dumps({"event": "heartbeat", "data": heartbeat}),
        "signed by another key, its kid": jwt.encode(
            signed_by_mallory, mallory, algorithm="ES256", headers={"kid": header["kid"], "typ": "revocation-push+jwt"}
        ),
        "an access token of the issuer's": token,  # signed by the issuer, but not a push
        "garbage": "\x00\xff" * 10,
    }
    refused = [s["refused"] for s in push_status(stack)]
    client = redis.Redis.from_url(own.url)
    for message in messages.values():
        assert client.publish("auth:revocations", message) == len(replicas)
    client.close()
    assert eventually(
        lambda: all(s["refused"] - n == len(messages) for s, n in zip(push_status(stack), refused, strict=True)),
        timeout=5,
    )
    assert [stack.me(rep, token).status_code for rep in replicas] == [200, 200, 200]
    stack.http.post(f"{stack.auth.url}/revoke", data={"token": token})  # the issuer's own push still works
    assert eventually(lambda: all(stack.me(rep, token).status_code == 401 for rep in replicas), timeout=2)
