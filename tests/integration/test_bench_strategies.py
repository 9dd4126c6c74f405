"""The server-side session strategies the benchmark measures tokens against, as real deployments.

Each strategy runs as three real replicas behind a real balancer (the Python one always,
nginx too when installed) with real Redis (`TEST_REDIS_URL`, default the machine's). Redis
tests skip when Redis is not reachable, and fail instead in CI (`CI=true`).
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.strategies.balancer import Balancer
from bench.strategies.cluster_runner import Run, replica_death, start
from bench.strategies.common import create_app
from bench.strategies.nginx import balancer_kind, nginx_binary, write_config
from bench.strategies.redis_store import DEFAULT_URL, RedisStore, delete_prefix
from bench.strategies.serve import STRATEGIES
from bench.strategies.sticky import StickyStore

pytestmark = pytest.mark.slow

REDIS_URL = os.environ.get("TEST_REDIS_URL", DEFAULT_URL)
BALANCERS = ["python", *(["nginx"] if nginx_binary() else [])]
ALL = [pytest.param((s, b), id=f"{s}-{b}") for s in STRATEGIES for b in BALANCERS]


def of(strategy: str) -> list[object]:
    return [p for p in ALL if p.values[0][0] == strategy]  # type: ignore[index]


def require_redis() -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        message = f"Redis not reachable at {REDIS_URL}: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    finally:
        client.close()


def _start(param: tuple[str, str], tmp: Path, replicas: int = 3) -> Run:
    strategy, balancer = param
    if strategy == "redis":
        require_redis()
    return start(strategy, replicas, balancer=balancer, workdir=tmp, redis_url=REDIS_URL)


@pytest.fixture(scope="module")
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """One deployment per (strategy, balancer), shared by the tests that leave every replica up."""
    deployment = _start(request.param, tmp_path_factory.mktemp("-".join(request.param)))
    try:
        yield deployment
    finally:
        deployment.stop()


def login(url: str, user: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=10.0)
    response = client.post("/login", data={"username": user})
    assert response.status_code == 200, response.text
    assert response.json()["user"] == user and client.cookies.get("sid")
    return client


def replica_of(response: httpx.Response) -> str:
    return response.headers["x-replica-id"]


# --- every strategy, every balancer ------------------------------------------------------------


@pytest.mark.parametrize("run", ALL, indirect=True)
def test_login_then_me_through_the_balancer_answers_the_user(run: Run) -> None:
    client = login(run.url, "alice")
    me = client.get("/me")
    assert me.status_code == 200
    assert me.json() == {"replica": replica_of(me), "user": "alice"}
    assert replica_of(me) in {r.id for r in run.replicas}
    # Only sticky sessions need a route; the others must not leave one for a balancer to follow.
    assert client.cookies.get("route") == (replica_of(me) if run.strategy == "sticky" else None)


@pytest.mark.parametrize("run", ALL, indirect=True)
def test_me_without_a_valid_session_cookie_is_401(run: Run) -> None:
    assert httpx.get(f"{run.url}/me").status_code == 401
    assert httpx.get(f"{run.url}/me", cookies={"sid": secrets.token_hex(16)}).status_code == 401
    assert httpx.get(f"{run.url}/me", cookies={"sid": "x" * 500}).status_code == 401
    for replica in run.replicas:  # every replica says who answered, refusals included
        refused = httpx.get(f"{replica.url}/me")
        assert refused.status_code == 401 and replica_of(refused) == replica.id


@pytest.mark.parametrize("run", ALL, indirect=True)
def test_the_balancer_never_forwards_internal_routes(run: Run) -> None:
    assert httpx.get(f"{run.url}/_stats").status_code == 404
    assert httpx.post(f"{run.url}/_bulk_sessions", params={"count": 5}).status_code == 404
    assert httpx.get(f"{run.replicas[0].url}/_stats").status_code == 200  # loopback, direct: allowed


@pytest.mark.parametrize("run", [p for p in ALL if p.values[0][1] == "python"], indirect=True)  # type: ignore[index]
def test_bulk_sessions_show_up_in_stats_where_the_strategy_keeps_them(run: Run) -> None:
    n = 3000
    before = [s["sessions"] for s in run.stats() if s]
    answers = run.bulk_sessions(n)
    after = run.stats()
    assert all(s is not None and s["rss_bytes"] > 10_000_000 for s in after)
    counts = [s["sessions"] for s in after if s]
    if run.strategy == "sticky":  # split over the replicas, each holding its share
        assert sum(counts) - sum(before) == n and len(answers) == len(run.replicas)
        assert all(c - b >= n // len(run.replicas) for b, c in zip(before, counts, strict=True))
    else:  # cluster: every replica holds all of them; redis: every replica sees the one store
        assert all(c - b == n for b, c in zip(before, counts, strict=True))
    if run.strategy == "cluster":
        assert after[0] is not None and after[0]["replicated_out_sessions"] >= n * (len(run.replicas) - 1)
    if run.strategy == "redis":
        assert after[0] is not None and after[0]["redis_used_memory"] > 0


# --- what each strategy is about ---------------------------------------------------------------


@pytest.mark.parametrize("run", of("sticky"), indirect=True)
def test_sticky_pins_each_user_to_the_replica_that_holds_the_session(run: Run) -> None:
    homes = set()
    for i in range(12):
        client = login(run.url, f"pinned-{i}")
        home = replica_of(client.get("/me"))
        assert client.cookies["route"] == home
        assert {replica_of(client.get("/me")) for _ in range(5)} == {home}
        homes.add(home)
        sid = client.cookies["sid"]
        for replica in run.replicas:  # only the home replica knows the session
            direct = httpx.get(f"{replica.url}/me", cookies={"sid": sid})
            assert direct.status_code == (200 if replica.id == home else 401)
    assert len(homes) > 1  # the balancer spreads users: 12 on one of 3 replicas is 3 * 3**-12


@pytest.mark.parametrize("run", of("sticky"), indirect=True)
def test_a_sticky_login_sets_a_route_cookie_naming_its_replica_beside_the_session(run: Run) -> None:
    replica = run.replicas[1]
    response = httpx.post(f"{replica.url}/login", data={"username": "frank"})
    cookies = {c.split("=", 1)[0]: c for c in response.headers.get_list("set-cookie")}
    assert set(cookies) == {"sid", "route"}
    route = cookies["route"]
    assert route.startswith(f"route={replica.id};")
    assert all(attr in route for attr in ("HttpOnly", "Path=/", "SameSite=lax"))
    assert "Max-Age=3600" in route and "Max-Age=3600" in cookies["sid"]  # the route lives as long as the session


@pytest.mark.parametrize("run", of("sticky"), indirect=True)
def test_a_user_is_pinned_to_the_replica_its_route_cookie_names(run: Run) -> None:
    for replica in run.replicas:
        client = login(replica.url, f"direct-{replica.id}")  # made at the replica itself, not by the balancer
        session = {"sid": client.cookies["sid"], "route": client.cookies["route"]}
        answers = [httpx.get(f"{run.url}/me", cookies=session) for _ in range(6)]
        assert {(a.status_code, replica_of(a)) for a in answers} == {(200, replica.id)}
        other = next(r for r in run.replicas if r is not replica)
        misrouted = httpx.get(f"{run.url}/me", cookies={**session, "route": other.id})
        assert (misrouted.status_code, replica_of(misrouted)) == (401, other.id)  # the route decides, not the sid


# Cookie headers a client may send, and where both balancers must send them: the index of the
# replica (pinned), or None for round robin. Rows marked nginx record what nginx 1.22 does;
# the Python balancer must do the same so both measure the same thing.
ROUTE_COOKIES = [
    pytest.param("route=sticky-2", 1, id="known"),
    pytest.param("ROUTE=STICKY-2", 1, id="any-case-nginx"),
    pytest.param("a=1;route = sticky-2", 1, id="spaces-nginx"),
    pytest.param("a=1, route=sticky-2", 1, id="comma-separated-nginx"),
    pytest.param("route=sticky-2; route=sticky-3", 1, id="first-wins"),
    pytest.param("", None, id="absent"),
    pytest.param("route=", None, id="empty"),
    pytest.param("route=; route=sticky-2", None, id="first-empty-wins-nginx"),
    pytest.param("route=sticky-9", None, id="unknown-replica"),
    pytest.param("route=replicas", None, id="upstream-name-is-not-a-route"),
    pytest.param("route=replica-sticky-2", None, id="pinned-upstream-name-is-not-a-route"),
    pytest.param("route=default", None, id="map-keyword"),
    pytest.param('route="sticky-2"', None, id="quoted-nginx"),
    pytest.param("myroute=sticky-2", None, id="other-cookie"),
]


@pytest.mark.parametrize("cookie, pinned", ROUTE_COOKIES)
@pytest.mark.parametrize("run", of("sticky"), indirect=True)
def test_both_balancers_read_the_route_cookie_alike(run: Run, cookie: str, pinned: int | None) -> None:
    answers = [httpx.get(f"{run.url}/me", headers={"cookie": cookie} if cookie else {}) for _ in range(6)]
    assert {a.status_code for a in answers} == {401}
    seen = {replica_of(a) for a in answers}
    assert seen == ({run.replicas[pinned].id} if pinned is not None else {r.id for r in run.replicas})


@pytest.mark.parametrize("run", of("cluster") + of("redis"), indirect=True)
def test_a_session_made_at_one_replica_is_accepted_by_every_replica_directly(run: Run) -> None:
    client = login(run.replicas[0].url, "bob")
    for replica in run.replicas:
        me = httpx.get(f"{replica.url}/me", cookies={"sid": client.cookies["sid"]})
        assert me.status_code == 200 and me.json() == {"replica": replica.id, "user": "bob"}


@pytest.mark.parametrize("run", of("cluster") + of("redis"), indirect=True)
def test_round_robin_spreads_one_users_requests_over_the_replicas(run: Run) -> None:
    client = login(run.url, "carol")
    seen = {replica_of(r) for r in (client.get("/me") for _ in range(9)) if r.status_code == 200}
    assert seen == {r.id for r in run.replicas}


# --- a replica dies ------------------------------------------------------------------------------


@pytest.mark.parametrize("param", ALL)
def test_replica_death_costs_sticky_its_sessions_and_costs_cluster_and_redis_none(
    param: tuple[str, str], tmp_path: Path
) -> None:
    with _start(param, tmp_path) as deployment:
        report = replica_death(deployment, users=15, victim=1, before=0.3, after=0.7)
        assert not deployment.replicas[1].running()
        if param[0] == "sticky":  # the dead replica's route falls over to the live ones: 401, never 502
            survivors = {r.id for r in deployment.replicas if r.running()}
            stale = [httpx.get(f"{deployment.url}/me", cookies={"route": report.victim}) for _ in range(4)]
            assert {a.status_code for a in stale} == {401} and {replica_of(a) for a in stale} <= survivors
            # Logging in again moves the route to the replica that took the login.
            relogin = httpx.post(
                f"{deployment.url}/login", data={"username": "stranded"}, cookies={"route": report.victim}
            )
            assert relogin.status_code == 200 and relogin.cookies["route"] == replica_of(relogin) in survivors
    # A request in flight at the kill can fail under any strategy (nginx has passed the 200 on
    # before the body broke off, and cannot retry); each user has at most one in flight. What a
    # strategy decides is whether sessions survive, asserted below.
    assert report.failed_requests <= report.served_by_victim
    if param[0] == "sticky":
        assert report.forced_relogin > 0 and report.sessions_lost > 0
        assert report.forced_relogin == report.sessions_lost == report.served_by_victim
    else:
        assert report.forced_relogin == 0 and report.sessions_lost == 0
        assert report.served_by_victim > 0  # the dead replica had been serving these users


def test_a_restarted_cluster_replica_pulls_every_session_from_a_peer(tmp_path: Path) -> None:
    with start("cluster", 3, balancer="python", workdir=tmp_path) as deployment:
        before = login(deployment.url, "dave").cookies["sid"]
        deployment.bulk_sessions(500)
        deployment.kill(2)
        during = login(deployment.url, "erin").cookies["sid"]  # replicated to the live peers only
        assert sum(s["replication_failures"] for s in deployment.stats() if s) >= 1
        deployment.restart(2)
        stats = deployment.stats()[2]
        assert stats is not None and stats["synced_from"] in deployment.urls[:2]
        assert stats["sessions"] == 502
        for sid in (before, during):
            assert httpx.get(f"{deployment.replicas[2].url}/me", cookies={"sid": sid}).status_code == 200


# --- pieces without processes ------------------------------------------------------------------


def test_redis_runs_with_different_prefixes_never_see_each_others_sessions() -> None:
    require_redis()

    async def scenario() -> tuple[bool, bool, int, int]:
        one, two = (RedisStore(REDIS_URL, prefix=f"test-{secrets.token_hex(4)}") for _ in range(2))
        await one.start()
        await two.start()
        try:
            sid = await one.create("alice")
            await one.bulk(10)
            return (await one.get(sid) is not None, await two.get(sid) is None, await one.count(), await two.count())
        finally:
            for store in (one, two):
                delete_prefix(REDIS_URL, store.prefix)
                await store.stop()

    assert asyncio.run(scenario()) == (True, True, 11, 0)
    with pytest.raises(ValueError):
        RedisStore(prefix="all*")  # a glob would make SCAN and delete_prefix reach other runs


UPSTREAMS = {"sticky-1": "127.0.0.1:8001", "sticky-2": "127.0.0.1:8002", "sticky-3": "127.0.0.1:8003"}


def test_the_python_balancer_tries_the_routed_replica_first_and_the_others_while_it_is_down() -> None:
    balancer = Balancer(UPSTREAMS, sticky=True)
    first = [next(balancer.candidates("sticky-2")).name for _ in range(3)]
    assert first == ["127.0.0.1:8002"] * 3
    order = [u.name for u in balancer.candidates("sticky-2")]
    assert order[0] == "127.0.0.1:8002" and sorted(order) == sorted(UPSTREAMS.values())  # each once
    balancer.routes["sticky-2"].down_until = float("inf")
    assert {next(balancer.candidates("sticky-2")).name for _ in range(4)} == {"127.0.0.1:8001", "127.0.0.1:8003"}
    plain = Balancer(UPSTREAMS, sticky=False)  # round robin ignores routes
    assert {next(plain.candidates("sticky-2")).name for _ in range(3)} == set(UPSTREAMS.values())


# Replica ids that cannot be routes: each would corrupt nginx's map or config, or match unlike nginx.
BAD_ROUTES = [
    pytest.param("default", id="map-keyword-default"),
    pytest.param("include", id="map-keyword-include"),
    pytest.param("Sticky-1", id="upper-case"),
    pytest.param("", id="empty"),
    pytest.param("-sticky", id="leading-hyphen"),
    pytest.param("~^sticky", id="map-regex"),
    pytest.param("a b", id="space"),
    pytest.param("a;}", id="config-injection"),
    pytest.param("a" * 64, id="too-long"),
]


@pytest.mark.parametrize("route", BAD_ROUTES)
def test_both_balancers_and_the_sticky_app_refuse_a_replica_id_that_cannot_be_a_route(
    route: str, tmp_path: Path
) -> None:
    upstreams = {**UPSTREAMS, route: "127.0.0.1:8009"}
    with pytest.raises(ValueError):
        write_config(tmp_path, port=8000, upstreams=upstreams, sticky=True)
    with pytest.raises(ValueError):
        Balancer(upstreams, sticky=True)
    with pytest.raises(ValueError):
        create_app(StickyStore(), route)
    write_config(tmp_path, port=8000, upstreams=upstreams, sticky=False)  # round robin never routes by id


def test_the_balancer_in_use_is_named_and_nginx_configs_route_only_for_sticky(tmp_path: Path) -> None:
    assert balancer_kind("python") == "python-balancer"
    assert balancer_kind("auto") == ("nginx" if nginx_binary() else "python-balancer")
    sticky = write_config(tmp_path / "s", port=8000, upstreams=UPSTREAMS, sticky=True).read_text()
    plain = write_config(tmp_path / "p", port=8000, upstreams=UPSTREAMS, sticky=False).read_text()
    assert "map $cookie_route $sticky_upstream {" in sticky and "proxy_pass http://$sticky_upstream;" in sticky
    assert "        default replicas;\n        sticky-1 replica-sticky-1;\n" in sticky
    pinned = sticky[sticky.index("upstream replica-sticky-2 {") :]
    pinned = pinned[: pinned.index("}")]
    assert "server 127.0.0.1:8002 max_fails" in pinned  # its replica first, the others only as backup
    assert "server 127.0.0.1:8001 backup" in pinned and "server 127.0.0.1:8003 backup" in pinned
    assert "map " not in plain and "backup" not in plain and "proxy_pass http://replicas;" in plain
    for conf in (sticky, plain):
        assert "hash " not in conf and "upstream replicas {" in conf
        assert "daemon off;" in conf and f"pid {tmp_path}" in conf
        assert "cookie" not in conf[conf.index("log_format") : conf.index("access_log")]  # a sid is a credential
