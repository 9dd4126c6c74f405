"""Structured logs of real processes: JSON lines when not at a terminal, console lines when
asked or at one, a request id on every line of its request, and security events with ids."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from auth_service.launch import Service, cli
from tests.conftest import PASSWORD, Stack, claims_of, eventually, json_log_lines

ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def log_of(service: Service) -> list[dict[str, Any]]:
    return json_log_lines(service.log_path.read_text())


def events(records: list[dict[str, Any]], name: str, logger: str = "auth_service.security") -> list[dict[str, Any]]:
    return [r for r in records if r["event"] == name and r["logger"] == logger]


def test_every_line_of_both_services_and_the_cli_is_one_json_object_when_not_a_terminal(stack: Stack) -> None:
    auth = stack.start_auth()
    done = cli(
        ["users", "add", "alice", "--password-stdin", "--scope", "reports:read"],
        data=stack.tmp,
        env=stack.env,
        stdin=PASSWORD + "\n",
    )
    assert done.returncode == 0, done.stderr
    stack.default_client()
    assert set(json.loads(done.stdout)) == {"username", "sub", "scope"}  # command output: unchanged, on stdout
    cli_lines = json_log_lines(done.stderr)
    [replica] = stack.start_replicas(1, RESOURCE_ACCESS_LOG="true")
    assert stack.me(replica, str(stack.login()["access_token"])).status_code == 200
    stack.stop()

    for records in (log_of(auth), log_of(replica), cli_lines):
        assert records
        for record in records:
            assert {"timestamp", "level", "logger", "event"} <= set(record), record
            assert ISO_UTC.fullmatch(record["timestamp"]), record
    auth_log, replica_log = log_of(auth), log_of(replica)
    assert {"uvicorn.error", "auth_service", "auth_service.security", "auth_service.access"} <= {
        r["logger"] for r in auth_log
    }  # uvicorn's own lines go through the same formatter
    assert {"uvicorn.error", "resource_service.access"} <= {r["logger"] for r in replica_log}


def test_a_request_id_is_echoed_and_carried_by_every_line_of_its_request(stack: Stack) -> None:
    auth = stack.start_auth()
    sub = stack.add_user("alice")
    [quiet] = stack.start_replicas(1)  # RESOURCE_ACCESS_LOG defaults to false
    [loud] = stack.start_replicas(1, RESOURCE_ACCESS_LOG="true")
    login = stack.token(grant_type="password", username="alice", password=PASSWORD)
    sent = stack.http.post(
        f"{auth.url}/token",
        headers={"X-Request-Id": "abc-123"},
        data={"grant_type": "password", "username": "alice", "password": PASSWORD},
    )
    assert sent.status_code == 200 and sent.headers["x-request-id"] == "abc-123"
    assert len(login.headers["x-request-id"]) == 32  # none sent: one was made
    token = sent.json()["access_token"]
    for replica, request_id in ((quiet, "rep-quiet"), (loud, "rep-loud")):
        answer = stack.http.get(
            f"{replica.url}/me", headers={"Authorization": f"Bearer {token}", "X-Request-Id": request_id}
        )
        assert answer.status_code == 200 and answer.headers["x-request-id"] == request_id
    stack.stop()

    auth_log = log_of(auth)
    mine = [r for r in auth_log if r.get("request_id") == "abc-123"]
    assert [(r["logger"], r["event"]) for r in mine] == [
        ("auth_service.security", "login_success"),
        ("auth_service.access", "request"),
    ]
    assert mine[0]["sub"] == sub and mine[0]["sid"] == claims_of(token)[1]["sid"]
    access = mine[1]
    assert (access["method"], access["path"], access["status"]) == ("POST", "/token", 200)
    assert isinstance(access["duration_ms"], float) and access["duration_ms"] > 0
    # Every login and every access line of the run carries some request's id.
    assert all(
        r.get("request_id") for r in auth_log if r["logger"] == "auth_service.access" or r["event"] == "login_success"
    )
    assert len({r["request_id"] for r in events(auth_log, "login_success")}) == 2
    assert not any(r["logger"] == "resource_service.access" for r in log_of(quiet))
    [line] = [r for r in log_of(loud) if r.get("request_id") == "rep-loud"]
    assert (line["logger"], line["method"], line["path"], line["status"]) == (
        "resource_service.access",
        "GET",
        "/me",
        200,
    )


def test_an_invalid_or_overlong_request_id_is_replaced_by_a_made_one(stack: Stack) -> None:
    auth = stack.start_auth()
    bad = [b"has space", b"x" * 129, b"semi;colon", b"slash/../x", b'quote"', "caf\u00e9".encode(), b""]
    made = []
    for value in bad:
        answer = stack.http.get(f"{auth.url}/healthz?token=sekrit-query-value", headers={"X-Request-Id": value})
        assert answer.status_code == 200
        made.append(answer.headers["x-request-id"])
        assert made[-1].encode() != value and re.fullmatch(r"[0-9a-f]{32}", made[-1]), value
    assert len(set(made)) == len(bad)
    stack.stop()
    access = [r for r in log_of(auth) if r["logger"] == "auth_service.access"]
    assert set(made) <= {r["request_id"] for r in access}
    assert {r["path"] for r in access} == {"/healthz"}  # the query string is never logged
    text = auth.log_path.read_text()
    assert "sekrit-query-value" not in text and "x" * 129 not in text and "semi;colon" not in text


def test_console_lines_when_asked_even_without_a_terminal(stack: Stack) -> None:
    auth = stack.start_auth(AUTH_LOG_FORMAT="console")
    stack.add_user("alice")
    answer = stack.http.post(
        f"{auth.url}/token",
        headers={"X-Request-Id": "abc-123"},
        data={"grant_type": "password", "username": "alice", "password": PASSWORD},
    )
    assert answer.status_code == 200
    stack.stop()
    lines = auth.log_path.read_text().splitlines()
    [login] = [line for line in lines if "login_success" in line]
    assert "[auth_service.security]" in login and "request_id=abc-123" in login
    assert "\x1b[" not in login  # no colours: the file is not a terminal
    for line in lines:
        with pytest.raises(json.JSONDecodeError):
            json.loads(line)


def _on_a_terminal(args: list[str], data: Path, env: dict[str, str]) -> tuple[str, str]:
    """Run `auth-service ARGS` with stderr on a pseudo-terminal; (stdout, what the terminal showed)."""
    controller, terminal = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "auth_service", *args],
            check=False,
            stdout=subprocess.PIPE,
            stderr=terminal,
            text=True,
            timeout=60,
            env={**os.environ, "AUTH_DATA_DIR": str(data / "data"), "AUTH_KEYS_DIR": str(data / "keys"), **env},
        )
    finally:
        os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the terminal's other end is closed and drained
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    assert done.returncode == 0, shown
    return done.stdout, shown.decode()


def test_console_lines_at_a_terminal_and_json_in_a_pipe_by_default(stack: Stack) -> None:
    stdout, shown = _on_a_terminal(["keys", "rotate"], stack.tmp, stack.env)
    kid = json.loads(stdout)["kid"]  # command output: still JSON on stdout
    plain = ANSI.sub("", shown)
    assert "\x1b[" in shown and "key_created" in plain and f"kid={kid}" in plain
    with pytest.raises(json.JSONDecodeError):
        json.loads(plain.splitlines()[0])
    piped = cli(["keys", "rotate"], data=stack.tmp, env=stack.env)
    assert piped.returncode == 0, piped.stderr
    [created] = events(json_log_lines(piped.stderr), "key_created")
    assert created["kid"] == json.loads(piped.stdout)["kid"] != kid


def test_security_events_carry_ids_and_never_a_secret(stack: Stack) -> None:
    auth = stack.start_auth()
    sub = stack.add_user("alice")
    stranger = "nobody-d41d8cd98f"

    first = stack.login()
    assert stack.token(grant_type="password", username="alice", password="wrong password").status_code == 400
    assert stack.token(grant_type="password", username=stranger, password=PASSWORD).status_code == 400
    renewed = stack.token(grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert renewed.status_code == 200
    replay = stack.token(grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert replay.status_code == 400
    second = stack.login()
    assert stack.http.post(f"{auth.url}/revoke", data={"token": second["access_token"]}).status_code == 200
    third = stack.login()
    assert (
        stack.http.post(f"{auth.url}/logout", headers={"Authorization": f"Bearer {third['access_token']}"}).status_code
        == 204
    )
    by_cli = cli(["revoke", f"--sub={sub}"], data=stack.tmp, env=stack.env)
    assert by_cli.returncode == 0, by_cli.stderr

    old_kid = claims_of(str(first["access_token"]))[0]["kid"]
    rotated = cli(["keys", "rotate"], data=stack.tmp, env=stack.env)
    assert rotated.returncode == 0, rotated.stderr
    new_kid = json.loads(rotated.stdout)["kid"]
    [created] = events(json_log_lines(rotated.stderr), "key_created")
    assert (created["kid"], created["trigger"], created["activates_at"]) == (
        new_kid,
        "on_demand",
        json.loads(rotated.stdout)["activates_at"],
    )

    def logged(name: str) -> list[dict[str, Any]]:
        return events(log_of(auth), name)

    assert eventually(lambda: bool(logged("key_retired")), timeout=15)
    [activated], [retired] = logged("key_activated"), logged("key_retired")
    assert (activated["kid"], retired["kid"]) == (new_kid, old_kid)
    stack.stop()
    log = log_of(auth)

    first_claims, second_claims, third_claims = (claims_of(str(t["access_token"]))[1] for t in (first, second, third))
    successes = events(log, "login_success")
    assert [(r["sub"], r["sid"], r["client_id"]) for r in successes] == [
        (sub, c["sid"], "public") for c in (first_claims, second_claims, third_claims)
    ]
    failures = events(log, "login_failure")
    assert [(r["sub"], r["client_id"]) for r in failures] == [(sub, "public"), (None, "public")]
    [reuse] = events(log, "refresh_reuse")
    assert reuse["level"] == "warning"
    assert (reuse["sub"], reuse["sid"], reuse["jti"]) == (
        sub,
        first_claims["sid"],
        claims_of(str(first["refresh_token"]))[1]["jti"],
    )
    revoked = [(r["kind"], r.get("jti") or r.get("sid")) for r in events(log, "revoked")]
    assert ("jti", second_claims["jti"]) in revoked and ("sid", third_claims["sid"]) in revoked
    [by_sub] = events(json_log_lines(by_cli.stderr), "revoked")
    assert (by_sub["kind"], by_sub["sub"]) == ("sub", sub) and by_sub["before"] >= time.time() - 60

    text = auth.log_path.read_text() + by_cli.stderr + rotated.stderr
    for secret in (PASSWORD, "wrong password", stranger, "eyJ"):  # "eyJ": how every JWS begins
        assert secret not in text, secret


def test_security_events_of_a_request_carry_the_client_address(stack: Stack) -> None:
    auth = stack.start_auth()
    stack.add_user("alice")
    stack.add_client("svc", "svc-secret-of-at-least-32-characters")
    from_two = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"), timeout=10.0)
    with from_two:
        login = from_two.post(
            f"{auth.url}/token", data={"grant_type": "password", "username": "alice", "password": PASSWORD}
        )
        assert login.status_code == 200
        assert from_two.post(f"{auth.url}/revoke", data={"token": login.json()["access_token"]}).status_code == 200
        assert (
            from_two.post(
                f"{auth.url}/token", data={"grant_type": "client_credentials"}, auth=("svc", "wrong")
            ).status_code
            == 401
        )
    assert stack.token(grant_type="password", username="alice", password="wrong password").status_code == 400
    stack.stop()
    log = log_of(auth)

    for name in ("login_success", "revoked", "client_auth_failure"):
        [event] = events(log, name)
        assert event["client_address"] == "127.0.0.2", name
    [failure] = events(log, "login_failure")
    assert failure["client_address"] == "127.0.0.1"
    [created] = events(log, "key_created")  # no request behind it: no address
    assert "client_address" not in created
