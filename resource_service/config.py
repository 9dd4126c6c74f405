"""Settings of a resource replica, read from `RESOURCE_*` environment variables.

Values that would make verification unsafe (a huge leeway, an unlimited JWKS
refetch rate, a staleness bound the poll can never meet) are refused at start-up
rather than discovered in production.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from typing import Self
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .logs import LogFormat, LogLevel

__all__ = ["ResourceSettings", "plain_http_off_loopback"]

# The replica id travels in a response header: keep it to characters that cannot
# break one.
_REPLICA_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plain_http_off_loopback(url: str) -> bool:
    """True for an `http://` URL whose host is not loopback (127.0.0.0/8, ::1, localhost):
    anyone on the path could hand out keys or revocations in the issuer's name."""
    parts = urlsplit(url)
    return parts.scheme == "http" and not _is_loopback(parts.hostname or "")


def _default_replica_id() -> str:
    """`<hostname>-<pid>` of the process, or `replica-<pid>` when the host name is not header-safe."""
    replica = f"{socket.gethostname()}-{os.getpid()}"
    return replica if _REPLICA_ID.fullmatch(replica) else f"replica-{os.getpid()}"


class ResourceSettings(BaseSettings):
    """One replica's configuration; see the configuration reference for each name."""

    # hide_input_in_errors: a check across fields would echo every value, a Redis password too.
    model_config = SettingsConfigDict(env_prefix="RESOURCE_", extra="forbid", hide_input_in_errors=True)

    auth_url: str = Field(description="Base URL at which this replica reaches the issuer.")
    issuer: str | None = Field(default=None, description="Expected `iss` and metadata issuer; defaults to auth_url.")
    allow_insecure_issuer: bool = Field(
        default=False,
        description="Accept an `http://` issuer on a host other than loopback (127.0.0.0/8, ::1, "
        "localhost): keys and revocations then travel unprotected. Off: such an issuer is refused.",
    )
    allowed_metadata_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts (`host` or `host:port`) besides the issuer's own that the issuer metadata may "
        "point `jwks_uri` and the revocation feed at; by default they must share the issuer's scheme, "
        "host and port.",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Browser origins (`scheme://host[:port]`, exactly as the browser sends `Origin`) whose "
        "pages may call this API with a bearer token; preflights are answered and every response, a 401 "
        "too, carries the CORS headers. Empty: no CORS, as for an API only servers call.",
    )
    audience: str = Field(
        default="api",
        min_length=1,
        description="The `aud` access tokens must carry: the issuers' AUTH_AUDIENCE.",
    )
    replica_id: str = Field(
        default_factory=_default_replica_id,
        description="This replica's name, sent in the `X-Replica-Id` response header "
        "(1-64 characters of A-Z a-z 0-9 . _ : -).",
    )
    jwks_min_refetch_interval: float = Field(
        default=10.0,
        ge=1.0,
        description="Seconds between JWKS refetches caused by unknown kids; "
        "below 1 s junk kids would turn requests into fetches at the issuer.",
    )
    revocation_snapshot_interval: float = Field(
        default=600.0,
        gt=0,
        le=86_400,
        description="Seconds between full snapshot pulls of the revocation list. A snapshot is "
        "authoritative: anything this copy holds that the feed does not is dropped with it.",
    )
    revocation_poll_interval: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="Seconds between pulls of the revocation feed while push has not confirmed "
        "the copy current; the delay of a revocation when push is down.",
    )
    revocation_push: bool = Field(
        default=True,
        description="Follow the issuer's push stream (SSE); off: pull every poll interval only, "
        "for networks whose proxies cut long-lived responses.",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis the issuers publish revocations to; when set, replaces the SSE stream "
        "as the push source (pull stays the fallback).",
    )
    redis_prefix: str = Field(default="auth:", max_length=64, description="The issuers' AUTH_REDIS_PREFIX.")
    max_revocation_staleness: float | None = Field(
        default=None,
        gt=0,
        description="Refuse requests (503) when the revocation copy is staler than this many seconds "
        "(fail closed); unset: never. Must exceed the poll interval.",
    )
    leeway: float = Field(
        default=30.0,
        ge=0,
        le=300,
        description="Clock skew tolerated on exp/nbf/iat, seconds (the issuers' AUTH_LEEWAY).",
    )
    token_cache_size: int = Field(
        default=10_000,
        ge=0,
        le=10_000_000,
        description="Verified tokens remembered (least recently used first out); expiry, key and "
        "revocation are still checked on every request. 0: no cache.",
    )
    metrics_enabled: bool = Field(
        default=True,
        description="Count verification outcomes, JWKS fetches and request latency, and serve them at "
        "GET /metrics (Prometheus text format); off: no counting at all.",
    )
    log_format: LogFormat = Field(
        default="auto",
        description="Log lines as `json` (one object per line), `console` (for people), or `auto`: "
        "console when stderr is a terminal, else JSON.",
    )
    log_level: LogLevel = Field(default="INFO", description="Least severe level logged (DEBUG ... CRITICAL).")
    access_log: bool = Field(
        default=False,
        description="One log line per request (method, path, status, duration_ms, request_id); "
        "off by default: the verified path is the hot path.",
    )
    docs_client_id: str = Field(
        default="docs",
        min_length=1,
        description="Client id with which `/docs` (Swagger UI) signs in at the issuer: authorization code "
        "with PKCE, at the issuer's login page. Register it there as `auth-service clients add docs --public "
        "--grant authorization_code --redirect-uri https://REPLICA/docs/oauth2-redirect --first-party` "
        "(one `--redirect-uri` per origin the docs are served from) and list the replica's origin in "
        "AUTH_CORS_ORIGINS.",
    )
    host: str = Field(default="127.0.0.1", description="Interface `resource-service serve` binds.")
    port: int = Field(default=8001, ge=1, le=65535, description="Port `resource-service serve` binds.")
    http_header_timeout: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="Seconds a connection has to send a request's headers (slow clients get 408 and are closed).",
    )
    http_body_timeout: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="Seconds a request has, after its headers, to send its whole body; a stalled body is closed.",
    )
    http_max_header_bytes: int = Field(
        default=16_384,
        ge=1_024,
        le=1_048_576,
        description="Largest request line and headers together, bytes; larger requests get 431.",
    )
    http_limit_concurrency: int = Field(
        default=1_000,
        ge=1,
        description="Open connections before new requests get 503.",
    )
    http_backlog: int = Field(default=2_048, ge=1, description="Connections the kernel queues before accepting them.")

    @field_validator("auth_url", "issuer")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an absolute http(s) URL")
        if parts.query or parts.fragment:
            raise ValueError("must not carry a query or fragment")
        return value

    @field_validator("auth_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("allowed_metadata_hosts")
    @classmethod
    def _host_names(cls, value: list[str]) -> list[str]:
        if any(not host or "/" in host or "@" in host for host in value):
            raise ValueError("must be host names, or host:port, without scheme or path")
        return [host.lower() for host in value]

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        # An Origin header never has a path, query or trailing slash (RFC 6454 section 6.1):
        # an entry with one would match no browser and fail silently.
        for origin in value:
            parts = urlsplit(origin)
            if (
                parts.scheme not in ("http", "https")
                or not parts.netloc
                or origin != f"{parts.scheme}://{parts.netloc}"
            ):
                raise ValueError(f"{origin!r} is not an origin: scheme://host[:port], no path or trailing slash")
        return value

    @field_validator("replica_id")
    @classmethod
    def _header_safe(cls, value: str) -> str:
        if not _REPLICA_ID.fullmatch(value):
            raise ValueError("must be 1-64 characters of A-Z a-z 0-9 . _ : -")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.issuer is None:
            self.issuer = self.auth_url
        if plain_http_off_loopback(self.issuer) and not self.allow_insecure_issuer:
            raise ValueError(
                "RESOURCE_ISSUER (default: RESOURCE_AUTH_URL) is plain http:// on a host that is not "
                "loopback: use https, or set RESOURCE_ALLOW_INSECURE_ISSUER=true"
            )
        bound = self.max_revocation_staleness
        if bound is not None and bound <= self.revocation_poll_interval:
            # Without push, the copy is only refreshed once per poll: a tighter
            # bound would refuse service between every two polls.
            raise ValueError("max_revocation_staleness must exceed revocation_poll_interval")
        return self

    @property
    def expected_issuer(self) -> str:
        """The issuer tokens and metadata must name, exactly."""
        return self.issuer or self.auth_url
