"""Serving a service with uvicorn, guarded against slow and oversized requests.

uvicorn on its own waits forever for a request's headers and body and reads headers of any
size (httptools joins a long header value chunk by chunk, quadratically). Both `serve`
commands run `GuardedHttpToolsProtocol` instead: a request whose headers do not arrive within
`header_timeout` gets 408, one whose body stalls past `body_timeout` is closed, and headers over
`max_header_bytes` get 431. uvicorn's own `X-Forwarded-For` handling is off: the issuer trusts
that header only from its configured proxies (AUTH_TRUSTED_PROXIES).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["GuardedHttpToolsProtocol", "HttpSettings", "Limits", "ServerConfig", "limits_of", "raise_open_file_limit"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Limits:
    """What one connection may cost (the settings' defaults)."""

    header_timeout: float = 10.0  # seconds from a request's first byte (or the connection) to its last header
    body_timeout: float = 30.0  # seconds from the last header to the last body byte
    max_header_bytes: int = 16_384  # request line and headers together
    limit_concurrency: int = 1_000  # open connections before uvicorn answers 503
    backlog: int = 2_048  # connections the kernel queues before accept


class HttpSettings(Protocol):
    """The `http_*` fields both services' settings have (AUTH_HTTP_*, RESOURCE_HTTP_*)."""

    http_header_timeout: float
    http_body_timeout: float
    http_max_header_bytes: int
    http_limit_concurrency: int
    http_backlog: int


def limits_of(settings: HttpSettings) -> Limits:
    return Limits(
        header_timeout=settings.http_header_timeout,
        body_timeout=settings.http_body_timeout,
        max_header_bytes=settings.http_max_header_bytes,
        limit_concurrency=settings.http_limit_concurrency,
        backlog=settings.http_backlog,
    )


def _closing_answer(status: int, reason: str) -> bytes:
    body = reason.lower().encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body


_TIMEOUT = _closing_answer(408, "Request Timeout")
_TOO_LARGE = _closing_answer(431, "Request Header Fields Too Large")


class ServerConfig(uvicorn.Config):
    """uvicorn's Config on uvloop with the guarded protocol, the limits and no proxy headers."""

    def __init__(self, app: Any, *, limits: Limits, **options: Any) -> None:
        super().__init__(
            app,
            loop="uvloop",
            http=GuardedHttpToolsProtocol,
            proxy_headers=False,
            limit_concurrency=limits.limit_concurrency,
            backlog=limits.backlog,
            **options,
        )
        self.limits = limits


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header deadline, a body deadline and a header-size cap."""

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self._limits: Limits = getattr(config, "limits", Limits())
        self._deadline: asyncio.TimerHandle | None = None
        self._reading_headers = True
        self._header_bytes = 0  # counted by the parser's callbacks: exact
        self._unparsed = 0  # bytes fed while the headers are incomplete: bounds the parser's work
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # as uvicorn's own: asyncio says BaseTransport
        super().connection_made(transport)
        self._arm(self._limits.header_timeout, self._headers_too_slow)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)
        if self._reading_headers and not self._refused:
            self._unparsed += len(data)
            if self._unparsed > self._limits.max_header_bytes:
                self._refuse(_TOO_LARGE, "request headers over %d bytes: 431", self._limits.max_header_bytes)

    def handle_websocket_upgrade(self) -> None:
        self._disarm()  # the transport goes to the websocket protocol, which has its own timeouts
        super().handle_websocket_upgrade()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_headers, self._header_bytes, self._unparsed = True, 0, 0
        if self._deadline is None:  # the first request's deadline runs from the connection
            self._arm(self._limits.header_timeout, self._headers_too_slow)

    def on_url(self, url: bytes) -> None:
        self._header_bytes += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._reading_headers = False
        self._disarm()
        if self._header_bytes > self._limits.max_header_bytes:
            self._refuse(_TOO_LARGE, "request headers over %d bytes: 431", self._limits.max_header_bytes)
            return
        self._arm(self._limits.body_timeout, self._body_too_slow)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._disarm()
        super().on_message_complete()

    def _arm(self, seconds: float, expired: Callable[[], None]) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_too_slow(self) -> None:
        self._deadline = None
        self._refuse(_TIMEOUT, "request headers not complete within %s s: 408", self._limits.header_timeout)

    def _body_too_slow(self) -> None:
        # The application may be reading the body (it then sees a disconnect) or answering:
        # no answer of ours can be written into that, so the connection just closes.
        self._deadline = None
        log.info(
            "request body not complete within %s s: connection closed",
            self._limits.body_timeout,
            extra={"client": self._peer()},
        )
        self.transport.close()

    def _refuse(self, answer: bytes, message: str, limit: float) -> None:
        self._refused = True
        self._disarm()
        log.info(message, limit, extra={"client": self._peer()})
        if not self.transport.is_closing():
            self.transport.write(answer)
            self.transport.close()

    def _peer(self) -> str:
        return self.client[0] if self.client else "unknown"


def raise_open_file_limit() -> None:
    """Raise the soft limit of open files to the hard one, so connections run out before descriptors."""
    try:
        import resource
    except ImportError:  # not a POSIX system
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
    if soft != resource.RLIM_INFINITY and soft >= target:
        log.info("open-file limit %d (the hard limit)", soft)
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        log.warning("open-file limit stays at %d: %s", soft, exc)
        return
    log.info("open-file limit raised from %d to %d", soft, target)
