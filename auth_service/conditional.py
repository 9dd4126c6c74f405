"""What lets a cache answer for the issuer: strong ETags from bytes, `If-None-Match`, and
which content codings a request accepts (RFC 9110 sections 8.8.3, 13.1.2 and 12.5.3)."""

from __future__ import annotations

import hashlib
import re

# entity-tag = [ weak ] opaque-tag; opaque-tag = DQUOTE *etagc DQUOTE (RFC 9110 section 8.8.3).
# etagc allows commas, so a list is read tag by tag rather than split on them.
_ENTITY_TAG = re.compile(r'\s*(?:W/)?("[\x21\x23-\x7e\x80-\xff]*")\s*(?:,|$)')
_QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")  # RFC 9110 section 12.4.2


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


def accepts_gzip(header: str | None) -> bool:
    """Whether `Accept-Encoding` accepts gzip: named (or `*`) with a q-value above 0.

    No header, or an empty one, asks for identity here: a client that says nothing gets
    what every client can read."""
    named: float | None = None
    anything: float | None = None
    for item in (header or "").split(","):
        name, *params = (part.strip() for part in item.split(";"))
        name = name.lower()
        if name in ("gzip", "x-gzip"):  # x-gzip: the same coding (section 8.4.1.3)
            named = _q(params)
        elif name == "*":
            anything = _q(params)
    weight = named if named is not None else anything
    return weight is not None and weight > 0


def _q(params: list[str]) -> float:
    """An item's weight: 1 without `q`, 0 (refused) when `q` is not a qvalue."""
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "q":
            value = value.strip()
            return float(value) if _QVALUE.fullmatch(value) else 0.0
    return 1.0
