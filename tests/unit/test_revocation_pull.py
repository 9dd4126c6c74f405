"""`GET /revocations` as a cache sees it, in process: ETags and 304s, Cache-Control, gzip,
the read time header.

The issuer is `create_app` with the fake clock (tests/unit/inprocess_issuer.py); entries are
added through its own `Revoker`, and renders are counted at the store's `entries_after`.
"""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import auth_service.feed_pages as feed_pages
from tests.unit.inprocess_issuer import Running, running_issuer

pytestmark = pytest.mark.anyio


@pytest.fixture
async def issuer(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Running]:
    async with running_issuer(tmp_path, **getattr(request, "param", {})) as running:
        await running.issuer.revoker.jti("j-1")
        yield running


@pytest.fixture
def renders(issuer: Running, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every page render: the store read of its entries."""
    calls: list[int] = []
    store = issuer.issuer.store
    real = store.entries_after

    async def counting(after: int, limit: int | None = None) -> Any:
        if limit is not None:  # a page; the tail reads without one
            calls.append(after)
        return await real(after, limit)

    monkeypatch.setattr(store, "entries_after", counting)
    return calls


async def test_a_pull_page_has_a_strong_etag_that_holds_while_the_head_does(issuer: Running) -> None:
    first, again = await issuer.client.get("/revocations"), await issuer.client.get("/revocations")
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) > 10  # strong: no W/
    assert again.headers["etag"] == etag and again.content == first.content
    await issuer.issuer.revoker.jti("j-2")
    changed = await issuer.client.get("/revocations")
    assert changed.headers["etag"] != etag and b"j-2" in changed.content


async def test_a_pull_page_answers_304_to_its_etag_without_rendering_again(issuer: Running, renders: list[int]) -> None:
    page = await issuer.client.get("/revocations", params={"limit": "5"})
    assert len(renders) == 1
    issuer.clock.now += 30
    answer = await issuer.client.get(
        "/revocations", params={"limit": "5"}, headers={"If-None-Match": page.headers["etag"]}
    )
    assert answer.status_code == 304 and answer.content == b"" and len(renders) == 1
    assert answer.headers["etag"] == page.headers["etag"]
    assert answer.headers["cache-control"] == page.headers["cache-control"]
    assert answer.headers["vary"] == page.headers["vary"] == "Accept-Encoding"
    assert float(answer.headers["feed-read-at"]) == float(page.headers["feed-read-at"]) + 30  # its own read


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("{etag}", id="the-tag"),
        pytest.param("*", id="any-tag"),
        pytest.param('"other", {etag}', id="in-a-list"),
        pytest.param(' "a,b" ,{etag} ', id="in-a-list-with-a-comma-inside-a-tag"),
        pytest.param("W/{etag}", id="weak-comparison"),
    ],
)
async def test_if_none_match_naming_the_page_answers_304(issuer: Running, header: str) -> None:
    etag = (await issuer.client.get("/revocations")).headers["etag"]
    answer = await issuer.client.get("/revocations", headers={"If-None-Match": header.format(etag=etag)})
    assert answer.status_code == 304 and answer.content == b""


@pytest.mark.parametrize(
    "header",
    [
        pytest.param('"other"', id="another-tag"),
        pytest.param("{bare}", id="the-tag-without-its-quotes"),
        pytest.param("{etag}", id="the-tag-of-an-older-head"),
    ],
)
async def test_if_none_match_naming_anything_else_gets_the_page(issuer: Running, header: str) -> None:
    etag = (await issuer.client.get("/revocations")).headers["etag"]
    await issuer.issuer.revoker.jti("j-2")  # the head moves: the old tag is stale
    answer = await issuer.client.get(
        "/revocations", headers={"If-None-Match": header.format(etag=etag, bare=etag[1:-1])}
    )
    assert answer.status_code == 200 and b"j-2" in answer.content


@pytest.mark.parametrize(
    "issuer,cache_control",
    [
        pytest.param({}, "public, max-age=2", id="default"),
        pytest.param({"revocation_pull_max_age": 30}, "public, max-age=30", id="set"),
        pytest.param({"revocation_pull_max_age": 0}, "no-cache", id="off"),
    ],
    indirect=["issuer"],
)
async def test_cache_control_follows_the_pull_max_age_setting(issuer: Running, cache_control: str) -> None:
    page = await issuer.client.get("/revocations")
    assert page.headers["cache-control"] == cache_control
    again = await issuer.client.get("/revocations", headers={"If-None-Match": page.headers["etag"]})
    assert again.status_code == 304 and again.headers["cache-control"] == cache_control


@pytest.mark.parametrize("issuer", [{"revocation_tail_interval": 5}], indirect=True)  # no tail read meanwhile
async def test_feed_read_at_is_when_this_request_began_reading_the_feed_head(
    issuer: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, clock = issuer.issuer.store, issuer.clock
    real = store.feed_head

    async def slow_read() -> tuple[str, int]:
        clock.now += 10  # the read takes ten seconds of the issuer's clock
        return await real()

    monkeypatch.setattr(store, "feed_head", slow_read)
    bodies = []
    for _ in range(2):  # rendered, then from the cache
        clock.now += 100
        before = clock.now
        answer = await issuer.client.get("/revocations")
        read_at = float(answer.headers["feed-read-at"])
        assert before <= read_at <= clock.now - 10, "the clock before the read, not after it"
        assert answer.headers["feed-read-at"] == f"{read_at:.3f}"
        bodies.append(answer.content)
    assert bodies[0] == bodies[1]  # the read time rides in a header: the cached bytes stay the same


async def raw_get(issuer: Running, accept_encoding: str, **headers: str) -> tuple[httpx.Response, bytes]:
    """A pull and its body as sent, not decoded."""
    headers["Accept-Encoding"] = accept_encoding
    async with issuer.client.stream("GET", "/revocations", headers=headers) as response:
        return response, b"".join([chunk async for chunk in response.aiter_raw()])


@pytest.fixture
async def long_page(issuer: Running) -> None:
    """Enough entries that a page is worth compressing (feed_pages.GZIP_FROM)."""
    for i in range(20):
        await issuer.issuer.revoker.jti(f"jti-number-{i}")


@pytest.fixture
def compressions(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    sizes: list[int] = []
    real = gzip.compress

    def counting(data: bytes, *args: Any, **kwargs: Any) -> bytes:
        sizes.append(len(data))
        return real(data, *args, **kwargs)

    monkeypatch.setattr(feed_pages.gzip, "compress", counting)
    return sizes


@pytest.mark.usefixtures("long_page")
async def test_a_gzip_page_decodes_to_exactly_the_identity_bytes_and_is_compressed_once(
    issuer: Running, compressions: list[int]
) -> None:
    plain, plain_body = await raw_get(issuer, "identity")
    assert len(plain_body) >= feed_pages.GZIP_FROM and "content-encoding" not in plain.headers
    assert compressions == []  # nothing compressed until a client asks for gzip
    packed, packed_body = await raw_get(issuer, "gzip, deflate")
    assert packed.headers["content-encoding"] == "gzip" and packed.headers["vary"] == "Accept-Encoding"
    assert gzip.decompress(packed_body) == plain_body and len(packed_body) < len(plain_body)
    assert packed.headers["etag"] == plain.headers["etag"][:-1] + '-gz"'  # a representation of its own
    _, again_body = await raw_get(issuer, "gzip")
    assert again_body == packed_body and compressions == [len(plain_body)]  # kept beside the JSON


@pytest.mark.usefixtures("long_page")
@pytest.mark.parametrize(
    "accept_encoding,coded",
    [
        pytest.param("gzip", True, id="gzip"),
        pytest.param("br;q=1.0, gzip;q=0.5", True, id="gzip-among-others"),
        pytest.param("*", True, id="anything"),
        pytest.param("gzip;q=0", False, id="gzip-refused"),
        pytest.param("gzip;q=0, *", False, id="gzip-refused-beside-anything"),
        pytest.param("identity", False, id="identity"),
        pytest.param("", False, id="nothing"),
    ],
)
async def test_gzip_is_sent_only_when_accept_encoding_accepts_it(
    issuer: Running, accept_encoding: str, coded: bool
) -> None:
    answer, body = await raw_get(issuer, accept_encoding)
    assert (answer.headers.get("content-encoding") == "gzip") is coded
    assert body.startswith(b"\x1f\x8b") is coded and answer.headers["vary"] == "Accept-Encoding"


async def test_a_page_under_a_kilobyte_goes_uncompressed(issuer: Running, compressions: list[int]) -> None:
    answer, body = await raw_get(issuer, "gzip")
    assert len(body) < feed_pages.GZIP_FROM and body.startswith(b"{")
    assert "content-encoding" not in answer.headers and answer.headers["vary"] == "Accept-Encoding"
    assert compressions == []


@pytest.mark.usefixtures("long_page")
async def test_a_304_answers_the_tag_of_the_representation_asked_for(issuer: Running) -> None:
    packed, _ = await raw_get(issuer, "gzip")
    plain, _ = await raw_get(issuer, "identity")
    same, body = await raw_get(issuer, "gzip", **{"If-None-Match": packed.headers["etag"]})
    assert same.status_code == 304 and body == b"" and same.headers["etag"] == packed.headers["etag"]
    other, body = await raw_get(issuer, "gzip", **{"If-None-Match": plain.headers["etag"]})
    assert other.status_code == 200 and other.headers["content-encoding"] == "gzip" and body
