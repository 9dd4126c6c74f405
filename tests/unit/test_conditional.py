"""auth_service.conditional: the header rules that let a cache answer for the issuer."""

from __future__ import annotations

import pytest

from auth_service.conditional import none_match, strong_etag

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
