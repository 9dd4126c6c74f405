"""Authorization server metadata (RFC 8414): where the issuer keeps its keys and feed.

Only the members a replica uses are read, and the metadata must name the issuer
we expect, exactly (RFC 8414 section 3.3): a replica pointed at the wrong issuer
refuses to learn its keys rather than trusting them. The key and feed URLs must
stay at the issuer's origin (scheme, host, port), unless the replica allows another
host (`RESOURCE_ALLOWED_METADATA_HOSTS`): whoever answers discovery cannot send the
replica to fetch keys or revocations from a server of its choosing.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

import httpx

from ._bounded import fetch, parse_json

__all__ = ["Metadata", "discover", "parse_metadata"]

WELL_KNOWN = "/.well-known/oauth-authorization-server"
MAX_METADATA_BYTES = 256 * 1024  # an issuer's metadata is a few KB

# The URLs a replica fetches trust from; they must stay with the issuer.
_PINNED = ("jwks_uri", "revocation_list_uri", "revocation_stream_uri")
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Metadata:
    issuer: str
    jwks_uri: str
    token_endpoint: str
    revocation_list_uri: str
    revocation_stream_uri: str


def parse_metadata(document: Any, expected_issuer: str, allowed_hosts: Collection[str] = ()) -> Metadata:
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
        if name in _PINNED and not _trusted(urlsplit(value), urlsplit(expected_issuer), allowed_hosts):
            raise ValueError(
                f"issuer metadata points {name} away from the issuer's scheme, host and port: "
                "allow its host in RESOURCE_ALLOWED_METADATA_HOSTS if that is intended"
            )
        uris[name] = value
    return Metadata(issuer=expected_issuer, **uris)


def _origin(url: SplitResult) -> tuple[str, str, int | None]:
    return url.scheme, (url.hostname or ""), url.port or _DEFAULT_PORTS.get(url.scheme)


def _trusted(url: SplitResult, issuer: SplitResult, allowed_hosts: Collection[str]) -> bool:
    """At the issuer's origin, or (never a step down from the issuer's scheme) at an allowed host."""
    if _origin(url) == _origin(issuer):
        return True
    scheme_kept = url.scheme in (issuer.scheme, "https")
    return scheme_kept and (url.netloc.lower() in allowed_hosts or (url.hostname or "") in allowed_hosts)


async def discover(
    client: httpx.AsyncClient, auth_url: str, expected_issuer: str, allowed_hosts: Collection[str] = ()
) -> Metadata:
    """Fetch and check the issuer's metadata; raises `httpx.HTTPError` or `ValueError`."""
    response, content = await fetch(client, auth_url + WELL_KNOWN, max_bytes=MAX_METADATA_BYTES)
    response.raise_for_status()
    return parse_metadata(parse_json(content, "issuer metadata"), expected_issuer, allowed_hosts)
