"""Authorization server metadata (RFC 8414): where the issuer keeps its keys and feed.

Only the members a replica uses are read, and the metadata must name the issuer
we expect, exactly (RFC 8414 section 3.3): a replica pointed at the wrong issuer
refuses to learn its keys rather than trusting them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from ._bounded import fetch, parse_json

__all__ = ["Metadata", "discover", "parse_metadata"]

WELL_KNOWN = "/.well-known/oauth-authorization-server"
MAX_METADATA_BYTES = 256 * 1024  # an issuer's metadata is a few KB


@dataclass(frozen=True)
class Metadata:
    issuer: str
    jwks_uri: str
    token_endpoint: str
    revocation_list_uri: str
    revocation_stream_uri: str


def parse_metadata(document: Any, expected_issuer: str) -> Metadata:
    """The members we need from a metadata document; `ValueError` if unusable."""
    if not isinstance(document, dict):
        raise ValueError("issuer metadata is not a JSON object")
    if document.get("issuer") != expected_issuer:
        raise ValueError("issuer metadata names another issuer")
    uris = {}
    for name in ("jwks_uri", "token_endpoint", "revocation_list_uri", "revocation_stream_uri"):
        value = document.get(name)
        if not isinstance(value, str) or urlsplit(value).scheme not in ("http", "https"):
            raise ValueError(f"issuer metadata has no usable {name}")
        uris[name] = value
    return Metadata(issuer=expected_issuer, **uris)


async def discover(client: httpx.AsyncClient, auth_url: str, expected_issuer: str) -> Metadata:
    """Fetch and check the issuer's metadata; raises `httpx.HTTPError` or `ValueError`."""
    response, content = await fetch(client, auth_url + WELL_KNOWN, max_bytes=MAX_METADATA_BYTES)
    response.raise_for_status()
    return parse_metadata(parse_json(content, "issuer metadata"), expected_issuer)
