"""Password hashing: Argon2id at OWASP's parameters, and unknown users cost a real verification."""

from __future__ import annotations

import pytest

from auth_service import passwords
from auth_service.passwords import PasswordHasher

pytestmark = pytest.mark.anyio


async def test_hashes_are_argon2id_with_owasp_minimum_parameters() -> None:
    stored = await PasswordHasher(concurrency=1).hash("pw")
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


async def test_the_right_password_verifies_and_a_wrong_one_does_not() -> None:
    hasher = PasswordHasher(concurrency=1)
    stored = await hasher.hash("right")
    assert await hasher.verify("right", stored) is True
    assert await hasher.verify("wrong", stored) is False


async def test_an_unknown_user_is_verified_against_a_dummy_hash_with_the_same_parameters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hasher = PasswordHasher(concurrency=1)
    real = await hasher.hash("pw")
    checked: list[str] = []
    original = passwords._verify
    monkeypatch.setattr(passwords, "_verify", lambda pw, stored: checked.append(stored) or original(pw, stored))
    assert await hasher.verify("pw", None) is False
    (dummy,) = checked
    assert dummy.split("$")[:4] == real.split("$")[:4]  # same algorithm, version and cost


async def test_a_malformed_stored_hash_fails_closed() -> None:
    assert await PasswordHasher(concurrency=1).verify("pw", "$argon2id$garbage") is False


def test_old_parameters_are_flagged_for_rehash() -> None:
    weaker = "$argon2id$v=19$m=8192,t=1,p=1$c29tZXNhbHQ$" + "A" * 43
    assert PasswordHasher.needs_rehash(weaker) is True


async def test_hashing_threads_yield_to_the_event_loop_thread() -> None:
    import os
    import threading

    hasher = PasswordHasher(concurrency=1)
    try:
        niceness = await hasher._run(lambda _: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()), "")
        assert niceness > os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    finally:
        hasher.close()


async def test_past_the_queue_bound_logins_are_shed_with_503() -> None:
    import asyncio

    from auth_service.errors import Unavailable

    hasher = PasswordHasher(concurrency=1)
    stored = await hasher.hash("pw")
    try:
        waiting = [asyncio.ensure_future(hasher.verify("pw", stored)) for _ in range(hasher._limit)]
        await asyncio.sleep(0)  # every one of them is now queued or running
        with pytest.raises(Unavailable) as shed:
            await hasher.verify("pw", stored)
        assert shed.value.status_code == 503 and shed.value.headers["Retry-After"] == "1"
        for task in waiting:
            task.cancel()
    finally:
        hasher.close()
