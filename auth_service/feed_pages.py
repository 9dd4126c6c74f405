"""Rendered pull pages of the revocation feed, kept for a fleet that asks for the same ones.

A fleet at one cursor asks for the same pages, so each is rendered once per (feed, head,
after, limit) into JSON bytes, with a strong ETag taken from those bytes once. The least
recently used pages go first. `Pulled` is what one request gets: a page and its own read
time of the feed.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from .conditional import strong_etag

CACHED_PAGES = 256  # rendered answers kept; each at most PAGE_LIMIT entries
CACHED_BYTES = 64 * 1024 * 1024

PageKey = tuple[str, int, int | None, int]  # (feed, head, after or None for a snapshot, limit)


class Page:
    """One pull answer: its JSON bytes and their strong ETag."""

    __slots__ = ("body", "etag", "key")

    def __init__(self, key: PageKey, body: bytes) -> None:
        self.key = key
        self.body = body
        self.etag = strong_etag(body)

    @property
    def size(self) -> int:
        return len(self.body)


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
