"""auth_service.feed_pages: rendered pull pages, their ETags and gzip forms, in a bounded cache."""

from __future__ import annotations

import gzip

from auth_service.feed_pages import PageCache

BODY = b'{"feed":"F","cursor":9,"snapshot":true,"more":false,"entries":[' + b'{"seq":1},' * 200 + b"]}"


def test_a_page_keeps_its_etag_and_the_gzip_form_has_its_own() -> None:
    cache = PageCache()
    page = cache.add(("F", 9, None, 2000), BODY)
    assert page.etag == cache.add(("F", 9, None, 10), BODY).etag  # the same bytes, the same tag
    assert page.gzip_etag == page.etag[:-1] + '-gz"' != page.etag
    assert gzip.decompress(cache.gzipped(page)) == BODY
    assert cache.gzipped(page) is cache.gzipped(page)  # compressed once, then kept


def test_a_pages_gzip_form_counts_in_the_byte_budget() -> None:
    packed = len(gzip.compress(BODY, 6, mtime=0))
    cache = PageCache(max_bytes=2 * len(BODY) + packed - 1)  # two pages fit, not with a gzip form too
    first, second = cache.add(("F", 1, None, 2000), BODY), cache.add(("F", 2, None, 2000), BODY)
    assert cache.get(first.key) is first  # the first is now the most recently used
    cache.gzipped(first)
    assert cache.get(second.key) is None, "the least recently used page made room for the gzip form"
    assert cache.get(first.key) is first


def test_the_cache_holds_at_most_its_page_count_least_recently_used_first_out() -> None:
    cache = PageCache(pages=2)
    pages = [cache.add(("F", head, None, 2000), BODY) for head in (1, 2)]
    assert cache.get(pages[0].key) is pages[0]
    cache.add(("F", 3, None, 2000), BODY)
    assert cache.get(pages[1].key) is None and cache.get(pages[0].key) is pages[0]
