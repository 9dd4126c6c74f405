"""The login and client-secret limiter against a real issuer: reserved before the hash,
and keyed so that failures from one address never refuse the right credential from another.

Source addresses: loopback is a /8 on Linux, so a client bound to 127.0.0.2 is a second
caller of the same issuer on 127.0.0.1."""

from __future__ import annotations

import concurrent.futures
import secrets
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import PASSWORD, REDIS_URL, Stack

SECRET = "s" * 40


@pytest.fixture(scope="module", params=["memory", "redis"])
def limited(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One issuer per limiter, shared by the module: each test guesses from addresses of its own."""
    stack = Stack(tmp_path_factory.mktemp(f"limited-{request.param}"))
    env = {"AUTH_LOGIN_MAX_FAILURES": "5"}
    if request.param == "redis":
        env |= {"AUTH_REDIS_URL": REDIS_URL, "AUTH_REDIS_PREFIX": f"test-{secrets.token_hex(6)}:"}
    try:
        stack.start_auth(**env)
        stack.add_user("alice")
        stack.add_client("api", SECRET)
        yield stack
    finally:
        stack.stop()


def post_from(stack: Stack, address: str, auth: tuple[str, str] | None = None, **form: str) -> httpx.Response:
    assert stack.auth is not None
    with httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=30.0) as http:
        return http.post(f"{stack.auth.url}/token", data=form, auth=auth)


def in_parallel(n: int, call: object) -> list[int]:
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        return sorted(r.status_code for r in pool.map(lambda _: call(), range(n)))  # type: ignore[operator]


def test_forty_parallel_wrong_passwords_get_at_most_five_hashed_answers(limited: Stack) -> None:
    codes = in_parallel(
        40, lambda: post_from(limited, "127.0.1.1", grant_type="password", username="alice", password="wrong guess")
    )
    assert codes.count(400) <= 5
    assert codes.count(429) >= 35
    assert set(codes) <= {400, 429}


def test_forty_parallel_wrong_client_secrets_get_at_most_five_hashed_answers(limited: Stack) -> None:
    codes = in_parallel(
        40, lambda: post_from(limited, "127.0.1.2", auth=("api", "w" * 40), grant_type="client_credentials")
    )
    assert codes.count(401) <= 5
    assert codes.count(429) >= 35


def test_wrong_passwords_from_one_address_do_not_refuse_the_right_one_from_another(limited: Stack) -> None:
    for _ in range(8):
        post_from(limited, "127.0.1.3", grant_type="password", username="alice", password="wrong guess")
    assert (
        post_from(limited, "127.0.1.3", grant_type="password", username="alice", password=PASSWORD).status_code == 429
    )  # the guesser's own address is locked out
    victim = post_from(limited, "127.0.1.4", grant_type="password", username="alice", password=PASSWORD)
    assert victim.status_code == 200, victim.text


def test_wrong_secrets_from_one_address_do_not_refuse_the_client_at_another(limited: Stack) -> None:
    for _ in range(8):
        post_from(limited, "127.0.1.5", auth=("api", "w" * 40), grant_type="client_credentials")
    ok = post_from(limited, "127.0.1.6", auth=("api", SECRET), grant_type="client_credentials")
    assert ok.status_code == 200, ok.text


def test_past_the_per_user_ceiling_the_right_password_from_a_fresh_address_still_gets_in(stack: Stack) -> None:
    stack.start_auth(AUTH_LOGIN_MAX_FAILURES="5", AUTH_LOGIN_MAX_FAILURES_PER_USER="3")
    stack.add_user("alice")
    for last in (2, 3, 4, 5):
        post_from(stack, f"127.0.0.{last}", grant_type="password", username="alice", password="wrong guess")
    throttled = post_from(stack, "127.0.0.5", grant_type="password", username="alice", password=PASSWORD)
    assert throttled.status_code == 429  # one guess per address and window, now
    victim = post_from(stack, "127.0.0.1", grant_type="password", username="alice", password=PASSWORD)
    assert victim.status_code == 200, victim.text
