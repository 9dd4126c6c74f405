"""resource_service.logs: JSON or console lines from stdlib loggers, the request id, and the
replica's fail_closed event. In process; tests/integration/test_logs.py runs real services."""

from __future__ import annotations

import io
import json
import logging
import re
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from resource_service import (
    RequestIdMiddleware,
    ResourceSettings,
    Unavailable,
    Verifier,
)
from resource_service.logs import configure_logging, current_request_id
from tests.unit.fakes import ISSUER, Clock, Issuer, no_wait

pytestmark = pytest.mark.anyio


class Stream(io.StringIO):
    """A stderr stand-in that says whether it is a terminal."""

    def __init__(self, tty: bool = False) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def configured(format: str = "auto", tty: bool = False, level: str = "INFO") -> Stream:
    stream = Stream(tty)
    configure_logging(format, level, stream=stream)  # type: ignore[arg-type]
    return stream


def test_a_stdlib_record_becomes_one_json_object_per_line_when_not_a_terminal():
    stream = configured()
    logging.getLogger("auth_service.security").info("login_success", extra={"sub": "u-1", "sid": "s-1"})
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 42, extra={"color_message": "\x1b[1m"})
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first.pop("timestamp").endswith("Z")  # ISO 8601, UTC
    assert first == {
        "event": "login_success",
        "level": "info",
        "logger": "auth_service.security",
        "sub": "u-1",
        "sid": "s-1",
    }
    assert second["event"] == "Started server process [42]" and "color_message" not in second


def test_json_lines_escape_a_newline_so_a_value_cannot_forge_a_line():
    stream = configured("json")
    logging.getLogger("x").warning("event", extra={"client_id": 'a\n{"event": "login_success"}'})
    assert len(stream.getvalue().splitlines()) == 1


@pytest.mark.parametrize("format, tty", [("auto", True), ("console", False)], ids=["terminal", "asked"])
def test_console_rendering_at_a_terminal_or_when_asked(format: str, tty: bool):
    stream = configured(format, tty)
    logging.getLogger("auth_service.security").info("login_failure", extra={"client_id": "web"})
    text = re.sub(r"\x1b\[[0-9;]*m", "", stream.getvalue())  # colours at a terminal only
    assert ("\x1b[" in stream.getvalue()) is tty
    assert "login_failure" in text and "client_id=web" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


def test_json_format_wins_over_a_terminal():
    stream = configured("json", tty=True)
    logging.getLogger("x").info("hello")
    assert json.loads(stream.getvalue())["event"] == "hello"


@pytest.mark.parametrize("format", ["json", "console"])
def test_a_traceback_never_shows_local_variables(format: str):
    stream = configured(format)

    def login(password: str) -> None:
        raise RuntimeError("boom")

    secret = "hunter2-" + secrets.token_hex(8)  # made here, so no source line shows it
    try:
        login(secret)
    except RuntimeError:
        logging.getLogger("x").exception("failed")
    text = stream.getvalue()
    assert "RuntimeError: boom" in text.replace("\\n", "\n")
    assert secret not in text


def test_level_filters_records():
    stream = configured(level="WARNING")
    logging.getLogger("x").info("quiet")
    logging.getLogger("x").warning("loud")
    assert [json.loads(line)["event"] for line in stream.getvalue().splitlines()] == ["loud"]


# -- RequestIdMiddleware ----------------------------------------------------------------


def _app(**options: Any) -> RequestIdMiddleware:
    async def echo(request: Request) -> PlainTextResponse:
        logging.getLogger("app").info("inside")
        return PlainTextResponse(current_request_id() or "none")

    async def fails(request: Request) -> PlainTextResponse:
        raise RuntimeError("boom")

    return RequestIdMiddleware(Starlette(routes=[Route("/", echo), Route("/fails", fails)]), **options)


async def _get(app: Any, path: str = "/", **headers: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path, headers=headers)


async def test_a_valid_caller_id_is_echoed_bound_for_the_request_and_unbound_after():
    stream = configured()
    response = await _get(_app(), **{"X-Request-Id": "abc-123:x_y.z"})
    assert response.headers["x-request-id"] == response.text == "abc-123:x_y.z"
    assert json.loads(stream.getvalue())["request_id"] == "abc-123:x_y.z"
    assert current_request_id() is None


@pytest.mark.parametrize(
    "sent",
    ["bad id", "a" * 129, "", "abc/../x", "ab\tc", "ab%0d%0ac"],
    ids=["space", "129 characters", "empty", "slash", "tab", "encoded CR LF"],
)
async def test_an_invalid_caller_id_is_replaced_by_a_fresh_one(sent: str):
    response = await _get(_app(), **{"X-Request-Id": sent})
    made = response.headers["x-request-id"]
    assert made != sent and len(made) == 32 and int(made, 16) >= 0


async def test_an_id_is_made_when_none_is_sent_and_differs_per_request():
    ids = {(await _get(_app())).headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3 and all(len(i) == 32 for i in ids)


async def test_a_128_character_id_is_kept():
    sent = "a" * 128
    assert (await _get(_app(), **{"X-Request-Id": sent})).headers["x-request-id"] == sent


async def test_fixed_headers_and_the_observer_ride_on_the_same_layer():
    seen: list[tuple[str, int, float]] = []
    app = _app(
        headers=[("X-Replica-Id", "r1")], observe=lambda scope, status, s: seen.append((scope["path"], status, s))
    )

    ok, failed = await _get(app), await _get(app, "/fails")

    assert ok.headers["x-replica-id"] == "r1" and len(ok.headers["x-request-id"]) == 32
    assert [(path, status) for path, status, _ in seen] == [("/", 200), ("/fails", 500)]
    assert all(0 < seconds < 10 for _, _, seconds in seen)
    assert failed.status_code == 500


async def test_access_line_has_method_path_status_and_duration_but_not_the_query():
    stream = configured()
    await _get(_app(access_log=True, logger="test.access"), "/?token=sekrit", **{"X-Request-Id": "r-1"})
    inside, access = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["request_id"] == access["request_id"] == "r-1"
    assert {k: access[k] for k in ("event", "logger", "method", "path", "status")} == {
        "event": "request",
        "logger": "test.access",
        "method": "GET",
        "path": "/",
        "status": 200,
    }
    assert access["duration_ms"] >= 0
    assert "sekrit" not in stream.getvalue()


async def test_no_access_line_unless_asked():
    stream = configured()
    await _get(_app())
    assert [json.loads(line)["event"] for line in stream.getvalue().splitlines()] == ["inside"]


async def test_a_request_that_raises_is_logged_as_a_500_and_leaves_its_id_in_the_scope():
    stream = configured()
    seen: dict[str, Any] = {}

    async def raising(scope: Any, receive: Any, send: Any) -> None:
        seen.update(scope)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await RequestIdMiddleware(raising, access_log=True)(
            {"type": "http", "method": "GET", "path": "/", "headers": [(b"x-request-id", b"r-9")]}, None, None
        )
    assert seen["request_id"] == "r-9"
    assert json.loads(stream.getvalue())["status"] == 500
    assert current_request_id() is None


async def test_other_scopes_pass_untouched():
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    await RequestIdMiddleware(app)({"type": "lifespan"}, None, None)
    assert seen == ["lifespan"]


# -- the replica's fail_closed event ------------------------------------------------------


@pytest.fixture
async def verifier() -> Any:
    issuer, clock = Issuer(), Clock()
    settings = ResourceSettings(
        auth_url=ISSUER, replica_id="r1", max_revocation_staleness=30, revocation_poll_interval=7
    )
    v = Verifier(settings, clock=clock, transport=httpx.MockTransport(issuer), sleep=no_wait)
    await v.start()
    yield v, issuer, clock
    await v.stop()


async def test_fail_closed_is_logged_once_when_refusing_starts_and_once_when_it_ends(verifier, caplog):
    v, issuer, clock = verifier
    token = issuer.mint()
    await v.verify(token)
    clock.now += 31
    with caplog.at_level(logging.INFO, logger="resource_service.security"):
        for _ in range(3):
            with pytest.raises(Unavailable):
                await v.verify(token)
        await v.sync.pull()
        for _ in range(3):
            await v.verify(token)
    events = [
        (r.getMessage(), r.levelname, r.state, r.reason)
        for r in caplog.records
        if r.name == "resource_service.security"
    ]
    assert events == [
        ("fail_closed", "WARNING", "refusing", "revocations_stale"),
        ("fail_closed", "INFO", "recovered", "revocations_stale"),
    ]
    refusing = next(r for r in caplog.records if r.name == "resource_service.security")
    assert refusing.staleness == 31  # type: ignore[attr-defined]
