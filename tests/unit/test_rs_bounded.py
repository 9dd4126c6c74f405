"""resource_service._bounded.fetch: a body is read decoded and within its bound, whatever the
issuer's Content-Encoding says. Hostile answers as a table, one named row per attack."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib

import httpx
import pytest

from resource_service._bounded import TooLarge, fetch

pytestmark = pytest.mark.anyio
URL = "https://auth.example/revocations"
LIMIT = 1 << 20


def zeros_gzip(megabytes: int) -> bytes:
    """A gzip bomb: `megabytes` MB of zeros in about a thousandth of that."""
    squeeze = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = bytes(1 << 20)
    return b"".join([*(squeeze.compress(block) for _ in range(megabytes)), squeeze.flush()])


def undecoded(status: int, encoding: str, content: bytes = b"") -> httpx.Response:
    """An answer whose body httpx has not decoded: the test itself must not inflate a bomb."""
    return httpx.Response(status, headers={"Content-Encoding": encoding}, stream=httpx.ByteStream(content))


async def get(answer: httpx.Response, seen: list[httpx.Request] | None = None) -> tuple[httpx.Response, bytes]:
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return answer

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        return await fetch(client, URL, max_bytes=LIMIT, headers={"If-None-Match": '"x"'})


async def refused_holding(answer: httpx.Response, refusal: type[Exception] = ValueError) -> float:
    """Bytes held at the peak while `fetch` refused this answer."""
    tracemalloc.start()
    try:
        with pytest.raises(refusal):
            await get(answer)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


async def test_it_asks_for_gzip_or_nothing_beside_the_callers_own_headers() -> None:
    seen: list[httpx.Request] = []
    await get(undecoded(200, "identity", b"{}"), seen)
    assert seen[0].headers["accept-encoding"] == "gzip"  # the one coding it inflates within a bound
    assert seen[0].headers["if-none-match"] == '"x"'


async def test_a_gzip_body_is_read_decoded() -> None:
    page = b'{"feed": "F", "entries": []}' * 100
    _, body = await get(undecoded(200, "gzip", gzip.compress(page)))
    assert body == page


async def test_an_empty_answer_labelled_gzip_is_an_empty_body() -> None:
    response, body = await get(undecoded(304, "gzip"))
    assert response.status_code == 304 and body == b""


async def test_a_gzip_bomb_is_refused_without_inflating_past_the_bound() -> None:
    peak = await refused_holding(undecoded(200, "gzip", zeros_gzip(64)), TooLarge)  # 64 KB sent, 64 MB inflated
    assert peak < 4 * LIMIT, f"{peak / 1e6:.0f} MB held while refusing a {LIMIT / 1e6:.0f} MB bound"


@pytest.mark.parametrize(
    "encoding,content",
    [
        pytest.param("gzip, gzip", gzip.compress(zeros_gzip(64)), id="stacked-codings-multiply-a-bomb"),
        pytest.param("br", b"\x0b\x02\x80{}\x03", id="a-coding-we-did-not-ask-for"),
        pytest.param("gzip", gzip.compress(b"{}" * 1000)[:-12], id="truncated-gzip"),
        pytest.param("gzip", gzip.compress(b"{}") + b"junk", id="bytes-after-the-gzip-stream"),
        pytest.param("gzip", b"{}", id="not-gzip-at-all"),
    ],
)
async def test_a_body_we_cannot_decode_within_bounds_is_refused(encoding: str, content: bytes) -> None:
    assert await refused_holding(undecoded(200, encoding, content)) < 4 * LIMIT
