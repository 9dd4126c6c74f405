"""Reading what the issuer sends, within bounds: a hostile or broken issuer gets a logged
error and a retry, never a replica that crashes or grows without limit.

- `fetch` reads a response body up to a size, streaming, so an endless body costs at most
  that much memory;
- `parse_json` turns deep nesting (a `RecursionError` in the decoder) into the `ValueError`
  every caller already handles;
- `sse_events` parses server-sent events with a bound on each line and each event, where a
  line-based reader would buffer an endless line whole.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx

_EOL = re.compile(rb"\r\n|\r|\n")


class TooLarge(ValueError):
    """More bytes than the bound allows; what was read is dropped."""


async def fetch(client: httpx.AsyncClient, url: str, *, max_bytes: int, **kwargs: Any) -> tuple[httpx.Response, bytes]:
    """GET `url` and read at most `max_bytes` of body; `TooLarge` past that."""
    async with client.stream("GET", url, **kwargs) as response:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise TooLarge(f"response from {url} declares {declared} bytes, more than {max_bytes}")
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > max_bytes:
                raise TooLarge(f"response from {url} is larger than {max_bytes} bytes")
        return response, bytes(body)


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
