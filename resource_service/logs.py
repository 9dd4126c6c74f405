"""Structured logs for both services: one JSON object per line, or structlog's console
rendering at a terminal, from every stdlib logger (ours, uvicorn's, httpx's) alike.

Code keeps logging through plain `logging` loggers; fields ride in `extra=`
(`security.info("login_success", extra={"sub": ..., "sid": ...})`). Only the handler on
the root logger knows about structlog, so a library user who configures logging their
own way still gets every line. The request id (and, where asked, the client address) lives
in a `ContextVar` set by `RequestIdMiddleware` and is added to each line of that request by a
processor.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from typing import IO, Annotated, Any, Literal

import structlog
from pydantic import BeforeValidator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["LogFormat", "RequestIdMiddleware", "configure_logging", "current_client_address", "current_request_id"]

LogFormat = Literal["auto", "json", "console"]


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


# A settings field of this type takes the level in any case (`info`, `INFO`), as logging does.
LogLevel = Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], BeforeValidator(_upper)]

# A caller's id is kept only if it cannot break a header or a log line, nor bloat either.
_VALID_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
_MAX_PATH = 256  # characters of the path in an access line: a long junk path is not worth the bytes

_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
_client_address: ContextVar[str | None] = ContextVar("client_address", default=None)
# A made id: this process's random prefix and a counter, 32 hex digits like a uuid4's. Unique
# across processes and restarts without a system call per request (os.urandom costs ~1 µs).
# Request ids correlate log lines; they are not secrets, so a predictable counter is fine.
_PREFIX = os.urandom(8).hex()
_made = itertools.count()


def current_request_id() -> str | None:
    """The id of the request being handled, if `RequestIdMiddleware` is in front of it."""
    return _request_id.get()


def current_client_address() -> str | None:
    """The peer address of the request being handled, if `RequestIdMiddleware` was asked to
    keep it (as the server reports it: behind a proxy, the forwarded address it trusts)."""
    return _client_address.get()


def _add_request_context(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    request_id = _request_id.get()
    if request_id is not None:
        event.setdefault("request_id", request_id)
    client_address = _client_address.get()
    if client_address is not None:
        event.setdefault("client_address", client_address)
    return event


def _drop_color_message(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    event.pop("color_message", None)  # uvicorn's ANSI-coloured copy of `event`, passed in `extra`
    return event


def configure_logging(format: LogFormat = "auto", level: str = "INFO", *, stream: IO[str] | None = None) -> None:
    """Send every log record to `stream` (stderr) through structlog's ProcessorFormatter.

    "auto" renders for a human when the stream is a terminal and as JSON lines otherwise
    (a file, a pipe, a container runtime). Replaces the root logger's handlers; uvicorn's
    loggers are made to propagate to it, so run uvicorn with `log_config=None`.
    """
    stream = stream if stream is not None else sys.stderr
    console = format == "console" or (format == "auto" and stream.isatty())
    pre_chain: list[Any] = [
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        _drop_color_message,
        _add_request_context,
    ]
    # Plain tracebacks only: the fancier ones (rich, better-exceptions, dict_tracebacks) print
    # each frame's local variables, and a local can be a password or a private key.
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=stream.isatty(), exception_formatter=structlog.dev.plain_traceback)
        if console
        else structlog.processors.JSONRenderer()
    )
    final: list[Any] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if not console:  # the console renderer formats tracebacks itself
        final.append(structlog.processors.format_exc_info)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(foreign_pre_chain=pre_chain, processors=[*final, renderer])
    )
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per feed poll would bury the rest
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True


class RequestIdMiddleware:
    """Gives every http request an id: the caller's `X-Request-Id` when it is 1-128
    characters of `A-Z a-z 0-9 . _ : -`, else a new one of 32 hex digits (this process's
    random prefix and a counter).

    The id is echoed in the response's `X-Request-Id`, added as `request_id` to every
    log line written while the request runs, and left in `scope["request_id"]` for an
    error handler that runs outside this middleware. With `access_log`, one line per
    request on `logger` (method, path without the query string, status, duration_ms):
    the query string can carry secrets.

    With `client_address`, the peer address (`scope["client"]`) is added as `client_address`
    to every line of the request too (the issuer's security events); off by default, the
    replica's hot path does without.

    Two options let one layer do what would otherwise take three on a hot path (each
    layer costs about a microsecond a request): `headers`, fixed headers added to every
    response (the demo API's replica id), and `observe`, called with the scope, the status
    and the seconds taken once the response is sent (`resource_service.metrics.RequestTimer`).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        access_log: bool = False,
        logger: str = "resource_service.access",
        headers: Iterable[tuple[str, str]] = (),
        observe: Callable[[Scope, int, float], None] | None = None,
        client_address: bool = False,
    ) -> None:
        self.app = app
        self.access_log = access_log
        self.client_address = client_address
        self.logger = logging.getLogger(logger)
        self._fixed = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]
        self._observe = observe
        self._timed = access_log or observe is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = scope["request_id"] = _request_id_of(scope["headers"])
        added = [(b"x-request-id", request_id.encode("ascii")), *self._fixed]
        status = 500  # if the app raises before answering, the server sends a 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.get("headers")
                if type(headers) is list:  # Starlette's responses: a fresh list per response
                    headers += added
                else:
                    message = {**message, "headers": [*(headers or ()), *added]}
            await send(message)

        token = _request_id.set(request_id)
        address_token = None
        if self.client_address and (client := scope.get("client")):
            address_token = _client_address.set(client[0])
        timed = self._timed
        started = time.perf_counter() if timed else 0.0
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if timed:
                seconds = time.perf_counter() - started
                if self._observe is not None:
                    self._observe(scope, status, seconds)
                if self.access_log:
                    self.logger.info(
                        "request",
                        extra={
                            "method": scope["method"],
                            "path": scope["path"][:_MAX_PATH],
                            "status": status,
                            "duration_ms": round(seconds * 1000, 3),
                        },
                    )
            _request_id.reset(token)
            if address_token is not None:
                _client_address.reset(address_token)


def _request_id_of(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == b"x-request-id":  # ASGI servers lowercase header names
            if _VALID_ID.fullmatch(value):
                return value.decode("ascii")
            break
    return _PREFIX + format(next(_made) & 0xFFFFFFFFFFFFFFFF, "016x")
