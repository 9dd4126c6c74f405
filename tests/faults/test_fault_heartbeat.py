"""A heartbeat vouches only for what its issuer read: an instance cut off from its database
sends none, so a replica following it cannot be kept "fresh" while revocations written
through another instance never reach it. It refuses the revoked token, or reports stale
and fails closed past RESOURCE_MAX_REVOCATION_STALENESS; it never serves it on."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from auth_service.launch import auth_process, free_port
from tests.conftest import AUTH_ENV, Stack, eventually
from tests.own_servers import CuttableProxy

pytestmark = pytest.mark.fault

MAX_STALENESS = 4  # seconds; the replica polls every second


@pytest.fixture
def proxy_to_postgres(postgres_url: str) -> Iterator[tuple[CuttableProxy, str]]:
    parts = urlsplit(postgres_url)
    proxy = CuttableProxy(parts.port or 5432)
    host = parts.netloc.rsplit("@", 1)
    netloc = f"{host[0]}@127.0.0.1:{proxy.port}" if len(host) == 2 else f"127.0.0.1:{proxy.port}"
    yield proxy, urlunsplit(parts._replace(netloc=netloc))
    proxy.close()


def test_an_issuer_cut_from_its_database_stops_vouching_and_its_replica_refuses_a_token_revoked_elsewhere(
    stack: Stack, postgres_url: str, proxy_to_postgres: tuple[CuttableProxy, str]
) -> None:
    proxy, proxied_url = proxy_to_postgres
    port_b = free_port()
    env = {**AUTH_ENV, "AUTH_ISSUER": f"http://127.0.0.1:{port_b}", "AUTH_KEYS_PASSPHRASE": "a sixteen-plus passphrase"}
    stack.env.update({**env, "AUTH_DATABASE_URL": postgres_url})
    (stack.tmp / "a").mkdir()
    (stack.tmp / "b").mkdir()
    a = auth_process(data=stack.tmp / "a", env={**env, "AUTH_DATABASE_URL": postgres_url}).start()
    b = auth_process(data=stack.tmp / "b", env={**env, "AUTH_DATABASE_URL": proxied_url}, port=port_b).start()
    stack.replicas.append(a)  # stopped with the stack
    stack.auth = b  # the replica follows B: its metadata, keys, pulls and push stream
    stack.add_user()
    (replica,) = stack.start_replicas(1, RESOURCE_MAX_REVOCATION_STALENESS=str(MAX_STALENESS))
    token = str(stack.login()["access_token"])
    assert stack.me(replica, token).status_code == 200

    proxy.cut()  # B can no longer read the feed; A can
    revoked = stack.http.post(f"{a.url}/revoke", data={"token": token})
    assert revoked.status_code == 200
    assert eventually(lambda: stack.me(replica, token).status_code != 200, timeout=MAX_STALENESS + 6)
    answer = stack.me(replica, token)
    assert answer.status_code in (401, 503), answer.text
    assert stack.http.get(f"{replica.url}/readyz").status_code == 503  # stale: out of the balancer

    proxy.mend()  # B reads again: its heartbeats vouch again, and the replica catches up
    assert eventually(lambda: stack.http.get(f"{replica.url}/readyz").status_code == 200, timeout=20)
    assert stack.me(replica, token).status_code == 401
