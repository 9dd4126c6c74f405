"""Settings of the auth service: one pydantic-settings class, every field from `AUTH_*`."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from resource_service.config import plain_http_off_loopback
from resource_service.logs import LogFormat, LogLevel

SigningAlg = Literal["RS256", "ES256", "Ed25519", "EdDSA"]

KEYSTORE_RELOAD_MARGIN = 2  # seconds; instances re-read the keystore every second
MIN_PASSPHRASE_LENGTH = 16  # characters of AUTH_KEYS_PASSPHRASE


def _cores() -> int:
    """The number of CPU cores of the machine."""
    return os.cpu_count() or 1


class Settings(BaseSettings):
    """Configuration of one auth-service instance.

    Every value can come from the environment (`AUTH_ISSUER`, `AUTH_KEYS_DIR`, ...). Values
    that would make the service insecure are refused at start-up rather than tolerated.
    """

    # hide_input_in_errors: a refused value (or, for a check across fields, every value) would
    # be echoed in the error, and the passphrase or a Redis password with it.
    model_config = SettingsConfigDict(env_prefix="AUTH_", extra="ignore", hide_input_in_errors=True)

    issuer: str = Field(
        "http://127.0.0.1:8000",
        description="Public base URL of this service; every URL in the metadata is built from it. "
        "When unset, `auth-service serve` uses `http://HOST:PORT` of its --host and --port.",
    )
    allow_insecure_issuer: bool = Field(
        False,
        description="Accept an `http://` issuer on a host other than loopback (127.0.0.0/8, ::1, "
        "localhost): replicas would then fetch keys and revocations unprotected. Off: refused.",
    )
    audience: str = Field(
        "api",
        max_length=256,
        description="The `aud` of access tokens for clients registered without `--audience` (the default "
        "`public` client's included): the resource servers' identifier when one API is all there is.",
    )
    data_dir: Path = Field(Path("data"), description="Directory of the embedded SQLite database.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL of the database; default: SQLite file `auth.db` in the data dir."
    )
    keys_dir: Path = Field(Path("keys"), description="Directory of the signing keystore.")
    keys_passphrase: SecretStr | None = Field(
        None,
        description="When set, private keys are stored encrypted with it: scrypt derives the "
        "key-encryption key, AES-256-GCM seals the key (keys/README.md). At least 16 characters.",
    )
    signing_alg: SigningAlg = Field(
        "RS256",
        description="Algorithm of newly generated signing keys. `Ed25519` (RFC 9864) and `EdDSA` (RFC 8037) "
        "are the same Ed25519 signature under two names: pick `Ed25519` when every verifier is ours or knows "
        "RFC 9864, `EdDSA` for older ones (PyJWT 2, for one). A change takes effect at the next key, "
        "published before it signs; keys made earlier keep their algorithm until they retire.",
    )
    access_token_ttl: int = Field(900, ge=30, le=86_400, description="Access token lifetime, seconds.")
    access_token_jitter: float = Field(
        0.0,
        ge=0.0,
        le=0.5,
        description="Fraction of AUTH_ACCESS_TOKEN_TTL taken off each access token at random (0.1: lifetimes "
        "spread over the last tenth), so a fleet of clients that logged in at once does not refresh at once.",
    )
    refresh_reuse_grace: int = Field(
        0,
        ge=0,
        le=60,
        description="Seconds after a refresh during which the refresh token it retired, presented again, is "
        "refused (`invalid_grant`) without revoking the session: two tabs refreshing at once. 0: off, every "
        "reuse revokes the session. After it, reuse revokes the session as always.",
    )
    refresh_token_ttl: int = Field(1_209_600, ge=60, le=31_536_000, description="Refresh token lifetime, seconds.")
    session_max_lifetime: int = Field(
        2_592_000,
        ge=60,
        le=31_536_000,
        description="Absolute lifetime of a login session, seconds: refresh "
        "tokens never outlive its start by more, however often they are rotated.",
    )
    refresh_rate: int = Field(
        10,
        ge=1,
        description="Refresh tokens issued per login session per minute (the login's included) "
        "before refreshes of that session get 429.",
    )
    leeway: int = Field(
        30, ge=0, le=300, description="Clock skew tolerated on exp/nbf/iat, seconds (must match the replicas')."
    )
    jwks_max_age: int = Field(
        300, ge=1, le=86_400, description="Cache-Control max-age of the JWKS and metadata, seconds."
    )
    key_rotation_interval: int = Field(
        2_592_000,
        ge=5,
        description="A signing key is superseded after this many seconds (scheduled rotation); "
        "must exceed the publish lead, 2 * AUTH_JWKS_MAX_AGE + 2 s.",
    )
    login_max_failures: int = Field(
        5,
        ge=1,
        description="Failed logins per (username, client address) within the window before 429 "
        "at that address; other addresses are not affected.",
    )
    login_max_failures_per_user: int = Field(
        100,
        ge=1,
        description="Failed logins per username from every address within the window (NIST SP "
        "800-63B allows 100) before the account is throttled: each address then gets one attempt per window, "
        "so the right password from an address with no recent failure is still accepted.",
    )
    login_max_attempts_per_ip: int = Field(
        100,
        ge=1,
        description="Login attempts, and failed client secrets, per client address (IPv6: per /64) "
        "within the window before 429.",
    )
    login_window: int = Field(300, ge=1, description="Rate-limit window for logins, seconds.")
    revocation_heartbeat: float = Field(
        5.0, gt=0, le=60, description="Seconds between heartbeats on the revocation push stream."
    )
    revocation_tail_interval: float = Field(
        0.1,
        ge=0.01,
        le=5,
        description="Seconds between this instance's reads of the revocation feed head, which find entries "
        "written by another instance on the same database or by the CLI: it bounds how late those reach "
        "this instance's push subscribers (entries written through this instance are pushed at once). "
        "Costs one read of the feed head row per interval per instance: about 1 ms of CPU on SQLite, "
        "so 1% of a core at 0.1 s.",
    )
    redis_url: str | None = Field(
        None, description="Redis for what several instances share: login rate limits, revocation fan-out."
    )
    redis_prefix: str = Field("auth:", max_length=64, description="Prefix of every Redis key and channel.")
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Origins allowed to call the token, revocation, userinfo and discovery endpoints "
        "(a single-page app's origin).",
    )
    product_name: str = Field(
        "auth-service", min_length=1, max_length=100, description="The name the sign-in pages show."
    )
    product_logo: Path | None = Field(
        None,
        description="An image file (PNG, JPEG, WebP or SVG, at most 256 KiB) the sign-in pages show, "
        "served by the issuer itself; default: none.",
    )
    metrics_enabled: bool = Field(
        True,
        description="Count tokens, logins, revocations and request latency, and serve them at "
        "GET /metrics in the Prometheus text format.",
    )
    password_hash_concurrency: int = Field(
        default_factory=_cores,
        ge=1,
        le=64,
        description="Password hashes computed at once (each takes 19 MiB and a core for ~30 ms); "
        "default: the number of cores.",
    )
    log_format: LogFormat = Field(
        "auto",
        description="Log lines as `json` (one object per line), `console` (for people), or `auto`: "
        "console when stderr is a terminal, else JSON.",
    )
    log_level: LogLevel = Field("INFO", description="Least severe level logged (DEBUG ... CRITICAL).")
    access_log: bool = Field(
        True, description="One log line per request (method, path without the query, status, duration_ms, request_id)."
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description='Addresses or networks (JSON list, e.g. `["10.0.0.5", "10.1.0.0/16"]`) '
        "of the balancers whose `X-Forwarded-For` and `X-Forwarded-Proto` are believed; default: none, "
        "the client address is the connection's peer.",
    )
    http_header_timeout: float = Field(
        10.0,
        gt=0,
        le=300,
        description="Seconds a connection has to send a request's headers (slow clients get 408 and are closed).",
    )
    http_body_timeout: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="Seconds a request has, after its headers, to send its whole body; a stalled body is closed.",
    )
    http_max_header_bytes: int = Field(
        16_384,
        ge=1_024,
        le=1_048_576,
        description="Largest request line and headers together, bytes; larger requests get 431.",
    )
    http_limit_concurrency: int = Field(
        1_000, ge=2, description="Open connections (push streams included) before new requests get 503."
    )
    http_backlog: int = Field(2_048, ge=1, description="Connections the kernel queues before accepting them.")
    revocation_pull_budget: int = Field(
        1_000_000,
        ge=10_000,
        description="Revocation entries per client address (IPv6: per /64) and minute "
        "that the issuer renders for pull pages not in its page cache; cached pages are free. Beyond it, "
        "429 with Retry-After. A fleet at one cursor asks for the same pages, each rendered once per feed head.",
    )
    revocation_pull_max_age: int = Field(
        2,
        ge=0,
        le=60,
        description="`Cache-Control: public, max-age` of `GET /revocations` pages, seconds, so nginx or a CDN "
        "can answer a fleet's pulls (docs/nginx.conf.example); 0: `no-cache`, every pull reaches an issuer. "
        "Safe: a replica counts its copy in sync as of the page's `Feed-Read-At` header, when an issuer read "
        "its feed, not as of the page's arrival, so a cached page only makes it report its copy that much "
        "older. Pushes (the SSE stream, Redis) never pass through such a cache.",
    )
    revocation_streams_max: int = Field(
        256,
        ge=1,
        description="Push streams (`GET /revocations/stream`) open at once; beyond, 429 "
        "with Retry-After. Must stay below AUTH_HTTP_LIMIT_CONCURRENCY.",
    )
    revocation_streams_per_address: int = Field(
        16, ge=1, description="Push streams open at once from one client address; beyond, 429 with Retry-After."
    )

    @field_validator("issuer")
    @classmethod
    def _issuer_is_base_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")) or "?" in value or "#" in value:
            raise ValueError("issuer must be an http(s) URL without query or fragment")
        return value.rstrip("/")

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item, strict=False)  # ValueError names the bad entry
        return value

    @model_validator(mode="after")
    def _streams_leave_room(self) -> Settings:
        if self.revocation_streams_max >= self.http_limit_concurrency:
            raise ValueError(
                "revocation_streams_max must stay below http_limit_concurrency, "
                "or streams alone could fill every connection"
            )
        return self

    @field_validator("keys_passphrase")
    @classmethod
    def _passphrase_is_long(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_PASSPHRASE_LENGTH:
            raise ValueError(f"AUTH_KEYS_PASSPHRASE must be at least {MIN_PASSPHRASE_LENGTH} characters")
        return value

    @model_validator(mode="after")
    def _issuer_is_protected(self) -> Settings:
        if plain_http_off_loopback(self.issuer) and not self.allow_insecure_issuer:
            raise ValueError(
                "AUTH_ISSUER is plain http:// on a host that is not loopback: use https, "
                "or set AUTH_ALLOW_INSECURE_ISSUER=true"
            )
        return self

    @model_validator(mode="after")
    def _lifetimes_fit_rotation(self) -> Settings:
        if self.key_rotation_interval <= self.publish_lead:
            raise ValueError("key_rotation_interval must exceed the publish lead (2 * jwks_max_age + 2 s)")
        return self

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'auth.db').resolve()}"

    @property
    def publish_lead(self) -> int:
        """How long a new key is published before it signs: one max-age for every cached
        JWKS to expire, one more for the replica's refresh to land, and the seconds every
        issuer instance may take to notice a key another process wrote (it re-reads the
        keystore each second)."""
        return 2 * self.jwks_max_age + KEYSTORE_RELOAD_MARGIN

    @property
    def max_token_lifetime(self) -> int:
        """The longest any token signed by a key can stay valid after the key stops signing."""
        return max(self.access_token_ttl, self.refresh_token_ttl) + self.leeway
