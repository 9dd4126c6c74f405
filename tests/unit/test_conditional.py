"""auth_service.conditional: the header rules that let a cache answer for the issuer."""

from __future__ import annotations

import pytest

from auth_service.conditional import accepts_gzip, none_match, strong_etag

TAG = strong_etag(b'{"feed":"F","cursor":1}')


def test_a_strong_etag_is_quoted_and_follows_the_bytes() -> None:
    assert TAG.startswith('"') and TAG.endswith('"') and len(TAG) == 34
    assert strong_etag(b'{"feed":"F","cursor":1}') == TAG != strong_etag(b'{"feed":"F","cursor":2}')


@pytest.mark.parametrize(
    "header,matches",
    [
        pytest.param(None, False, id="no-header"),
        pytest.param(TAG, True, id="the-tag"),
        pytest.param(f"W/{TAG}", True, id="weak-comparison-ignores-W/"),
        pytest.param("*", True, id="any-tag"),
        pytest.param(" * ", True, id="any-tag-padded"),
        pytest.param(f'"x", {TAG}', True, id="in-a-list"),
        pytest.param(f'"a,b",{TAG}', True, id="after-a-tag-with-a-comma-in-it"),
        pytest.param('"x", "y"', False, id="a-list-without-it"),
        pytest.param(TAG[1:-1], False, id="unquoted"),
        pytest.param(f'"{TAG}"', False, id="quoted-twice"),
        pytest.param(f'{TAG[:-1]}-gz"', False, id="another-representation"),
        pytest.param(f"*, {TAG}", True, id="a-list-with-the-tag-beside-a-star"),
        pytest.param("", False, id="empty"),
    ],
)
def test_if_none_match(header: str | None, matches: bool) -> None:
    assert none_match(header, TAG) is matches


@pytest.mark.parametrize(
    "header,accepted",
    [
        pytest.param(None, False, id="no-header-gets-identity"),
        pytest.param("", False, id="empty-means-identity"),
        pytest.param("gzip", True, id="gzip"),
        pytest.param("GZip", True, id="names-are-case-insensitive"),
        pytest.param("x-gzip", True, id="x-gzip"),
        pytest.param("gzip, deflate, br, zstd", True, id="httpx"),
        pytest.param("br;q=1.0, gzip;q=0.5", True, id="a-lower-weight-still-accepts"),
        pytest.param("gzip;q=0.001", True, id="the-lowest-weight"),
        pytest.param("gzip ; Q=1", True, id="spaces-and-an-upper-case-q"),
        pytest.param("*", True, id="anything"),
        pytest.param("gzip;q=0", False, id="refused"),
        pytest.param("gzip;q=0.000", False, id="refused-with-decimals"),
        pytest.param("gzip;q=0, *", False, id="refused-by-name-beside-anything"),
        pytest.param("*;q=0", False, id="anything-refused"),
        pytest.param("gzip;q=2", False, id="a-weight-above-1-is-no-qvalue"),
        pytest.param("gzip;q=-1", False, id="a-negative-weight-is-no-qvalue"),
        pytest.param("gzip;q=nan", False, id="nan-is-no-qvalue"),
        pytest.param("deflate, br", False, id="other-codings"),
        pytest.param("gzipped", False, id="a-longer-name"),
    ],
)
def test_accept_encoding(header: str | None, accepted: bool) -> None:
    assert accepts_gzip(header) is accepted
