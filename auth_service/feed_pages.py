"""Rendered pull pages of the revocation feed, kept for a fleet that asks for the same ones.

A fleet at one cursor asks for the same pages, so each is rendered once per (feed, head,
after, limit) into JSON bytes, with a strong ETag taken from those bytes once, and
gzip-compressed once, the first time a client accepts gzip. Both forms count in one byte
budget; the least recently used pages go first. `Pulled` is what one request gets: a page
and its own read time of the feed.
"""

from __future__ import annotations

import gzip
from collections import OrderedDict
from dataclasses import dataclass

from .conditional import strong_etag

CACHED_PAGES = 256  # rendered answers kept; each at most PAGE_LIMIT entries
CACHED_BYTES = 64 * 1024 * 1024  # their JSON and gzip bytes together
GZIP_LEVEL = 6  # 2,000 entries with random jtis: 193 KB to 49 KB in 1.8 ms, about what rendering took
GZIP_FROM = 1024  # bytes: a smaller page goes as it is (a delta of a few entries)

PageKey = tuple[str, int, int | None, int]  # (feed, head, after or None for a snapshot, limit)


class Page:
    """One pull answer: its JSON bytes, their strong ETag, and its gzip form once asked for."""

    __slots__ = ("body", "etag", "gzipped", "key")

    def __init__(self, key: PageKey, body: bytes) -> None:
        self.key = key
        self.body = body
        self.etag = strong_etag(body)
        self.gzipped: bytes | None = None

    @property
    def gzip_etag(self) -> str:
        """The gzip form is another representation, so it has a strong tag of its own
        (RFC 9110 section 8.8.3): the identity tag marked, known without compressing."""
        return self.etag[:-1] + '-gz"'

    @property
    def size(self) -> int:
        return len(self.body) + len(self.gzipped or b"")


class PageCache:
    """Pages by key, least recently used first out, within `pages` and `max_bytes`."""

    def __init__(self, *, pages: int = CACHED_PAGES, max_bytes: int = CACHED_BYTES) -> None:
        self._pages: OrderedDict[PageKey, Page] = OrderedDict()
        self._most_pages = pages
        self._most_bytes = max_bytes
        self._bytes = 0

    def get(self, key: PageKey) -> Page | None:
        if (page := self._pages.get(key)) is not None:
            self._pages.move_to_end(key)
        return page

    def add(self, key: PageKey, body: bytes) -> Page:
        page = self._pages[key] = Page(key, body)
        self._bytes += page.size
        self._evict()
        return page

    def gzipped(self, page: Page) -> bytes:
        """The page gzip-compressed: once per page, then kept beside its JSON."""
        if page.gzipped is None:
            # mtime=0: the same bytes on every run, as the one ETag per form says.
            page.gzipped = gzip.compress(page.body, GZIP_LEVEL, mtime=0)
            if self._pages.get(page.key) is page:  # still cached: it counts in the budget
                self._bytes += len(page.gzipped)
                self._evict()
        return page.gzipped

    def _evict(self) -> None:
        while len(self._pages) > self._most_pages or self._bytes > self._most_bytes:
            self._bytes -= self._pages.popitem(last=False)[1].size


@dataclass(frozen=True, slots=True)
class Pulled:
    """A pull answer: its page, and the clock reading taken just before this request read
    the feed head the page belongs to. A cached page keeps its bytes; the read is this
    request's own, so a replica is never told it is in sync later than a read took place."""

    page: Page
    read_at: float
