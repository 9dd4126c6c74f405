"""What lets a cache answer for the issuer: strong ETags from bytes and `If-None-Match`
(RFC 9110 sections 8.8.3 and 13.1.2)."""

from __future__ import annotations

import hashlib
import re

# entity-tag = [ weak ] opaque-tag; opaque-tag = DQUOTE *etagc DQUOTE (RFC 9110 section 8.8.3).
# etagc allows commas, so a list is read tag by tag rather than split on them.
_ENTITY_TAG = re.compile(r'\s*(?:W/)?("[\x21\x23-\x7e\x80-\xff]*")\s*(?:,|$)')


def strong_etag(body: bytes) -> str:
    """A strong validator for exactly these bytes: equal bytes, equal tag, on every instance."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def none_match(header: str | None, etag: str) -> bool:
    """Whether `If-None-Match` holds `etag` (weak comparison, section 13.1.2) or is `*`: a
    GET is then answered 304 Not Modified."""
    if header is None:
        return False
    if header.strip() == "*":
        return True
    return etag in _ENTITY_TAG.findall(header)
