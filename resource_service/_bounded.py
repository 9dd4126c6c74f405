"""Reading what the issuer sends, within bounds: a hostile or broken issuer gets a logged
error and a retry, never a replica that crashes or grows without limit.

- `fetch` reads a response body up to a size, streaming and inflating gzip itself, so an
  endless body or a gzip bomb costs at most that much memory;
- `parse_json` turns deep nesting (a `RecursionError` in the decoder) into the `ValueError`
  every caller already handles;
- `sse_events` parses server-sent events with a bound on each line and each event, where a
  line-based reader would buffer an endless line whole.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import AsyncIterator
from typing import Any

import httpx

_EOL = re.compile(rb"\r\n|\r|\n")


class TooLarge(ValueError):
    """More bytes than the bound allows; what was read is dropped."""


async def fetch(client: httpx.AsyncClient, url: str, *, max_bytes: int, **kwargs: Any) -> tuple[httpx.Response, bytes]:
    """GET `url` and read at most `max_bytes` of body, decoded; `TooLarge` past that.

    It asks for gzip or nothing and inflates the raw bytes itself, never past the bound:
    httpx's own decoder inflates each network chunk whole (64 KiB of a gzip bomb is 64 MB)
    and stacks the codings a response names (`Content-Encoding: gzip, gzip` made 1 GB of a
    980-byte answer). Any other coding is a `ValueError`."""
    headers = httpx.Headers(kwargs.pop("headers", None))
    headers["Accept-Encoding"] = "gzip"
    async with client.stream("GET", url, headers=headers, **kwargs) as response:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise TooLarge(f"response from {url} declares {declared} bytes, more than {max_bytes}")
        inflate = _Inflate(response.headers.get("content-encoding", ""))
        if not isinstance(response.stream, httpx.AsyncByteStream):
            raise TypeError("fetch needs an async client's stream")
        body = bytearray()
        # The raw stream itself, not aiter_raw(): that refuses a body httpx has read already,
        # which it does for an answer built in memory (a mock transport's).
        async for chunk in response.stream:
            body += inflate(chunk, max_bytes - len(body) + 1)
            if len(body) > max_bytes:
                raise TooLarge(f"response from {url} is larger than {max_bytes} bytes")
        inflate.finish()
        return response, bytes(body)


class _Inflate:
    """A body's content coding undone within a bound: identity, or gzip (RFC 9110 section 8.4.1.3)."""

    def __init__(self, coding: str) -> None:
        coding = coding.strip().lower()
        if coding not in ("", "identity", "gzip", "x-gzip"):
            raise ValueError(f"response has a content coding we did not ask for: {coding[:40]!r}")
        self._gzip = zlib.decompressobj(zlib.MAX_WBITS | 16) if "gzip" in coding else None
        self._fed = False

    def __call__(self, chunk: bytes, most: int) -> bytes:
        """This chunk decoded, or its first `most` bytes when it inflates to more (the caller
        refuses the body then)."""
        if self._gzip is None:
            return chunk
        self._fed = self._fed or bool(chunk)
        try:
            return self._gzip.decompress(chunk, most)
        except zlib.error:
            raise ValueError("response is not valid gzip") from None

    def finish(self) -> None:
        # An empty body (a 304) is fine; a gzip body must end where its stream does.
        if self._gzip is not None and self._fed and (not self._gzip.eof or self._gzip.unused_data):
            raise ValueError("response gzip stream is truncated or has trailing bytes")


def parse_json(content: bytes | str, what: str) -> Any:
    """`json.loads`, with nesting too deep for the decoder reported as `ValueError`."""
    try:
        return json.loads(content)
    except RecursionError:
        raise ValueError(f"{what} is nested too deeply") from None
    except ValueError:  # the decoder's message quotes the document: keep it out of logs
        raise ValueError(f"{what} is not JSON") from None


async def sse_events(chunks: AsyncIterator[bytes], *, max_line: int, max_event: int) -> AsyncIterator[tuple[str, str]]:
    """(event, data) per dispatched server-sent event (WHATWG HTML, section 9.2.6).

    `TooLarge` when one line exceeds `max_line` bytes or one event's data `max_event`."""
    buffer = bytearray()
    event, size = "", 0
    data: list[str] = []
    async for chunk in chunks:
        buffer += chunk
        start = 0
        while (end := _EOL.search(buffer, start)) is not None:
            if end.group() == b"\r" and end.end() == len(buffer):
                break  # perhaps the first half of a CRLF: wait for the next chunk
            line = bytes(buffer[start : end.start()])
            start = end.end()
            if len(line) > max_line:
                raise TooLarge(f"event stream line longer than {max_line} bytes")
            if not line:
                if data:
                    yield event or "message", "\n".join(data)
                event, data, size = "", [], 0
                continue
            if line.startswith(b":"):
                continue  # a comment
            name, _, value = line.decode("utf-8", "replace").partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                size += len(value) + 1
                if size > max_event:
                    raise TooLarge(f"event stream event larger than {max_event} bytes")
                data.append(value)
        del buffer[:start]
        if len(buffer) > max_line:
            raise TooLarge(f"event stream line longer than {max_line} bytes")
