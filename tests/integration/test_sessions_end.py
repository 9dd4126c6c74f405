"""Login sessions end when the account changes: a password change evicts logins in flight,
disabled or deleted users refresh no more, a narrowed scope narrows the next refresh,
sessions have an absolute lifetime and a refresh rate, and a refresh token must agree with
its stored record. Real issuer processes; account changes through the CLI (another process)
or behind the service's back in its database."""

from __future__ import annotations

import concurrent.futures
import json
import sqlite3
import threading
from contextlib import closing
from typing import Any

import httpx
import pytest

from auth_service.launch import cli
from tests.conftest import PASSWORD, Stack, claims_of, json_log_lines

NEW_PASSWORD = "a brand new passphrase"
# Many logins from one address, failing once the password changed: not what is tested here.
_LIMITS = {"AUTH_LOGIN_MAX_FAILURES": "1000000", "AUTH_LOGIN_MAX_ATTEMPTS_PER_IP": "1000000"}


def _sql(stack: Stack, statement: str, *args: object) -> None:
    with closing(sqlite3.connect(stack.tmp / "data" / "auth.db")) as db, db:
        db.execute(statement, args)


def _active(stack: Stack, token: str) -> bool:
    assert stack.auth is not None
    answer = stack.http.post(
        f"{stack.auth.url}/introspect", data={"token": token}, auth=("svc", "svc-secret-of-at-least-32-characters")
    )
    assert answer.status_code == 200, answer.text
    return bool(answer.json()["active"])


def _refresh(stack: Stack, token: str) -> httpx.Response:
    return stack.token(grant_type="refresh_token", refresh_token=token)


@pytest.fixture
def alice(stack: Stack) -> Stack:
    stack.start_auth(**_LIMITS)
    stack.add_user("alice", scope="reports:read profile")
    stack.add_client("svc", "svc-secret-of-at-least-32-characters", scope="introspect")
    return stack


def test_no_login_in_flight_during_a_password_change_keeps_a_session(stack: Stack) -> None:
    # One hashing thread: 30 concurrent logins queue behind it, each holding the hash it read.
    stack.start_auth(AUTH_PASSWORD_HASH_CONCURRENCY="1", **_LIMITS)
    stack.add_user("alice")
    stack.add_client("svc", "svc-secret-of-at-least-32-characters", scope="introspect")
    assert stack.auth is not None
    url = f"{stack.auth.url}/token"
    changed, stop = threading.Event(), threading.Event()
    answers: list[tuple[bool, httpx.Response]] = []  # (sent before the change was done, answer)
    lock = threading.Lock()

    def worker() -> None:
        with httpx.Client(timeout=60) as http:
            while not stop.is_set():
                sent_before = not changed.is_set()
                answer = http.post(url, data={"grant_type": "password", "username": "alice", "password": PASSWORD})
                with lock:
                    answers.append((sent_before, answer))

    with concurrent.futures.ThreadPoolExecutor(30) as pool:
        workers = [pool.submit(worker) for _ in range(30)]
        while len(answers) < 30:  # the queue is full: every worker has a login in flight
            stop.wait(0.01)
        stack.cli("users", "set-password", "alice", "--password-stdin", stdin=NEW_PASSWORD + "\n")
        changed.set()
        in_flight_then = sum(1 for before, _ in list(answers) if before)
        stop.set()
        for done in workers:
            done.result()

    straddling = [a for before, a in answers[in_flight_then:] if before]  # sent before, answered after
    sessions = [a.json() for _, a in answers if a.status_code == 200]
    assert straddling and sessions
    assert {a.status_code for _, a in answers} <= {200, 400}
    survivors = [s for s in sessions if _refresh(stack, str(s["refresh_token"])).status_code == 200]
    accepted = [s for s in sessions if _active(stack, str(s["access_token"]))]
    print(
        f"{len(answers)} logins, {len(sessions)} sessions, {len(straddling)} straddling the change, "
        f"{len(survivors)} refresh tokens rotated, {len(accepted)} access tokens active after it"
    )
    assert not survivors and not accepted
    assert stack.login(password=NEW_PASSWORD)["refresh_token"]


def test_a_disabled_user_neither_refreshes_nor_logs_in_until_enabled(alice: Stack) -> None:
    session = alice.login()
    alice.cli("users", "disable", "alice")
    refused = _refresh(alice, str(session["refresh_token"]))
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    assert not _active(alice, str(session["access_token"]))
    assert alice.token(grant_type="password", username="alice", password=PASSWORD).status_code == 400
    alice.cli("users", "enable", "alice")
    assert _refresh(alice, str(alice.login()["refresh_token"])).status_code == 200


def test_refresh_after_the_user_row_is_deleted_is_refused_and_revokes_the_session(alice: Stack) -> None:
    session = alice.login()
    _sql(alice, "DELETE FROM users")  # behind the service's back: no revocation was written
    refused = _refresh(alice, str(session["refresh_token"]))
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    assert not _active(alice, str(session["access_token"]))  # the session is on the feed now


def test_users_delete_deletes_the_user_and_ends_their_sessions_and_remove_still_does(alice: Stack) -> None:
    session = alice.login()
    out = json.loads(alice.cli("users", "delete", "alice"))
    assert out["username"] == "alice" and out["action"] == "delete"
    assert _refresh(alice, str(session["refresh_token"])).status_code == 400
    assert not _active(alice, str(session["access_token"]))
    assert alice.token(grant_type="password", username="alice", password=PASSWORD).status_code == 400
    bob = alice.add_user("bob")
    bobs = alice.login("bob")
    assert json.loads(alice.cli("users", "remove", "bob")) == {"username": "bob", "sub": bob, "action": "delete"}
    assert not _active(alice, str(bobs["access_token"]))
    assert "no user 'bob'" in cli(["users", "show", "bob"], data=alice.tmp, env=alice.env).stderr


def test_users_set_scope_narrows_the_next_refresh_of_a_running_session(alice: Stack) -> None:
    session = alice.login()
    assert session["scope"] == "profile reports:read"
    out = json.loads(alice.cli("users", "set-scope", "alice", "--scope", "profile"))
    assert out["scope"] == "profile"
    renewed = _refresh(alice, str(session["refresh_token"]))
    assert renewed.status_code == 200 and renewed.json()["scope"] == "profile"
    assert claims_of(renewed.json()["access_token"])[1]["scope"] == "profile"
    assert claims_of(renewed.json()["refresh_token"])[1]["scope"] == "profile"  # the session itself narrowed
    assert alice.login()["scope"] == "profile"


def test_rotation_never_extends_a_session_past_its_maximum_lifetime(stack: Stack) -> None:
    stack.start_auth(AUTH_SESSION_MAX_LIFETIME="60", **_LIMITS)
    stack.add_user("alice")
    session = stack.login()
    first = claims_of(str(session["refresh_token"]))[1]
    assert int(first["exp"]) <= int(first["iat"]) + 60  # type: ignore[call-overload]
    renewed = _refresh(stack, str(session["refresh_token"])).json()
    assert claims_of(renewed["refresh_token"])[1]["exp"] == first["exp"]  # rotation does not slide it
    _sql(stack, "UPDATE families SET created_at = created_at - 61")  # the session began over 60 s ago
    late = _refresh(stack, str(renewed["refresh_token"]))
    assert late.status_code == 400 and "maximum lifetime" in late.json()["error_description"]


def test_refreshing_one_session_too_often_is_answered_429_and_keeps_the_token(stack: Stack) -> None:
    stack.start_auth(AUTH_REFRESH_RATE="3", **_LIMITS)
    stack.add_user("alice")
    stack.add_client("svc", "svc-secret-of-at-least-32-characters", scope="introspect")
    token = str(stack.login()["refresh_token"])  # the login's token counts: two refreshes remain
    for _ in range(2):
        token = str(_refresh(stack, token).json()["refresh_token"])
    limited = _refresh(stack, token)
    assert limited.status_code == 429 and limited.json()["error"] == "temporarily_unavailable"
    assert int(limited.headers["retry-after"]) >= 1
    assert _active(stack, token)  # not retired, not revoked: good once the minute has passed
    assert _refresh(stack, str(stack.login()["refresh_token"])).status_code == 200  # other sessions are not limited


def _other_family(stack: Stack) -> str:
    return str(claims_of(str(stack.login()["refresh_token"]))[1]["sid"])


@pytest.mark.parametrize(
    "claim, change",
    [
        ("sub", lambda stack, sid: ("UPDATE families SET sub = 'someone-else' WHERE sid = ?", sid)),
        ("client_id", lambda stack, sid: ("UPDATE families SET client_id = 'another' WHERE sid = ?", sid)),
        ("sid", lambda stack, sid: ("UPDATE refresh_tokens SET sid = ? WHERE sid = ?", _other_family(stack), sid)),
    ],
)
def test_a_signed_refresh_token_that_disagrees_with_its_record_is_refused_and_logged(
    alice: Stack, claim: str, change: Any
) -> None:
    assert alice.auth is not None
    session = alice.login()
    rt = claims_of(str(session["refresh_token"]))[1]
    _sql(alice, *change(alice, rt["sid"]))
    refused = _refresh(alice, str(session["refresh_token"]))
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    events = [r for r in json_log_lines(alice.auth.log_path.read_text()) if r.get("event") == "refresh_claims_mismatch"]
    assert events and events[-1]["jti"] == rt["jti"] and claim in events[-1]["differ"]
    assert str(session["refresh_token"]) not in alice.auth.log_path.read_text()
